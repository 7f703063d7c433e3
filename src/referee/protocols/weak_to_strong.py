"""``protocol: weak_to_strong``: the weak-to-strong experiment; the method lives in referee.w2s.protocol."""

from __future__ import annotations

from referee.protocols import register
from referee.runs import Run
from referee.w2s.protocol import W2SConfig, run_weak_to_strong


@register("weak_to_strong", W2SConfig,
          "weak supervisors label data for strong students: PGR, aux confidence loss, bootstrapping")
def run(config: W2SConfig, run: Run) -> dict:
    return run_weak_to_strong(config, run)
