"""Where a judge's time goes on a CPU: the measurements behind the choices in HFModel's CPU route.

    .venv/bin/python benchmarks/bench_cpu_forward.py --pairs 40

Each line compares a choice with its alternative in the same run:
- matrix product throughput in float32 and bfloat16 (one 400x576 by 576x1536 product, a 135M model's
  MLP shape);
- one forward pass of one token against 400 tokens (the fixed cost of a pass: reading all weights);
- four 400-token prompts in one batch against one at a time;
- the first N LLMBar Natural judge prompts through `_next_token_logits` in one call (shared heads run
  once) against one prompt per call, alternated twice;
- the largest next-token logit difference between float32 and bfloat16 on one judge prompt.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

DEFAULT_DATA = "data:llmbar/natural.json"  # under the data root (referee data list)


def best_seconds(fn, repeats: int = 3) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--pairs", type=int, default=40, help="judge prompts for the shared-head comparison")
    args = ap.parse_args()

    from referee.judges import PairwiseJudge
    from referee.models import load_model
    from referee.tasks.pairs import load_pairs

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(400, 576, dtype=dtype), torch.randn(576, 1536, dtype=dtype)
        secs = best_seconds(lambda: [a @ b for _ in range(50)])
        print(f"matmul 400x576x1536 {str(dtype):15s} {2 * 400 * 576 * 1536 * 50 / secs / 1e9:7.1f} GFLOP/s")

    model = load_model("embedded")
    net = model.model
    with torch.inference_mode():
        one = best_seconds(lambda: net(torch.randint(100, 40000, (1, 1)), logits_to_keep=1, use_cache=False))
        long = best_seconds(lambda: net(torch.randint(100, 40000, (1, 400)), logits_to_keep=1, use_cache=False))
        print(f"float32 forward pass: 1 token {1000 * one:.0f} ms, 400 tokens {1000 * long:.0f} ms "
              f"({1000 * (long - one) / 399:.2f} ms per further token)")
        ids = torch.randint(100, 40000, (4, 400))
        singles = best_seconds(lambda: [net(ids[i:i + 1], logits_to_keep=1, use_cache=False) for i in range(4)], 2)
        batched = best_seconds(lambda: net(ids, logits_to_keep=1, use_cache=False), 2)
        print(f"4 prompts x 400 tokens: one at a time {singles:.2f} s, one batch {batched:.2f} s "
              f"(batching {singles / batched:.2f}x)")

        judge = PairwiseJudge(model)
        pairs = load_pairs(args.data)[:args.pairs]
        prompts = [model._encode(model.render(judge.build_chat(p, "AB", None)[0]) + "[[") for p in pairs]
        whole, apart = [], []
        for _ in range(2):  # alternated: this machine's speed drifts between minutes
            t0 = time.perf_counter()
            model._next_token_logits(prompts)
            whole.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for p in prompts:
                model._next_token_logits([p])
            apart.append(time.perf_counter() - t0)
        print(f"{len(prompts)} judge prompts ({sum(map(len, prompts))} tokens): one call {min(whole):.1f} s "
              f"(runs {', '.join(f'{t:.1f}' for t in whole)}), one prompt per call {min(apart):.1f} s "
              f"(runs {', '.join(f'{t:.1f}' for t in apart)}); shared heads {min(apart) / min(whole):.2f}x")

        half = load_model("embedded?dtype=bfloat16")
        full_logits = model._next_token_logits(prompts[:1])
        half_logits = half._next_token_logits(prompts[:1])
        print(f"bfloat16 vs float32 next-token logits on one {len(prompts[0])}-token judge prompt: max difference "
              f"{(full_logits - half_logits).abs().max():.3f}, logit std {full_logits.std():.2f}")


if __name__ == "__main__":
    main()
