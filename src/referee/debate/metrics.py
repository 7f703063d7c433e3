"""What a debate or consultancy run measured, from its records: who won, how persuasive each arguer was,
what choosing among N turns and revising drafts changed, the consultant's two halves apart, the quotes, and
the headline table. Plain functions of the transcript and verdict records (``debaters.transcript_record``,
``judging.judge_items``), so the protocols, the tournament and the reports read them alike.
"""

from __future__ import annotations

from referee.debate.judging import ARGUING_ROLES, accuracy_summary
from referee.stats import mean_ci, rate
from referee.tasks.quotes import check_quotes


def win_rates(records: list[dict], **kw) -> dict:
    """How often the judge sided with the debater defending the right answer and with the one defending the
    wrong answer (the first is the debate accuracy; ties and unreadable verdicts are nobody's win), and the
    same per role (debater_a defends answer A)."""
    def wins(rows: list[dict], answer_of) -> dict:
        return rate([r["chosen"] == answer_of(r) for r in rows], **kw).to_dict()

    return {"correct_side": wins(records, lambda r: r["correct_answer"]),
            "incorrect_side": wins(records, lambda r: 1 - r["correct_answer"]),
            "no_decision": sum(r["chosen"] is None for r in records),
            "by_role": {role: wins(records, lambda r, role=role: r["sides"][role])
                        for role in ARGUING_ROLES["debate"]}}


def persuasiveness(records: list[dict], **kw) -> dict:
    """Per arguing role: the judge's mean probability of the answer that role defended (P(own) / (P(A) +
    P(B))), over items where the judge gave probabilities: how convincing each arguer was, right or wrong."""
    own: dict[str, list] = {}
    for r in records:
        for role, side in r.get("sides", {}).items():
            own.setdefault(role, []).append(p_of_answer(r, side))
    return {role: mean_ci(values, **kw).to_dict() for role, values in own.items()}


def p_of_answer(record: dict, answer: int) -> float | None:
    """The judge's probability of ``answer`` (P(it) / (P(A) + P(B))) in a reader's record; None without
    probabilities."""
    p = record["p_correct"]
    return None if p is None else p if answer == record["correct_answer"] else 1 - p


def best_of_summary(transcripts: list[dict], n: int, n_b: int | None = None) -> dict:
    """With best-of-N arguers (``n``, and debater_b's ``n_b`` where it differs): per role, the mean
    preference score of the kept turns against the mean over every candidate drawn (how far choosing moved
    the judge), and candidates the judge could not score."""
    out: dict = {"n": n, **({"n_b": n_b} if n_b else {})}
    if max(n, n_b or 1) == 1:
        return out
    for t in transcripts:
        for turn in t["turns"]:
            row = out.setdefault(turn["role"], {"turns": 0, "kept": [], "all": [], "unscored": 0})
            row["turns"] += 1
            row["kept"].append(turn.get("score"))
            scores = [a["score"] for a in turn.get("alternatives", [])]
            row["all"] += [s for s in scores if s is not None]
            row["unscored"] += sum(s is None for s in scores)

    def mean(values: list) -> float | None:
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    for role, row in out.items():
        if isinstance(row, dict):
            row["kept"], row["all"] = mean(row["kept"]), mean(row["all"])
    return out


def refine_summary(transcripts: list[dict]) -> dict:
    """With critique-then-refine: quotes and verified quotes in the drafts against the revised turns, and
    words per turn, summed over every revised turn (did the critique make the arguers quote the passage?)."""
    out = {"turns": 0, "draft": {"quotes": 0, "verified": 0, "words": 0},
           "revised": {"quotes": 0, "verified": 0, "words": 0}}
    for t in transcripts:
        passage = t["context"]["passage"]
        for turn in t["turns"]:
            if not turn.get("draft"):
                continue
            out["turns"] += 1
            for key, text in (("draft", turn["draft"]["text"]), ("revised", turn["text"])):
                found = check_quotes(text, passage)
                out[key]["quotes"] += len(found)
                out[key]["verified"] += sum(q.verified for q in found)
                out[key]["words"] += len(text.split())
    return out


def consultant_halves(records: list[dict], **kw) -> dict:
    """Judge accuracy on the items where the consultant defended the right answer and on those where it
    defended the wrong one, apart, and their mean (each half weighted equally, whatever its size)."""
    halves = {name: [r for r in records if r["consultant_defends_correct"] is want]
              for name, want in (("correct_consultant", True), ("incorrect_consultant", False))}
    out = {name: accuracy_summary(rows, **kw) if rows else None for name, rows in halves.items()}
    values = [out[name]["accuracy"]["value"] for name in halves if out[name]]
    out["mean_of_halves"] = sum(values) / len(values) if len(values) == 2 else None
    return out


def quote_summary(transcripts: list[dict]) -> dict:
    """Quote statistics per arguing role and per side (defending the right or the wrong answer): turns,
    silent turns, turns with at least one verified quote (and their share), quotes, verified quotes and
    share, quoted words, quotes longer than the passage, and
    speakers (one per item and role) that wrote nothing or quoted only what the passage does not hold."""
    turns = [q for t in transcripts for q in t["quotes"] if q["side"] is not None]
    speakers = [s | {"role": role} for t in transcripts for role, s in t["speakers"].items()]

    def stats(turn_rows: list[dict], speaker_rows: list[dict]) -> dict:
        quotes, verified = sum(q["count"] for q in turn_rows), sum(q["verified"] for q in turn_rows)
        with_verified = sum(q["verified"] > 0 for q in turn_rows)
        return {"turns": len(turn_rows), "silent_turns": sum(q["silent"] for q in turn_rows), "quotes": quotes,
                "turns_with_verified_quote": with_verified,
                "turns_with_verified_share": with_verified / len(turn_rows) if turn_rows else None,
                "verified": verified, "verified_share": verified / quotes if quotes else None,
                "quoted_words": sum(q["quoted_words"] for q in turn_rows),
                "longer_than_passage": sum(q["longer_than_passage"] for q in turn_rows),
                "speakers": len(speaker_rows),
                "wrote_nothing": sum(s["wrote_nothing"] for s in speaker_rows),
                "no_quotes": sum(s["quotes"] == 0 and not s["wrote_nothing"] for s in speaker_rows),
                "only_unverified": sum(s["only_unverified"] for s in speaker_rows)}

    roles = list(dict.fromkeys(s["role"] for s in speakers))
    sides = {"correct": True, "incorrect": False}
    return {"by_role": {role: stats([q for q in turns if q["role"] == role], [s for s in speakers if s["role"] == role])
                        for role in roles},
            "by_side": {name: stats([q for q in turns if q["defends_correct"] is want],
                                    [s for s in speakers if s["defends_correct"] is want])
                        for name, want in sides.items()},
            "all": stats(turns, speakers)}


def headline(readers: dict[str, dict]) -> list[dict]:
    """One row per reader: accuracy and its interval, items, accuracy by which answer was shown first, the
    judge's mean probability of the right answer (a judge that always says A can still lean the right way),
    ties and unreadable verdicts."""
    rows = []
    for reader, s in readers.items():
        acc, order = s["accuracy"], s["by_order"]
        rows.append({"reader": reader, "accuracy": acc["value"], "low": acc["low"], "high": acc["high"],
                     "n": s["n"], "correct shown first": order["correct_first"]["value"],
                     "correct shown second": order["correct_second"]["value"],
                     "P(right)": s["p_correct"]["value"], "ties": s["ties"], "invalid": s["invalid"]})
    return rows

