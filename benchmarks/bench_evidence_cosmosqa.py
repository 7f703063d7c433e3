"""How much does a passage sentence chosen by word overlap tell about CosmosQA's right answer? Before any
model argues, this reads what the evidence debaters (``referee.debate.evidence``) would quote and scores
simple readers that see only that evidence, against the labels:

- ``overlap evidence``: the answer whose best-supporting sentence (the ``evidence:overlap`` rule: shared
  content words with the answer x3, the question x1, the other answer -3) scores higher; a tie is half right;
- ``own-word overlap``: the same with shared words with the answer alone;
- ``answer-passage overlap``: the answer sharing more content words with the whole passage;
- ``longer answer``: the baseline every judge study carries.

- ``expert evidence`` (with ``--expert rm:FOLDER``, e.g. a run's checkpoints/evidence-expert-training): the
  answer whose ``evidence:expert`` sentence has the larger margin (that reward model's score of the answer
  over the other, reading the sentence alone as the passage): how much truth the expert debater's quote carries.
  The reward model was trained on one of the splits printed (``evidence_expert.split``, validation by default):
  read that column as its training fit. This reader scores every sentence of every item: minutes, not seconds.

A reader near 50% means the evidence carries nothing about the truth; far below 50% means it points the
wrong way (the wrong answer is the one that reads like the passage), so a judge could learn to invert it.
Intervals: 95% bootstrap over items. Every split is printed because this describes the data, tuning
nothing; a choice of rule made from it should read train and validation only. Pure Python, seconds:

    python benchmarks/bench_evidence_cosmosqa.py --items data:cosmosqa/valid_half.jsonl --out /tmp/evidence.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def readers(expert=None, items=()):
    from referee.debate.evidence import content_words as words
    from referee.debate.evidence import expert_choices, expert_text, sentences, support

    def best(score, item, k):
        return max((score(s, item, k) for s in sentences(item.passage)), default=0)

    return {
        "overlap evidence": lambda it, k: best(lambda s, i, j: support(s, i.answers[j], i.answers[1 - j], i.question),
                                               it, k),
        "own-word overlap": lambda it, k: best(lambda s, i, j: len(words(s) & words(i.answers[j])), it, k),
        "answer-passage overlap": lambda it, k: len(words(it.passage) & words(it.answers[k])),
        "longer answer": lambda it, k: len(it.answers[k]),
        **({"expert evidence": expert_margins(expert, items, expert_choices, expert_text)} if expert else {}),
    }


def expert_margins(expert, items, expert_choices, expert_text):
    """A reader giving answer k the margin of the sentence ``evidence:expert`` quotes for it (one batch)."""
    requests = [{"passage": it.passage, "question": it.question, "own": it.answers[k], "other": it.answers[1 - k],
                 "quoted": []} for it in items for k in (0, 1)]
    memo = {}
    chosen = iter(expert_choices(expert, requests, memo))
    margin = {}
    for r in requests:
        text = expert_text(next(chosen), r["question"])
        margin[(r["question"], r["own"], r["passage"])] = memo[(text, r["own"])] - memo[(text, r["other"])]
    return lambda it, k: margin[(it.question, it.answers[k], it.passage)]


def score(items, reader) -> list[float]:
    """1 where the reader's higher-scoring answer is the right one, 0 where it is the wrong one, 0.5 on a tie."""
    out = []
    for it in items:
        a, b = reader(it, 0), reader(it, 1)
        out.append(0.5 if a == b else float((a > b) == (it.correct == 0)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", default="data:cosmosqa/valid_half.jsonl")
    ap.add_argument("--seed", type=int, default=0, help="the split's seed, as in the debate configs")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--expert", default=None, help="rm:FOLDER, the reward model evidence:expert quotes by")
    args = ap.parse_args()
    expert = None
    if args.expert:
        from referee.supervisors import build_verifier

        expert = build_verifier(args.expert)

    from referee.stats import mean_ci
    from referee.tasks.passages import load_passage_items, split_items

    parts = split_items(load_passage_items(args.items, args.seed), args.seed, (0.6, 0.2, 0.2))
    result = {"items": args.items, "seed": args.seed, "splits": {}}
    for split, items in parts.items():
        rows = {}
        for name, reader in readers(expert, items).items():
            values = score(items, reader)
            rows[name] = {**mean_ci(values, seed=args.seed).to_dict(), "ties": sum(v == 0.5 for v in values)}
        result["splits"][split] = {"n": len(items), "readers": rows}
    heads = [f"{split} ({part['n']})" for split, part in result["splits"].items()]
    print(f"| reader | {' | '.join(heads)} |")
    print("|---|" + "---|" * len(result["splits"]))
    for name in result["splits"]["train"]["readers"]:
        cells = [result["splits"][s]["readers"][name] for s in result["splits"]]
        print(f"| {name} | " + " | ".join(f"{c['value']:.3f} [{c['low']:.3f}, {c['high']:.3f}], {c['ties']} ties"
                                          for c in cells) + " |")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
