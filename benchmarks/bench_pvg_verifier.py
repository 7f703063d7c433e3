"""Can a verifier of this size tell right arithmetic solutions from wrong ones at all? Trained on a finished
prover-verifier run's round-0 data (the same right-vs-wrong pairs V1 had), each verifier setting is scored
by the AUC of right against wrong on the held-out samples of every prover in the run (intervals resample
problems, each with all its samples), and by the
programmatic attack (the corrupted solution scored above the reference), with bootstrap intervals. The
game's own V1 (10 of 30 blocks, frozen, linear head) is the first row; the rest change one thing each.

    python benchmarks/bench_pvg_verifier.py runs/prover_verifier_arithmetic --out /tmp/pvg_verifiers.json

Also a baseline that needs no training: a verifier that reads the solution and recomputes every
calculation would be perfect (the step checker); the length of the solution is the lazy one.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

SETTINGS = {
    "V1 as in the game (10 blocks, frozen)": {"layers": 10, "lora_r": None, "epochs": 30, "lr": 1e-2},
    "all 30 blocks, frozen": {"layers": None, "lora_r": None, "epochs": 30, "lr": 1e-2},
    "10 blocks, LoRA r16, 3 epochs": {"layers": 10, "lora_r": 16, "epochs": 3, "lr": 5e-4},
    "all 30 blocks, LoRA r16, 3 epochs": {"layers": None, "lora_r": 16, "epochs": 3, "lr": 5e-4},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a finished prover_verifier run folder")
    ap.add_argument("--only", default=None, help="setting names separated by | (default: all)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from referee.games.prover_verifier import verifier_pairs
    from referee.models.shallow import save_first_layers
    from referee.rewards.bradley_terry import train_reward_model
    from referee.rewards.heads import resolve_base
    from referee.rewards.training import TrainOptions
    from referee.config import validate
    from referee.protocols.prover_verifier import (ProverVerifierConfig, attack_pairs, programmatic_solutions,
                                                   verifier_preferences)
    from referee.config import load_config_file
    from referee.stats import auc, bootstrap
    from referee.tasks.math import MathProblem

    cfg = validate(ProverVerifierConfig, load_config_file(args.run / "config.yaml"), str(args.run / "config.yaml"))
    records = args.run / "records"

    def read(name: str) -> list[dict]:
        return [json.loads(line) for line in (records / f"{name}.jsonl").read_text().splitlines()]

    problems = {p["id"]: p for p in read("problems")}
    in_set = {name: [MathProblem(p["id"], p["question"], p["answer"], p["steps"], p.get("meta", {}))
                     for p in problems.values() if p["set"] == name] for name in ("game", "eval")}
    round0 = read("r0_samples") + programmatic_solutions(cfg, in_set["game"])  # V1's data, as the game drew it
    evals = {"P0": read("r0_eval")}
    for f in sorted(records.glob("*.r*_eval.jsonl")):  # src.r1_eval -> "src P1"
        arm, stage = f.stem.split(".")
        evals[f"{arm} P{stage.split('_')[0][1:]}"] = read(f.stem)
    attack = [(good["id"], good["text"], bad["text"]) for good, bad in attack_pairs(cfg, in_set["eval"])]
    pairs, _ = verifier_pairs([round0], cfg.verifier.pairs_per_problem, cfg.seed)
    prefs = verifier_preferences(pairs, {pid: p["prompt"] for pid, p in problems.items()})
    print(f"{len(prefs)} right-vs-wrong pairs from round 0; held-out sets: {', '.join(evals)}; "
          f"{len(attack)} attack pairs", flush=True)

    def chat(pid):
        return [{"role": "user", "content": problems[pid]["prompt"]}]

    results = {"lazy baseline: longer solution scores higher": {
        name: bootstrap(auc, [len(s["text"]) for s in rows], [float(s["correct"]) for s in rows],
                        clusters=[s["id"] for s in rows]).to_dict()
        for name, rows in evals.items()}}
    base = cfg.model
    chosen = SETTINGS if not args.only else {k: SETTINGS[k] for k in args.only.split("|")}
    work = Path("/tmp/bench_pvg_verifier")
    for name, s in chosen.items():
        spec = base
        if s["layers"]:
            folder = work / f"base_{s['layers']}"
            if not (folder / "config.json").exists():
                save_first_layers(resolve_base(base)[0], s["layers"], folder)
            spec = f"hf:{folder}"
        start = time.time()
        options = TrainOptions(epochs=s["epochs"], lr=s["lr"], lora=s["lora_r"] is not None, lora_r=s["lora_r"] or 8,
                               batch_size=16, seed=0)
        rm, history = train_reward_model(spec, prefs, options, center=0.01, max_length=384)
        seconds = time.time() - start
        row = {"train_seconds": round(seconds, 1), "best_epoch": history["best_epoch"],
               "val_loss": min(history["val_losses"]) if history["val_losses"] else None}
        for set_name, rows in evals.items():
            scores = rm.rewards([chat(r["id"]) for r in rows], [r["text"] for r in rows])
            row[set_name] = bootstrap(auc, scores, [float(r["correct"]) for r in rows],
                                      clusters=[r["id"] for r in rows]).to_dict()  # a problem's samples together
        scores = rm.rewards([chat(pid) for pid, _, _ in attack for _ in (0, 1)],
                            [t for _, good, bad in attack for t in (good, bad)])
        wins = [float(b > g) for g, b in zip(scores[0::2], scores[1::2])]
        row["programmatic attack success"] = sum(wins) / len(wins)
        results[name] = row
        print(name, json.dumps({k: (v["value"] if isinstance(v, dict) else v) for k, v in row.items()}), flush=True)
        if args.out:
            args.out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
