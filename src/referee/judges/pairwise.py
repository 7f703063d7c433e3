"""The pairwise judge: question + answer A + answer B -> A better, B better, or tie.

Verdicts are read in one of two ways. ``probability``: one forward pass per shown order, reading
P(A), P(B), P(C = tie) as the next token after "[[" (all pairs and both orders go through one
``model.choice`` call, which batches and caches); with ``cot`` the judge first writes its reasoning and
the probabilities are read where its verdict goes. ``generative``: the judge writes, the verdict is
parsed from its reply only, unreadable replies are sampled again up to ``max_retries`` times and then
recorded as ``invalid``.

Position: each order's verdict is kept in *shown* terms ("first"/"second") and mapped back to the
pair's A/B. ``swap``: ``none`` (A shown first), ``conservative`` (both orders; a win only if both
agree, otherwise tie; invalid if either order is), ``average`` (both orders; the three-way
probabilities are averaged and the most likely verdict wins; for generative verdicts, which carry no
probabilities, this is the conservative rule), ``random`` (one order per pair, drawn from the seed and
the pair's id, so it is the same on every run).

``p_first`` is P(first better) + P(tie) / 2: a preference probability that splits ties evenly, so
P(A) over the two orders is p_first(AB) and 1 - p_first(BA).

Calibration (probability verdicts): a small judge's probabilities lean to one shown position whatever
the answers say. ``calibration`` divides each prompt's P(first), P(second), P(tie) by the judge's prior
over them and renormalises, so what is left is how this pair moved the judge away from its habit. The
prior is the mean over the judged prompts themselves (``batch``, after Zhou et al. 2024's batch
calibration; needs a set of pairs, at least MIN_BATCH_PROMPTS prompts) or the judge's probabilities on
the template filled with content-free placeholders (``content-free``, after Zhao et al. 2021; works on
any number of pairs). Each order keeps its uncalibrated probabilities; records name the prior.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from referee.errors import RefereeError
from referee.judges import calls, fewshot, rendering, settings
from referee.judges.parse import parse_pairwise
from referee.judges.records import SWAPS, PairJudge, combine, underlying, with_correct
from referee.models.base import Model, Sampling
from referee.tasks.pairs import Pair

CALIBRATIONS = ("none", "batch", "content-free")
MIN_BATCH_PROMPTS = 8  # fewer judged prompts than this say too little about the judge's prior
CONTENT_FREE = ("N/A", "", "...")  # placeholders for question and answers, one prompt each
OPTIONS = {"first": ["A", " A"], "second": ["B", " B"], "tie": ["C", " C"]}


class PairwiseJudge(settings.JudgeSettings, PairJudge):
    """An LLM judge of answer pairs; also a ``PairwiseVerifier`` for every protocol."""

    def __init__(self, model: Model, template: str = "pairwise", verdict: str = "probability", swap: str = "none",
                 cot: bool = False, few_shot: list[dict] | str | None = None, reference: str = "none",
                 max_retries: int = 2, seed: int = 0, sampling: Sampling | None = None,
                 reference_max_tokens: int = 256, max_prompt_chars: int | None = None, calibration: str = "none",
                 max_prompt_tokens: int | None = None):
        self._setup(model, template, verdict, reference, cot, max_retries, seed, sampling, reference_max_tokens,
                    max_prompt_chars, max_prompt_tokens)
        self.swap = settings.check_choice("swap", swap, SWAPS)
        self.calibration = settings.check_choice("calibration", calibration, CALIBRATIONS)
        if self.calibration != "none" and self.verdict != "probability":
            raise RefereeError("judge: calibration reweights verdict probabilities; use verdict='probability'")
        self._content_free_prior = None
        self.examples = fewshot.load_examples(few_shot, "pairwise")
        self.name = f"pairwise-judge[{model.spec}]"

    # ---- prompts ------------------------------------------------------------------------------------
    def orders_for(self, pair: Pair) -> list[str]:
        if self.swap == "none":
            return ["AB"]
        if self.swap == "random":
            h = hashlib.sha256(f"{self.seed}:{pair.id}".encode()).digest()
            return ["AB" if h[0] % 2 == 0 else "BA"]
        return ["AB", "BA"]

    def build_chat(self, pair: Pair, order: str, reference: str | None) -> tuple[list[dict], bool]:
        """The judge's chat for one shown order, fitted to the context; and whether it was cut."""
        tpl = self.template
        first, second = (pair.answer_a, pair.answer_b) if order == "AB" else (pair.answer_b, pair.answer_a)
        multiturn = bool(pair.turns_a and pair.turns_b) and tpl.has("user_multiturn")
        if multiturn:
            ta, tb = (pair.turns_a, pair.turns_b) if order == "AB" else (pair.turns_b, pair.turns_a)
            fields = {"conversation_a": rendering.conversation_text(ta), "conversation_b": rendering.conversation_text(tb)}
            cuttable, last = ["conversation_a", "conversation_b", "reference"], []
        else:
            fields = {"question": rendering.chat_text(pair.question), "answer_a": first, "answer_b": second}
            cuttable, last = ["answer_a", "answer_b", "reference"], ["question"]
        fields["reference"] = reference or ""
        return rendering.fill_and_fit(tpl, self.examples, self.cot, multiturn, self.fitter, fields, cuttable, last)

    def references_for(self, pairs: Sequence[Pair]) -> list[str | None]:
        if self.reference == "none":
            return [None] * len(pairs)
        if self.reference == "given":
            missing = [p.id for p in pairs if not p.reference]
            if missing:
                raise RefereeError(f"judge: reference='given' but pair(s) {', '.join(missing[:5])} have no "
                                   f"'reference' field; use reference='self' to let the judge answer first")
            return [p.reference for p in pairs]
        return calls.self_references(self.model, [p.question for p in pairs], self.reference_max_tokens)

    # ---- judging ------------------------------------------------------------------------------------
    def judge_pairs(self, pairs: Sequence[Pair]) -> list[dict]:
        """One record per pair, in order (fields in the module docstring and docs/methods/judges.md)."""
        pairs = list(pairs)
        refs = self.references_for(pairs)
        units, chats, truncated = [], [], [False] * len(pairs)
        for i, (pair, ref) in enumerate(zip(pairs, refs)):
            for order in self.orders_for(pair):
                chat, cut = self.build_chat(pair, order, ref)
                units.append((i, order))
                chats.append(chat)
                truncated[i] = truncated[i] or cut
        entries = self._read_verdicts(chats)
        prior = self._calibrate(entries) if self.calibration != "none" else None
        per_pair: list[list[dict]] = [[] for _ in pairs]
        for (i, order), entry in zip(units, entries):
            per_pair[i].append({"order": order, **entry})
        records = []
        for i, pair in enumerate(pairs):
            winner, p_a = self._combine(per_pair[i])
            rec = {"id": pair.id, "winner": winner, "p_a": p_a, "label": pair.label, "template": self.template.name,
                   "verdict_mode": self.verdict, "swap": self.swap, "calibration": self.calibration,
                   "calibration_prior": prior, "cot": self.cot,
                   "reference_mode": self.reference, "judge": self.model.spec, "orders": per_pair[i],
                   "truncated": truncated[i], "category": pair.category}
            if self.reference == "self":
                rec["reference"] = refs[i]
            records.append(with_correct(rec))
        return records

    def _read_verdicts(self, chats: list[list[dict]]) -> list[dict]:
        desc = f"judge ({self.verdict})"
        if self.verdict == "generative":
            got = calls.generate_parsed(self.model, chats, self.sampling, parse_pairwise, self.max_retries, desc)
            return [{"winner_shown": g.value or "invalid", "p_first": None, "probs": None, "mass": None,
                     "raw": g.raw, "attempts": g.attempts, **({"why": g.why} if g.value is None else {})}
                    for g in got]
        raws, prefixes = calls.verdict_prefixes(self.model, chats, self.sampling, self.cot, "judge (reasoning)")
        results = calls.choice_rows(self.model, chats, OPTIONS, prefixes, desc)
        entries = []
        for res, raw in zip(results, raws):
            entry = {"probs": dict(res.probs), "mass": res.mass, "raw": raw, "attempts": 1}
            if not res.mass > 0:
                entry.update(winner_shown="invalid", p_first=None, why="no probability on any verdict option")
            else:
                entry.update(shown_verdict(res.probs))
            entries.append(entry)
        return entries

    def _calibrate(self, entries: list[dict]) -> dict:
        """Divide each readable entry's probabilities by the judge's prior over shown verdicts (in place);
        return the prior."""
        if self.calibration == "batch":
            readable = [e["probs"] for e in entries if e["winner_shown"] != "invalid"]
            if len(readable) < MIN_BATCH_PROMPTS:
                raise RefereeError(f"judge: calibration='batch' estimates the judge's prior from the judged prompts "
                                   f"and needs at least {MIN_BATCH_PROMPTS}, got {len(readable)}; use "
                                   f"calibration='content-free' for small sets")
            prior = mean_probs(readable)
        else:
            prior = self._content_free()
        for e in entries:
            if e["winner_shown"] == "invalid":
                continue
            weighted = {k: e["probs"][k] / prior[k] if prior[k] > 0 else 0.0 for k in OPTIONS}
            total = sum(weighted.values())
            if not total > 0:
                continue
            probs = {k: v / total for k, v in weighted.items()}
            e.update(probs_uncalibrated=e["probs"], probs=probs, **shown_verdict(probs))
        return prior

    def _content_free(self) -> dict:
        """The judge's mean probabilities on the template filled with placeholders (computed once)."""
        if self._content_free_prior is None:
            chats = []
            for text in CONTENT_FREE:
                pair = Pair(f"content-free:{text}", [{"role": "user", "content": text}], text, text,
                            reference=text if self.reference != "none" else None)
                chats.append(self.build_chat(pair, "AB", pair.reference)[0])
            entries = [e for e in self._read_verdicts(chats) if e["winner_shown"] != "invalid"]
            if not entries:
                raise RefereeError("judge: no probability on any verdict option for the content-free prompts; "
                                   "cannot calibrate")
            self._content_free_prior = mean_probs([e["probs"] for e in entries])
        return self._content_free_prior

    def _combine(self, orders: list[dict]) -> tuple[str, float | None]:
        """The pair's winner and P(A) from its judged orders, by the swap rule."""
        p_as = [None if o["p_first"] is None else (o["p_first"] if o["order"] == "AB" else 1 - o["p_first"])
                for o in orders]
        p_a = sum(p_as) / len(p_as) if all(p is not None for p in p_as) else None
        verdicts = {o["order"]: underlying(o["order"], o["winner_shown"]) for o in orders}
        probs = {o["order"]: o["probs"] for o in orders} if self.verdict == "probability" else None
        return combine(verdicts, self.swap, probs), p_a


def shown_verdict(probs: dict) -> dict:
    """The most likely shown verdict and p_first (ties split evenly) from P(first), P(second), P(tie)."""
    return {"winner_shown": max(("first", "second", "tie"), key=lambda k: probs[k]),
            "p_first": probs["first"] + 0.5 * probs["tie"]}


def mean_probs(rows: list[dict]) -> dict:
    """The mean of several prompts' P(first), P(second), P(tie): a judge's prior over shown verdicts."""
    return {k: sum(r[k] for r in rows) / len(rows) for k in OPTIONS}
