"""People label pairs and solution steps in a local web page, with a model's critique at hand.

``items`` reads what is labelled, ``critique`` asks a critic model about each answer and finds its quotes,
``store`` keeps every judgement in SQLite, ``assignment`` decides per annotator what each item shows,
``stats`` and ``export`` read the store back, and ``app`` is the page (FastAPI + Jinja2).
"""
