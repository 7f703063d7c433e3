"""Judge cost: judgments per second of referee's probability verdicts, its generative verdicts, and a
naive loop that sends one pair at a time, on the same pairs in the same run.

    .venv/bin/python benchmarks/bench_judge_speed.py --limit 40

No cache is used, so every number is real compute. The naive loop is what one would write with
transformers alone: for each pair and shown order, render the same judge prompt (same template, same
"[[" prefix), run one forward pass, softmax the last position, read A / B / C. referee's probability
mode judges the same prompts projecting only the last position onto the vocabulary, and running each
head that prompts share (the template's instructions; a pair's two orders share the question too) once
through the KV cache; on a GPU it also batches prompts of like length. Swap `none`
(one order per pair) is compared with the naive loop on one order, swap `conservative` (two orders)
with the naive loop on both. Another row calls referee one prompt at a time, to separate what handing
it the whole set buys from the rest. Each precision in --dtypes times referee and the naive loop
again; ratios are given against the naive loop in the first precision (what a user's plain loop runs
in) and against the naive loop in the same precision (what referee's own work buys).
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

DEFAULT_DATA = "data:llmbar/natural.json"  # under the data root (referee data list)


REPEATS = 1  # --repeats: each row is timed this many times and its fastest run kept


def timed(fn):
    """(output, seconds) of the fastest of REPEATS runs: on a shared machine the fastest run is the one
    least disturbed by other work."""
    best = None
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        out = fn()
        secs = time.perf_counter() - t0
        best = secs if best is None else min(best, secs)
    return out, best


def naive_loop(model, chats) -> list[dict]:
    """One forward pass per prompt with plain transformers: full logits, softmax of the last position."""
    import torch

    tok, net = model.tokenizer, model.model
    ids = {k: {tok(s, add_special_tokens=False)["input_ids"][0] for s in v} for k, v in OPTIONS.items()}
    out = []
    with torch.inference_mode():
        for chat in chats:
            text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) + "[["
            inputs = tok(text, return_tensors="pt", add_special_tokens=False).to(net.device)
            probs = torch.softmax(net(**inputs).logits[0, -1], dim=-1)
            raw = {k: float(sum(probs[i] for i in v)) for k, v in ids.items()}
            total = sum(raw.values())
            out.append({k: v / total for k, v in raw.items()})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--model", default="embedded", help="model spec (hf or embedded), without a dtype option")
    ap.add_argument("--dtypes", default="float32,bfloat16",
                    help="precisions to time referee and the naive loop in (the first is the naive baseline)")
    ap.add_argument("--limit", type=int, default=40, help="pairs for the probability modes and the naive loop")
    ap.add_argument("--generative-limit", type=int, default=None, help="pairs for generative mode (default: --limit)")
    ap.add_argument("--max-new-tokens", type=int, default=48, help="generative: tokens the judge may write")
    ap.add_argument("--repeats", type=int, default=1, help="time each row this many times, keep the fastest")
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args()
    global REPEATS
    REPEATS = max(1, args.repeats)

    pairs = load_pairs(args.data)[:args.limit]
    gen_pairs = pairs[:args.generative_limit or args.limit]
    dtypes = args.dtypes.split(",")
    results, verdicts, notes = {}, {}, []
    for dtype in dtypes:
        joiner = "&" if "?" in args.model else "?"
        model = load_model(f"{args.model}{joiner}dtype={dtype}")  # no cache: every call is computed
        model.choice([[{"role": "user", "content": "warm up"}]], OPTIONS, prefix="[[")
        judge = PairwiseJudge(model, verdict="probability", swap="none")
        recs, secs = timed(lambda: judge.judge_pairs(pairs))
        results[(dtype, "referee probability, swap none")] = (len(recs), secs)
        verdicts[dtype] = [r["orders"][0]["winner_shown"] for r in recs]
        both = PairwiseJudge(model, verdict="probability", swap="conservative")
        recs2, secs = timed(lambda: both.judge_pairs(pairs))
        results[(dtype, "referee probability, swap conservative (both orders)")] = (len(recs2), secs)

        chats = {order: [judge.build_chat(p, order, None)[0] for p in pairs] for order in ("AB", "BA")}
        naive_ab, secs = timed(lambda: naive_loop(model, chats["AB"]))
        results[(dtype, "naive loop, one order")] = (len(naive_ab), secs)
        naive_ba, secs = timed(lambda: naive_loop(model, chats["BA"]))
        results[(dtype, "naive loop, both orders")] = (len(naive_ba), secs + results[(dtype, "naive loop, one order")][1])
        agree = sum(v == max(("first", "second", "tie"), key=n.get) for v, n in zip(verdicts[dtype], naive_ab))
        notes.append(f"{dtype}: referee and naive verdicts agree on {agree}/{len(pairs)} pairs")
        if dtype != dtypes[0]:
            same = sum(a == b for a, b in zip(verdicts[dtype], verdicts[dtypes[0]]))
            notes.append(f"{dtype} and {dtypes[0]} referee verdicts (one order) agree on {same}/{len(pairs)} pairs")
        if dtype == dtypes[0]:
            one_at_a_time, secs = timed(lambda: [model.choice([c], OPTIONS, prefix="[[")[0] for c in chats["AB"]])
            results[(dtype, "referee, one prompt per call, one order")] = (len(one_at_a_time), secs)

            from referee.models.base import Sampling

            gen = PairwiseJudge(model, verdict="generative", swap="none", max_retries=0,
                                sampling=Sampling(temperature=0.0, max_new_tokens=args.max_new_tokens))
            grecs, secs = timed(lambda: gen.judge_pairs(gen_pairs))
            results[(dtype, f"referee generative (swap none, {args.max_new_tokens} new tokens max, no retries)")] = (
                len(grecs), secs)
            invalid = sum(r["winner"] == "invalid" for r in grecs)
            notes.append(f"generative verdicts unreadable: {invalid}/{len(grecs)}")

    print(f"model {args.model}, data {args.data}, {len(pairs)} pairs; naive baseline: {dtypes[0]}; "
          f"fastest of {REPEATS} run(s) per row")
    print(f"{'mode':70s} {'dtype':>8s} {'judgments':>9s} {'seconds':>8s} {'judg/s':>7s} {'vs naive':>8s} {'vs naive same dtype':>20s}")
    table = []
    for (dtype, name), (n, s) in results.items():
        orders = "both orders" if ("conservative" in name or "both orders" in name) else "one order"
        n0, s0 = results[(dtypes[0], f"naive loop, {orders}")]
        n1, s1 = results[(dtype, f"naive loop, {orders}")]
        rate = n / s
        table.append({"mode": name, "dtype": dtype, "judgments": n, "seconds": round(s, 2),
                      "per_second": round(rate, 3), "vs_naive": round(rate / (n0 / s0), 2),
                      "vs_naive_same_dtype": round(rate / (n1 / s1), 2)})
        print(f"{name:70s} {dtype:>8s} {n:9d} {s:8.1f} {rate:7.2f} {rate / (n0 / s0):7.2f}x {rate / (n1 / s1):19.2f}x")
    print("(rows judging both orders are compared with the naive loop on both orders; the others with one order)")
    for line in notes:
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "pairs": len(pairs), "results": table,
                                               "notes": notes}, indent=2))


if __name__ == "__main__":
    main()
