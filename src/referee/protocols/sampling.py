"""Plain sampling: n completions per prompt from one model. The simplest protocol, and the first stage
of most others (best-of-N, RLAIF and self-rewarding all start by sampling candidates)."""

from __future__ import annotations

import statistics

from referee.chat import load_prompts
from referee.config import ProtocolConfig, SamplingConfig
from referee.protocols import register
from referee.runs import Run


class SamplingProtocolConfig(ProtocolConfig):
    protocol: str = "sampling"
    model: str = "embedded"
    prompts: str
    n: int = 1
    sampling: SamplingConfig = SamplingConfig()


@register("sampling", SamplingProtocolConfig, "n completions per prompt from one model")
def run_sampling(config: SamplingProtocolConfig, run: Run) -> dict:
    prompts = load_prompts(config.prompts)
    model = run.model(config.model)
    with run.stage("sample"):
        outputs = model.generate([p.chat for p in prompts], config.sampling.to_sampling(config.seed),
                                 n=config.n, desc="sample")
    records = []
    for p, completions in zip(prompts, outputs):
        for j, c in enumerate(completions):
            records.append({"id": p.id, "sample": j, "prompt": p.chat, "completion": c.text,
                            "finish_reason": c.finish_reason, "prompt_tokens": c.prompt_tokens,
                            "completion_tokens": c.completion_tokens, "meta": p.extra})
    run.write_records("samples", records)
    lengths = [r["completion_tokens"] for r in records]
    metrics = {"sampling": {
        "prompts": len(prompts), "samples": len(records),
        "mean_completion_tokens": statistics.fmean(lengths),
        "finished_by_stop": sum(r["finish_reason"] == "stop" for r in records) / len(records),
        "cached_samples": sum(c.cached for cs in outputs for c in cs),
    }}
    run.save_metrics(metrics)
    return metrics
