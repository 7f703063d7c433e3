"""Judge cost: judgments per second of referee's probability verdicts, its generative verdicts, and a
naive loop that sends one pair at a time (a batch of 1 per call), on the same pairs in the same run.

    .venv/bin/python benchmarks/bench_judge_speed.py --limit 40

No cache is used, so every number is real compute. The naive loop judges the very same prompts as
referee's probability mode (same template, same option reading), so the ratio measures batching only.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from referee.judges import PairwiseJudge
from referee.judges.pairwise import OPTIONS
from referee.models import load_model
from referee.tasks.pairs import load_pairs

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmbar" / "natural.json"


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--limit", type=int, default=40, help="pairs for the probability modes and the naive loop")
    ap.add_argument("--generative-limit", type=int, default=None, help="pairs for generative mode (default: --limit)")
    ap.add_argument("--max-new-tokens", type=int, default=48, help="generative: tokens the judge may write")
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args()

    model = load_model(args.model)  # no cache: every call is computed
    pairs = load_pairs(args.data)[:args.limit]
    gen_pairs = pairs[:args.generative_limit or args.limit]
    model.choice([[{"role": "user", "content": "warm up"}]], OPTIONS, prefix="[[")

    results = {}
    judge = PairwiseJudge(model, verdict="probability", swap="none")
    recs, secs = timed(lambda: judge.judge_pairs(pairs))
    results["probability (swap none)"] = (len(recs), secs)

    judge2 = PairwiseJudge(model, verdict="probability", swap="conservative")
    recs2, secs = timed(lambda: judge2.judge_pairs(pairs))
    results["probability (swap conservative, 2 passes)"] = (len(recs2), secs)

    chats = [judge.build_chat(p, "AB", None)[0] for p in pairs]

    def naive():
        return [model.choice([c], OPTIONS, prefix="[[")[0] for c in chats]

    naive_out, secs = timed(naive)
    results["naive loop (probability, 1 pair per call)"] = (len(naive_out), secs)
    agree = sum(r["orders"][0]["winner_shown"] == max(("first", "second", "tie"), key=n.probs.get)
                for r, n in zip(recs, naive_out))

    from referee.models.base import Sampling

    gen = PairwiseJudge(model, verdict="generative", swap="none", max_retries=0,
                        sampling=Sampling(temperature=0.0, max_new_tokens=args.max_new_tokens))
    grecs, secs = timed(lambda: gen.judge_pairs(gen_pairs))
    results[f"generative (swap none, no retries, {args.max_new_tokens} new tokens max)"] = (len(grecs), secs)
    invalid = sum(r["winner"] == "invalid" for r in grecs)

    base = results["naive loop (probability, 1 pair per call)"]
    naive_rate = base[0] / base[1]
    print(f"model {model.spec}, batch size {model.batch_size}, data {args.data}, {len(pairs)} pairs")
    print(f"{'mode':62s} {'judgments':>9s} {'seconds':>8s} {'judg/s':>7s} {'vs naive':>8s}")
    table = {}
    for name, (n, s) in results.items():
        rate = n / s
        table[name] = {"judgments": n, "seconds": round(s, 2), "per_second": round(rate, 3),
                       "vs_naive": round(rate / naive_rate, 2)}
        print(f"{name:62s} {n:9d} {s:8.1f} {rate:7.2f} {rate / naive_rate:7.2f}x")
    print(f"batched and naive probability verdicts agree on {agree}/{len(pairs)} pairs; "
          f"generative verdicts unreadable: {invalid}/{len(grecs)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": model.spec, "pairs": len(pairs), "results": table,
                                               "agree": agree, "generative_invalid": invalid}, indent=2))


if __name__ == "__main__":
    main()
