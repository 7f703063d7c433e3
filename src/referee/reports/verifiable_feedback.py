"""The verifiable-feedback run's report: what changed, in words first; accuracy with intervals; how good
each judge was; real answers and pairs side by side; the costs."""

from __future__ import annotations

import json
from pathlib import Path

from referee.figures import save_figure
from referee.protocols.verifiable_feedback import eval_stage
from referee.reports.html import Page
from referee.reports.self_rewarding import plot_costs
from referee.runs import Run
from referee.stats import Estimate, interval_text

ARM_WORDS = {"self": "the model judging itself (self-rewarding)", "checker": "the exact checker",
             "verifier": "a trained outcome reward model"}
HOW_TO_READ = (
    "How to read this. Every model answers the same held-out problems, and an exact checker decides which "
    "answers are right, so no judge's opinion enters the scores below. M1 is the starting point of every arm; "
    "an arm's M2 differs from M1 only by DPO on pairs its judge chose. A change whose 95% interval lies above "
    "zero is an improvement this run can claim; an interval that contains zero means the run cannot tell the "
    "change from the luck of which problems were drawn. The judge table says why an arm moved or did not: a "
    "judge whose chosen answer is no more often the better one than a coin (0.5) gives DPO nothing to learn.")


def width_note(metrics: dict) -> str:
    """How wide this run's intervals are, read from its own M1 estimate (no figure written in code)."""
    m1 = metrics["evaluation"].get("M1", {})
    est, n = m1.get("accuracy") or {}, m1.get("problems")
    if est.get("low") is None or est.get("high") is None:
        return ""
    half = 100 * (est["high"] - est["low"]) / 2
    return (f"With {n} held-out problems M1's accuracy interval spans {half:.1f} points either side; "
            "configs/verifiable_feedback_arithmetic.yaml runs the experiment at a size that narrows it.")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, digits: int) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _interval(est: dict | None, points: bool = False) -> str:
    """An estimate in percent, ``55.0% [45.0, 65.0]``, or as a signed change, ``+5.0 points [-2.0, +12.0]``."""
    if not est:
        return "n/a"
    return interval_text(est.get("value"), est.get("low"), est.get("high"), digits=1, percent=True, signed=points,
                         unit=" points" if points else "%")


def verdict_lines(metrics: dict) -> list[str]:
    """One sentence per model after M1: the change against M1, and whether its interval excludes zero."""
    ev = metrics["evaluation"]
    lines = [f"M0 (no training) answers {_pct(ev['M0']['accuracy']['value'])} of "
             f"{ev['M0']['problems']} held-out problems right; M1 (after SFT) {_pct(ev['M1']['accuracy']['value'])}."]
    for name, m in ev.items():
        if not name.startswith("M2-"):
            continue
        change = m["change_vs_m1"]
        arm = name[3:]
        if change["low"] is not None and change["low"] > 0:
            claim = "an improvement: the interval lies above zero"
        elif change["high"] is not None and change["high"] < 0:
            claim = "a loss: the interval lies below zero"
        else:
            claim = "not distinguishable from no change: the interval contains zero"
        lines.append(f"{name}, trained on pairs chosen by {ARM_WORDS.get(arm, arm)}: "
                     f"{_pct(m['accuracy']['value'])}, a change of {_interval(change, points=True)} against M1, "
                     f"{claim}.")
    return lines


