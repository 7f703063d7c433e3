"""Weak-to-strong benchmark: the PGR table on csqa2 and liar with the CPU ladder.

Runs the shipped configs (configs/w2s_<task>.yaml) through the weak_to_strong protocol and prints, per
task, the Markdown PGR table (naive loss, auxiliary confidence loss, bootstrapping), the baseline
comparisons as ratios (aux vs naive mean PGR; bootstrapped vs direct PGR) and the wall time of each
part (features, training). ``--limit N`` shrinks every split to N examples for a smoke test.

    python benchmarks/bench_w2s.py                       # both tasks, full size
    python benchmarks/bench_w2s.py --tasks liar --limit 40 --out /tmp/w2s-smoke
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from referee.paths import data_root

REPO = Path(__file__).resolve().parents[1]


def config_for(task: str, limit: int | None, out: Path, data_dir: Path) -> dict:
    from referee.config import load_config_file

    os.environ["REFEREE_DATA"] = str(data_dir)  # the config's data:SET/FILE paths are read under it
    cfg = load_config_file(REPO / "configs" / f"w2s_{task}.yaml")
    if limit:
        cfg["split"] = {"n_weak": limit, "n_w2s": limit, "n_test": limit}
        cfg["n_boot"] = 100
    cfg["out"] = str(out / f"w2s_{task}" if not limit else out / f"w2s_{task}_limit{limit}")
    return cfg


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["csqa2", "liar"], choices=["csqa2", "liar"])
    parser.add_argument("--limit", type=int, default=None, help="examples per split (smoke test)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench")
    parser.add_argument("--data", type=Path, default=data_root()[0], help="the data root (referee data list)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    from referee.config import validate
    from referee.runs import Run
    from referee.protocols.weak_to_strong import W2SConfig, run_weak_to_strong
    from referee.reports.weak_to_strong import draw, markdown_table

    results = {}
    for task in args.tasks:
        config = validate(W2SConfig, config_for(task, args.limit, args.out, args.data), f"configs/w2s_{task}.yaml")
        t0 = time.perf_counter()
        with Run(config.out, config, seed=config.seed) as run:
            run_weak_to_strong(config, run)
            draw(run)
        wall = time.perf_counter() - t0
        metrics = json.loads((Path(config.out) / "metrics.json").read_text())["weak_to_strong"]
        ledger = json.loads((Path(config.out) / "ledger.json").read_text())
        stage_s = ledger.get("stage_wall_seconds", {})
        feature_s = float(stage_s.get("features", 0.0))
        train_s = float(sum(v for k, v in stage_s.items() if k != "features"))
        summary = metrics["summary"]
        boots = metrics["bootstrap"]
        comparisons = {
            "aux_vs_naive_mean_pgr": ratio(summary.get("aux", {}).get("mean_pgr"), summary.get("naive", {}).get("mean_pgr")),
            "bootstrap_vs_direct_pgr": [{"chain": " > ".join(b["chain"]), "bootstrap": b["pgr"], "direct": b["direct_pgr"],
                                         "ratio": ratio(b["pgr"], b["direct_pgr"])} for b in boots],
        }
        results[task] = {"wall_s": wall, "feature_s": feature_s, "train_s": train_s, "split": metrics["split"], "summary": summary,
                         "comparisons": comparisons, "run": config.out}
        print(f"\n## {task}: {metrics['split']}  wall {wall:.0f} s (features {feature_s:.0f} s, "
              f"training {train_s:.0f} s)")
        print(markdown_table(metrics))
        print(f"- aux / naive mean PGR: {_fmt(comparisons['aux_vs_naive_mean_pgr'])}")
        for b in comparisons["bootstrap_vs_direct_pgr"]:
            print(f"- bootstrapped {b['chain']}: PGR {_fmt(b['bootstrap'])} vs direct {_fmt(b['direct'])} "
                  f"(ratio {_fmt(b['ratio'])})")
        print(f"- run folder: {config.out} (plots in {config.out}/plots)")
        sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.2f}"


if __name__ == "__main__":
    sys.exit(main())
