"""Reward-model benchmark: accuracy on HH-RLHF beside the length baseline, and scoring throughput.

1. Bradley-Terry RM (frozen backbone + head by default, or --lora) trained on part of an HH-RLHF file,
   tested on the rest: pairwise accuracy with a 95% bootstrap interval, beside the always-longer
   baseline measured on the same test pairs.
2. Scoring throughput on one device (CPU by default) in solutions per second: the RM on HH answers
   and a PRM on GSM8K reference solutions (steps = lines), each batched and one at a time, same run.
   The PRM here reuses the RM's backbone and head (not trained on steps): its cost does not depend
   on the head's weights, only on the backbone and the input lengths.

    python benchmarks/bench_rewards.py --limit 64             # smoke run
    python benchmarks/bench_rewards.py                        # all 2,312 pairs, half train / half test
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from pathlib import Path



def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data:hh_rlhf/harmless_base_test.jsonl.gz")
    ap.add_argument("--gsm8k", default="data:gsm8k/train.jsonl")
    ap.add_argument("--base", default="embedded")
    ap.add_argument("--limit", type=int, default=None, help="Use only this many pairs (shuffled first).")
    ap.add_argument("--train-frac", type=float, default=0.5)
    ap.add_argument("--lora", action="store_true")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--center", type=float, default=0.0)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--device", default=None, help="Device for training and accuracy (default: cuda if any).")
    ap.add_argument("--throughput-device", default="cpu", help="Device for the throughput part.")
    ap.add_argument("--throughput-n", type=int, default=None,
                    help="Solutions per throughput measurement (default: min(64, test pairs)).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="Write all numbers here as JSON.")
    return ap.parse_args(argv)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def throughput(verifier, prompts, responses, batch_size: int) -> dict:
    """Solutions per second scoring all at once in batches, and one call per solution."""
    verifier.net.batch_size = batch_size
    verifier.score_many(prompts[:2], responses[:2])  # warm-up: first-call allocations
    batched, t_batched = timed(lambda: verifier.score_many(prompts, responses))
    single, t_single = timed(lambda: [verifier.score(p, r) for p, r in zip(prompts, responses)])
    diff = max(abs(a.value - b.value) for a, b in zip(batched, single) if a.value is not None and b.value is not None)
    n = len(prompts)
    return {"solutions": n, "batch_size": batch_size,
            "batched_per_s": n / t_batched, "one_at_a_time_per_s": n / t_single,
            "speedup": t_single / t_batched, "max_score_difference": diff}


def main(argv=None) -> dict:
    args = parse_args(argv)
    from referee import progress
    from referee.io import read_jsonl
    from referee.rewards import ProcessRM, RewardNet, TrainOptions, load_preferences, train_reward_model
    from referee.rewards.evaluate import eval_pairs, fmt

    pairs = load_preferences(args.data)
    random.Random(args.seed).shuffle(pairs)
    if args.limit:
        pairs = pairs[:args.limit]
    n_train = int(round(len(pairs) * args.train_frac))
    train, test = pairs[:n_train], pairs[n_train:]
    if not train or not test:
        sys.exit("need at least one training and one test pair: raise --limit or change --train-frac")
    print(f"data: {args.data}: {len(pairs)} pairs, {len(train)} train / {len(test)} test (seed {args.seed})")

    net = RewardNet(args.base, device=args.device, max_length=args.max_length, batch_size=args.batch_size)
    options = TrainOptions(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, lora=args.lora,
                           seed=args.seed)
    (rm, train_metrics), t_train = timed(lambda: train_reward_model(args.base, train, options, center=args.center,
                                                                      net=net))
    test_m, t_test = timed(lambda: eval_pairs(rm, test, seed=args.seed))
    print(f"\n== Bradley-Terry RM on {args.base} ({'LoRA' if args.lora else 'frozen backbone + head'}), "
          f"max length {args.max_length}")
    tm = train_metrics
    print(f"train loss {tm['loss_first_epoch']:.4f} -> {tm['loss_last_epoch']:.4f} over {tm['epochs']} epochs"
          + (f"; held-out loss best at epoch {tm['best_epoch']} ({min(tm['val_losses']):.4f}, "
             f"{tm['val_examples']} pairs)" if tm["val_losses"] else ""))
    print(f"training took {t_train:.1f} s (hidden states included), test scoring {t_test:.1f} s")
    print(f"test pairwise accuracy:          {fmt(test_m['accuracy'])}")
    print(f"test always-longer baseline:     {fmt(test_m['always_longer'])}")
    print(f"RM minus baseline (paired):      {fmt(test_m['minus_always_longer'])}")

    n = args.throughput_n or min(64, len(test))
    rm_prompts = [p.prompt for p in test[:n]]
    rm_answers = [p.chosen for p in test[:n]]
    net.to(args.throughput_device)
    quiet = progress.is_quiet()
    progress.set_quiet(True)  # one bar per single call would drown the output
    rm_tp = throughput(rm, rm_prompts, rm_answers, args.batch_size)
    gsm = [obj for _, obj in itertools.islice(read_jsonl(args.gsm8k), n)]
    prm = ProcessRM(net)
    prm_tp = throughput(prm, [g["question"] for g in gsm], [g["answer"] for g in gsm], args.batch_size)
    progress.set_quiet(quiet)
    print(f"\n== scoring throughput on {args.throughput_device} (solutions/s), {n} solutions each")
    for name, tp in (("RM (HH answers)", rm_tp), ("PRM (GSM8K solutions)", prm_tp)):
        print(f"{name:24s} batched (batch {tp['batch_size']}): {tp['batched_per_s']:7.2f}   one at a time: "
              f"{tp['one_at_a_time_per_s']:7.2f}   speed-up x{tp['speedup']:.2f}   "
              f"max score difference {tp['max_score_difference']:.2e}")

    from referee.stats import jsonable

    test_m.pop("hits")
    results = jsonable({"args": vars(args), "pairs": len(pairs), "train_pairs": len(train), "test_pairs": len(test),
                        "training": train_metrics, "train_seconds": t_train,
                        "test_eval": test_m, "throughput": {"rm": rm_tp, "prm": prm_tp}})
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
