"""Multi-party dialogues over items: the transcript and the one runner that debate, consultancy and
critique-then-refine share.

A ``Transcript`` is one item's dialogue: its id, the context its speakers may read (question, passage,
the answers under dispute), hidden ``meta`` no speaker reads (gold labels), and the turns so far. A
``View`` says what one reader sees of it, so a blind judge reads the debate without the passage.

``run_dialogue`` plays a schedule of rounds over many items at once. A round names its speakers and
whether they speak simultaneously (each sees only the turns before the round, as in Anthropic-style
debate) or sequentially (each sees every earlier turn, the same round's included, as in Khan et al.).
Each step of a round (the whole round when simultaneous, one speaker when sequential) sends every
item's next turns to each model in ONE ``generate`` call, grouped by (model, sampling).

Seeds: a sample's seed is derived by ``Model.generate`` from the sampling seed, the chat and the sample
index. A speaker's chat holds its item's context and the transcript so far, so the seed already depends
on the item and the turn, never on which other items shared the call; deriving a seed per item through
``Sampling(seed=...)`` instead would split every step into one call per item. Two identical chats get
the same turn, which is right: they are the same request. For the same reason every turn is one cache
row of the speaker's model, so a killed dialogue, run again, reads its finished turns back and goes on
exactly where it stopped, with the same results.

Usage::

    from referee.dialogue import Round, Speaker, Transcript, View, run_dialogue

    items = [Transcript("q1", {"question": "...", "passage": "...", "answer_a": "...", "answer_b": "..."})]
    debater = "You argue that the answer is {answer_a}. Quote the passage. At most {word_limit} words."
    speakers = [Speaker("alice", "debater_a", model, system=debater, word_limit=100),
                Speaker("bob", "debater_b", model, system=debater.replace("answer_a", "answer_b"), word_limit=100),
                Speaker("judge", "judge", judge_model, view=View(context=("question", "answer_a", "answer_b")),
                        instruction="Which answer is right, {answer_a} or {answer_b}?")]
    schedule = [Round(("alice", "bob"), simultaneous=True)] * 3 + [Round(("judge",))]
    for t in run_dialogue(items, schedule, speakers):
        print(t.text(View(roles=("debater_a", "debater_b"))), t.to_record())
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Callable, Sequence

from referee.chat import Chat
from referee.errors import RefereeError
from referee.models.base import Completion, Model, Sampling

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
WORD = re.compile(r"\S+")


# ---- the transcript ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Turn:
    """One thing one speaker said. ``round`` is the 0-based index of its round in the schedule."""

    speaker: str
    role: str
    text: str
    round: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None  # as the model reported: "stop", "length" (the token limit), or for an
    #                                   answer a server withheld "content_filter" / "refused"
    truncated: bool = False  # cut at the speaker's word limit
    score: float | None = None  # best-of-N: the speaker's preference score of this turn
    alternatives: tuple = ()  # best-of-N: every candidate drawn, {"text", "score"}, this one among them
    draft: dict | None = None  # a revised turn: {"text": the first draft, "critique": what the critic said}

    def to_dict(self) -> dict:
        """The turn's fields; the best-of-N ones only when it was chosen from several."""
        d = asdict(self)
        if not self.alternatives:
            del d["score"], d["alternatives"]
        if self.draft is None:
            del d["draft"]
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "turn") -> "Turn":
        d = _checked_fields(cls, d, ("speaker", "role", "text"), where)
        return cls(**{**d, "alternatives": tuple(d.get("alternatives", ()))})


