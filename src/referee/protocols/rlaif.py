"""RLAIF preference data: a policy samples k answers per prompt, a judge ranks them, the best and the
worst become a DPO pair (TRL format), each with the judge's margin and raw verdicts.

    pairwise mode: every two of the k answers are compared (both orders per the swap setting); an
                   answer's strength is its mean P(better) over its comparisons;
    grading mode:  every answer gets a score on the template's scale.
The answer with the highest strength or score is chosen, the lowest rejected; prompts whose best and
worst are tied, or whose verdicts are unreadable, are skipped and counted. If human-labelled pairs are
given, the same judge judges them and its agreement with people is reported beside the data.
"""

from __future__ import annotations

from itertools import combinations
from typing import Literal

from pydantic import Field

from referee import stats
from referee.chat import load_prompts
from referee.config import ProtocolConfig, SamplingConfig
from referee.errors import RefereeError
from referee.feedback.preference_pairs import best_vs_worst
from referee.judges import GradingJudge, PairwiseJudge
from referee.judges.metrics import summarize
from referee.protocols import register
from referee.runs import Run
from referee.tasks.pairs import Pair, load_pairs


class RlaifConfig(ProtocolConfig):
    protocol: str = "rlaif"
    policy: str = "embedded"
    judge: str | None = None  # default: the policy judges itself
    prompts: str
    k: int = Field(4, ge=2)
    mode: Literal["pairwise", "grading"] = "pairwise"
    verdict: Literal["probability", "generative"] = "probability"
    swap: Literal["none", "conservative", "average", "random"] = "average"
    calibration: Literal["none", "batch", "content-free"] = "none"  # pairwise probability verdicts
    template: str | None = None  # default: pairwise / single_1to10
    min_margin: float = Field(0.05, ge=0)
    human_pairs: str | None = None  # labelled pairs to measure the judge's agreement with people
    sampling: SamplingConfig = SamplingConfig(temperature=0.8, top_p=0.95, max_new_tokens=128)


@register("rlaif", RlaifConfig, "AI-feedback preference pairs: sample k answers, rank them with a judge")
def run_rlaif(cfg: RlaifConfig, run: Run) -> dict:
    prompts = load_prompts(cfg.prompts)
    policy = run.model(cfg.policy)
    judge_model = run.model(cfg.judge or cfg.policy)

    with run.stage("sample"):
        outputs = policy.generate([p.chat for p in prompts], cfg.sampling.to_sampling(cfg.seed), n=cfg.k)
    answers = [[c.text for c in row] for row in outputs]

    with run.stage("judge"):
        if cfg.mode == "pairwise":
            judge = PairwiseJudge(judge_model, template=cfg.template or "pairwise", verdict=cfg.verdict,
                                  swap=cfg.swap, calibration=cfg.calibration, seed=cfg.seed)
            strengths, verdicts = _round_robin(judge, prompts, answers)
        else:
            grader = GradingJudge(judge_model, template=cfg.template or "single_1to10", verdict=cfg.verdict, seed=cfg.seed)
            flat = grader.grade([p.chat for p in prompts for _ in range(cfg.k)], [a for row in answers for a in row])
            strengths = [[(r["expected_score"] if r.get("expected_score") is not None else r["score"]) if r["valid"] else None
                          for r in flat[i * cfg.k:(i + 1) * cfg.k]] for i in range(len(prompts))]
            verdicts = [flat[i * cfg.k:(i + 1) * cfg.k] for i in range(len(prompts))]

    pairs = []
    for p, row, s, v in zip(prompts, answers, strengths, verdicts):
        pair = best_vs_worst(p.chat, row, s, min_margin=cfg.min_margin)
        if pair:
            pairs.append({"id": p.id, **pair, "judge": judge_model.spec, "strengths": s, "verdicts": v})
    run.write_records("preferences", pairs)
    metrics = {"rlaif": {"prompts": len(prompts), "answers": len(prompts) * cfg.k, "pairs": len(pairs),
                         "skipped_prompts": len(prompts) - len(pairs),
                         "unscored_answers": sum(x is None for s in strengths for x in s),
                         "mean_margin": sum(p["margin"] for p in pairs) / len(pairs) if pairs else None,
                         "chosen_longer_rate": sum(len(p["chosen"]) > len(p["rejected"]) for p in pairs) / len(pairs)
                         if pairs else None}}
    if cfg.human_pairs:
        with run.stage("human_agreement"):
            metrics["human_agreement"] = _human_agreement(cfg, judge_model, run)
    run.save_metrics(metrics)
    if not pairs:
        raise RefereeError(f"rlaif: no preference pairs (all {len(prompts)} prompts tied or unscored); "
                           f"samples and verdicts are in {run.folder}")
    return metrics


def _round_robin(judge: PairwiseJudge, prompts, answers) -> tuple[list[list[float | None]], list[list[dict]]]:
    """Every two answers to a prompt, judged in one batch; strength = mean P(this answer is better)."""
    index, items = [], []
    for i, (p, row) in enumerate(zip(prompts, answers)):
        for a, b in combinations(range(len(row)), 2):
            index.append((i, a, b))
            items.append(Pair(f"{p.id}:{a}-{b}", p.chat, row[a], row[b]))
    records = judge.judge_pairs(items)
    wins = [[[] for _ in row] for row in answers]
    verdicts = [[] for _ in answers]
    for (i, a, b), rec in zip(index, records):
        verdicts[i].append({"a": a, "b": b, "winner": rec["winner"], "p_a": rec.get("p_a")})
        if rec["winner"] == "invalid":
            continue
        p_a = rec.get("p_a")
        if p_a is None:  # generative verdicts: a win counts 1, a tie 0.5
            p_a = {"A": 1.0, "B": 0.0, "tie": 0.5}[rec["winner"]]
        wins[i][a].append(p_a)
        wins[i][b].append(1 - p_a)
    strengths = [[sum(w) / len(w) if w else None for w in row] for row in wins]
    return strengths, verdicts


def _human_agreement(cfg: RlaifConfig, judge_model, run: Run) -> dict:
    labelled = [p for p in load_pairs(cfg.human_pairs) if p.label is not None]
    if not labelled:
        raise RefereeError(f"{cfg.human_pairs}: no labelled pairs (need a 'label' field)")
    judge = PairwiseJudge(judge_model, template=cfg.template or "pairwise", verdict=cfg.verdict, swap=cfg.swap,
                          calibration=cfg.calibration, seed=cfg.seed)
    records = judge.judge_pairs(labelled)
    run.write_records("human_pairs_judged", records)
    judged = [r["winner"] for r in records]
    human = [p.label for p in labelled]
    return {"pairs": len(labelled), "agreement_s2": stats.agreement_s2(judged, human).to_dict(),
            "agreement_s1": stats.agreement_s1(judged, human).to_dict(),
            "summary": summarize(records)}
