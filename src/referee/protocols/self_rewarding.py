"""Self-rewarding language models (Yuan et al. 2024): the model is its own judge.

    M1 = M0 fine-tuned on instruction data (IFT) and evaluation-format data (EFT: grading answers with
         the additive 0-5 rubric, the grade as target).
    for t = 1..T:
        the model M_t writes new prompts from few-shot examples of the seed prompts;
        M_t samples N candidate answers per prompt;
        M_t grades every candidate with the 0-5 rubric (its own judge);
        the best and worst answer to each prompt make a preference pair (ties skipped);
        M_t+1 = DPO(M_t, pairs), trained against M_t as the reference.

Around the loop, referee measures what the method stands on: the self-judge's quality on held-out EFT
grades at every model (invalid rate, exact agreement, correlation), each model's win rate against M0
on held-out prompts with the tie rate and the judge's position consistency beside it, and answer
lengths (length bias is the known failure of self-rewarding).

Every step is a stage of the run, keyed by a fingerprint of what it reads (settings, models, input
records): started again, a run reads finished stages back and redoes only what changed. Checkpoints
(M1, M2, ...) are stages too, so changed SFT or DPO settings train a new model instead of reusing one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from referee.config import MAX_PROMPTS, MAX_ROUNDS, MAX_SAMPLES, ProtocolConfig, SamplingConfig
from referee.errors import RefereeError
from referee.feedback import evaluate, seeds
from referee.feedback.eft import grading_conversations
from referee.feedback.new_prompts import write_prompts
from referee.feedback.preference_pairs import best_vs_worst
from referee.judges.build import JudgeConfig
from referee.protocols import Result, register, stages
from referee.runs import Run
from referee.supervisors import llm_judge
from referee.trainers import TrainSettings


class SelfRewardingConfig(ProtocolConfig):
    protocol: str = "self_rewarding"
    model: str = "embedded"  # M0
    seed_ift: str | None = None  # default: referee's shipped seed set
    seed_eft: str | None = None
    seed_prompts: str | None = None  # few-shot examples for writing new prompts; default: the IFT prompts
    eval_prompts: str | None = None  # held-out prompts for win rates against M0; if it is the same file
    #                                  as seed_prompts, even positions seed and odd positions evaluate
    eval_limit: int = Field(16, ge=1, le=MAX_PROMPTS)
    iterations: int = Field(1, ge=1, le=MAX_ROUNDS)
    new_prompts: int = Field(24, ge=1, le=MAX_PROMPTS)
    candidates: int = Field(4, ge=2, le=MAX_SAMPLES)
    judge_verdict: Literal["probability", "generative"] = "probability"
    judge_samples: int = Field(1, ge=1, le=MAX_SAMPLES)  # generative verdicts: average this many judge samples
    win_rate_judge: str | None = None  # a spec; default: the run's EFT-trained self-judge (M1)
    sampling: SamplingConfig = SamplingConfig(temperature=0.7, top_p=0.95, max_new_tokens=96)
    sft: TrainSettings | None = TrainSettings(learning_rate=2e-4, epochs=2, batch_size=4, max_length=512)
    dpo: TrainSettings = TrainSettings(learning_rate=5e-5, epochs=2, batch_size=4, max_length=384)
    dpo_beta: float = Field(0.1, gt=0)


@register("self_rewarding", SelfRewardingConfig, "Self-rewarding LM loop: IFT+EFT, then self-judged DPO iterations")
def run_self_rewarding(cfg: SelfRewardingConfig, run: Run) -> Result:
    ift = seeds.load_ift(cfg.seed_ift)
    eft_train, eft_heldout = seeds.split_eft(seeds.load_eft(cfg.seed_eft))
    seed_prompts, eval_set = _prompt_sets(cfg, ift)
    seen = set(seed_prompts) | {p for _, p in eval_set}

    # M0 and its answers to the held-out prompts (the baseline every model is compared with)
    models = [cfg.model]
    _evaluate_model(run, cfg, 0, models[0], eval_set, eft_heldout, judge_spec=None)

    # M1 = M0 + SFT on IFT and EFT data
    models.append(_sft(run, cfg, ift, eft_train) if cfg.sft is not None else cfg.model)
    judge_spec = cfg.win_rate_judge or models[1]
    _evaluate_model(run, cfg, 1, models[1], eval_set, eft_heldout, judge_spec)

    for t in range(1, cfg.iterations + 1):
        current = run.model(models[t])
        prompts = _new_prompts(run, cfg, t, current, seed_prompts, seen)
        seen |= set(prompts)
        candidates = _candidates(run, cfg, t, current, prompts)
        scores = _self_scores(run, cfg, t, current, prompts, [[c["text"] for c in row] for row in candidates])
        pairs = _pairs(run, cfg, t, prompts, candidates, scores)
        # M_t+1 = DPO(M_t, pairs), against M_t as the reference
        models.append(stages.dpo(run, f"it{t}_dpo", name=f"m{t + 1}", base=models[t], pairs=pairs,
                                 settings=cfg.dpo, beta=cfg.dpo_beta))
        _evaluate_model(run, cfg, t + 1, models[t + 1], eval_set, eft_heldout, judge_spec)

    metrics = run.save_metrics({"models": {f"M{i}": spec for i, spec in enumerate(models)}})
    return Result(metrics, _headline(metrics, len(models)), "self-rewarding: every model against M0")


# ---- the steps ---------------------------------------------------------------------------------
def _prompt_sets(cfg: SelfRewardingConfig, ift: list[dict]) -> tuple[list[str], list[tuple[str, str]]]:
    """Seed prompts for self-instruction and (id, prompt) held-out prompts for evaluation."""
    from referee.chat import load_prompts

    eval_path = cfg.eval_prompts or seeds.shipped("eval_prompts.jsonl")
    evals = load_prompts(eval_path)
    if cfg.seed_prompts:
        seed_records = load_prompts(cfg.seed_prompts)
        if cfg.eval_prompts and Path(cfg.seed_prompts).resolve() == Path(cfg.eval_prompts).resolve():
            seed_records, evals = seed_records[0::2], evals[1::2]
        seed_prompts = [r.chat[-1]["content"] for r in seed_records]
    else:
        seed_prompts = [d["messages"][0]["content"] for d in ift]
    if len(seed_prompts) < 2:
        raise RefereeError("self_rewarding: need at least 2 seed prompts to write new ones from")
    return seed_prompts, [(r.id, r.chat[-1]["content"]) for r in evals[:cfg.eval_limit]]


def _sft(run: Run, cfg: SelfRewardingConfig, ift: list[dict], eft_train: list[dict]) -> str:
    """IFT demonstrations plus EFT examples rendered exactly as the self-judge will see them."""
    def rows() -> list[dict]:
        grader = llm_judge(run.model(cfg.model), JudgeConfig(mode="single", template="additive_0to5",
                                                             verdict=cfg.judge_verdict))
        return ift + grading_conversations(grader, eft_train)

    data = run.run_stage("m1_training_data", {"model": run.model(cfg.model), "ift": ift, "eft": eft_train,
                                              "verdict": cfg.judge_verdict}, rows)

    return stages.sft(run, "sft_m1", name="m1", base=cfg.model, data=data, settings=cfg.sft)


def _new_prompts(run: Run, cfg: SelfRewardingConfig, t: int, model, seed_prompts: list[str], seen: set[str]) -> list[str]:
    stage = f"it{t}_prompts"

    def write() -> list[dict]:
        prompts, counts = write_prompts(model, seed_prompts, cfg.new_prompts, seen, seed=cfg.seed + 1000 * t)
        run.save_metrics({stage: counts})
        return [{"prompt": p} for p in prompts]

    inputs = {"model": model, "seed_prompts": seed_prompts, "seen": seen, "n": cfg.new_prompts, "seed": cfg.seed}
    prompts = [r["prompt"] for r in run.run_stage(stage, inputs, write)]
    if not prompts:
        raise RefereeError(f"iteration {t}: the model wrote no usable new prompts; records so far are in {run.folder}")
    return prompts


def _candidates(run: Run, cfg: SelfRewardingConfig, t: int, model, prompts: list[str]) -> list[list[dict]]:
    """``candidates`` answers per prompt, sampled by the current model; one record per answer."""
    def sample() -> list[dict]:
        outputs = model.generate([[{"role": "user", "content": p}] for p in prompts],
                                 cfg.sampling.to_sampling(cfg.seed + t), n=cfg.candidates, desc="candidates")
        return [{"prompt": p, "candidate": j, "text": c.text, "completion_tokens": c.completion_tokens}
                for p, row in zip(prompts, outputs) for j, c in enumerate(row)]

    inputs = {"model": model, "prompts": prompts, "sampling": cfg.sampling, "seed": cfg.seed + t, "n": cfg.candidates}
    records = run.run_stage(f"it{t}_candidates", inputs, sample)
    return [records[i * cfg.candidates:(i + 1) * cfg.candidates] for i in range(len(prompts))]


def _self_scores(run: Run, cfg: SelfRewardingConfig, t: int, model, prompts: list[str],
                 candidates: list[list[str]]) -> list[list[float | None]]:
    """Each candidate's 0-5 grade by the model itself, averaged over judge samples; None if unreadable."""
    flat_prompts = [p for p, row in zip(prompts, candidates) for _ in row]
    flat = [c for row in candidates for c in row]

    def grade() -> list[dict]:
        per_sample = []
        for s in range(cfg.judge_samples):
            grader = llm_judge(model, JudgeConfig(mode="single", template="additive_0to5", verdict=cfg.judge_verdict,
                                                  seed=cfg.seed + s))
            if cfg.judge_verdict == "generative" and cfg.judge_samples > 1:
                from referee.models.base import Sampling

                grader.sampling = Sampling(temperature=0.7, max_new_tokens=48, seed=cfg.seed + s)
            per_sample.append(grader.grade(flat_prompts, flat))
        records = []
        for i in range(len(flat)):
            grades = [ps[i] for ps in per_sample]
            values = [g.value for g in grades if g.value is not None]
            records.append({"prompt": flat_prompts[i], "candidate": flat[i],
                            "score": sum(values) / len(values) if values else None,
                            "judge_records": [{k: g.get(k) for k in ("score", "expected_score", "probs", "raw", "valid")}
                                              for g in grades]})
        return records

    inputs = {"model": model, "prompts": flat_prompts, "candidates": flat, "verdict": cfg.judge_verdict,
              "samples": cfg.judge_samples, "seed": cfg.seed}
    values = [r["score"] for r in run.run_stage(f"it{t}_self_judge", inputs, grade)]
    out, k = [], 0
    for row in candidates:
        out.append(values[k:k + len(row)])
        k += len(row)
    return out


