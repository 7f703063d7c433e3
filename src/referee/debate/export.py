"""Debate turns as training data for the arguers, in TRL's formats.

A best-of-N turn (``best_of`` > 1) holds every candidate the arguer drew and the judge's score of each:
the probability of the arguer's own answer, P(own) / (P(A) + P(B)). Its reward here is the judge's logit
of its own answer minus the other's, log P(own) - log P(other), the debater reward of the debate papers.

- ``reward_rows``: one row per candidate, TRL's prompt/completion with a ``reward`` (for a GRPO-style
  trainer, or to read);
- ``preference_rows``: per turn, the best candidate over the worst, TRL's prompt/chosen/rejected (for
  ``referee train dpo``), only where their scores differ.

The prompt is the chat the arguer was shown when it drew the turn, rebuilt from the transcript: the
turns before it that its round let it see (in a simultaneous round, not the same round's).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

from referee.dialogue import Transcript
from referee.errors import RefereeError

EPS = 1e-6


def judge_logit(p_own: float | None) -> float | None:
    """log P(own) - log P(other) from the normalised P(own); clipped away from 0 and 1."""
    if p_own is None:
        return None
    p = min(1 - EPS, max(EPS, float(p_own)))
    return math.log(p) - math.log(1 - p)


def turn_prompts(transcript: Transcript, speakers: dict, rounds: int, simultaneous: bool) -> list[list[dict] | None]:
    """For each turn, the chat its speaker was shown (None for a turn by no known speaker)."""
    out = []
    for k, turn in enumerate(transcript.turns):
        speaker = speakers.get(turn.speaker)
        if speaker is None:
            out.append(None)
            continue
        seen = [t for t in transcript.turns[:k] if not simultaneous or (t.round or 0) < (turn.round or 0)]
        out.append(speaker.chat(replace(transcript, turns=seen), turn.round or 0, rounds))
    return out


def _chosen_turns(transcripts: Sequence[Transcript], speakers: dict, rounds: int, simultaneous: bool):
    """(transcript, turn, prompt) for every turn drawn best-of-N."""
    found = False
    for t in transcripts:
        for turn, prompt in zip(t.turns, turn_prompts(t, speakers, rounds, simultaneous)):
            if prompt is None or not turn.alternatives:
                continue
            found = True
            yield t, turn, prompt
    if not found:
        raise RefereeError("debate export: no turn was drawn best-of-N (run with best_of >= 2), so no turn has "
                           "the judge's scores of its candidates")


def reward_rows(transcripts: Sequence[Transcript], speakers: dict, rounds: int, simultaneous: bool) -> list[dict]:
    """Every candidate of every best-of-N turn with its reward (None where the judge gave no probability)."""
    rows = []
    for t, turn, prompt in _chosen_turns(transcripts, speakers, rounds, simultaneous):
        kept = next(k for k, a in enumerate(turn.alternatives) if (a["text"], a["score"]) == (turn.text, turn.score))
        for k, alt in enumerate(turn.alternatives):
            rows.append({"prompt": prompt, "completion": [{"role": "assistant", "content": alt["text"]}],
                         "reward": judge_logit(alt["score"]), "p_own": alt["score"], "id": t.item_id,
                         "speaker": turn.speaker, "round": turn.round, "candidate": k,
                         "kept": k == kept})
    return rows


def preference_rows(transcripts: Sequence[Transcript], speakers: dict, rounds: int, simultaneous: bool
                    ) -> tuple[list[dict], dict]:
    """Best over worst candidate per turn; and counts of the turns left out (all scores equal or unreadable)."""
    rows, skipped = [], {"tied": 0, "unscored": 0}
    for t, turn, prompt in _chosen_turns(transcripts, speakers, rounds, simultaneous):
        scored = [a for a in turn.alternatives if a["score"] is not None]
        if len(scored) < 2:
            skipped["unscored"] += 1
            continue
        best = max(scored, key=lambda a: a["score"])
        worst = min(scored, key=lambda a: a["score"])
        if best["score"] == worst["score"] or best["text"] == worst["text"]:
            skipped["tied"] += 1
            continue
        rows.append({"prompt": prompt, "chosen": [{"role": "assistant", "content": best["text"]}],
                     "rejected": [{"role": "assistant", "content": worst["text"]}], "id": t.item_id,
                     "speaker": turn.speaker, "round": turn.round,
                     "margin": judge_logit(best["score"]) - judge_logit(worst["score"])})
    return rows, skipped


def as_transcripts(records: list[dict], where: str) -> list[Transcript]:
    return [Transcript.from_record(r, f"{where}: item {r.get('id')}") for r in records]
