"""Force Sampling Beam Search, at its simplest (McAleese et al. 2024): sample ``k`` critiques of a program,
each forced to start with a highlight (the reply is prefilled with ``<quote>`` where the model continues a
prefilled reply), score each with a critique reward model, and keep the one with the largest

    RM score + lambda * number of highlights.

A larger lambda keeps critiques that flag more code: more bugs caught, more hallucinated or nitpicking
highlights too. ``sweep`` measures that trade-off exactly against the tampering records, one point per
lambda; the curve of CBI against hallucinations is the paper's precision/recall figure.

The critique reward model learns from comparisons built from the train half's tampering records
(``comparison_pairs``): a critique that includes the bug is preferred to one that misses it or quotes code
that is not there; where no sampled critique includes the bug, the gold one (the record written as a
critique) is the preferred side.
"""

from __future__ import annotations

from referee.critics.critique import critique_chat
from referee.critics.metrics import score_critique, summarise
from referee.errors import RefereeError
from referee.models.base import Model, Sampling, continues_final_message

FORCED = "<quote>"


def sample_critiques(model: Model, programs: list[str], k: int, sampling: Sampling, force: bool = True,
                     desc: str = "critique samples") -> tuple[list[list[str]], bool]:
    """``k`` critiques per program and whether they were forced to open with a highlight (only where the
    model continues a prefilled reply; a server that starts a new turn cannot be forced)."""
    forced = force and continues_final_message(model)
    chats = [critique_chat(p) + ([{"role": "assistant", "content": FORCED}] if forced else []) for p in programs]
    outs = model.generate(chats, sampling, n=k, desc=desc)
    return [[(FORCED if forced else "") + c.text.strip() for c in row] for row in outs], forced


def pick(rm_scores: list[float], highlights: list[int], lam: float) -> int:
    """The index FSBS keeps: the largest RM score + lambda * highlights (the first on a tie)."""
    values = [s + lam * h for s, h in zip(rm_scores, highlights)]
    return max(range(len(values)), key=lambda i: (values[i], -i))


def sweep(items: list[dict], samples: list[list[str]], rm_scores: list[list[float]], lambdas: list[float],
          seed: int = 0, split: str = "eval") -> list[dict]:
    """For each lambda: the kept critiques' CBI (on buggy items), hallucinated-quote rate, false alarms (on
    correct items) and highlights per critique. ``items`` carry ``source``, ``bugs`` (line spans) and ``set``;
    each point names the ``split`` it was measured on, so ``choose_lambda`` can refuse anything but dev."""
    scored = [[score_critique(c, item["source"], [tuple(b) for b in item["bugs"]]) for c in row]
              for item, row in zip(items, samples)]
    points = []
    for lam in lambdas:
        kept = [row[pick(scores, [s["highlights"] for s in row], lam)] for row, scores in zip(scored, rm_scores)]
        buggy = summarise([s for s, i in zip(kept, items) if i["bugs"]], seed)
        correct = summarise([s for s, i in zip(kept, items) if not i["bugs"]], seed)
        points.append({"lambda": lam, "split": split, "cbi": buggy["cbi"], "cbi_of_all": buggy["cbi_of_all"],
                       "hallucinated_quote_rate": buggy["hallucinated_quote_rate"],
                       "false_alarm_rate": correct["false_alarm_rate"], "false_alarm_of_all": correct["false_alarm_of_all"],
                       "highlights_per_critique": buggy["highlights_per_critique"],
                       "unreadable": buggy["unreadable"] + correct["unreadable"]})
    return points


def comparison_pairs(items: list[dict], samples: list[list[str]], gold: list[str]) -> tuple[list[dict], dict]:
    """Preference pairs for the critique RM from critiques of buggy training programs: (a critique that
    includes the bug, or the gold one) over each sampled critique that misses it or hallucinates a quote."""
    pairs, from_gold, skipped = [], 0, 0
    for item, row, gold_text in zip(items, samples, gold):
        scored = [(c, score_critique(c, item["source"], [tuple(b) for b in item["bugs"]])) for c in row]
        good = [c for c, s in scored if s["caught"] and not s["hallucinated"]]
        bad = [c for c, s in scored if not s["caught"] or s["hallucinated"]]
        if not bad:
            skipped += 1
            continue
        chosen = good[0] if good else gold_text
        from_gold += not good
        prompt = critique_chat(item["source"])
        pairs += [{"id": f"{item['id']}/{j}", "prompt": prompt, "chosen": chosen, "rejected": r}
                  for j, r in enumerate(dict.fromkeys(bad))]
    return pairs, {"pairs": len(pairs), "chosen_from_gold": from_gold, "items_without_a_bad_sample": skipped}


CHOICE_RULE = ("highest CBI of all the buggy dev programs' kept critiques minus the false-alarm rate of all the "
               "correct ones' (an unreadable critique neither catches a bug nor clears a program)")


def choose_lambda(points: list[dict]) -> dict:
    """The dev point FSBS keeps (CHOICE_RULE; the smaller lambda on a tie): catching more bugs only counts
    when it is not bought with flagging correct programs, and an unreadable critique catches nothing.
    Points measured on any other split are refused: a lambda chosen on eval makes its eval figure a tuned one."""
    other = sorted({str(p.get("split")) for p in points} - {"dev"})
    if other:
        raise RefereeError(f"FSBS lambda: choosing on the {', '.join(other)} split refused; lambda is chosen on dev "
                           "programs (critics setting dev_share > 0), and eval is read once at it")
    def value(p: dict) -> float:
        return ((p["cbi_of_all"] or {}).get("value") or 0.0) - ((p["false_alarm_of_all"] or {}).get("value") or 0.0)

    return max(points, key=lambda p: (value(p), -p["lambda"]))
