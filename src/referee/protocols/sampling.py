"""Plain sampling: n completions per prompt from one model. The simplest protocol, and the first stage
of most others (best-of-N, RLAIF and self-rewarding all start by sampling candidates)."""

from __future__ import annotations

import statistics

from pydantic import Field

from referee.chat import load_prompts
from referee.config import MAX_SAMPLES, ProtocolConfig, SamplingConfig
from referee.protocols import Result, register
from referee.runs import Run


class SamplingProtocolConfig(ProtocolConfig):
    protocol: str = "sampling"
    model: str = "embedded"
    prompts: str
    n: int = Field(1, ge=1, le=MAX_SAMPLES)
    sampling: SamplingConfig = SamplingConfig()


@register("sampling", SamplingProtocolConfig, "n completions per prompt from one model")
def run_sampling(config: SamplingProtocolConfig, run: Run) -> Result:
    prompts = load_prompts(config.prompts)
    model = run.model(config.model)
    fresh = []  # the completions of this invocation (none when the stage is read back)

    def sample() -> list[dict]:
        outputs = model.generate([p.chat for p in prompts], config.sampling.to_sampling(config.seed),
                                 n=config.n, desc="sample")
        fresh.extend(c for cs in outputs for c in cs)
        return [{"id": p.id, "sample": j, "prompt": p.chat, "completion": c.text, "finish_reason": c.finish_reason,
                 "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens, "meta": p.extra}
                for p, completions in zip(prompts, outputs) for j, c in enumerate(completions)]

    inputs = {"model": model, "prompts": prompts, "sampling": config.sampling, "n": config.n, "seed": config.seed}
    records = run.run_stage("samples", inputs, sample)
    lengths = [r["completion_tokens"] for r in records]
    metrics = {"sampling": {
        "prompts": len(prompts), "samples": len(records),
        "mean_completion_tokens": statistics.fmean(lengths),
        "finished_by_stop": sum(r["finish_reason"] == "stop" for r in records) / len(records),
        # read back from an earlier invocation, every sample counts as cached
        "cached_samples": sum(c.cached for c in fresh) if fresh else len(records),
    }}
    run.save_metrics(metrics)
    return Result(metrics, [metrics["sampling"]], f"samples of {config.model}")
