"""Benchmark: a model as a pairwise judge on human-labelled LLMBar-format data, against two baselines
(always-prefer-longer and a seeded coin) measured in the same run, and its cost against a naive loop.

Per data set it reports agreement with people (S2, and accuracy where a judge tie counts as a miss),
position consistency, first-position preference and the invalid rate, for generative and probability
verdicts, with swapping (conservative: both orders) and without, each with a 95% bootstrap interval.

Cost: judgments per second of referee's probability and generative modes (both orders of every pair,
nothing cached), and of a naive loop that sends the very same prompts one at a time through a plain
transformers forward pass. The swap-none and swap-average rows reuse the prompts of the swapped run
through the run's cache (same prompt, same seed: the same verdict), so they cost nothing extra and are
not timed. `average` decides on P(A) averaged over both orders, which cancels a constant position
bias: one way a judge that always names the first answer can still carry signal. The other is
calibration (`batch`, `content-free`: each prompt's verdict probabilities divided by the judge's prior
over them); its rows also come from the cache (content-free adds three placeholder prompts).

    python benchmarks/bench_judges.py --limit 8 --datasets natural
    python benchmarks/bench_judges.py --out bench_judges.md      # the full run (all four data sets)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from referee.paths import data_root

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = data_root()[0] / "llmbar"  # the data root: referee data list
DATASETS = ("natural", "mt_bench_human", "faireval", "llmeval2")


def naive_probability_loop(model, judge, pairs) -> tuple[float, float, list[str]]:
    """Wall and CPU seconds to judge ``pairs`` in both orders one prompt at a time (no batching, no cache)
    with the plain transformers loop of bench_judge_speed.py; and the shown verdicts, for a check."""
    from bench_judge_speed import naive_loop

    chats = [judge.build_chat(pair, order, None)[0] for pair in pairs for order in ("AB", "BA")]
    t0, c0 = time.perf_counter(), time.process_time()
    probs = naive_loop(model, chats)
    return time.perf_counter() - t0, time.process_time() - c0, [max(p, key=p.get) for p in probs]


def summarise(records: list[dict], n_boot: int, seed: int) -> dict:
    from referee import stats
    from referee.audit.agreement import pairwise_agreement
    from referee.audit.biases import position_bias

    agree = pairwise_agreement(records, per_category=False, n_boot=n_boot, seed=seed)
    pos = position_bias(records, n_boot=n_boot, seed=seed)
    both = pos["pairs_both_orders"] > 0
    return stats.jsonable({"n": len(records), "s2": agree["s2"], "accuracy": agree["accuracy"],
                           "invalid": agree["invalid"], "judge_tie": agree["judge_tie"],
                           "consistency": pos["consistent"] if both else None, "prefers_first": pos["prefers_first"]})


def bench_dataset(name: str, path: Path, model, args) -> dict:
    from referee.judges.baselines import LongerJudge, RandomJudge
    from referee.judges import PairwiseJudge
    from referee.tasks.pairs import load_pairs

    pairs = load_pairs(path)
    if args.limit:
        pairs = pairs[: args.limit]
    rows, speed = [], {}
    for label, judge in (("always longer", LongerJudge(swap="conservative")),
                         ("random", RandomJudge(seed=args.seed, swap="none")),
                         ("random", RandomJudge(seed=args.seed, swap="conservative"))):
        rows.append({"judge": label, "verdict": "-", "swap": judge.swap, "calibration": "-",
                     **summarise(judge.judge_pairs(pairs), args.n_boot, args.seed)})
    for verdict in args.verdicts:
        judged = pairs[: args.generative_limit] if verdict == "generative" and args.generative_limit else pairs
        swapped = PairwiseJudge(model, verdict=verdict, swap="conservative", seed=args.seed,
                                max_retries=args.max_retries)
        t0, c0 = time.perf_counter(), time.process_time()
        records = swapped.judge_pairs(judged)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        speed[verdict] = {"pairs": len(judged), "prompts": 2 * len(judged), "seconds": seconds, "cpu_seconds": cpu,
                          "pairs_per_s": len(judged) / seconds}
        calibrations = ["none"] + (args.calibrations if verdict == "probability" else [])
        for swap in ("none", "average"):  # the same prompts as the swapped run: answered from the cache
            for calibration in calibrations:
                again = PairwiseJudge(model, verdict=verdict, swap=swap, seed=args.seed, max_retries=args.max_retries,
                                      calibration=calibration).judge_pairs(judged)
                rows.append({"judge": args.model, "verdict": verdict, "swap": swap, "calibration": calibration,
                             **summarise(again, args.n_boot, args.seed)})
        rows.append({"judge": args.model, "verdict": verdict, "swap": "conservative", "calibration": "none",
                     **summarise(records, args.n_boot, args.seed)})
        if verdict == "probability" and args.naive_limit:
            sub = pairs[: args.naive_limit]
            naive_s, naive_cpu, naive_shown = naive_probability_loop(model, swapped, sub)
            ours = [o["winner_shown"] for r in records[: len(sub)] for o in r["orders"]]
            speed["naive"] = {"pairs": len(sub), "prompts": 2 * len(sub), "seconds": naive_s, "cpu_seconds": naive_cpu,
                              "pairs_per_s": len(sub) / naive_s,
                              "same_verdicts": sum(a == b for a, b in zip(ours, naive_shown)) / len(ours)}
    return {"dataset": name, "pairs": len(pairs), "rows": rows, "speed": speed}


def _cell(est: dict | None) -> str:
    from referee.audit.report import fmt

    return "n/a" if est is None else fmt(est)


def markdown(results: list[dict], args, device: str) -> str:
    lines = [f"Judge: `{args.model}` ({device}); pairs per data set: {args.limit or 'all'}; "
             f"95% percentile bootstrap intervals ({args.n_boot} resamples, seed {args.seed}).",
             "S2: agreement over pairs where neither the judge nor the human said tie (invalid = miss); "
             "accuracy: judge ties count as misses; consistency: same verdict in both orders.", "",
             "| data set | n | judge | verdict | swap | calibration | agreement S2 | accuracy | position consistency "
             "| prefers first | invalid |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        for r in res["rows"]:
            lines.append(f"| {res['dataset']} | {r['n']} | {r['judge']} | {r['verdict']} | {r['swap']} | "
                         f"{r['calibration']} | "
                         f"{_cell(r['s2'])} (n={r['s2']['n']}) | {_cell(r['accuracy'])} | {_cell(r['consistency'])} | "
                         f"{_cell(r['prefers_first'])} | {_cell(r['invalid'])} |")
    if not any(res["speed"] for res in results):
        return "\n".join(lines) + "\n"
    lines += ["", "Cost (both orders of every pair, nothing cached; naive = the same prompts one at a time, "
                  "plain forward pass; a judgment = one pair in both orders; CPU s = process CPU time, steadier "
                  "than wall time on a shared machine):", "",
              "| data set | mode | pairs | wall s | CPU s | judgments/s (wall) | vs naive (wall) | vs naive (CPU) |",
              "|---|---|---|---|---|---|---|---|"]
    for res in results:
        naive = res["speed"].get("naive")
        for mode in ("probability", "generative", "naive"):
            s = res["speed"].get(mode)
            if not s:
                continue
            ratio = f"{s['pairs_per_s'] / naive['pairs_per_s']:.1f}x" if naive else "-"
            cpu_ratio = (f"{(naive['cpu_seconds'] / naive['pairs']) / (s['cpu_seconds'] / s['pairs']):.1f}x"
                         if naive else "-")
            lines.append(f"| {res['dataset']} | {mode} | {s['pairs']} | {s['seconds']:.1f} | {s['cpu_seconds']:.1f} | "
                         f"{s['pairs_per_s']:.2f} | {ratio} | {cpu_ratio} |")
    checks = [f"{res['dataset']} {100 * res['speed']['naive']['same_verdicts']:.0f}%" for res in results
              if "naive" in res["speed"]]
    if checks:
        lines += ["", "The naive loop's per-order verdicts equal referee's probability verdicts on: " + ", ".join(checks)
                  + " (shared heads and batches change the order of floating-point sums, which can flip a near tie)."]
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> Path:
    """Accuracy against the human labels (judge ties count as misses) per data set and configuration,
    with 95% intervals; the always-longer baseline drawn as a line across each panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from referee.figures import save_figure

    fig, axes = plt.subplots(1, len(results), figsize=(3.6 * len(results), 4.2), sharey=True, squeeze=False)
    for ax, res in zip(axes[0], results):
        rows = [r for r in res["rows"] if r["verdict"] != "generative" or r["swap"] == "none"]
        labels, values, errs = [], [], [[], []]
        for r in rows:
            acc = r["accuracy"]
            name = r["judge"] if r["verdict"] == "-" else f"{r['verdict'][:4].replace('gene', 'gen')} {r['swap']}"
            if r["calibration"] not in ("-", "none"):
                name += f" +{r['calibration']}"
            if r["verdict"] == "-" and r["judge"] == "random":
                name += f" ({r['swap'][:4]})"
            labels.append(name)
            v = acc["value"] or 0.0
            values.append(v)
            errs[0].append(v - (acc["low"] if acc["low"] is not None else v))
            errs[1].append((acc["high"] if acc["high"] is not None else v) - v)
        colors = ["#999999" if r["verdict"] == "-" else "#4c72b0" if r["verdict"] == "probability" else "#dd8452"
                  for r in rows]
        ax.barh(range(len(rows)), values, xerr=errs, color=colors, capsize=2)
        longer = next(r for r in res["rows"] if r["judge"] == "always longer")["accuracy"]["value"]
        ax.axvline(longer, color="black", linestyle="--", linewidth=1)
        for y, (v, r) in enumerate(zip(values, rows)):
            note = " (all invalid)" if (r["invalid"]["value"] or 0) >= 1 else " (all ties)" if v == 0 else ""
            ax.text(v + errs[1][y] + 0.01, y, f"{100 * v:.0f}%{note}", va="center", fontsize=6)
        ax.set_yticks(range(len(rows)), labels, fontsize=7)
        ax.set_xlim(0, 1)
        ax.set_title(f"{res['dataset']} ({res['pairs']} pairs)", fontsize=9)
        ax.set_xlabel("accuracy vs people (ties = miss)", fontsize=8)
    axes[0][0].invert_yaxis()  # the y axis is shared: invert it once, first row on top
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="embedded", help="judge model spec (default: embedded)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with the LLMBar-format JSON files")
    p.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated file stems")
    p.add_argument("--limit", type=int, default=None, help="first N pairs of each data set")
    p.add_argument("--verdicts", default="probability,generative")
    p.add_argument("--naive-limit", type=int, default=24, help="pairs timed in the naive loop (0: skip it)")
    p.add_argument("--max-retries", type=int, default=2, help="retries of an unreadable generative verdict")
    p.add_argument("--generative-limit", type=int, default=None,
                   help="judge only the first N pairs of each data set generatively (the costly mode)")
    p.add_argument("--calibrations", default="batch,content-free",
                   help="calibrated probability rows to add (from the cache), comma-separated; '' for none")
    p.add_argument("--cache", type=Path, default=None,
                   help="keep the judge's answers in this SQLite file (default: a temporary one), so a re-run "
                        "with other rows costs nothing; timings of a re-run are then meaningless")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    p.add_argument("--json", type=Path, default=None, help="write all numbers here")
    p.add_argument("--plot", type=Path, default=None, help="save a PNG of accuracy per configuration here")
    args = p.parse_args(argv)
    args.verdicts = [v.strip() for v in args.verdicts.split(",") if v.strip()]
    args.calibrations = [c.strip() for c in args.calibrations.split(",") if c.strip()]
    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    missing = [d for d in names if not (args.data / f"{d}.json").exists()]
    if missing:
        print(f"error: no {', '.join(missing)} under {args.data}", file=sys.stderr)
        return 2

    from referee.cache import Cache
    from referee.models import load_model

    with tempfile.TemporaryDirectory() as tmp:
        model = load_model(args.model, cache=Cache(args.cache or Path(tmp) / "cache.sqlite"))
        device = getattr(model, "device", "?")
        t0 = time.perf_counter()
        results = [bench_dataset(d, args.data / f"{d}.json", model, args) for d in names]
        total = time.perf_counter() - t0
    text = markdown(results, args, device) + f"\nTotal wall time: {total:.0f} s.\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                                         "seconds": total}, indent=2))
    if args.plot:
        print(f"plot: {plot(results, args.plot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