def plot_accuracy(metrics: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ev = metrics["evaluation"]
    names = list(ev)
    values = [ev[n]["accuracy"]["value"] for n in names]
    low = [v - (ev[n]["accuracy"]["low"] if ev[n]["accuracy"]["low"] is not None else v) for n, v in zip(names, values)]
    high = [(ev[n]["accuracy"]["high"] if ev[n]["accuracy"]["high"] is not None else v) - v
            for n, v in zip(names, values)]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    ax.bar(names, values, yerr=[low, high], capsize=5, color=["#999", "#777"] + ["#3b7dd8"] * (len(names) - 2))
    ax.set_ylabel("held-out accuracy (exact check)")
    ax.set_ylim(0, 1)
    ax.set_title("accuracy, 95% CI")
    arms = [n for n in names if n.startswith("M2-")]
    for y, n in enumerate(arms):
        c = ev[n]["change_vs_m1"]
        lo = c["low"] if c["low"] is not None else c["value"]
        hi = c["high"] if c["high"] is not None else c["value"]
        bx.plot([lo, hi], [y, y], color="#3b7dd8", lw=2)
        bx.plot([c["value"]], [y], "o", color="#3b7dd8")
    bx.axvline(0, color="grey", lw=0.8, ls="--")
    bx.set_yticks(range(len(arms)), arms)
    bx.set_ylim(-0.5, len(arms) - 0.5)
    bx.set_xlabel("change in accuracy against M1 (paired, 95% CI)")
    fig.tight_layout()
    return save_figure(fig, path)


def draw(run: Run) -> list[Path]:
    return [write_report(run, run.metrics())]


def write_report(run: Run, metrics: dict) -> Path:
    page = Page("Does feedback improve the model? Arithmetic, checked exactly")
    page.lead(verdict_lines(metrics))
    page.note(" ".join(t for t in (HOW_TO_READ, width_note(metrics)) if t))
    page.note(f"Run folder: {run.folder}. Models: " + ", ".join(f"{k} = {v}" for k, v in metrics["models"].items()))

    page.heading("Held-out accuracy")
    ev = metrics["evaluation"]
    page.table(["model", "accuracy [95% CI]", "change vs M1 [95% CI]", "no final answer", "mean chars",
                "mean steps", "mean tokens"],
               [[n, _interval(m["accuracy"]), _interval(m["change_vs_m1"], points=True) if m["change_vs_m1"] else "",
                 _pct(m["no_answer_rate"]), _num(m["mean_chars"], 0), _num(m["mean_steps"], 1),
                 _num(m["mean_tokens"], 1)] for n, m in ev.items()])
    page.image(plot_accuracy(metrics, run.plot_path("accuracy.png")), run.folder, "accuracy per model")

    page.heading("The judges that chose the pairs")
    cands = metrics["candidates"]
    page.note(f"M1 wrote {cands['candidates']} candidates for {cands['prompts']} prompts; "
              f"{_pct(cands['accuracy']['value'])} are right, and {cands['prompts_with_right_and_wrong']} prompts "
              f"have both a right and a wrong one. Checker grades of the candidates (0-5): {cands['grades']}. "
              "AUC: how often the judge scores a right candidate above a wrong one (0.5 is a coin). "
              "Chosen really better: the share of pairs whose chosen answer has the higher checker grade.")
    rows = []
    for arm, a in metrics["arms"].items():
        p, j = a["pairs"], a["judge"]
        auc = Estimate(**j["auc"]).fmt(2) if j["auc"] else "n/a"
        rows.append([arm, auc, j["invalid"], p["pairs"], f"{p['prompts_with_pairs']} of {p['prompts']}",
                     _interval(p["chosen_really_better"]), _pct(p["chosen_really_worse"]), _pct(p["right_over_wrong"]),
                     _num(p["chosen_mean_chars"], 0), _num(p["rejected_mean_chars"], 0)])
    page.table(["arm", "AUC [95% CI]", "unreadable", "pairs", "prompts with a pair", "chosen really better",
                "chosen really worse", "right over wrong", "chosen chars", "rejected chars"], rows)

    _examples(page, run, list(ev))
    _pair_examples(page, run, list(metrics["arms"]))

    page.heading("Cost ledger")
    ledger = json.loads((run.folder / "ledger.json").read_text(encoding="utf-8"))
    page.table(["stage", "model", "calls", "cached", "prompt tokens", "completion tokens", "model seconds"],
               [[e["stage"], e["model"], e["calls"], e["cached_calls"], e["prompt_tokens"], e["completion_tokens"],
                 e["model_seconds"]] for e in ledger["entries"]])
    page.image(plot_costs(run, ledger), run.folder, "stage seconds")
    return page.write(run.folder / "report.html")


def _examples(page: Page, run: Run, names: list[str], count: int = 4) -> None:
    """The same problems answered by M1 and every M2, coloured by the checker: problems where the models
    disagree first, since they show what the training changed."""
    shown = [n for n in names if n != "M0"]
    answers = {n: {r["id"]: r for r in run.read_records(eval_stage(n))} for n in shown}
    ids = list(answers["M1"])
    # the problems the models answered, whichever set they were scored on (ids name their draw: unique in a run)
    problems = {r["id"]: r for r in run.read_records("problems") if r["id"] in answers["M1"]}
    split = sorted(ids, key=lambda i: len({answers[n][i]["correct"] for n in shown}) == 1)
    page.heading("Examples: the same held-out problems, answered by each model")
    page.note("Green: the checker finds the final answer right; red: wrong. Problems where the models disagree "
              "come first.")
    rows, marks = [], []
    for i in split[:count]:
        rows.append([f"{problems[i]['question']}\n(right answer: {problems[i]['answer']})"]
                    + [answers[n][i]["answer"] for n in shown])
        marks.append([None] + [answers[n][i]["correct"] for n in shown])
    page.texts(["problem"] + shown, rows, marks)


def _pair_examples(page: Page, run: Run, arms: list[str], count: int = 3) -> None:
    page.heading("Pairs each arm trained on")
    page.note("The first pairs of each arm, chosen and rejected side by side, with the judge's scores and the "
              "checker's 0-5 grades.")
    for arm in arms:
        pairs = run.read_records(f"pairs_{arm}")[:count]
        rows, marks = [], []
        for p in pairs:
            rows.append([p["prompt"], f"{p['chosen']}\n\n[judge {p['chosen_score']:.2f}, checker {p['chosen_grade']}]",
                         f"{p['rejected']}\n\n[judge {p['rejected_score']:.2f}, checker {p['rejected_grade']}]"])
            marks.append([None, p["chosen_correct"], p["rejected_correct"]])
        page.note(f"Arm: {arm} ({ARM_WORDS.get(arm, arm)})")
        page.texts(["prompt", "chosen", "rejected"], rows, marks)
