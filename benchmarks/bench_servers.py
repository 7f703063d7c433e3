"""Scaling out: a pool of two single-threaded llama.cpp servers against one server with two threads.

Both serve the embedded GGUF, started here on 127.0.0.1 (llama-cpp-python's server). For each client
concurrency (requests in flight, for the whole pool) the same prompts are sampled at temperature 0
through referee's openai backend, once against ``openai:smol@URL`` (one server, 2 threads) and once
against ``openai:smol@URL1,URL2`` (two servers, 1 thread each), each measurement with a fresh cache so
nothing is answered from it. The two setups alternate at each concurrency, so drift in the machine's
load falls on both; ``--repeats`` keeps the fastest of several measurements.

    python benchmarks/bench_servers.py                                    # 16 prompts x 32 tokens
    python benchmarks/bench_servers.py --prompts 8 --max-new-tokens 16    # a quick look

Completions/s counts answered prompts; tokens/s counts generated tokens as the servers report them.
The ratio is pool over single server, in tokens/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the servers the tests start: one way to run llama.cpp's server

from bench_generate import prompts  # noqa: E402  (the same prompts as the sampling benchmark)
from servers import LlamaServer, llama_server_missing, start_all  # noqa: E402


def measure(spec: str, chats, sampling, concurrency: int, folder: Path) -> dict:
    """Sample every chat once through ``spec`` at ``concurrency``, from a fresh cache: rates and counts."""
    from referee.cache import Cache
    from referee.models import load_model

    with tempfile.TemporaryDirectory(dir=folder) as fresh:
        model = load_model(f"{spec}?concurrency={concurrency}&timeout=600", cache=Cache(Path(fresh) / "c.sqlite"))
        start = time.perf_counter()
        out = model.generate(chats, sampling)
        seconds = time.perf_counter() - start
    tokens = sum(samples[0].completion_tokens for samples in out)
    return {"seconds": seconds, "completions": len(out), "tokens": tokens,
            "completions_per_s": len(out) / seconds, "tokens_per_s": tokens / seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--concurrency", default="1,2,4,8", help="client concurrencies, comma-separated")
    ap.add_argument("--repeats", type=int, default=1, help="measurements per setup and concurrency (fastest kept)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    missing = llama_server_missing()
    if missing:
        sys.exit(missing)

    from referee import progress
    from referee.models import Sampling
    from referee.models.embedded import gguf_path

    progress.set_quiet(True)
    chats = prompts(args.prompts)
    sampling = Sampling(temperature=0, max_new_tokens=args.max_new_tokens)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    results: dict = {"prompts": args.prompts, "max_new_tokens": args.max_new_tokens, "cpus": os.cpu_count(),
                     "load_average_before": os.getloadavg(), "rows": []}

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        single = LlamaServer(gguf_path(), folder / "single.log", threads=2)
        pair = [LlamaServer(gguf_path(), folder / f"pool{i}.log", threads=1) for i in range(2)]
        servers = start_all([single, *pair])
        try:
            setups = {"single": single.spec, "pool": f"openai:smol@{pair[0].url},{pair[1].url}"}
            for spec in setups.values():  # warm-up, not timed: each server loads its weights into memory
                measure(spec, prompts(2), Sampling(temperature=0, max_new_tokens=4), 2, folder)
            for concurrency in concurrencies:
                row = {"concurrency": concurrency}
                for name, spec in setups.items():
                    runs = [measure(spec, chats, sampling, concurrency, folder) for _ in range(args.repeats)]
                    row[name] = min(runs, key=lambda r: r["seconds"])
                row["ratio"] = row["pool"]["tokens_per_s"] / row["single"]["tokens_per_s"]
                results["rows"].append(row)
        finally:
            for srv in servers:
                srv.stop()
    results["load_average_after"] = os.getloadavg()

    print(f"{args.prompts} prompts x up to {args.max_new_tokens} new tokens, temperature 0, fresh cache each; "
          f"{results['cpus']} CPUs, load average {results['load_average_before'][0]:.1f} before and "
          f"{results['load_average_after'][0]:.1f} after")
    print(f"{'concurrency':>11} | {'single (2 threads)':^25} | {'pool (2 x 1 thread)':^25} | pool/single")
    print(f"{'':>11} | {'completions/s':>13} {'tokens/s':>11} | {'completions/s':>13} {'tokens/s':>11} |")
    for row in results["rows"]:
        s, p = row["single"], row["pool"]
        print(f"{row['concurrency']:>11} | {s['completions_per_s']:>13.2f} {s['tokens_per_s']:>11.1f} | "
              f"{p['completions_per_s']:>13.2f} {p['tokens_per_s']:>11.1f} | {row['ratio']:>10.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
