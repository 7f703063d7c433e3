"""ProTeGi benchmark on LIAR: the five selection algorithms at one query budget, the paraphrase-only
ablation, and constant answers, all with the embedded model in every role (configs/protegi_liar.yaml).
With --race, the five selectors also race on a fixed pool of hand-written prompts
(benchmarks/protegi_liar_prompts.txt), apart from what the editor writes. With --judge, also the
judge-template optimisation on LLMBar (configs/protegi_judge_llmbar.yaml).

Arms: ucb (the config as shipped), brute_force, ucb_e, successive_rejects, successive_halving, and
paraphrase_only (ucb selection; each beam prompt paraphrased `expansion` times, no gradient or edit).
Every arm spends the same selection budget per round. The first arm's model-call cache is copied into each
later arm's fresh run folder, so calls they share (the initial prompt's test answers; round 1's expansion,
grown from the same prompt by every selector) are read back rather than recomputed: the same answers.

Printed per arm: held-out binary F1 (of "Yes", a lie, as in the paper) and accuracy of each round's best
prompt with 95% bootstrap intervals; the final prompt's change against the initial one, paired over test
items; the rewrites accepted, rejected (lost placeholder / format) and holding no prompt; selection
queries; wall seconds. The constant answers (always Yes, always No) are scored on the same test file:
binary F1 rewards answering Yes, so a prompt that only moves the model towards Yes gains F1 without
telling lies from truths, which accuracy shows.

    python benchmarks/bench_prompt_optimization.py                        # six LIAR arms
    python benchmarks/bench_prompt_optimization.py --race --judge         # and the race and the judge run
    python benchmarks/bench_prompt_optimization.py --arms ucb paraphrase_only --rounds 1 --test-limit 40
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from referee.paths import data_root

REPO = Path(__file__).resolve().parents[1]
SELECTORS = ("ucb", "brute_force", "ucb_e", "successive_rejects", "successive_halving")
ARMS = (*SELECTORS, "paraphrase_only")


def load(name: str, data: Path, out: Path, overrides: dict) -> dict:
    """A shipped config with its data:SET/FILE paths read under ``data`` (the data root) and its run folder
    under ``out``."""
    from referee.config import load_config_file

    os.environ["REFEREE_DATA"] = str(data)
    cfg = load_config_file(REPO / "configs" / name)
    return {**cfg, **overrides, "out": str(out)}


def arm_settings(arm: str) -> dict:
    return {"selection": "ucb", "expand": "paraphrase_only"} if arm == "paraphrase_only" else {"selection": arm}


def run_arm(config, seed_cache: Path | None) -> tuple[dict, float]:
    from referee.protocols.prompt_optimization import run_prompt_optimization
    from referee.runs import Run

    folder = Path(config.out)
    if seed_cache is not None and not (folder / "cache.sqlite").exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(seed_cache, folder / "cache.sqlite")
    t0 = time.perf_counter()
    with Run(config.out, config, seed=config.seed) as run:
        result = run_prompt_optimization(config, run)
        initial, final = run.read_records("initial-test"), run.read_records(f"round-{config.rounds}-test")
    return {"metrics": result.metrics["prompt_optimization"], "change": change(initial, final, config)}, \
        time.perf_counter() - t0


def change(initial: list[dict], final: list[dict], config) -> dict:
    """The final prompt against the initial one on the same test items: F1 and accuracy differences with
    paired bootstrap intervals (an unreadable answer is no class, as in the protocol's F1)."""
    from referee import stats
    from referee.optimize.scoring import INVALID, f1

    words = config.label_words
    assert [x["item"] for x in initial] == [x["item"] for x in final]
    gold = [words.index(x["label"]) for x in initial]
    before = [INVALID if x["answer"] is None else words.index(x["answer"]) for x in initial]
    after = [INVALID if x["answer"] is None else words.index(x["answer"]) for x in final]
    f1_diff = stats.bootstrap(lambda g, a, b: f1(g, a, "binary", 2) - f1(g, b, "binary", 2), gold, after, before,
                              n_boot=config.bootstrap, seed=config.seed)
    acc_diff = stats.paired_diff([float(x["correct"]) for x in final], [float(x["correct"]) for x in initial],
                                 n_boot=config.bootstrap, seed=config.seed)
    yes = [a == 1 for a in after]
    return {"f1": f1_diff.to_dict(), "accuracy": acc_diff.to_dict(), "final_yes_share": sum(yes) / len(yes)}


def constant_answers(config) -> dict:
    """Always Yes and always No on the test file the arms are scored on."""
    from referee import stats
    from referee.optimize.scoring import f1_estimate
    from referee.protocols.prompt_optimization import load_data

    data = load_data(config)
    gold = [e.label for e in data.test]
    out = {}
    for k, word in enumerate(data.words):
        out[f"always {word}"] = {"f1": f1_estimate(gold, [k] * len(gold), "binary", 2, config.bootstrap,
                                                   config.seed).to_dict(),
                                 "accuracy": stats.rate([g == k for g in gold], n_boot=config.bootstrap,
                                                        seed=config.seed).to_dict()}
    return out


def interval(e: dict, digits: int = 3) -> str:
    if e["value"] is None:
        return "n/a"
    return f"{e['value']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}]"


def print_liar(results: dict, constants: dict) -> None:
    print("\n## LIAR: held-out F1 (Yes) and accuracy of each round's best prompt, 95% intervals")
    print("| arm | round | F1 | accuracy | says Yes | accepted | lost placeholder | lost format | no prompt | "
          "selection queries |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for arm, res in results.items():
        m = res["metrics"]
        for s in [m["initial"], *m["rounds"]]:
            acc = s["test_accuracy"]
            rej = s["rejected"]
            yes = s["test_answers"]["Yes"] / sum(s["test_answers"].values()) if sum(s["test_answers"].values()) else 0
            print(f"| {arm} | {s['round']} | {interval(s['test_f1'])} | {acc:.3f} | {yes:.3f} | "
                  f"{s['accepted']} | {rej.get('lost_placeholder', 0)} | {rej.get('lost_format', 0)} | "
                  f"{s['no_edit']} | {s['queries']['selection']} |")
    print("\n## Final prompt against the initial one (paired over the test items), and wall time")
    print("| arm | F1 change | accuracy change | final says Yes | seconds |")
    print("|---|---|---|---|---|")
    for arm, res in results.items():
        c = res["change"]
        print(f"| {arm} | {interval(c['f1'])} | {interval(c['accuracy'])} | {c['final_yes_share']:.3f} | "
              f"{res['seconds']:.0f} |")
    print("\n## Constant answers on the same test file")
    for name, c in constants.items():
        print(f"- {name}: F1 {interval(c['f1'])}, accuracy {interval(c['accuracy'])}")


def race(config, repeats: int, budget: int, keep: int) -> dict:
    """The selectors on a fixed pool of prompts: each picks the pool's best `keep` within `budget` task-model
    queries on training items (its pulls drawn as in a search round, a different draw per repeat), and its
    first pick is scored by the pick's accuracy on the test file, against the pool's best and its mean.
    Every prompt's test accuracy is measured first (the truth the selectors are scored against)."""
    from referee import stats
    from referee.optimize.search import Pulls, initial_record
    from referee.optimize.selection import select
    from referee.protocols.prompt_optimization import Labelling, load_data
    from referee.runs import Run

    pool = [t.strip() for t in (REPO / "benchmarks" / "protegi_liar_prompts.txt").read_text().split("\n---\n")]
    candidates = [initial_record(t) for t in pool]
    with Run(config.out, config, seed=config.seed) as run:
        data = load_data(config)
        task = Labelling(config, data, run.model(config.task_model))
        truth = []
        for k, c in enumerate(candidates):
            records = run.run_stage(f"pool-{k}-test", {"task": task.identity, "prompt": c["text"], "items": data.test},
                                    lambda c=c: task.answer([(c, e) for e in data.test], f"pool prompt {k}: test"))
            truth.append(sum(r["correct"] for r in records) / len(records))
        best, mean = max(truth), sum(truth) / len(truth)
        out = {"pool": [{"prompt": c["text"], "test_accuracy": a} for c, a in zip(candidates, truth)],
               "best": best, "mean": mean, "budget": budget, "repeats": repeats, "selectors": {}}
        for method in SELECTORS:
            picks = []
            for rep in range(repeats):
                def choose(method=method, rep=rep) -> list[dict]:
                    pulls = Pulls(config, task, candidates, 1000 + rep)  # draws of their own, per repeat
                    chosen = select(method, len(candidates), keep, budget // config.items_per_pull, pulls)
                    return [{"kept": chosen.kept, "queries": sum(pulls.queries)}]
                inputs = {"task": task.identity, "pool": pool, "budget": budget, "keep": keep, "repeat": rep,
                          "data": task.data_key, "items_per_pull": config.items_per_pull, "seed": config.seed}
                got = run.run_stage(f"race-{method}-{rep}", inputs, choose)[0]
                picks.append(truth[got["kept"][0]])
            regret = stats.mean_ci([best - a for a in picks], n_boot=config.bootstrap, seed=config.seed)
            out["selectors"][method] = {"picked_test_accuracy": picks, "mean_picked": sum(picks) / len(picks),
                                        "found_best": sum(a == best for a in picks), "regret": regret.to_dict()}
    return out


def print_race(r: dict) -> None:
    print(f"\n## Selectors on a fixed pool of {len(r['pool'])} prompts, {r['budget']} queries each, "
          f"{r['repeats']} draws")
    print(f"pool test accuracy: best {r['best']:.3f}, mean {r['mean']:.3f}, "
          f"range {min(p['test_accuracy'] for p in r['pool']):.3f}-{r['best']:.3f}")
    print("| selector | mean test accuracy of its pick | found the best | regret (best - pick) |")
    print("|---|---|---|---|")
    for method, s in r["selectors"].items():
        print(f"| {method} | {s['mean_picked']:.3f} | {s['found_best']}/{r['repeats']} | {interval(s['regret'])} |")


def run_judge(data: Path, out: Path) -> None:
    from referee.cli.core import print_result
    from referee.config import validate
    from referee.protocols.judge_template_optimization import (JudgeTemplateOptimizationConfig,
                                                               run_judge_template_optimization)
    from referee.runs import Run

    config = validate(JudgeTemplateOptimizationConfig, load("protegi_judge_llmbar.yaml", data, out / "judge", {}),
                      "configs/protegi_judge_llmbar.yaml")
    t0 = time.perf_counter()
    with Run(config.out, config, seed=config.seed) as run:
        result = run_judge_template_optimization(config, run)
    print("\n## Judge template on LLMBar")
    print_result(result, run, [], as_json=False)
    print(f"wall seconds: {time.perf_counter() - t0:.0f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--rounds", type=int, default=None, help="override the config's rounds (smoke test)")
    parser.add_argument("--test-limit", type=int, default=None, help="score this many random test items")
    parser.add_argument("--calibration", choices=["none", "batch"], default=None,
                        help="override the config's answer calibration (none: the plain argmax reading)")
    parser.add_argument("--race", action="store_true", help="also race the selectors on a fixed prompt pool")
    parser.add_argument("--race-repeats", type=int, default=5)
    parser.add_argument("--race-budget", type=int, default=768, help="task-model queries per selection")
    parser.add_argument("--judge", action="store_true", help="also run the judge-template optimisation")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench_protegi")
    parser.add_argument("--data", type=Path, default=data_root()[0], help="the data root (referee data list)")
    parser.add_argument("--json", type=Path, default=None, help="also write the LIAR results here")
    args = parser.parse_args(argv)

    from referee.config import validate
    from referee.protocols.prompt_optimization import PromptOptimizationConfig

    overrides = {k: v for k, v in (("rounds", args.rounds), ("test_limit", args.test_limit),
                                   ("calibration", args.calibration)) if v is not None}
    results, seed_cache, config = {}, None, None
    for arm in args.arms:
        raw = load("protegi_liar.yaml", args.data, args.out / arm, {**overrides, **arm_settings(arm)})
        config = validate(PromptOptimizationConfig, raw, "configs/protegi_liar.yaml")
        res, seconds = run_arm(config, seed_cache)
        results[arm] = {**res, "seconds": seconds}
        seed_cache = seed_cache or Path(config.out) / "cache.sqlite"
    constants = constant_answers(config) if config else {}
    print_liar(results, constants)
    raced = None
    if args.race:
        raw = load("protegi_liar.yaml", args.data, args.out / "race", overrides)
        if seed_cache is not None and not (args.out / "race" / "cache.sqlite").exists():
            (args.out / "race").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(seed_cache, args.out / "race" / "cache.sqlite")
        raced = race(validate(PromptOptimizationConfig, raw, "configs/protegi_liar.yaml"), args.race_repeats,
                     args.race_budget, 1)
        print_race(raced)
    if args.json:
        args.json.write_text(json.dumps({"arms": results, "constants": constants, "race": raced}, indent=1))
    if args.judge:
        run_judge(args.data, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
