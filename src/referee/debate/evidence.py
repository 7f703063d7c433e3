"""Debaters of known strength that need no language model: each turn quotes one passage sentence, word for
word, and says which answer it supports. Skill is then a knob (issue 36; Khan et al. 2024 vary debater
skill to see whether judge accuracy rises with it):

- ``evidence:random``: a sentence drawn at random (seeded per item, role, round and sample): evidence
  that is real but mostly beside the point, the weakest arguer that still quotes;
- ``evidence:overlap``: the sentence that shares the most content words with the answer it defends (and the
  question), less those it shares with the other answer; in later rounds the best one it has not quoted yet;
- ``evidence:expert``: the sentence that moves an expert most towards its answer: a reward model trained to
  read a passage and pick the right answer (the run's ``evidence_expert``, on a split nobody is judged on)
  reads each sentence alone as the passage, and the debater quotes the one where its answer's score most
  exceeds the other's. Word overlap is no proxy for support on CosmosQA (its wrong answers read like the
  passage: docs/results/debate.md), so this is the debater whose evidence can favour the truth.

Every quote is verbatim, so the judge sees it marked verified; what differs is whether it bears on the
answer. They plug into debate, consultancy and the tournament as a debater or consultant spec
(``debater: evidence:overlap``): ``EvidenceWriter`` is a ``Model`` whose requests are the structured ones an
``EvidenceArguer`` writes, so the dialogue runner, the cache and the manifest treat them like any model.
"""

from __future__ import annotations

import hashlib
import json
import random
import re

from referee.debate.judging import expert_text
from referee.dialogue import Transcript
from referee.errors import RefereeError
from referee.models.base import Completion, GenRequest, Model
from referee.tasks.quotes import QUOTE_CLOSE, QUOTE_OPEN, find_quotes, normalise

KINDS = ("random", "overlap", "expert")
PREFIX = "evidence:"
FIELDS = {"passage", "question", "own", "other", "quoted", "word_limit"}
# of the rules above (2: punctuation-only pieces join a sentence): part of the fingerprint, so a changed rule is
# a new model to the cache
VERSION = 2

# Words that carry no evidence about an answer (kept short on purpose: a fixed, visible list).
STOPWORDS = frozenset("""a an the and or but if of to in on at by for with from as is are was were be been being
it its this that these those he she they them his her their we you i me my our your not no do does did so
than then there here what which who whom whose when where why how all any some can could would should will
just very also too into out up down over about after before because while""".split())
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_WORDY = re.compile(r"[^\W_]")  # a letter or a digit


def sentences(passage: str) -> list[str]:
    """The passage cut after each ., ! or ? followed by space: exact substrings, so a quote of one is verified.
    A piece without a letter or digit (CosmosQA spaces its punctuation: '! ! )' or a lone '"') joins the
    sentence before it (the one after, at the start), so no debater quotes punctuation alone."""
    text = passage.strip()
    cuts = [m.span() for m in _SENTENCE_END.finditer(text)]
    spans = [(a, b) for a, b in zip([0] + [end for _, end in cuts], [start for start, _ in cuts] + [len(text)])
             if text[a:b].strip()]
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and not (_WORDY.search(text[a:b]) and _WORDY.search(text[slice(*merged[-1])])):
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return [text[a:b].strip() for a, b in merged]


def content_words(text: str) -> set[str]:
    return {w for w in normalise(text).split() if w not in STOPWORDS and len(w) > 1}


def support(sentence: str, own: str, other: str, question: str) -> int:
    """How much a sentence speaks for ``own`` rather than ``other``: shared content words with the answer
    (three points each) and the question (one: the topic, not the side), less three for each shared with the
    other answer."""
    words = content_words(sentence)
    return 3 * len(words & content_words(own)) + len(words & content_words(question)) \
        - 3 * len(words & content_words(other))


def choose(kind: str, request: dict, seed: int) -> str:
    """The sentence an evidence debater of ``kind`` (random or overlap) quotes for one request (module doc)."""
    pool = sentences(request["passage"])
    if not pool:
        return ""
    if kind == "random":
        return random.Random(seed).choice(pool)
    if kind != "overlap":
        raise RefereeError(f"evidence:{kind} chooses with a model: expert_choices")
    return best(fresh(request), lambda s: support(s, request["own"], request["other"], request["question"]))


def fresh(request: dict) -> list[str]:
    """The passage's sentences this arguer has not quoted yet (all of them once every one has been)."""
    pool = sentences(request["passage"])
    return [s for s in pool if s not in request["quoted"]] or pool


def best(pool: list[str], score) -> str:
    """The highest-scoring sentence; the earliest of those tied."""
    return min(enumerate(pool), key=lambda ks: (-score(ks[1]), ks[0]))[1] if pool else ""


