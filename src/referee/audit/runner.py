"""Running a bias audit: build the audit pairs, have the judge judge them, compute the metrics.

One function, ``run_audit``, reads top to bottom like the audit itself. The judge is anything with
``judge_pairs(pairs) -> records`` (a ``PairwiseJudge``, a baseline); ``make_judge(swap)`` gives a judge
with another swap setting, used when the position check needs both orders and the main judge shows
only one. In a run, each check's judging is a stage keyed by ``judge_key`` (what the judge's verdicts
depend on: settings and model fingerprints) and the very pairs it judges.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Callable

from referee import progress, stats
from referee.audit import biases
from referee.audit.pairs import assertive_pairs, injection_pairs, verbosity_pairs
from referee.judges.records import both_orders
from referee.errors import RefereeError
from referee.tasks.pairs import Pair

CHECKS = ("position", "verbosity", "injection", "assertiveness", "self")
SELF_NAME = "judge-model"  # the model name given to the judge's own answers in generated self pairs


def parse_checks(text: str) -> list[str]:
    """``position,verbosity`` -> a checked list; ``all`` -> every check."""
    names = [c.strip() for c in text.split(",") if c.strip()]
    if names == ["all"]:
        return list(CHECKS)
    unknown = [c for c in names if c not in CHECKS]
    if unknown or not names:
        raise RefereeError(f"--checks: unknown check(s) {', '.join(unknown) or '(none given)'}; "
                           f"choose from {', '.join(CHECKS)} or all")
    return names


def _tagged(records: list[dict], audit_pairs: list[Pair]) -> list[dict]:
    meta = {p.id: p.meta for p in audit_pairs}
    return [{**r, "audit": meta.get(r["id"], {})} for r in records]


def self_answer_pairs(model, pairs: list[Pair], seed: int = 0, max_new_tokens: int = 256) -> list[Pair]:
    """Pairs of the judge model's own answer against a given answer, for the self check when the data
    names no models: the own answer faces the gold winner (or answer A), on a seeded random side."""
    from referee.models.base import Sampling

    completions = model.generate([p.question for p in pairs],
                                 Sampling(temperature=0.7, max_new_tokens=max_new_tokens, seed=seed),
                                 desc="own answers")
    out = []
    for pair, comps in zip(pairs, completions):
        own = comps[0].text.strip()
        other = pair.answer_b if pair.label == "B" else pair.answer_a
        pid = f"{pair.id}:self"
        own_first = hashlib.sha256(f"{seed}|{pid}".encode()).digest()[0] < 128
        a, b = (own, other) if own_first else (other, own)
        out.append(replace(pair, id=pid, answer_a=a, answer_b=b, label=None, turns_a=None, turns_b=None,
                           meta={"source": pair.id, "check": "self",
                                 "model_a": SELF_NAME if own_first else "given",
                                 "model_b": "given" if own_first else SELF_NAME}))
    return out


def run_audit(judge, pairs: list[Pair], checks: list[str], *, make_judge: Callable[[str], object] | None = None,
              self_names: list[str] | None = None, own_model=None, run=None, seed: int = 0,
              n_boot: int = stats.N_BOOT, judge_key=None, stage_prefix: str = "", save: bool = True) -> dict:
    """Audit ``judge`` on ``pairs``; returns JSON-ready metrics per check (and writes records to ``run``,
    each check a stage named ``stage_prefix`` + check, the metrics under "audit" unless not ``save``).

    ``self_names``: model names (as in the pairs' ``meta`` model_a / model_b) that are the judge's own;
    without them the self check judges ``own_model``'s freshly generated answers against given ones.
    """
    kw = {"n_boot": n_boot, "seed": seed}
    metrics: dict = {"pairs": len(pairs), "checks": list(checks)}

    def judged(stage: str, stage_pairs: list[Pair], who=None, swap: str | None = None) -> list[dict]:
        progress.say(f"audit: {stage} ({len(stage_pairs)} pairs)")
        if run is None:
            return (who or judge).judge_pairs(stage_pairs)
        inputs = {"judge": judge_key, "swap": swap, "pairs": stage_pairs}
        return run.run_stage(stage_prefix + stage, inputs,
                             lambda: _tagged((who or judge).judge_pairs(stage_pairs), stage_pairs))

    base = judged("base", pairs)
    metrics["invalid"] = stats.rate([r["winner"] == "invalid" for r in base], **kw)

    if "position" in checks:
        records = base
        if not all(both_orders(r) for r in base):
            if make_judge is None:
                raise RefereeError("position check: the judge shows one order only; give make_judge to get both")
            records = judged("position", pairs, make_judge("conservative"), swap="conservative")
        metrics["position"] = biases.position_bias(records, **kw)

    if "verbosity" in checks:
        vpairs, skipped = verbosity_pairs(pairs, seed=seed)
        metrics["verbosity"] = {**biases.verbosity_failure(judged("verbosity", vpairs), vpairs, **kw),
                                "answers_skipped": skipped}

    for check, build in (("assertiveness", assertive_pairs), ("injection", injection_pairs)):
        if check in checks:
            apairs = build(pairs)
            metrics[check] = biases.flip_audit(base, judged(check, apairs), apairs, **kw)

    if "self" in checks:
        metrics["self"] = _self_check(base, pairs, judged, self_names, own_model, seed, kw)
    if run is not None and save:
        run.save_metrics({"audit": stats.jsonable(metrics)})
    return metrics


def _self_check(base: list[dict], pairs: list[Pair], judged: Callable, self_names: list[str] | None, own_model,
                seed: int, kw: dict) -> dict:
    """Self-enhancement: from the pairs' own model names when given, else from the judge model's freshly
    written answers set against given ones."""
    if self_names:
        out = biases.self_enhancement(base, pairs, self_names, **kw)
        if out["n"] == 0:
            raise RefereeError(f"self check: no pair has exactly one answer by {', '.join(self_names)} "
                               f"(fields model_a / model_b)")
        return out
    if own_model is None:
        raise RefereeError("self check: name the judge's own model(s) (--self-model) or judge with a model "
                           "that can write its own answers")
    spairs = self_answer_pairs(own_model, pairs, seed=seed)
    return {**biases.self_enhancement(judged("self", spairs), spairs, [SELF_NAME], **kw), "source": "generated"}
