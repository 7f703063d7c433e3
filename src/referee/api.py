"""referee from Python: the few calls a user's own script needs, each reading a spec exactly as the command
line does (``referee.supervisors``), re-exported at the top as ``referee.supervisor``, ``referee.score``,
``referee.judge_pairs`` and ``referee.run``.

    import referee
    grader = referee.supervisor("judge:embedded")            # any --reward / --verifier spec
    referee.score(grader, ["What is 2 + 2?"], ["4"])         # [value or None where unreadable]
    referee.judge_pairs("baseline:longer", "pairs.jsonl")    # any --judge spec, pairs in any accepted format
    result = referee.run("configs/verifiable_feedback_arithmetic.yaml", seed=1)  # as `referee run`

It sits over the reports (``run`` draws a run's figures, as the command does) and under the CLI, whose
commands run their protocols through ``execute`` here.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from referee.errors import RefereeError

# The kinds of spec that score one answer (``build_verifier``); every other spec names a judge of pairs.
VERIFIER_KINDS = ("judge", "judge-additive", "rm", "orm", "prm", "exact", "python")


def supervisor(spec: str | Sequence[str], *, cache: str | os.PathLike | None = None,
               answers: dict[str, str] | None = None, **judge_options):
    """The judge, grader, reward model or checker a spec names, from any spec the CLI accepts.

    ``judge:M``, ``judge-additive:M``, ``rm:``/``orm:``/``prm:FOLDER``, ``exact`` (with ``answers``,
    prompt -> gold) and ``python:MODULE:FUNCTION`` score one answer (``score_many``); a model spec,
    ``baseline:longer|random`` or several specs (a panel) judge pairs (``judge_pairs``), set up by
    ``judge_options`` (the fields of ``JudgeConfig``: mode, template, verdict, swap, ...; ``mode="single"``
    gives a grader). ``cache``: an SQLite file that keeps the models' answers, so a repeat costs nothing."""
    from referee.judges.build import JudgeConfig
    from referee.supervisors import build_judge, build_verifier, model_loader

    load = model_loader(cache)
    if isinstance(spec, str) and spec.partition(":")[0] in VERIFIER_KINDS:
        if judge_options:
            raise RefereeError(f"supervisor {spec!r}: judge options ({', '.join(sorted(judge_options))}) are for "
                               "judges of pairs; a scorer of one answer takes none")
        return build_verifier(spec, answers, load)
    from referee.config import validate

    return build_judge(spec, validate(JudgeConfig, judge_options, "supervisor options"), load)


def score(verifier, prompts: Sequence, responses: Sequence[str], *, answers: dict[str, str] | None = None,
          cache: str | os.PathLike | None = None) -> list[float | None]:
    """Each response's score from ``verifier`` (a spec or a built scorer), None where its output could not
    be read: an unreadable grade is never a number. ``prompts`` are strings or chats."""
    if len(prompts) != len(responses):
        raise RefereeError(f"score: {len(prompts)} prompts but {len(responses)} responses; give one of each")
    if isinstance(verifier, str):
        verifier = supervisor(verifier, cache=cache, answers=answers)
    if not hasattr(verifier, "score_many"):
        raise RefereeError(f"score: {type(verifier).__name__} does not score single answers (no score_many)")
    return [s.value if s.valid else None for s in verifier.score_many(list(prompts), list(responses))]


def judge_pairs(judge, pairs, *, cache: str | os.PathLike | None = None, **judge_options) -> list[dict]:
    """Judge records (verdict, probabilities, each order shown) for ``pairs``: a file in any format
    ``referee judge --pairs`` reads, a list of such records (dicts), or ``Pair`` objects. ``judge`` is a
    spec (``rm:FOLDER`` judges by the higher reward) or a built judge."""
    from referee.tasks.pairs import Pair, load_pairs, pairs_from_records

    if isinstance(pairs, (str, os.PathLike)):
        items = load_pairs(pairs)
    else:
        items = list(pairs)
        if items and not all(isinstance(p, Pair) for p in items):
            items = pairs_from_records(items, "judge_pairs")
    if isinstance(judge, str):
        if judge.startswith("rm:"):
            from referee.supervisors import rm_judge

            judge = rm_judge(judge[3:])
        else:
            judge = supervisor(judge, cache=cache, **judge_options)
    if not hasattr(judge, "judge_pairs"):
        raise RefereeError(f"judge_pairs: {type(judge).__name__} does not judge pairs (no judge_pairs)")
    return judge.judge_pairs(items)


def run(config: str | os.PathLike | dict, **settings: Any):
    """Run a protocol config (a YAML path, or the settings as a dict) as ``referee run`` does, with
    ``settings`` replacing top-level ones (``seed=1``, ``out="runs/x"``); resumes a finished or killed run in
    the same folder. Returns the protocol's ``Result`` with ``folder``, the run folder, filled in."""
    from referee import protocols
    from referee.config import load_config_file, validate

    where = str(config) if isinstance(config, (str, os.PathLike)) else "config"
    data = dict(load_config_file(Path(config)) if isinstance(config, (str, os.PathLike)) else config)
    data.update(settings)
    if "protocol" not in data:
        raise RefereeError(f"{where}: missing setting 'protocol' (one of: {', '.join(protocols.names())})")
    validated = validate(protocols.get(str(data["protocol"])).config, data, where)
    default = Path("runs") / (Path(where).stem if where != "config" else str(data["protocol"]))
    result, done, _ = execute(validated, default)
    return dataclasses.replace(result, folder=str(done.folder))


def execute(config, default_folder: str | Path):
    """Run a validated protocol config in its run folder (``config.out``, else ``default_folder``), then
    draw its report from the folder. Every command that runs an experiment goes through here, so its
    config.yaml names the protocol and ``referee run RUN/config.yaml`` repeats it."""
    from referee import protocols, reports
    from referee.distributed import is_main_process
    from referee.runs import Run

    proto = protocols.get(config.protocol)
    _refuse_secrets(config.model_dump(mode="json"))
    if config.out is None:
        config = config.model_copy(update={"out": str(default_folder)})
    with Run(config.out, config, seed=config.seed) as run_:
        result = proto.run(config, run_)
    # drawn after ledger.json and manifest.json are written, by the main process only (under a launcher)
    return result, run_, reports.draw_for(proto.name, run_) if is_main_process() else []


def _refuse_secrets(value) -> None:
    """A model spec holding a key or credentials is refused before the run folder (config.yaml,
    manifest.json) is written, and without quoting it."""
    if isinstance(value, dict):
        for v in value.values():
            _refuse_secrets(v)
    elif isinstance(value, list):
        for v in value:
            _refuse_secrets(v)
    elif isinstance(value, str) and value.strip().startswith("openai:"):
        from referee.models.openai import refuse_secrets

        refuse_secrets(value)
    elif isinstance(value, str) and value.strip().startswith("hf:"):
        from referee.models import HF_OPTIONS
        from referee.models.credentials import refuse_credentials

        refuse_credentials(value, HF_OPTIONS)
