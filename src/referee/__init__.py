"""referee: AI feedback and scalable oversight of language models.

The public Python API is the names in ``__all__`` (documented in docs/api.md; ``referee.api``): load a
model, build any supervisor from a spec the command line accepts, score answers, judge pairs, run a
protocol config. They are imported on first use, so ``import referee`` stays light (no torch).
Everything else is internal and may change between versions.
"""

__version__ = "0.1.0"

from referee.errors import RefereeError  # noqa: E402

__all__ = ["RefereeError", "__version__", "load_model", "supervisor", "score", "judge_pairs", "run"]

_API = ("supervisor", "score", "judge_pairs", "run")


def load_model(spec: str, **kwargs):
    """Load a model from a spec string (``embedded``, ``hf:PATH_OR_ID``, ``openai:NAME@URL``)."""
    from referee.models import load_model as _load

    return _load(spec, **kwargs)


def __getattr__(name: str):
    if name in _API:
        from referee import api

        return getattr(api, name)
    raise AttributeError(f"module 'referee' has no attribute {name!r}")
