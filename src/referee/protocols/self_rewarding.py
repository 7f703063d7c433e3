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

Every stage's records go to the run folder as they finish; a run started again resumes from them and
from the cache of model calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from referee import progress
from referee.config import ProtocolConfig, SamplingConfig
from referee.errors import RefereeError
from referee.feedback import evaluate, seeds
from referee.feedback.new_prompts import write_prompts
from referee.feedback.preference_pairs import best_vs_worst
from referee.judges import GradingJudge
from referee.models.checkpoints import is_checkpoint
from referee.protocols import register
from referee.runs import Run
from referee.trainers import LoraSettings, TrainSettings, train_dpo, train_sft


class SelfRewardingConfig(ProtocolConfig):
    protocol: str = "self_rewarding"
    model: str = "embedded"  # M0
    seed_ift: str | None = None  # default: referee's shipped seed set
    seed_eft: str | None = None
    seed_prompts: str | None = None  # few-shot examples for writing new prompts; default: the IFT prompts
    eval_prompts: str | None = None  # held-out prompts for win rates against M0; if it is the same file
    #                                  as seed_prompts, even positions seed and odd positions evaluate
    eval_limit: int = Field(16, ge=1)
    iterations: int = Field(1, ge=1)
    new_prompts: int = Field(24, ge=1)
    candidates: int = Field(4, ge=2)
    judge_verdict: Literal["probability", "generative"] = "probability"
    judge_samples: int = Field(1, ge=1)  # generative verdicts: average this many judge samples
    win_rate_judge: str | None = None  # a spec; default: the run's EFT-trained self-judge (M1)
    sampling: SamplingConfig = SamplingConfig(temperature=0.7, top_p=0.95, max_new_tokens=96)
    sft: TrainSettings | None = TrainSettings(learning_rate=2e-4, epochs=2, batch_size=4, max_length=512,
                                              lora=LoraSettings(r=16, alpha=32))
    dpo: TrainSettings = TrainSettings(learning_rate=5e-5, epochs=2, batch_size=4, max_length=384,
                                       lora=LoraSettings(r=16, alpha=32))
    dpo_beta: float = Field(0.1, gt=0)


