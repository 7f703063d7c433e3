"""The prover-verifier run's figure, from its metrics.json: per round, what the provers do (accuracy,
wrong share), how often attacks get through, how well the verifiers separate right from wrong (every
verifier on every round's provers), and the legibility proxy; each point with its 95% interval."""

from __future__ import annotations

from pathlib import Path

from referee.figures import save_figure
from referee.runs import Run

PANELS = [
    ("the provers, checked exactly", [("helpful: right", ("helpful_accuracy",)),
                                      ("sneaky: wrong", ("sneaky_wrong",)),
                                      ("sneaky: no answer stated", ("no_answer", "sneaky"))]),
    ("attacks on the verifier it trained against", [("sneaky success", ("sneaky_success",)),
                                                    ("best-of-k sneaky", ("best_of_k_attack", "success")),
                                                    ("programmatic", ("programmatic_attack", "success"))]),
    ("legibility: a fixed checker (V1) is right about", [("helpful solutions", ("fixed_checker", "helpful")),
                                                         ("sneaky solutions", ("fixed_checker", "sneaky"))]),
]


def draw(run: Run) -> list[Path]:
    arms = run.metrics().get("arms")
    if not arms:
        return []
    return [plot_arms(arms, run.plot_path("prover_verifier.png"))]


def _get(block: dict, path: tuple) -> dict | None:
    for key in path:
        if not isinstance(block, dict) or not block.get(key):
            return None
        block = block[key]
    return block


def _line(ax, xs: list[int], estimates: list[dict | None], label: str, offset: float) -> None:
    points = [(x + offset, e) for x, e in zip(xs, estimates) if e and e.get("value") is not None]
    if not points:
        return
    values = [e["value"] for _, e in points]
    err = [[v - (e["low"] if e.get("low") is not None else v) for v, (_, e) in zip(values, points)],
           [(e["high"] if e.get("high") is not None else v) - v for v, (_, e) in zip(values, points)]]
    ax.errorbar([x for x, _ in points], values, yerr=err, marker="o", capsize=3, label=label)


def plot_arms(arms: dict, path: Path) -> Path:
    """One row of four panels per arm (prover reward)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, rows = plt.subplots(len(arms), 4, figsize=(17, 4 * len(arms)), squeeze=False)
    for axes, (reward, arm) in zip(rows, arms.items()):
        _plot_rounds(axes, arm["rounds"], reward)
    fig.suptitle("prover-verifier game on held-out problems, 95% intervals", fontsize=10)
    return save_figure(fig, path)


def _plot_rounds(axes, rounds: dict, reward: str) -> None:
    xs = list(range(len(rounds)))
    for ax, (title, series) in zip(axes, PANELS):
        for k, (label, key) in enumerate(series):
            _line(ax, xs, [_get(m, key) for m in rounds.values()], label, (k - (len(series) - 1) / 2) * 0.06)
        ax.set_title(f"{reward}: {title}", fontsize=9)
        ax.set_ylim(-0.03, 1.03)
        ax.legend(fontsize=7)
    verifiers = sorted({v for m in rounds.values() for v in m.get("auc_by_verifier", {})}, key=lambda v: int(v[1:]))
    for k, v in enumerate(verifiers):
        _line(axes[3], xs, [m.get("auc_by_verifier", {}).get(v) for m in rounds.values()], f"{v}",
              (k - (len(verifiers) - 1) / 2) * 0.06)
    axes[3].axhline(0.5, color="grey", lw=0.6, ls=":")
    axes[3].set_title(f"{reward}: each verifier's AUC (right vs wrong) per prover", fontsize=9)
    axes[3].set_ylim(-0.03, 1.03)
    axes[3].legend(fontsize=7)
    for ax in axes:
        ax.set_xticks(xs, [f"P{x}" for x in xs])
        ax.set_xlabel("prover (round)")
