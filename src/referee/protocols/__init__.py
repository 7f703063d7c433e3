"""Protocols: orchestrations of models and verifiers that produce records in a run folder.

Each protocol module registers a config class and a ``run(config, run) -> Result`` function under a
name; the ``protocol:`` key of a config file picks one. Every experiment referee runs is a protocol, so
``referee run RUN/config.yaml`` repeats any run, whichever command started it. A protocol writes records
and metrics only; reports (HTML pages, plots) are drawn from the run folder by the layer above.

``BUILTIN`` names the module that defines each protocol, so a command imports the one protocol it runs
and none of the others (several pull in torch, a second or more of start-up a baseline judge never uses).
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
    folder: str | None = None  # the run folder, filled in by ``referee.run``


# The module that registers each built-in protocol, imported on first use. tests/test_startup.py checks
# this table against what the modules register, so a protocol added or moved without it fails there.
BUILTIN: dict[str, str] = {
    "agreement": "referee.protocols.audit",
    "audit": "referee.protocols.audit",
    "best_of_n": "referee.protocols.best_of_n",
    "consultancy": "referee.protocols.debate",
    "critics": "referee.protocols.critics",
    "debate": "referee.protocols.debate",
    "debate_tournament": "referee.protocols.debate_tournament",
    "judge": "referee.protocols.judge",
    "judge_template_optimization": "referee.protocols.judge_template_optimization",
    "judge_training": "referee.protocols.judge_training",
    "mc_label": "referee.protocols.mc_label",
    "prompt_optimization": "referee.protocols.prompt_optimization",
    "prover_verifier": "referee.protocols.prover_verifier",
    "reward_model": "referee.protocols.reward_model",
    "rlaif": "referee.protocols.rlaif",
    "sampling": "referee.protocols.sampling",
    "self_rewarding": "referee.protocols.self_rewarding",
    "verifiable_feedback": "referee.protocols.verifiable_feedback",
    "weak_to_strong": "referee.protocols.weak_to_strong",
}

_REGISTRY: dict[str, Protocol] = {}


def register(name: str, config: type, summary: str):
    """Decorator: make ``run(config, run)`` available to ``referee run`` as ``protocol: name``."""
    def wrap(fn):
        _REGISTRY[name] = Protocol(name, config, fn, summary)
        return fn
    return wrap


def names() -> list[str]:
    """Every protocol a config can name, without importing any of them."""
    return sorted(set(BUILTIN) | set(_REGISTRY))


def get(name: str) -> Protocol:
    """The protocol ``name``, importing only the module that defines it."""
    if name not in _REGISTRY and name in BUILTIN:
        import importlib

        importlib.import_module(BUILTIN[name])
    if name not in _REGISTRY:
        raise RefereeError(f"unknown protocol {name!r}; known: {', '.join(names())}")
    return _REGISTRY[name]


def all_protocols() -> list[Protocol]:
    """Every protocol with its summary (this imports them all: for listing them, not for running one)."""
    return [get(name) for name in names()]