@register("self_rewarding", SelfRewardingConfig, "Self-rewarding LM loop: IFT+EFT, then self-judged DPO iterations")
def run_self_rewarding(cfg: SelfRewardingConfig, run: Run) -> dict:
    ift = seeds.load_ift(cfg.seed_ift)
    eft_train, eft_heldout = seeds.split_eft(seeds.load_eft(cfg.seed_eft))
    seed_prompts, eval_set = _prompt_sets(cfg, ift)
    seen = set(seed_prompts) | {p for _, p in eval_set}

    # M0 and its answers to the held-out prompts (the baseline every model is compared with)
    models = [cfg.model]
    _evaluate_model(run, cfg, 0, models[0], eval_set, judge_spec=None)

    # M1 = M0 + SFT on IFT and EFT data
    if cfg.sft is not None:
        with run.stage("sft_m1"):
            models.append(_sft(run, cfg, ift, eft_train))
    else:
        models.append(cfg.model)
    judge_spec = cfg.win_rate_judge or models[1]
    _evaluate_model(run, cfg, 1, models[1], eval_set, judge_spec)

    for t in range(1, cfg.iterations + 1):
        current = run.model(models[t])
        with run.stage(f"it{t}_prompts"):
            prompts = _new_prompts(run, cfg, t, current, seed_prompts, seen)
        seen |= set(prompts)
        with run.stage(f"it{t}_candidates"):
            outputs = current.generate([[{"role": "user", "content": p}] for p in prompts],
                                       cfg.sampling.to_sampling(cfg.seed + t), n=cfg.candidates, desc="candidates")
            candidates = [[c.text for c in row] for row in outputs]
            run.write_records(f"it{t}_candidates", [
                {"prompt": p, "candidate": j, "text": c.text, "completion_tokens": c.completion_tokens}
                for p, row in zip(prompts, outputs) for j, c in enumerate(row)])
        with run.stage(f"it{t}_self_judge"):
            scores = _self_scores(run, cfg, t, current, prompts, candidates)
        pairs = [p for p in (best_vs_worst(q, c, s) for q, c, s in zip(prompts, candidates, scores)) if p]
        run.write_records(f"it{t}_pairs", pairs)
        run.save_metrics({f"it{t}_data": {
            "prompts": len(prompts), "candidates": sum(map(len, candidates)),
            "invalid_scores": sum(s is None for row in scores for s in row),
            "pairs": len(pairs), "skipped_prompts": len(prompts) - len(pairs),
            "mean_margin": sum(p["margin"] for p in pairs) / len(pairs) if pairs else None,
            "candidate_lengths": evaluate.length_stats([c for row in candidates for c in row],
                                                       [c.completion_tokens for row in outputs for c in row]),
            "chosen_mean_chars": sum(len(p["chosen"]) for p in pairs) / len(pairs) if pairs else None,
            "rejected_mean_chars": sum(len(p["rejected"]) for p in pairs) / len(pairs) if pairs else None}})
        if not pairs:
            raise RefereeError(f"iteration {t}: no preference pairs (every prompt's candidates were tied or "
                               f"unscorable); records so far are in {run.folder}")
        with run.stage(f"it{t}_dpo"):
            models.append(_dpo(run, cfg, t, models[t], pairs))
        _evaluate_model(run, cfg, t + 1, models[t + 1], eval_set, judge_spec)

    from referee.reports.self_rewarding import write_report

    metrics = run.save_metrics({"models": {f"M{i}": spec for i, spec in enumerate(models)}})
    write_report(run, metrics)
    return _headline(metrics, len(models))


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
    out = run.folder / "checkpoints" / "m1"
    if is_checkpoint(out):
        return f"hf:{out}"
    grader = GradingJudge(run.model(cfg.model), template="additive_0to5", verdict=cfg.judge_verdict)
    eft_rows = []
    for e in eft_train:
        chat, _ = grader.build_chat([{"role": "user", "content": e["prompt"]}], e["response"], None)
        eft_rows.append({"messages": chat + [{"role": "assistant", "content": f"[[{e['score']}]]"}]})
    run.write_records("m1_training_data", ift + eft_rows)
    progress.say(f"SFT M1 on {len(ift)} instruction and {len(eft_rows)} grading examples")
    spec, history = train_sft(cfg.model, ift + eft_rows, out, cfg.sft)
    run.save_metrics({"sft_m1": {"examples": len(ift) + len(eft_rows), "loss_history": history}})
    return spec


def _new_prompts(run: Run, cfg: SelfRewardingConfig, t: int, model, seed_prompts: list[str], seen: set[str]) -> list[str]:
    stage = f"it{t}_prompts"
    if run.stage_done(stage):
        return [r["prompt"] for r in run.read_records(stage)]
    prompts, counts = write_prompts(model, seed_prompts, cfg.new_prompts, seen, seed=cfg.seed + 1000 * t)
    run.write_records(stage, [{"prompt": p} for p in prompts])
    run.save_metrics({stage: counts})
    if not prompts:
        raise RefereeError(f"iteration {t}: the model wrote no usable new prompts ({counts}); "
                           f"records so far are in {run.folder}")
    return prompts


