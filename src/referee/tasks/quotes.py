"""Checking debaters' quotes against the passage, so the judge (who cannot read the passage) sees which
quotes are real, as in Khan et al. 2024: a debater quotes inside ``<quote>...</quote>``; each quote is
shown to the judge as ``<v_quote>...</v_quote>`` (verified) or ``<u_quote>...</u_quote>`` (not).

Normalisation (``normalise``): Unicode NFKC, lower case (``str.casefold``), every punctuation mark or symbol
(Unicode categories P* and S*: ``.,;:!?'"-()$%``, curly quotes and apostrophes, dashes ...) turned into a
space, whitespace collapsed to single spaces, ends stripped. So ``Didn’t, he?`` becomes ``didn t he``.

Verification: a quote is verified when its normalised text is not empty and, with the spaces between
words ignored, occurs in the normalised passage starting at the start of a passage word and ending at the
end of one. Ignoring spaces lets tokenised passages match natural writing (CosmosQA writes ``did n't`` and
``body 's``; a debater writes ``didn't`` and ``body's``); requiring word edges stops a quote from matching
inside a word (``he cat`` is not in ``the cat``). A quote longer than the passage (in normalised characters)
is never verified, and ``quote_stats`` counts it.

Tags: matched case-insensitively. A quote is the text between an opening tag and the next closing tag with
no other opening tag in between (so with nested tags the innermost pair is the quote); tags that do not
pair (an unclosed opening tag, a stray closing tag) are no quote and are left in the text as written.
Verdict tags a debater writes itself (``<v_quote>``, ``<u_quote>`` and their closing tags) are removed
before anything else, so a debater cannot forge a verified mark.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from itertools import accumulate

QUOTE_OPEN, QUOTE_CLOSE = "<quote>", "</quote>"
VERIFIED_OPEN, VERIFIED_CLOSE = "<v_quote>", "</v_quote>"
UNVERIFIED_OPEN, UNVERIFIED_CLOSE = "<u_quote>", "</u_quote>"

_QUOTE_TAG = re.compile(r"<(/?)quote>", re.IGNORECASE)
_VERDICT_TAG = re.compile(r"</?[uv]_quote>", re.IGNORECASE)


@dataclass(frozen=True)
class Quote:
    text: str  # as the debater wrote it, between the tags
    verified: bool


def normalise(text: str) -> str:
    """The text as compared: lower case, punctuation and symbols as spaces, whitespace collapsed (module doc)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    spaced = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    return " ".join(spaced.split())


def _spans(text: str) -> tuple[str, list[tuple[int, int, int, int]]]:
    """(text without forged verdict tags, [(open start, quote start, quote end, close end)] per quote)."""
    text = _VERDICT_TAG.sub("", text)
    spans, opened = [], None
    for m in _QUOTE_TAG.finditer(text):
        if not m.group(1):
            opened = m  # a later opening tag makes an earlier unclosed one stray
        elif opened is not None:
            spans.append((opened.start(), opened.end(), m.start(), m.end()))
            opened = None
    return text, spans


def find_quotes(text: str) -> list[str]:
    """The quoted spans, in order, as written (an unclosed tag gives no quote; an empty pair gives "")."""
    text, spans = _spans(text)
    return [text[start:end] for _, start, end, _ in spans]


class _Passage:
    """A passage prepared for many look-ups: its words run together, and where each word starts and ends."""

    def __init__(self, passage: str):
        words = normalise(passage).split()
        self.joined = "".join(words)
        self.edges = set(accumulate((len(w) for w in words), initial=0))

    def contains(self, quote: str) -> bool:
        q = _joined(quote)
        if not q or len(q) > len(self.joined):
            return False
        at = self.joined.find(q)
        while at != -1:
            if at in self.edges and at + len(q) in self.edges:
                return True
            at = self.joined.find(q, at + 1)
        return False


def _joined(text: str) -> str:
    return normalise(text).replace(" ", "")


def check_quotes(text: str, passage: str) -> list[Quote]:
    """Each quote in ``text``, in order, with whether it occurs in ``passage`` (module doc for the rule)."""
    prepared = _Passage(passage)
    return [Quote(q, prepared.contains(q)) for q in find_quotes(text)]


def mark_quotes(text: str, passage: str) -> str:
    """``text`` as the judge reads it: each quote rewritten as ``<v_quote>..</v_quote>`` or
    ``<u_quote>..</u_quote>``, forged verdict tags removed, everything else unchanged."""
    prepared = _Passage(passage)
    text, spans = _spans(text)
    out, last = [], 0
    for open_start, start, end, close_end in spans:
        quote = text[start:end]
        opening, closing = ((VERIFIED_OPEN, VERIFIED_CLOSE) if prepared.contains(quote)
                            else (UNVERIFIED_OPEN, UNVERIFIED_CLOSE))
        out += [text[last:open_start], opening, quote, closing]
        last = close_end
    out.append(text[last:])
    return "".join(out)


def quote_stats(quotes: list[Quote], passage: str) -> dict:
    """Counts for records and reports: ``count``, ``verified``, ``unverified``, ``verified_share`` (None when
    there is no quote), ``quoted_words`` and ``verified_words`` (normalised words), ``empty`` (quotes with
    nothing after normalising) and ``longer_than_passage`` (quotes longer than the whole passage: never
    verified, non-zero flags a debater quoting something else)."""
    passage_length = len(_joined(passage))
    verified = sum(q.verified for q in quotes)
    return {
        "count": len(quotes),
        "verified": verified,
        "unverified": len(quotes) - verified,
        "verified_share": verified / len(quotes) if quotes else None,
        "quoted_words": sum(len(normalise(q.text).split()) for q in quotes),
        "verified_words": sum(len(normalise(q.text).split()) for q in quotes if q.verified),
        "empty": sum(not _joined(q.text) for q in quotes),
        "longer_than_passage": sum(len(_joined(q.text)) > passage_length for q in quotes),
    }


def locate_quote(quote: str, text: str) -> tuple[int, int] | None:
    """Where ``quote`` stands in ``text`` as written (first occurrence), for highlighting it there: its
    words in order, case ignored, anything that is not a letter or digit allowed between them, starting
    and ending at word edges. None when it is not there or has no words."""
    words = re.findall(r"[^\W_]+", unicodedata.normalize("NFKC", quote))
    if not words:
        return None
    pattern = r"(?<![^\W_])" + r"[\W_]*".join(map(re.escape, words)) + r"(?![^\W_])"
    m = re.search(pattern, text, re.IGNORECASE)  # the text as written: the span's offsets are its own
    return (m.start(), m.end()) if m else None
