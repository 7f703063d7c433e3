"""Start-up time of the command line: `referee --help` and a baseline judge run (no model), each in a fresh
process, against the same command in a process that first imports every protocol: what every command that
looked up a protocol (judge, audit, run, ...) paid before the registry became lazy. `--help` never looked
one up; its eager arm shows what the imports alone cost.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_startup.py --runs 7

The arms alternate run by run, so a changing load on the machine hits both alike. Each line gives the
median and range of wall time and of CPU time (user + system, steadier on a busy machine), and which of
torch, transformers, trl and peft the command imported. Each judge run writes a new run folder, so it
judges its items every time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import referee

HEAVY = ("torch", "transformers", "trl", "peft")
EAGER = "import referee.protocols as p; p.all_protocols()\n"  # every protocol module, as before
# the children import the referee this script imports, whatever their working folder
CHILD_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    p for p in (str(Path(referee.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")) if p))


def probe(argv: list[str], eager: bool) -> str:
    """Python code that runs `referee ARGV` (after importing every protocol when ``eager``), then prints
    the heavy modules loaded."""
    return ((EAGER if eager else "") + "import json, sys\nfrom referee.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY=' + json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)")


def timed(code: str, cwd: str) -> tuple[float, float, list[str]]:
    """Wall seconds, CPU seconds and heavy modules of one fresh interpreter running ``code``."""
    before, t = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=CHILD_ENV, capture_output=True, text=True)
    wall, after = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN)
    heavy = [line for line in done.stderr.splitlines() if line.startswith("HEAVY=")]
    if done.returncode or not heavy:
        raise SystemExit(f"the command failed:\n{done.stderr[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu, json.loads(heavy[-1].removeprefix("HEAVY="))


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--pairs", default="data:llmbar/natural.json")
    parser.add_argument("--limit", type=int, default=10)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-startup-")
    commands = {
        "referee --help": lambda run: ["--help"],
        f"referee judge --judge baseline:longer --limit {args.limit}": lambda run: [
            "--quiet", "judge", "--judge", "baseline:longer", "--limit", str(args.limit), "--pairs", args.pairs,
            "--run", run],
    }
    for name, argv in commands.items():
        results = {"lazy": [], "eager": []}
        for i in range(args.runs):
            for arm in results:
                results[arm].append(timed(probe(argv(f"{work}/{arm}-{i}"), arm == "eager"), work))
        for arm, rows in results.items():
            walls, cpus, heavy = [r[0] for r in rows], [r[1] for r in rows], rows[-1][2]
            print(f"{name} [{arm}]: n={args.runs}, wall {spread(walls)}, CPU {spread(cpus)}; "
                  f"imports {', '.join(heavy) or 'none of ' + ', '.join(HEAVY)}")
        eager, lazy = (statistics.median(r[0] for r in results[arm]) for arm in ("eager", "lazy"))
        print(f"  eager / lazy wall median: {eager / lazy:.1f}x")


if __name__ == "__main__":
    main()