def _self_scores(run: Run, cfg: SelfRewardingConfig, t: int, model, prompts: list[str],
                 candidates: list[list[str]]) -> list[list[float | None]]:
    """Each candidate's 0-5 grade by the model itself, averaged over judge samples; None if unreadable."""
    flat_prompts = [p for p, row in zip(prompts, candidates) for _ in row]
    flat = [c for row in candidates for c in row]
    per_sample = []
    for s in range(cfg.judge_samples):
        grader = GradingJudge(model, template="additive_0to5", verdict=cfg.judge_verdict, seed=cfg.seed + s)
        if cfg.judge_verdict == "generative" and cfg.judge_samples > 1:
            from referee.models.base import Sampling

            grader.sampling = Sampling(temperature=0.7, max_new_tokens=48, seed=cfg.seed + s)
        per_sample.append(grader.grade(flat_prompts, flat))
    records, values = [], []
    for i in range(len(flat)):
        recs = [ps[i] for ps in per_sample]
        vals = [(r["expected_score"] if r.get("expected_score") is not None else r["score"]) for r in recs if r["valid"]]
        value = sum(vals) / len(vals) if vals else None
        values.append(value)
        records.append({"prompt": flat_prompts[i], "candidate": flat[i], "score": value,
                        "judge_records": [{k: r.get(k) for k in ("score", "expected_score", "probs", "raw", "valid")}
                                          for r in recs]})
    run.write_records(f"it{t}_self_judge", records)
    out, k = [], 0
    for row in candidates:
        out.append(values[k:k + len(row)])
        k += len(row)
    return out


def _dpo(run: Run, cfg: SelfRewardingConfig, t: int, base: str, pairs: list[dict]) -> str:
    out = run.folder / "checkpoints" / f"m{t + 1}"
    if is_checkpoint(out):
        return f"hf:{out}"
    progress.say(f"DPO M{t + 1} from M{t} on {len(pairs)} self-judged pairs")
    spec, history = train_dpo(base, pairs, out, cfg.dpo, beta=cfg.dpo_beta)
    run.save_metrics({f"it{t}_dpo": {"pairs": len(pairs), "loss_history": history}})
    return spec


def _evaluate_model(run: Run, cfg: SelfRewardingConfig, i: int, spec: str, eval_set, judge_spec: str | None) -> None:
    """Self-judge quality, answer lengths and (from M1 on) the win rate against M0."""
    model = run.model(spec)
    with run.stage(f"eval_m{i}"):
        quality, grades = evaluate.self_judge_quality(model, _heldout(cfg), cfg.judge_verdict, cfg.seed)
        run.write_records(f"eval_m{i}_self_judge", grades)
        chats = [[{"role": "user", "content": p}] for _, p in eval_set]
        answers = [row[0] for row in model.generate(chats, cfg.sampling.to_sampling(cfg.seed), desc=f"M{i} answers")]
        run.write_records(f"eval_m{i}_answers", [{"id": k, "prompt": p, "answer": a.text, "completion_tokens": a.completion_tokens}
                                                 for (k, p), a in zip(eval_set, answers)])
        result = {"self_judge": quality,
                  "lengths": evaluate.length_stats([a.text for a in answers], [a.completion_tokens for a in answers])}
        if i > 0 and judge_spec is not None:
            base = run.read_records("eval_m0_answers")
            wr, records = evaluate.win_rate(run.model(judge_spec), [k for k, _ in eval_set], [p for _, p in eval_set],
                                            [a.text for a in answers], [b["answer"] for b in base], cfg.seed)
            run.write_records(f"eval_m{i}_vs_m0", records)
            result["vs_m0"] = wr
        run.save_metrics({f"M{i}": result})


def _heldout(cfg: SelfRewardingConfig) -> list[dict]:
    return seeds.split_eft(seeds.load_eft(cfg.seed_eft))[1]


def _headline(metrics: dict, n_models: int) -> dict:
    rows = {}
    for i in range(n_models):
        m = metrics.get(f"M{i}", {})
        sj = m.get("self_judge", {})
        rows[f"M{i}"] = {"judge_invalid_rate": sj.get("invalid_rate", {}).get("value"),
                         "judge_exact_agreement": sj.get("exact_agreement", {}).get("value"),
                         "judge_spearman": sj.get("spearman", {}).get("value"),
                         "win_rate_vs_m0": m.get("vs_m0", {}).get("win_rate", {}).get("value"),
                         "tie_rate_vs_m0": m.get("vs_m0", {}).get("tie_rate"),
                         "mean_answer_chars": m.get("lengths", {}).get("mean_chars")}
    return {"models": metrics.get("models"), "summary": rows}