def _pairs(run: Run, cfg: SelfRewardingConfig, t: int, prompts: list[str], candidates: list[list[dict]],
           scores: list[list[float | None]]) -> list[dict]:
    """The best against the worst self-judged candidate of each prompt (ties skipped), and the data's shape."""
    texts = [[c["text"] for c in row] for row in candidates]
    pairs = run.run_stage(f"it{t}_pairs", {"prompts": prompts, "candidates": texts, "scores": scores},
                          lambda: [p for p in (best_vs_worst(q, c, s) for q, c, s in zip(prompts, texts, scores)) if p])
    run.save_metrics({f"it{t}_data": {
        "prompts": len(prompts), "candidates": sum(map(len, texts)),
        "invalid_scores": sum(s is None for row in scores for s in row),
        "pairs": len(pairs), "skipped_prompts": len(prompts) - len(pairs),
        "mean_margin": sum(p["margin"] for p in pairs) / len(pairs) if pairs else None,
        "candidate_lengths": evaluate.length_stats([c["text"] for row in candidates for c in row],
                                                   [c["completion_tokens"] for row in candidates for c in row]),
        "chosen_mean_chars": sum(len(p["chosen"]) for p in pairs) / len(pairs) if pairs else None,
        "rejected_mean_chars": sum(len(p["rejected"]) for p in pairs) / len(pairs) if pairs else None}})
    if not pairs:
        raise RefereeError(f"iteration {t}: no preference pairs (every prompt's candidates were tied or "
                           f"unscorable); records so far are in {run.folder}")
    return pairs




