"""The grading judge: one answer -> a score on the template's scale (1-10 MT-Bench style, additive 0-5).

``probability`` verdicts read P(score) for every score on the scale after "[[" (two single-token passes
for a 1-10 scale, one for 0-5) and give the argmax as ``score`` and sum(s * p(s)) as
``expected_score``; ``generative`` verdicts parse ``[[N]]`` from the reply, retry unreadable ones and
then record them as invalid (``score`` None), never as a default score. As a ``PointwiseVerifier``,
``Score.value`` is the expected score where there is one (smoother for best-of-N and rewards), else the
parsed score.
"""

from __future__ import annotations

from typing import Sequence

from referee.chat import as_chat
from referee.errors import RefereeError
from referee.judges import calls, fewshot, rendering, settings
from referee.judges.grades import Grade
from referee.judges.parse import parse_score
from referee.models.base import Model, Sampling
from referee.verifiers.base import PointwiseVerifier, Score


class GradingJudge(settings.JudgeSettings, PointwiseVerifier):
    """An LLM judge that scores single answers; also a ``PointwiseVerifier``."""

    def __init__(self, model: Model, template: str = "single_1to10", verdict: str = "probability",
                 reference: str = "none", cot: bool = False, max_retries: int = 2,
                 few_shot: list[dict] | str | None = None, seed: int = 0, sampling: Sampling | None = None,
                 reference_max_tokens: int = 256, max_prompt_chars: int | None = None,
                 max_prompt_tokens: int | None = None):
        self._setup(model, template, verdict, reference, cot, max_retries, seed, sampling, reference_max_tokens,
                    max_prompt_chars, max_prompt_tokens)
        self.low, self.high = self.template.scale
        self.examples = fewshot.load_examples(few_shot, "grading", (self.low, self.high))
        self.name = f"grading-judge[{model.spec}]"

    def build_chat(self, prompt: list[dict], response: str, reference: str | None) -> tuple[list[dict], bool]:
        tpl = self.template
        multiturn = sum(m["role"] == "user" for m in prompt) > 1 and tpl.has("user_multiturn")
        if multiturn:
            fields = {"conversation": rendering.conversation_text(prompt + [{"role": "assistant", "content": response}])}
            cuttable, last = ["conversation", "reference"], []
        else:
            fields = {"question": rendering.chat_text(prompt), "answer": response}
            cuttable, last = ["answer", "reference"], ["question"]
        fields["reference"] = reference or ""
        return rendering.fill_and_fit(tpl, self.examples, self.cot, multiturn, self.fitter, fields, cuttable, last)

    def grade(self, prompts: Sequence, responses: Sequence[str], references: Sequence[str | None] | None = None
              ) -> list[Grade]:
        """One record per answer: score, expected_score, probs, raw output, valid, attempts, truncated."""
        if len(prompts) != len(responses):
            raise RefereeError("grade: give one response per prompt")
        chats_in = [as_chat(p) for p in prompts]
        if self.reference == "given":
            if references is None or len(references) != len(prompts) or any(not r for r in references):
                raise RefereeError("judge: reference='given' needs a non-empty reference for every answer")
            refs = list(references)
        elif self.reference == "self":
            refs = calls.self_references(self.model, chats_in, self.reference_max_tokens)
        else:
            refs = [None] * len(prompts)
        built = [self.build_chat(c, r, ref) for c, r, ref in zip(chats_in, responses, refs)]
        chats = [b[0] for b in built]
        base = {"template": self.template.name, "verdict_mode": self.verdict, "cot": self.cot,
                "reference_mode": self.reference, "judge": self.model.spec, "scale": [self.low, self.high]}
        read = self._read(chats) if chats else []
        records = [Grade(r | base | {"truncated": b[1]}) for r, b in zip(read, built)]
        if self.reference == "self":
            for rec, ref in zip(records, refs):
                rec["reference"] = ref
        return records

    def _read(self, chats: list[list[dict]]) -> list[dict]:
        desc = f"grade ({self.verdict})"
        if self.verdict == "generative":
            got = calls.generate_parsed(self.model, chats, self.sampling,
                                         lambda t: parse_score(t, self.low, self.high), self.max_retries, desc)
            return [{"score": g.value, "expected_score": None, "probs": None, "mass": None, "raw": g.raw,
                     "attempts": g.attempts, "valid": g.value is not None, **({"why": g.why} if g.value is None else {})}
                    for g in got]
        raws, prefixes = calls.verdict_prefixes(self.model, chats, self.sampling, self.cot, "grade (reasoning)")
        out = []
        for (probs, mass), raw in zip(calls.scale_probs(self.model, chats, prefixes, self.low, self.high, desc), raws):
            rec = {"probs": {str(k): v for k, v in probs.items()}, "mass": mass, "raw": raw, "attempts": 1}
            if not mass > 0:
                rec.update(score=None, expected_score=None, valid=False, why="no probability on any score")
            else:
                rec.update(score=float(max(probs, key=probs.get)),
                           expected_score=sum(s * p for s, p in probs.items()), valid=True)
            out.append(rec)
        return out

    def score_many(self, prompts, responses) -> list[Score]:
        return [Score(g.value, valid=g["valid"], detail=g) for g in self.grade(prompts, responses)]
