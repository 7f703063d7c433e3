"""Monte-Carlo step labels (Math-Shepherd) as an experiment: label every step of every solution in a
file by rollouts from a policy model (``referee.verifiers.mc_labels``). The records are TRL stepwise
records (``prompt``/``completions``/``labels``), PRM training data as they stand; ``referee tasks
mc-label`` copies them to the file it is asked for."""

from __future__ import annotations

import statistics

from pydantic import Field, model_validator

from referee.config import MAX_SAMPLES, ProtocolConfig, SamplingConfig
from referee.errors import RefereeError
from referee.protocols import Result, register
from referee.runs import Run
from referee.verifiers.mc_labels import check_settings, load_solutions, mc_step_labels


class MCLabelConfig(ProtocolConfig):
    protocol: str = "mc_label"
    solutions: str  # JSONL: prompt, completion (or completions: the steps), answer
    policy: str = "embedded"
    k: int = Field(8, ge=1, le=MAX_SAMPLES)  # rollouts per step prefix
    mode: str = "soft"  # soft: the fraction of rollouts that reach the answer; hard: whether any does
    how: str = "auto"  # how a prefix reaches the policy: auto, prefill or prompt
    sampling: SamplingConfig = SamplingConfig()

    @model_validator(mode="after")
    def _rollouts_can_work(self) -> "MCLabelConfig":
        check_settings(self.k, self.mode, self.how)
        return self


@register("mc_label", MCLabelConfig, "step labels from Monte-Carlo rollouts of a policy (PRM training data)")
def run_mc_label(config: MCLabelConfig, run: Run) -> Result:
    data = load_solutions(config.solutions)
    if not data.solutions:
        raise RefereeError(f"{config.solutions}: no solutions with steps to label")
    policy = run.model(config.policy)
    rollouts = config.model_dump(include={"k", "mode", "how", "sampling", "seed"})
    records = run.run_stage(
        "mc_labels", {"policy": policy, "solutions": data.solutions, "rollouts": rollouts},
        lambda: [r.to_record() for r in mc_step_labels(policy, data.solutions, k=config.k, mode=config.mode,
                                                       how=config.how,
                                                       sampling=config.sampling.to_sampling(config.seed))])
    summary = summarise(records, data.empty)
    run.save_metrics({"mc_labels": summary})
    row = {"policy": config.policy, "k": config.k, "mode": config.mode, **summary}
    return Result({"mc_labels": summary}, [row], title="Monte-Carlo step labels")


def summarise(records: list[dict], empty: int) -> dict:
    """What the labels say overall, read from the records (so a read-back run reports the same)."""
    labels = [float(x) for r in records for x in r["labels"]]
    return {"solutions": len(records), "steps": len(labels), "empty_skipped": empty,
            "rollout": records[0]["rollout"], "mean_step_label": statistics.fmean(labels),
            "final_answer_correct": sum(r["correct"] for r in records) / len(records)}
