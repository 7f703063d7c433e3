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
from referee.config import MAX_SAMPLES, ProtocolConfig, SamplingConfig
from referee.errors import RefereeError
from referee.feedback.preference_pairs import best_vs_worst
from referee.judges.build import JudgeConfig
from referee.judges.grades import Grade
from referee.judges.metrics import summarize
from referee.protocols import Result, register
from referee.runs import Run
from referee.supervisors import build_judge, judge_identity
from referee.tasks.pairs import Pair, load_pairs


class RlaifConfig(ProtocolConfig):
    protocol: str = "rlaif"
    policy: str = "embedded"
    judge: str | None = None  # default: the policy judges itself
    prompts: str
    k: int = Field(4, ge=2, le=MAX_SAMPLES)
    mode: Literal["pairwise", "grading"] = "pairwise"
    verdict: Literal["probability", "generative"] = "probability"
    swap: Literal["none", "conservative", "average", "random"] = "average"
    calibration: Literal["none", "batch", "content-free"] = "none"  # pairwise probability verdicts
    template: str | None = None  # default: pairwise / single_1to10
    min_margin: float = Field(0.05, ge=0)
    human_pairs: str | None = None  # labelled pairs to measure the judge's agreement with people
    sampling: SamplingConfig = SamplingConfig(temperature=0.8, top_p=0.95, max_new_tokens=128)


@register("rlaif", RlaifConfig, "AI-feedback preference pairs: sample k answers, rank them with a judge")
def run_rlaif(cfg: RlaifConfig, run: Run) -> Result:
    prompts = load_prompts(cfg.prompts)
    policy = run.model(cfg.policy)
    judge_spec = cfg.judge or cfg.policy
    judge = build_judge(judge_spec, _judge_config(cfg), run.model)
    judge_key = judge_identity(judge_spec, _judge_config(cfg), run.model)

    samples = run.run_stage("samples", {"policy": policy, "prompts": prompts, "sampling": cfg.sampling, "k": cfg.k,
                                        "seed": cfg.seed}, lambda: _sample(cfg, policy, prompts))
    answers = [[s["text"] for s in samples[i * cfg.k:(i + 1) * cfg.k]] for i in range(len(prompts))]

    def judge_all() -> list[dict]:
        strengths, verdicts = _round_robin(judge, prompts, answers) if cfg.mode == "pairwise" else \
            _grades(judge, prompts, answers, cfg.k)
        return [{"id": p.id, "strengths": s, "verdicts": v} for p, s, v in zip(prompts, strengths, verdicts)]

    judged = run.run_stage("verdicts", {"judge": judge_key, "prompts": prompts, "answers": answers}, judge_all)
    strengths = [j["strengths"] for j in judged]

    def pair_up() -> list[dict]:
        pairs = []
        for p, row, j in zip(prompts, answers, judged):
            pair = best_vs_worst(p.chat, row, j["strengths"], min_margin=cfg.min_margin)
            if pair:
                pairs.append({"id": p.id, **pair, "judge": judge_spec, "strengths": j["strengths"],
                              "verdicts": j["verdicts"]})
        return pairs

    pairs = run.run_stage("preferences", {"verdicts": judged, "answers": answers, "prompts": prompts,
                                          "judge": judge_spec, "min_margin": cfg.min_margin}, pair_up)
    metrics = {"rlaif": {"prompts": len(prompts), "answers": len(prompts) * cfg.k, "pairs": len(pairs),
                         "skipped_prompts": len(prompts) - len(pairs),
                         "unscored_answers": sum(x is None for s in strengths for x in s),
                         "mean_margin": sum(p["margin"] for p in pairs) / len(pairs) if pairs else None,
                         "chosen_longer_rate": sum(len(p["chosen"]) > len(p["rejected"]) for p in pairs) / len(pairs)
                         if pairs else None}}
    if cfg.human_pairs:
        metrics["human_agreement"] = _human_agreement(cfg, judge_spec, run)
    run.save_metrics(metrics)
    if not pairs:
        raise RefereeError(f"rlaif: no preference pairs (all {len(prompts)} prompts tied or unscored); "
                           f"samples and verdicts are in {run.folder}")
    return Result(metrics, [metrics["rlaif"]], f"RLAIF preference pairs judged by {judge_spec}")


def _judge_config(cfg: RlaifConfig) -> JudgeConfig:
    if cfg.mode == "pairwise":
        return JudgeConfig(template=cfg.template, verdict=cfg.verdict, swap=cfg.swap, calibration=cfg.calibration,
                           seed=cfg.seed)
    return JudgeConfig(mode="single", template=cfg.template, verdict=cfg.verdict, seed=cfg.seed)


def _sample(cfg: RlaifConfig, policy, prompts) -> list[dict]:
    outputs = policy.generate([p.chat for p in prompts], cfg.sampling.to_sampling(cfg.seed), n=cfg.k)
    return [{"id": p.id, "sample": j, "text": c.text, "completion_tokens": c.completion_tokens}
            for p, row in zip(prompts, outputs) for j, c in enumerate(row)]


def _grades(grader, prompts, answers, k: int) -> tuple[list[list[float | None]], list[list[dict]]]:
    """Every answer graded on the template's scale; its strength is its grade's value."""
    flat = grader.grade([p.chat for p in prompts for _ in range(k)], [a for row in answers for a in row])
    verdicts = [flat[i * k:(i + 1) * k] for i in range(len(prompts))]
    return [[Grade(g).value for g in row] for row in verdicts], verdicts


def _round_robin(judge, prompts, answers) -> tuple[list[list[float | None]], list[list[dict]]]:
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


def _human_agreement(cfg: RlaifConfig, judge_spec: str, run: Run) -> dict:
    labelled = [p for p in load_pairs(cfg.human_pairs) if p.label is not None]
    if not labelled:
        raise RefereeError(f"{cfg.human_pairs}: no labelled pairs (need a 'label' field)")
    # the same judge comparing the labelled pairs: pairwise, with the run's swap and calibration rules
    settings = JudgeConfig(template=cfg.template if cfg.mode == "pairwise" else None, verdict=cfg.verdict,
                           swap=cfg.swap, calibration=cfg.calibration, seed=cfg.seed)
    judge = build_judge(judge_spec, settings, run.model)
    records = run.run_stage("human_pairs_judged", {"judge": judge_identity(judge_spec, settings, run.model),
                                                   "pairs": labelled}, lambda: judge.judge_pairs(labelled))
    judged = [r["winner"] for r in records]
    human = [p.label for p in labelled]
    return {"pairs": len(labelled), "agreement_s2": stats.agreement_s2(judged, human).to_dict(),
            "agreement_s1": stats.agreement_s1(judged, human).to_dict(),
            "summary": summarize(records)}