@dataclass(frozen=True)
class View:
    """What one reader may see of a transcript: which context fields (None: all of them, in the item's
    order) and the turns of which roles (None: every turn)."""

    context: tuple[str, ...] | None = None
    roles: tuple[str, ...] | None = None

    def __post_init__(self):
        for name in ("context", "roles"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise RefereeError(f"view: {name} should be a list of names, got the string {value!r}")
            if value is not None:
                object.__setattr__(self, name, tuple(value))

    def shown_fields(self, context: dict[str, str], item_id: str) -> list[str]:
        if self.context is None:
            return list(context)
        missing = [k for k in self.context if k not in context]
        if missing:
            raise RefereeError(f"item {item_id}: the view shows context field(s) {', '.join(missing)}, "
                               f"which the item lacks (it has: {', '.join(context) or 'none'})")
        return list(self.context)

    def shows_turn(self, turn: Turn) -> bool:
        return self.roles is None or turn.role in self.roles


@dataclass
class Transcript:
    """One item's dialogue: context its speakers may read, ``meta`` none of them reads, and the turns."""

    item_id: str
    context: dict[str, str] = field(default_factory=dict)
    turns: list[Turn] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.item_id = str(self.item_id)
        for k, v in self.context.items():
            if not isinstance(v, str):
                raise RefereeError(f"item {self.item_id}: context field {k!r} should be a string, "
                                   f"got {type(v).__name__}")

    def text(self, view: View = View()) -> str:
        """The context fields and turns ``view`` shows, as one readable text."""
        blocks = [f"{_label(k)}:\n{self.context[k]}" for k in view.shown_fields(self.context, self.item_id)]
        blocks += [f"{_header(t)}:\n{t.text}" for t in self.turns if view.shows_turn(t)]
        return "\n\n".join(blocks)

    def to_record(self) -> dict:
        return {"id": self.item_id, "context": dict(self.context), "turns": [t.to_dict() for t in self.turns],
                "meta": dict(self.meta)}

    @classmethod
    def from_record(cls, record: dict, where: str = "record") -> "Transcript":
        if not isinstance(record, dict) or "id" not in record:
            raise RefereeError(f"{where}: a transcript record needs an 'id'")
        turns = record.get("turns", [])
        if not isinstance(turns, list):
            raise RefereeError(f"{where}: 'turns' should be a list")
        context, meta = record.get("context", {}), record.get("meta", {})
        if not isinstance(context, dict) or not isinstance(meta, dict):
            raise RefereeError(f"{where}: 'context' and 'meta' should be objects")
        return cls(record["id"], dict(context), [Turn.from_dict(t, f"{where}: turn {i}") for i, t in enumerate(turns)],
                   dict(meta))


def _label(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _header(turn: Turn) -> str:
    who = turn.speaker if turn.speaker == turn.role else f"{turn.speaker} ({turn.role})"
    return who if turn.round is None else f"{who}, round {turn.round + 1}"


def _checked_fields(cls, d: dict, required: tuple[str, ...], where: str) -> dict:
    if not isinstance(d, dict):
        raise RefereeError(f"{where}: expected an object, got {type(d).__name__}")
    known = {f.name for f in fields(cls)}
    problems = [f"{kind} {', '.join(keys)}" for kind, keys in
                (("missing", [k for k in required if k not in d]), ("unknown", sorted(set(d) - known))) if keys]
    if problems:
        raise RefereeError(f"{where}: {'; '.join(problems)}")
    return d


# ---- speakers and the schedule ------------------------------------------------------------------------
def cut_words(text: str, limit: int | None) -> tuple[str, bool]:
    """The text up to the end of its ``limit``-th word, and whether anything was cut."""
    if limit is None:
        return text, False
    words = WORD.finditer(text)
    end = None
    for count, m in enumerate(words, start=1):
        if count == limit:
            end = m.end()
        elif count > limit:
            return text[:end], True
    return text, False


@dataclass(eq=False)
class Speaker:
    """A named participant: its model and sampling, its system prompt and closing instruction, the view
    it reads the transcript through, and a word limit on what it says (the token limit is
    ``sampling.max_new_tokens``).

    ``system`` and ``instruction`` may use ``{placeholders}``: the context fields its view shows, and
    ``{name}``, ``{role}``, ``{round}`` (1-based), ``{rounds}`` and ``{word_limit}`` (these win over
    context fields of the same name). Other braces are left alone. A placeholder naming a context field
    the view hides is an error, so hidden material cannot leak through a prompt.
    """

    name: str
    role: str
    model: Model = field(repr=False)
    system: str = ""
    instruction: str = ""
    view: View = View()
    sampling: Sampling = Sampling()
    word_limit: int | None = None
    best_of: int = 1  # draw this many turns and keep the one ``prefer`` scores highest
    prefer: Callable[[list[tuple[Transcript, Turn]]], list[float | None]] | None = field(default=None, repr=False)
    revise: Callable[[list[tuple[Transcript, Turn]]], list[Turn]] | None = field(default=None, repr=False)

    def __post_init__(self):
        if not self.name or not self.role:
            raise RefereeError("speaker: give a name and a role")
        if self.word_limit is not None and self.word_limit < 1:
            raise RefereeError(f"speaker {self.name}: word_limit must be >= 1, got {self.word_limit}")
        if self.best_of < 1 or (self.best_of > 1 and self.prefer is None):
            raise RefereeError(f"speaker {self.name}: best_of must be >= 1, and above 1 it needs a 'prefer' "
                               f"function to choose among the turns (got best_of={self.best_of})")

    def chat(self, transcript: Transcript, round_index: int, rounds: int) -> Chat:
        """The system prompt, then one user message: the transcript as this speaker sees it and the
        instruction, with the placeholders filled. A speaker with another shape of prompt overrides the
        three parts (``placeholders``, ``shown``, ``closing``), not this."""
        values, hidden = self.placeholders(transcript, round_index, rounds)

        def fill(template: str) -> str:
            return _fill(template, values, hidden, self.name, transcript.item_id)

        request = "\n\n".join(part for part in (*self.shown(transcript), fill(self.closing(transcript))) if part)
        if not request:
            raise RefereeError(f"speaker {self.name}: nothing to say to the model for item {transcript.item_id} "
                               f"(its view shows nothing and it has no instruction)")
        system = fill(self.system)
        return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": request}]

    def placeholders(self, transcript: Transcript, round_index: int, rounds: int) -> tuple[dict[str, str], set[str]]:
        """The values of the prompts' placeholders, and the names a prompt may not use (hidden context)."""
        values = {k: transcript.context[k] for k in self.view.shown_fields(transcript.context, transcript.item_id)}
        values.update(name=self.name, role=self.role, round=str(round_index + 1), rounds=str(rounds),
                      word_limit="" if self.word_limit is None else str(self.word_limit))
        return values, set(transcript.context) - set(values)

    def shown(self, transcript: Transcript) -> list[str]:
        """The blocks of the user message before the instruction: the transcript through this speaker's view."""
        return [transcript.text(self.view)]

    def closing(self, transcript: Transcript) -> str:
        """The instruction that ends the user message, before its placeholders are filled."""
        return self.instruction

    def turn(self, completion: Completion, round_index: int) -> Turn:
        text, cut = cut_words(completion.text.strip(), self.word_limit)
        return Turn(self.name, self.role, text, round=round_index, prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens, finish_reason=completion.finish_reason,
                    truncated=cut)


def _fill(template: str, values: dict[str, str], hidden: set[str], speaker: str, item_id: str) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name in values:
            return values[name]
        if name in hidden:
            raise RefereeError(f"speaker {speaker}: its prompt uses {{{name}}}, which its view hides "
                               f"(item {item_id})")
        return m.group(0)

    return PLACEHOLDER.sub(sub, template)


@dataclass(frozen=True)
class Round:
    """Speakers in order; ``simultaneous``: they all see only the turns before the round."""

    speakers: tuple[str, ...]
    simultaneous: bool = False

    def __post_init__(self):
        if isinstance(self.speakers, str):
            raise RefereeError(f"round: speakers should be a list of names, got the string {self.speakers!r}")
        object.__setattr__(self, "speakers", tuple(self.speakers))
        if not self.speakers:
            raise RefereeError("round: name at least one speaker")
        if self.simultaneous and len(set(self.speakers)) < len(self.speakers):
            raise RefereeError(f"round {list(self.speakers)}: a speaker cannot speak twice at the same time")

    def steps(self) -> list[tuple[str, ...]]:
        """Groups of speakers that speak without seeing each other."""
        return [self.speakers] if self.simultaneous else [(s,) for s in self.speakers]


# ---- the runner --------------------------------------------------------------------------------------
def run_dialogue(items: Sequence[Transcript], schedule: Sequence[Round], speakers: Sequence[Speaker],
                 desc: str = "dialogue") -> list[Transcript]:
    """Play ``schedule`` on every item; new transcripts with the turns appended (the items are left as
    they are). Existing turns of an item are part of what its speakers see."""
    by_name = {}
    for s in speakers:
        if s.name in by_name:
            raise RefereeError(f"dialogue: two speakers are named {s.name!r}")
        by_name[s.name] = s
    for r in schedule:
        unknown = [n for n in r.speakers if n not in by_name]
        if unknown:
            raise RefereeError(f"dialogue: the schedule names unknown speaker(s) {', '.join(unknown)}; "
                               f"known: {', '.join(by_name)}")
    repeated = sorted(i for i, k in Counter(t.item_id for t in items).items() if k > 1)
    if repeated:
        raise RefereeError(f"dialogue: item ids must be unique; repeated: {', '.join(repeated[:5])}")
    transcripts = [replace(t, context=dict(t.context), turns=list(t.turns), meta=dict(t.meta)) for t in items]
    for r, rnd in enumerate(schedule):
        for step in rnd.steps():
            _take_step(transcripts, [by_name[n] for n in step], r, len(schedule), f"{desc} round {r + 1}")
    return transcripts


def _take_step(transcripts: list[Transcript], step: list[Speaker], round_index: int, rounds: int,
               desc: str) -> None:
    """Every item's turns for this step, one generate call per (model, sampling, best_of); the turns are
    appended only once all are drawn, so no speaker of the step sees another's. A speaker with ``revise``
    has all its drafts revised in one call (before any is chosen). A best-of-N speaker's candidates are
    scored by its ``prefer`` in one call per speaker and the highest kept (the first of equals; an
    unreadable score ranks below every readable one)."""
    groups: dict[tuple, list[tuple[int, Speaker]]] = {}
    for i in range(len(transcripts)):
        for s in step:
            groups.setdefault((id(s.model), s.sampling, s.best_of), []).append((i, s))
    new: dict[tuple[int, str], Turn] = {}
    drawn: dict[str, list[tuple[int, list[Turn]]]] = {}
    for jobs in groups.values():
        model, sampling, n = jobs[0][1].model, jobs[0][1].sampling, jobs[0][1].best_of
        chats = [s.chat(transcripts[i], round_index, rounds) for i, s in jobs]
        names = ", ".join(dict.fromkeys(s.name for _, s in jobs))
        outputs = model.generate(chats, sampling, n=n, desc=f"{desc}: {names}")
        for (i, s), completions in zip(jobs, outputs):
            drawn.setdefault(s.name, []).append((i, [s.turn(c, round_index) for c in completions]))
    by_name = {s.name: s for s in step}
    for name, rows in drawn.items():
        speaker = by_name[name]
        if speaker.revise is not None:
            revised = iter(speaker.revise([(transcripts[i], t) for i, turns in rows for t in turns]))
            rows = [(i, [next(revised) for _ in turns]) for i, turns in rows]
        if speaker.best_of == 1:
            new.update({(i, name): turns[0] for i, turns in rows})
            continue
        scores = iter(speaker.prefer([(transcripts[i], t) for i, turns in rows for t in turns]))
        for i, turns in rows:
            scored = [(t, next(scores)) for t in turns]
            best, value = max(scored, key=lambda ts: -float("inf") if ts[1] is None else ts[1])
            alternatives = tuple({"text": t.text, "score": v} for t, v in scored)
            new[i, name] = replace(best, score=value, alternatives=alternatives)
    for i, t in enumerate(transcripts):
        t.turns.extend(new[i, s.name] for s in step)
