"""Protocols: orchestrations of models and verifiers that produce records in a run folder.

Each protocol module registers a config class and a ``run(config, run) -> Result`` function under a
name; the ``protocol:`` key of a config file picks one. Every experiment referee runs is a protocol, so
``referee run RUN/config.yaml`` repeats any run, whichever command started it. A protocol writes records
and metrics only; reports (HTML pages, plots) are drawn from the run folder by the layer above.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from referee.errors import RefereeError


@dataclass
class Protocol:
    name: str
    config: type
    run: Callable
    summary: str


@dataclass
class Result:
    """What a protocol returns: all it measured (also in metrics.json) and one headline table, one row
    per model, arm or configuration, with the same keys in every row: what a reader looks at first."""

    metrics: dict
    headline: list[dict] = field(default_factory=list)
    title: str = ""


_REGISTRY: dict[str, Protocol] = {}


def register(name: str, config: type, summary: str):
    """Decorator: make ``run(config, run)`` available to ``referee run`` as ``protocol: name``."""
    def wrap(fn):
        _REGISTRY[name] = Protocol(name, config, fn, summary)
        return fn
    return wrap


def _load_builtin() -> None:
    """Import every module of this package: each one registers its protocols."""
    import importlib
    import pkgutil

    import referee.protocols as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"referee.protocols.{info.name}")


def get(name: str) -> Protocol:
    _load_builtin()
    if name not in _REGISTRY:
        raise RefereeError(f"unknown protocol {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def all_protocols() -> list[Protocol]:
    _load_builtin()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
