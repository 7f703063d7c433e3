"""``protocol: judge``: an LLM judge (or a panel, or a baseline) over labelled pairs or single answers.

    load the items (pairs; or answers with a prompt and a response, in mode single)
    judgments = the judge's records for every item        (one stage, keyed by judge and items)
    metrics   = agreement with the labels where there are labels, tie / invalid rates, position checks

Pairs in mode single are decided by grading both answers: the higher grade wins.
"""

from __future__ import annotations

from pydantic import Field

from referee.config import ProtocolConfig
from referee.errors import RefereeError
from referee.judges import summarize, summarize_grades
from referee.judges.build import JudgeConfig, resolve_reference
from referee.judges.grades import judge_pairs_by_grades
from referee.protocols import Result, register
from referee.runs import Run
from referee.supervisors import build_judge, judge_identity
from referee.tasks.pairs import load_pairs


class JudgeRunConfig(ProtocolConfig):
    protocol: str = "judge"
    judges: list[str] = Field(["embedded"], min_length=1)  # several: a panel
    pairs: str | None = None  # LLMBar, MT-Bench human, TRL preference or prompt/answer_a/answer_b
    answers: str | None = None  # mode single: JSONL with prompt, response (optional reference, id)
    judge: JudgeConfig = JudgeConfig()
    limit: int | None = Field(None, ge=1)


@register("judge", JudgeRunConfig, "judge pairs (A, B or tie) or grade answers with an LLM judge, panel or baseline")
def run_judge(cfg: JudgeRunConfig, run: Run) -> Result:
    items = load_items(cfg)
    settings = resolve_reference(cfg.judge, items)
    judge = build_judge(cfg.judges, settings, run.model)
    records = run.run_stage("judgments", {"judge": judge_identity(cfg.judges, settings, run.model), "items": items},
                            lambda: judge_items(judge, items, cfg))
    metrics = run.save_metrics({"judge": summarize_items(records, cfg)})["judge"]
    return Result(metrics, [{k: v for k, v in metrics.items() if not isinstance(v, dict)}],
                  f"judge {', '.join(cfg.judges)} on {cfg.answers or cfg.pairs}")


def items_source(pairs, answers, mode: str):
    """The file a judge run reads: the answers (mode single only), else the pairs. The command checks
    its options with this before it names its run folder, the protocol its config."""
    if answers is not None and mode != "single":
        raise RefereeError("--answers is for --mode single; give pairs with --pairs")
    if answers is None and pairs is None:
        raise RefereeError("give --pairs FILE" + (" or --answers FILE" if mode == "single" else ""))
    return answers if answers is not None else pairs


def load_items(cfg: JudgeRunConfig) -> list:
    source = items_source(cfg.pairs, cfg.answers, cfg.judge.mode)
    items = load_answers(source) if cfg.answers else load_pairs(source)
    return items[:cfg.limit] if cfg.limit else items


def load_answers(path: str) -> list[dict]:
    """Single answers to grade: ``prompt`` (text or messages), ``response``, optional ``reference``, ``id``;
    from JSONL, a JSON array, or an Inspect AI log (``.eval``/``.json``: its samples, checked the same way)."""
    from referee.chat import as_chat
    from referee.integrations.inspect import eval_log_answers, is_eval_log
    from referee.io import read_records, require

    rows = enumerate(eval_log_answers(path), start=1) if is_eval_log(path) else read_records(path)
    items = []
    for pos, obj in rows:
        where = f"{path}:{pos}"
        prompt = require(obj, "prompt", (str, list), where)
        response = require(obj, "response", str, where)
        ref = obj.get("reference")
        if ref is not None and not isinstance(ref, str):
            raise RefereeError(f"{where}: field 'reference' should be a string")
        items.append({"id": str(obj.get("id", pos)), "prompt": as_chat(prompt, f"{where}: field 'prompt'"),
                      "response": response, "reference": ref})
    if not items:
        raise RefereeError(f"{path}: no answers in the file")
    return items


def judge_items(judge, items: list, cfg: JudgeRunConfig) -> list[dict]:
    """Pairs judged pairwise, pairs decided by grading both answers, or single answers graded."""
    if cfg.judge.mode != "single":
        return judge.judge_pairs(items)
    if cfg.answers is None:
        return judge_pairs_by_grades(judge, items)[0]
    refs = [it["reference"] for it in items]
    grades = judge.grade([it["prompt"] for it in items], [it["response"] for it in items], refs if any(refs) else None)
    return [{"id": it["id"], **g} for it, g in zip(items, grades)]


def summarize_items(records: list[dict], cfg: JudgeRunConfig) -> dict:
    if cfg.judge.mode != "single":
        return summarize(records)
    if cfg.answers is not None:
        return summarize_grades(records)
    return {**summarize(records), "grades": summarize_grades([g for r in records for g in (r["grade_a"], r["grade_b"])])}
