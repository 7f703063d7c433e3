"""Referee's verifiers and grading judges inside Inspect AI, and Inspect's logs as referee answers.

Inspect AI runs evaluations (tasks, solvers, model providers, a log viewer); referee makes and audits the
supervisors that grade them. ``scorer(spec)`` turns any spec ``referee.supervisors`` reads (``exact``,
``judge:MODEL``, ``rm:FOLDER``, ``python:MODULE:FUNCTION``) or a verifier object into an Inspect scorer;
``eval_log_answers(path)`` reads an Inspect log's samples as the answer records ``referee judge --mode
single --answers`` grades (that option takes the log itself). Inspect is an optional extra
(``pip install 'referee[inspect]'``): this module imports it only when one of these is called.

An unreadable verdict (a judge's reply with no grade in it, a score that is not a number) becomes
Inspect's unscored sentinel, ``Score.unscored``: value NaN, reason ``grader_failed``, metadata
``invalid: True`` with the verifier's detail. Inspect leaves it out of every metric and counts it as the
scorer's ``unscored_samples`` beside them, so the mean is of the answered samples and the rest are
counted, as in referee's own reports; it is never a 0. (A solution that states no answer is another
thing: the ``exact`` check scores it 0, a wrong answer, with ``status: no_answer`` in its detail.)
"""

from __future__ import annotations

import inspect as python_inspect
import json
import math
import re
import threading
from pathlib import Path
from typing import Any, Callable

from referee.errors import RefereeError

INSTALL = "pip install 'referee[inspect]'"
PLACEMENT = ("device", "batch_size")  # the options of a trained reward model's spec
ROLES = ("system", "user", "assistant")
_JSON_LOG_HEAD = re.compile(r'\s*\{\s*"version"\s*:\s*\d+\s*,')


def require_inspect() -> None:
    """Inspect AI is an optional extra: without it, say how to install it instead of an ImportError."""
    try:
        import inspect_ai  # noqa: F401
    except ImportError:
        raise RefereeError(f"Inspect AI is not installed; install it with: {INSTALL}") from None


# ---- referee supervisors as Inspect scorers --------------------------------------------------------
def scorer(supervisor: Any, *, name: str = "referee", cache: str | Path | None = None, **options):
    """An Inspect scorer (mean and stderr over the scored samples) that grades ``state.output.completion``
    against the sample's input with a referee verifier: a spec string or a verifier object (anything with
    ``score_many``). A spec's ``options`` are a judge's settings (``verdict``, ``template``, ``cot``,
    ``reference``, ``max_new_tokens``, ...) or a reward model's ``device``/``batch_size``; ``cache`` is a
    referee cache file for the judge's model calls. Where the verifier checks against a reference (the
    ``exact`` check, a judge with ``reference="given"``), the sample's target is that reference."""
    require_inspect()
    from inspect_ai.scorer import mean, stderr
    from inspect_ai.scorer import scorer as inspect_scorer

    verifier, label = build_supervisor(supervisor, options, cache)
    grade, wants_target = grader(verifier)
    lock = threading.Lock()  # one verifier call at a time: a local model and its cache are not shared

    @inspect_scorer(metrics=[mean(), stderr()], name=name)
    def referee_scorer(supervisor: str, options: dict):
        async def score(state, target):
            from anyio import to_thread

            if wants_target and not target.text.strip():
                raise RefereeError(f"sample {state.sample_id}: {label} checks against the target; the sample has none")
            prompt, response = inspect_chat(state.input), state.output.completion

            def run():
                with lock:
                    return grade(prompt, response, target.text)

            return inspect_score(await to_thread.run_sync(run), label)

        return score

    recorded = {**options, **({"cache": str(cache)} if cache is not None else {})}
    return referee_scorer(supervisor=label, options=recorded)  # both named in the log's scorer options


def build_supervisor(supervisor: Any, options: dict, cache: str | Path | None = None) -> tuple[Any, str]:
    """The verifier and its name: a spec through referee's one factory, or a verifier object as it is."""
    if not isinstance(supervisor, str):
        if options or cache is not None:
            raise RefereeError("scorer: options and cache are for a spec string; set up a verifier object yourself")
        if not callable(getattr(supervisor, "score_many", None)):
            raise RefereeError(f"scorer: {type(supervisor).__name__} has no score_many(prompts, responses); give a "
                               f"verifier or a spec such as exact, judge:embedded, rm:FOLDER")
        return supervisor, getattr(supervisor, "name", type(supervisor).__name__)
    from referee.supervisors import GRADER_TEMPLATES, build_judge, build_verifier, model_loader

    load = model_loader(cache)
    kind, _, target = supervisor.partition(":")
    if kind in GRADER_TEMPLATES and target:
        return build_judge(target, _judge_config(supervisor, kind, options), load), supervisor
    unknown = sorted(set(options) - set(PLACEMENT))
    if unknown:
        raise RefereeError(f"scorer {supervisor!r}: unknown option(s) {', '.join(unknown)}; a judge:MODEL spec takes "
                           f"a judge's settings, a reward model {', '.join(PLACEMENT)}")
    return build_verifier(supervisor, load_model=load, golds_per_call=True, **options), supervisor


