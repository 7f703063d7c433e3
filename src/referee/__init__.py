"""referee: AI feedback and scalable oversight of language models.

Layers, bottom up: data and models (``referee.io``, ``referee.models``, ``referee.cache``), verifiers
and trainers, protocols, then the CLI and reports. Each layer imports only the layers under it.
"""

__version__ = "0.1.0"

from referee.errors import RefereeError  # noqa: E402

__all__ = ["RefereeError", "__version__", "load_model"]


def load_model(spec: str, **kwargs):
    """Load a model from a spec string (``embedded``, ``hf:PATH_OR_ID``, ``openai:NAME@URL``)."""
    from referee.models import load_model as _load

    return _load(spec, **kwargs)