def _evaluate_model(run: Run, cfg: SelfRewardingConfig, i: int, spec: str, eval_set, heldout: list[dict],
                    judge_spec: str | None) -> None:
    """Self-judge quality, answer lengths and (from M1 on) the win rate against M0."""
    model = run.model(spec)
    grades = run.run_stage(f"eval_m{i}_self_judge",
                           {"model": model, "heldout": heldout, "verdict": cfg.judge_verdict, "seed": cfg.seed},
                           lambda: evaluate.grade_heldout(model, heldout, cfg.judge_verdict, cfg.seed))

    def answer() -> list[dict]:
        chats = [[{"role": "user", "content": p}] for _, p in eval_set]
        outs = model.generate(chats, cfg.sampling.to_sampling(cfg.seed), desc=f"M{i} answers")
        return [{"id": k, "prompt": p, "answer": row[0].text, "completion_tokens": row[0].completion_tokens}
                for (k, p), row in zip(eval_set, outs)]

    answers = run.run_stage(f"eval_m{i}_answers",
                            {"model": model, "prompts": eval_set, "sampling": cfg.sampling, "seed": cfg.seed}, answer)
    result = {"self_judge": evaluate.self_judge_quality(grades),
              "lengths": evaluate.length_stats([a["answer"] for a in answers], [a["completion_tokens"] for a in answers])}
    if i > 0 and judge_spec is not None:
        base = run.read_records("eval_m0_answers")
        judge = run.model(judge_spec)
        new_texts, base_texts = [a["answer"] for a in answers], [b["answer"] for b in base]
        records = run.run_stage(
            f"eval_m{i}_vs_m0", {"judge": judge, "prompts": eval_set, "new": new_texts, "base": base_texts,
                                 "seed": cfg.seed},
            lambda: evaluate.judge_against_base(judge, [k for k, _ in eval_set], [p for _, p in eval_set],
                                                new_texts, base_texts, cfg.seed))
        result["vs_m0"] = evaluate.win_rate(records, judge.spec)
    run.save_metrics({f"M{i}": result})


def _headline(metrics: dict, n_models: int) -> list[dict]:
    rows = []
    for i in range(n_models):
        m = metrics.get(f"M{i}", {})
        sj = m.get("self_judge", {})
        rows.append({"model": f"M{i}",
                     "judge_invalid_rate": sj.get("invalid_rate", {}).get("value"),
                     "judge_exact_agreement": sj.get("exact_agreement", {}).get("value"),
                     "judge_spearman": sj.get("spearman", {}).get("value"),
                     "win_rate_vs_m0": m.get("vs_m0", {}).get("win_rate", {}).get("value"),
                     "tie_rate_vs_m0": m.get("vs_m0", {}).get("tie_rate"),
                     "mean_answer_chars": m.get("lengths", {}).get("mean_chars")})
    return rows
