"""Mutations as checked edits: ``candidates`` runs one operator over a program, and the public operator
functions (``off_by_one`` ...) list one operator's mutations.

A proposal becomes a ``Mutation`` only when one of its ways of writing parses to exactly the intended
syntax tree (``referee.programs.edits``); a ``Mutation`` gives the whole tampered program, the changed
lines before and after, and one plain sentence describing the change.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from referee.errors import RefereeError
from referee.programs.edits import MutationContext, Option, Proposal, SourceText
from referee.programs.operators import OPERATORS, PROPOSERS


@dataclass
class Mutation:
    operator: str
    index: int  # its position among the operator's candidates for this program (stable for a given source)
    source: str  # the whole tampered program
    line_start: int  # changed lines in the tampered program, 1-based (empty when a statement was removed)
    line_end: int
    original_line_start: int  # the same lines in the original
    original_line_end: int
    original_code: str  # the changed lines, before and after
    tampered_code: str
    description: str  # one plain sentence
    normalised: str = ""  # ast.dump of the tampered program, for deduplication


def candidates(source: str, entry_point: str, operator: str, first_line: int = 1) -> tuple[list[Mutation], int]:
    """Every mutation ``operator`` proposes for the body of ``entry_point`` (from ``first_line`` on), and how
    many proposals could not be written as an edit that parses to the intended tree."""
    if operator not in PROPOSERS:
        raise RefereeError(f"unknown mutation operator {operator!r}; expected one of {', '.join(OPERATORS)}")
    ctx = MutationContext(_plain_newlines(source), entry_point, first_line)
    found, failed = [], 0
    for proposal in PROPOSERS[operator](ctx):
        mutation = _realise(ctx, operator, len(found) + failed, proposal)
        if mutation is None:
            failed += 1
        else:
            found.append(mutation)
    return found, failed


def _plain_newlines(source: str) -> str:
    return source.replace("\r\n", "\n").replace("\r", "\n")


def _realise(ctx: MutationContext, operator: str, index: int, proposal: Proposal) -> Mutation | None:
    """The first option whose edited text parses to the intended tree, as a Mutation; None if none does."""
    t = ctx.text
    expected: dict[int, str] = {}
    for option in proposal.options:
        new_source = t.text[:option.start] + option.text + t.text[option.end:]
        try:
            tree = ast.parse(new_source)
        except SyntaxError:
            continue
        key = id(option.new)
        if key not in expected:
            expected[key] = ctx.expected(proposal.target, option.new)
        dumped = ast.dump(tree)
        if dumped != expected[key] or dumped == ctx.original:
            continue
        return _mutation(ctx, operator, index, proposal, option, new_source, dumped)
    return None


def _mutation(ctx: MutationContext, operator: str, index: int, proposal: Proposal, option: Option, new_source: str,
              dumped: str) -> Mutation:
    t, new = ctx.text, SourceText(new_source)
    first, last = t.span(option.start, option.end)
    new_first, new_last = new.span(option.start, option.start + len(option.text))
    shown_start, shown_end = t.start(proposal.shown), t.end(proposal.shown)
    before = snippet(t.text[shown_start:shown_end])
    if option.new is None:
        description = f"In line {first}, `{before}` was removed: {proposal.why}."
    else:
        after = snippet(t.text[shown_start:option.start] + option.text + t.text[option.end:shown_end])
        lines = f"line {new_first}" if new_last <= new_first else f"lines {new_first}-{new_last}"
        description = f"In {lines}, `{before}` became `{after}`: {proposal.why}."
    return Mutation(operator, index, new_source, new_first, new_last, first, last, t.lines(first, last),
                    new.lines(new_first, new_last), description, dumped)


def snippet(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _public(name: str):
    def operator(source: str, entry_point: str, first_line: int = 1) -> list[Mutation]:
        return candidates(source, entry_point, name, first_line)[0]

    operator.__name__ = operator.__qualname__ = name
    operator.__doc__ = f"All ``{name}`` mutations of ``entry_point``'s body. " + (PROPOSERS[name].__doc__ or "")
    return operator


off_by_one = _public("off_by_one")
flip_comparison = _public("flip_comparison")
flip_boolean = _public("flip_boolean")
wrong_operator = _public("wrong_operator")
swap_arguments = _public("swap_arguments")
drop_statement = _public("drop_statement")
wrong_constant = _public("wrong_constant")
wrong_return = _public("wrong_return")
