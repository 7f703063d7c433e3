"""Elo ratings from a cross-play tournament: a Bradley-Terry fit of who beat whom, on the Elo scale.

Each game is (player x, player y, score of x: 1 win, 0 loss, 0.5 draw). The ratings maximise the
Bradley-Terry likelihood P(x beats y) = 1 / (1 + 10 ** ((R_y - R_x) / 400)), with a weak pull of every
rating toward the middle (``prior_games`` virtual draws against a fixed average player) so a player who
won or lost everything still gets a finite rating. The mean rating is ``mean``. Intervals
come from resampling the items the games were played on (``bootstrap_elo``), so every game on one item
moves together.
"""

from __future__ import annotations

import math
import random
from typing import Sequence

from referee.errors import RefereeError

SCALE = 400 / math.log(10)


def elo_ratings(games: Sequence[tuple[str, str, float]], players: Sequence[str], mean: float = 1000.0,
                prior_games: float = 1.0, iterations: int = 200) -> dict[str, float]:
    """Ratings of ``players`` from ``games``: Hunter's MM iterations for Bradley-Terry, a draw counted as
    half a win each, plus ``prior_games`` virtual draws of each player against one of strength 1."""
    index = {p: k for k, p in enumerate(players)}
    unknown = {name for x, y, _ in games for name in (x, y)} - set(index)
    if unknown:
        raise RefereeError(f"elo: games name players not in the list: {sorted(unknown)}")
    n = len(players)
    wins = [prior_games / 2] * n
    meetings: dict[tuple[int, int], float] = {}
    for x, y, score in games:
        i, j = index[x], index[y]
        if i == j:
            continue  # self-play says nothing about relative strength
        wins[i] += score
        wins[j] += 1 - score
        key = (min(i, j), max(i, j))
        meetings[key] = meetings.get(key, 0) + 1
    strength = [1.0] * n
    for _ in range(iterations):
        denom = [prior_games / (strength[i] + 1) for i in range(n)]
        for (i, j), count in meetings.items():
            denom[i] += count / (strength[i] + strength[j])
            denom[j] += count / (strength[i] + strength[j])
        strength = [wins[i] / denom[i] for i in range(n)]
    logs = [math.log(v) for v in strength]
    centre = sum(logs) / n
    return {p: mean + SCALE * (logs[index[p]] - centre) for p in players}


def bootstrap_elo(games_by_item: dict[str, list[tuple[str, str, float]]], players: Sequence[str],
                  n_boot: int = 200, seed: int = 0, level: float = 0.95) -> dict[str, dict]:
    """{player: {"value", "low", "high", "n"}}: the fit on all items and a percentile interval over items
    resampled with replacement."""
    items = sorted(games_by_item)
    if not items:
        raise RefereeError("elo: no games to rate")
    point = elo_ratings([g for k in items for g in games_by_item[k]], players)
    rng = random.Random(seed)
    draws: dict[str, list[float]] = {p: [] for p in players}
    for _ in range(n_boot):
        sample = [g for _ in items for g in games_by_item[items[rng.randrange(len(items))]]]
        for p, r in elo_ratings(sample, players, iterations=100).items():
            draws[p].append(r)
    out = {}
    for p in players:
        values = sorted(draws[p])
        lo = values[int((1 - level) / 2 * (len(values) - 1))]
        hi = values[int((1 + level) / 2 * (len(values) - 1))]
        out[p] = {"value": point[p], "low": lo, "high": hi, "n": len(items)}
    return out