def expert_choices(expert, requests: list[dict], memo: dict | None = None) -> list[str]:
    """``evidence:expert``'s sentence per request: the expert (a reward model: ``score_many(prompts,
    answers)``) reads each fresh sentence alone as the passage, once followed by the arguer's answer and once by
    the other; the sentence with the largest margin for its own answer wins. Each (sentence, question, answer)
    is scored once, in one batch, and kept in ``memo`` (both debaters of an item, and its consultant, ask the
    same ones)."""
    memo = {} if memo is None else memo
    pools = [fresh(r) for r in requests]
    wanted = {(expert_text(s, r["question"]), answer) for r, pool in zip(requests, pools) for s in pool
              for answer in (r["own"], r["other"])}
    missing = sorted(wanted - set(memo))
    scores = expert.score_many([[{"role": "user", "content": text}] for text, _ in missing],
                               [answer for _, answer in missing]) if missing else []
    if any(not s.valid or s.value is None for s in scores):
        raise RefereeError("evidence:expert: its reward model returned no score for a sentence; "
                           "a reward model always scores, so the expert given is not one")
    memo.update({key: float(s.value) for key, s in zip(missing, scores)})
    out = []
    for r, pool in zip(requests, pools):
        def margin(s: str, r=r) -> float:
            text = expert_text(s, r["question"])
            return memo[(text, r["own"])] - memo[(text, r["other"])]
        out.append(best(pool, margin))
    return out


def argument(sentence: str, own: str, word_limit: int | None) -> str:
    """The turn: the quote (cut to a prefix of whole words if it would not fit the limit: still verbatim,
    so still verified) and the claim it supports."""
    claim = f' This supports the answer "{own}".'
    words = sentence.rstrip(".!? ").split()  # the sentence's own full stop stays outside the quote
    if word_limit is not None:
        room = max(1, word_limit - len(claim.split()) - 3)
        words = words[:room]
    return f"The passage says {QUOTE_OPEN}{' '.join(words)}{QUOTE_CLOSE}.{claim}" if words else claim.strip()


class EvidenceWriter(Model):
    """An arguer that quotes instead of writing: ``evidence:random``, ``evidence:overlap`` or
    ``evidence:expert`` (which needs ``expert``, a reward model, and ``expert_key``, what it was made from:
    part of the fingerprint, so another expert is another model to the cache)."""

    batch_size = 256

    def __init__(self, spec: str, cache=None, expert=None, expert_key: str = ""):
        super().__init__(cache)
        if problem := unknown_kind(spec):
            raise RefereeError(problem)
        self.kind, self.spec, self.expert, self.scored = spec.removeprefix(PREFIX), spec, expert, {}
        if (self.kind == "expert") != (expert is not None):
            raise RefereeError(f"debater {spec!r}: an expert (a reward model) is for evidence:expert, and "
                               "evidence:expert needs one")
        # random and overlap: the rule and its version only
        made = f"{spec}/v{VERSION}" + (f"/{expert_key}" if expert_key else "")
        self.fingerprint = hashlib.sha256(made.encode()).hexdigest()[:24]

    def _generate(self, requests: list[GenRequest]) -> list[Completion]:
        asked = [parse_request(r.chat) for r in requests]
        chosen = expert_choices(self.expert, asked, self.scored) if self.kind == "expert" else \
            [choose(self.kind, q, r.seed) for q, r in zip(asked, requests)]
        out = []
        for request, sentence in zip(asked, chosen):
            text = argument(sentence, request["own"], request["word_limit"])
            out.append(Completion(text, prompt_tokens=0, completion_tokens=len(text.split()), finish_reason="stop"))
        return out


def is_evidence(spec: str) -> bool:
    return spec.startswith(PREFIX)


def unknown_kind(spec: str) -> str | None:
    """Why ``spec`` names no evidence debater, or None when it names one (config validators and
    ``EvidenceWriter`` share this one check and its message)."""
    if spec.removeprefix(PREFIX) in KINDS and is_evidence(spec):
        return None
    return f"debater {spec!r}: evidence debaters are {', '.join(PREFIX + k for k in KINDS)}"


def request_chat(transcript: Transcript, role: str, defends: str, opposes: str, round_index: int,
                 word_limit: int | None) -> list[dict]:
    """What an ``EvidenceArguer`` asks its writer: the context it may read and the sentences it has quoted."""
    ctx = transcript.context
    quoted = [s for t in transcript.turns if t.role == role for s in quoted_sentences(t.text, ctx["passage"])]
    payload = {"item": transcript.item_id, "role": role, "round": round_index, "passage": ctx["passage"],
               "question": ctx["question"], "own": ctx[defends], "other": ctx[opposes], "quoted": quoted,
               "word_limit": word_limit}
    return [{"role": "user", "content": json.dumps(payload, ensure_ascii=False, sort_keys=True)}]


def parse_request(chat: list[dict]) -> dict:
    """The request ``request_chat`` wrote; anything else is refused (an evidence debater is not a chat model)."""
    try:
        request = json.loads(chat[-1]["content"])
    except (ValueError, KeyError, IndexError, TypeError):
        request = None
    if not isinstance(request, dict) or not FIELDS <= set(request):
        raise RefereeError("evidence debater: its request is not the structured one an evidence arguer writes; "
                           "use it as a debater or consultant spec, not as a chat model")
    return request


def quoted_sentences(text: str, passage: str) -> list[str]:
    """The passage sentences a turn quoted (a cut quote counts for the sentence it starts)."""
    return [s for q in find_quotes(text) if normalise(q) for s in sentences(passage)
            if normalise(s).startswith(normalise(q))][:1]