def _judge_config(spec: str, kind: str, options: dict):
    from referee.config import validate
    from referee.judges.build import JudgeConfig
    from referee.supervisors import GRADER_TEMPLATES

    if options.get("mode", "single") != "single":
        raise RefereeError(f"scorer {spec!r}: a scorer grades one answer at a time (mode single)")
    return validate(JudgeConfig, {"template": GRADER_TEMPLATES[kind], **options, "mode": "single"}, f"scorer {spec!r}")


def grader(verifier) -> tuple[Callable, bool]:
    """``(prompt, response, target) -> referee Score`` for one sample, and whether it reads the target:
    a judge with ``reference == "given"`` reads it as the reference answer, a verifier whose
    ``score_many`` takes ``golds=`` (the exact check) as the gold answer; others ignore it."""
    from referee.verifiers.base import Score

    if getattr(verifier, "reference", None) == "given" and callable(getattr(verifier, "grade", None)):
        def by_grade(prompt, response, target):
            g = verifier.grade([prompt], [response], [target])[0]
            return Score(g.value, valid=g["valid"], detail=g)

        return by_grade, True
    if "golds" in python_inspect.signature(verifier.score_many).parameters:
        return lambda prompt, response, target: verifier.score_many([prompt], [response], golds=[target])[0], True
    return lambda prompt, response, target: verifier.score_many([prompt], [response])[0], False


def inspect_score(result, label: str):
    """A referee ``Score`` as Inspect's: its value, or the unscored sentinel when it is unreadable."""
    from inspect_ai.scorer import Score

    detail = json.loads(json.dumps(result.detail, default=str))
    value = result.value
    readable = result.valid and isinstance(value, (int, float)) and math.isfinite(value)
    metadata = {"invalid": not readable, "supervisor": label, "detail": detail}
    if not readable:
        why = detail.get("why") or "the verifier's output could not be read"
        return Score.unscored(reason="grader_failed", explanation=f"{label}: {why}", metadata=metadata)
    answer, raw = detail.get("answer"), detail.get("raw")
    return Score(value=float(value), answer=answer if isinstance(answer, str) else None,
                 explanation=raw if isinstance(raw, str) else None, metadata=metadata)


def inspect_chat(value) -> str | list[dict]:
    """Inspect's input (text, or chat messages) as a referee prompt; tool calls and results are left out."""
    if isinstance(value, str):
        return value
    return [{"role": m.role, "content": m.text} for m in value if m.role in ROLES]


# ---- Inspect logs as referee answers ---------------------------------------------------------------
def is_eval_log(path: str | Path) -> bool:
    """An Inspect log: a ``.eval`` file, or a ``.json`` file that opens as Inspect's log does (a JSON
    object whose first field is ``version``; referee's own JSON answers are an array or JSONL)."""
    path = Path(path)
    if path.suffix == ".eval":
        return True
    if path.suffix != ".json" or not path.is_file():
        return False
    with open(path, encoding="utf-8", errors="replace") as f:
        return bool(_JSON_LOG_HEAD.match(f.read(256)))


def eval_log_answers(path: str | Path) -> list[dict]:
    """The samples of an Inspect log as answer records: ``id`` (``ID:EPOCH`` when the log has several
    epochs), ``prompt`` (the sample's input as messages), ``response`` (the model's final completion) and
    ``reference`` (the target, or None). Samples that ended in an error have no answer: they are left out
    and counted on stderr."""
    require_inspect()
    from inspect_ai.log import read_eval_log

    from referee import progress

    if not Path(path).is_file():
        raise RefereeError(f"{path}: no such Inspect log")
    try:
        log = read_eval_log(str(path), resolve_attachments=True)
    except Exception as e:  # a damaged zip, foreign JSON, a schema Inspect refuses: one line, not a traceback
        raise RefereeError(f"{path}: not a readable Inspect eval log ({type(e).__name__}: {e})") from None
    if not log.samples:
        raise RefereeError(f"{path}: the log holds no samples (written with log_samples=False, or still running?)")
    several = len({s.epoch for s in log.samples}) > 1
    done = [s for s in log.samples if s.error is None]
    if len(done) < len(log.samples):
        progress.say(f"{path}: {len(log.samples) - len(done)} sample(s) ended in an error and have no answer; "
                     f"left out")
    return [{"id": f"{s.id}:{s.epoch}" if several else str(s.id), "prompt": _messages(s.input),
             "response": s.output.completion, "reference": _reference(s.target)} for s in done]


def _messages(value) -> list[dict]:
    chat = inspect_chat(value)
    return [{"role": "user", "content": chat}] if isinstance(chat, str) else chat


def _reference(target) -> str | None:
    text = target if isinstance(target, str) else "\n".join(target)
    return text or None
