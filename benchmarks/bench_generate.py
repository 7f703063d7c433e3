"""Sampling throughput on the embedded model: referee's hf backend against a naive loop, same run.

The naive baseline answers one request at a time with ``model.generate`` (the way FastChat's
gen_model_answer works). referee batches all samples of all prompts, with per-sample seeds. Also
measured: llama.cpp on the same GGUF, single stream (if llama-cpp-python is installed), and the cost of
a fully cached rerun.

    python benchmarks/bench_generate.py                       # 32 prompts x 4 samples x 64 new tokens
    python benchmarks/bench_generate.py --prompts 8 --naive-prompts 2   # a quick look

Tokens/s counts generated tokens (up to and including end of turn). The naive loop runs on a subset of
the prompts (``--naive-prompts``) because it is slow; its rate, not its total, is compared.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

TOPICS = ["volcanoes", "bread", "chess", "the moon", "rivers", "bicycles", "honeybees", "glass", "whales",
          "libraries", "thunderstorms", "maps", "coffee", "bridges", "penguins", "paper", "clocks", "deserts",
          "violins", "tea", "glaciers", "owls", "salt", "trains", "mushrooms", "lighthouses", "silk", "comets",
          "gardens", "kites", "coral reefs", "typewriters"]
FORMS = ["Explain how {} work in three sentences.", "Write a short poem about {}.",
         "Give two surprising facts about {}.", "Describe {} to a child."]


def prompts(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": FORMS[i % len(FORMS)].format(TOPICS[i % len(TOPICS)])}] for i in range(n)]


def bench_naive(model, chats, n, max_new_tokens) -> tuple[int, float]:
    """One request at a time, n times per prompt: plain transformers sampling."""
    import torch

    hf, tok = model.model, model.tokenizer
    tokens, start = 0, time.perf_counter()
    for chat in chats:
        ids = tok(model.render(chat), return_tensors="pt", add_special_tokens=False).to(hf.device)
        for j in range(n):
            torch.manual_seed(j)
            out = hf.generate(**ids, do_sample=True, temperature=0.7, max_new_tokens=max_new_tokens,
                              pad_token_id=tok.pad_token_id)
            gen = out[0, ids["input_ids"].shape[1]:].tolist()
            tokens += next((k + 1 for k, t in enumerate(gen) if t == tok.eos_token_id), len(gen))
    return tokens, time.perf_counter() - start


def bench_llama_cpp(chats, n, max_new_tokens) -> tuple[int, float] | None:
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    from referee.models.embedded import gguf_path

    llm = Llama(model_path=str(gguf_path()), n_ctx=2048, verbose=False, seed=0)
    tokens, start = 0, time.perf_counter()
    for chat in chats:
        for j in range(n):
            out = llm.create_chat_completion(chat, max_tokens=max_new_tokens, temperature=0.7, seed=j)
            tokens += out["usage"]["completion_tokens"]
    return tokens, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("-n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=128, help="referee's hf batch size (samples per forward)")
    ap.add_argument("--naive-prompts", type=int, default=8, help="prompts the slow naive loop runs on")
    ap.add_argument("--llama-prompts", type=int, default=8, help="prompts llama.cpp runs on (0 to skip)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    from referee import progress
    from referee.cache import Cache
    from referee.ledger import Ledger
    from referee.models import Sampling, load_model

    progress.set_quiet(True)
    chats = prompts(args.prompts)
    sampling = Sampling(temperature=0.7, max_new_tokens=args.max_new_tokens, seed=0)
    results: dict = {"prompts": args.prompts, "n": args.n, "max_new_tokens": args.max_new_tokens,
                     "batch_size": args.batch_size}

    with tempfile.TemporaryDirectory() as tmp:
        cache = Cache(Path(tmp) / "cache.sqlite")
        model = load_model(f"embedded?batch_size={args.batch_size}", cache=cache)
        model.generate(prompts(2), Sampling(max_new_tokens=4), n=1)  # warm-up, not timed

        ledger = Ledger()
        with ledger.activate():
            start = time.perf_counter()
            model.generate(chats, sampling, n=args.n)
            first = time.perf_counter() - start
        tokens = ledger.to_dict()["totals"]["completion_tokens"]
        results["referee"] = {"tokens": tokens, "seconds": first, "tokens_per_s": tokens / first}

        start = time.perf_counter()
        again = model.generate(chats, sampling, n=args.n)
        rerun = time.perf_counter() - start
        assert all(c.cached for row in again for c in row)
        results["cached_rerun"] = {"seconds": rerun, "fraction_of_first": rerun / first}

        naive_tokens, naive_s = bench_naive(model, chats[:args.naive_prompts], args.n, args.max_new_tokens)
        results["naive"] = {"prompts": args.naive_prompts, "tokens": naive_tokens, "seconds": naive_s,
                            "tokens_per_s": naive_tokens / naive_s}
        if args.llama_prompts:
            lc = bench_llama_cpp(chats[:args.llama_prompts], args.n, args.max_new_tokens)
            if lc is not None:
                results["llama_cpp"] = {"prompts": args.llama_prompts, "tokens": lc[0], "seconds": lc[1],
                                        "tokens_per_s": lc[0] / lc[1]}

    r, nv = results["referee"], results["naive"]
    results["speedup_vs_naive"] = r["tokens_per_s"] / nv["tokens_per_s"]
    print(f"referee hf backend : {r['tokens']} tokens in {r['seconds']:.1f} s = {r['tokens_per_s']:.1f} tokens/s "
          f"({args.prompts} prompts x {args.n} samples, batch {args.batch_size})")
    print(f"naive loop         : {nv['tokens']} tokens in {nv['seconds']:.1f} s = {nv['tokens_per_s']:.1f} tokens/s "
          f"({args.naive_prompts} prompts x {args.n} samples, one request at a time)")
    print(f"ratio              : {results['speedup_vs_naive']:.2f}x the naive loop")
    if "llama_cpp" in results:
        lc = results["llama_cpp"]
        results["ratio_vs_llama_cpp"] = r["tokens_per_s"] / lc["tokens_per_s"]
        print(f"llama.cpp (GGUF)   : {lc['tokens_per_s']:.1f} tokens/s single stream; referee is "
              f"{results['ratio_vs_llama_cpp']:.2f}x that")
    cr = results["cached_rerun"]
    print(f"cached rerun       : {cr['seconds']:.2f} s = {100 * cr['fraction_of_first']:.2f}% of the first run")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
