"""Do the quotes of a debate run carry the truth? For each item of a debate run folder, the sentence each
debater quoted (its first quote, found in the passage) is shown to an expert reward model, alone as the
passage, followed by the debater's answer and by the other; a reader picks the answer whose debater's sentence
has the larger margin for it. Far above 50%: the quotes carry what the passage says about the right answer, so
a judge could learn to use them; near 50%: they do not. A turn without a quote found in the passage counts as
a margin of 0. Interval: 95% bootstrap over items. Reads the run's records; trains nothing:

    python benchmarks/bench_evidence_truth.py runs/debate_evidence_cosmosqa
    python benchmarks/bench_evidence_truth.py RUN --expert rm:FOLDER   (default: RUN/checkpoints/evidence-expert-training)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--expert", default=None, help="rm:FOLDER (default: RUN/checkpoints/evidence-expert-training)")
    ap.add_argument("--stage", default="transcripts", help="the debate transcripts' stage")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from referee.debate.evidence import expert_text, quoted_sentences
    from referee.stats import mean_ci
    from referee.supervisors import build_verifier

    expert = args.expert or f"rm:{args.run / 'checkpoints' / 'evidence-expert-training'}"
    rm = build_verifier(expert)
    lines = (args.run / "records" / f"{args.stage}.jsonl").read_text(encoding="utf-8").splitlines()
    items = []
    for line in lines:
        record = json.loads(line)
        ctx, sides = record["context"], record["meta"]["sides"]
        picked = {sides[t["role"]]: next(iter(quoted_sentences(t["text"], ctx["passage"])), "")
                  for t in record["turns"] if t["role"] in ("debater_a", "debater_b")}
        items.append((ctx["question"], [ctx["answer_a"], ctx["answer_b"]], picked, record["meta"]["correct"]))
    prompts, answers = [], []
    for question, pair, picked, _ in items:
        for k in (0, 1):
            for j in (k, 1 - k):  # the debater's own answer, then the other
                prompts.append([{"role": "user", "content": expert_text(picked.get(k, ""), question)}])
                answers.append(pair[j])
    scores = [s.value for s in rm.score_many(prompts, answers)]
    right, no_quote = [], 0
    for i, (_, _, picked, correct) in enumerate(items):
        s = scores[4 * i: 4 * i + 4]
        margins = [s[0] - s[1] if picked.get(0) else 0.0, s[2] - s[3] if picked.get(1) else 0.0]
        no_quote += sum(not picked.get(k) for k in (0, 1))
        right.append(0.5 if margins[0] == margins[1] else float((margins[0] > margins[1]) == (correct == 0)))
    result = {"run": str(args.run), "expert": expert, "items": len(items), "turns_without_a_found_quote": no_quote,
              "reader_accuracy": mean_ci(right, seed=0).to_dict()}
    acc = result["reader_accuracy"]
    print(f"| run | items | reader picking the larger expert margin | turns without a found quote |\n|---|---|---|---|\n"
          f"| {args.run} | {len(items)} | {acc['value']:.3f} [{acc['low']:.3f}, {acc['high']:.3f}] | {no_quote} |")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
