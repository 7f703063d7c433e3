"""Where a mutation may go in a program, and how it is written into the source text.

A mutation edits the source text of just the changed node (an operator token, an expression, a statement's
lines), so the rest of the program keeps its formatting. Each proposed mutation comes with the ``Option``s
of writing it (as given, parenthesised, else ``ast.unparse`` of the node); ``referee.programs.mutations``
keeps the first whose edited program parses to exactly the intended syntax tree, so an edit can never
change more than it says. Only the body of the function under test is in scope (never its docstring, its
signature, a prompt's helper functions, annotations or f-strings), and only from ``first_line`` on.
"""

from __future__ import annotations

import ast
import bisect
import re
from dataclasses import dataclass

from referee.errors import RefereeError

class SourceText:
    """A program's text with conversions from the AST's (line, UTF-8 byte column) to string offsets."""

    def __init__(self, text: str):
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def at(self, lineno: int, col: int) -> int:
        start = self.starts[lineno - 1]
        end = self.starts[lineno] if lineno < len(self.starts) else len(self.text)
        return start + len(self.text[start:end].encode()[:col].decode(errors="ignore"))

    def start(self, node: ast.AST) -> int:
        return self.at(node.lineno, node.col_offset)

    def end(self, node: ast.AST) -> int:
        return self.at(node.end_lineno, node.end_col_offset)

    def seg(self, node: ast.AST) -> str:
        return self.text[self.start(node):self.end(node)]

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """1-based first and last line of [start, end); an empty region at a line start is an empty span."""
        first = self.line_of(start)
        if end <= start:
            return (first, first - 1) if start == self.starts[first - 1] else (first, first)
        return first, self.line_of(end - 1)

    def lines(self, first: int, last: int) -> str:
        if last < first:
            return ""
        end = self.starts[last] if last < len(self.starts) else len(self.text)
        return self.text[self.starts[first - 1]:end].rstrip("\n")


@dataclass
class Option:
    """One way to write a proposed mutation: replace text[start:end] by ``text``, which must parse to the
    original tree with ``target`` replaced by ``new`` (None: ``target``, a statement, removed)."""

    start: int
    end: int
    text: str
    new: ast.AST | None


@dataclass
class Proposal:
    target: ast.AST
    options: list[Option]
    shown: ast.AST  # the node whose text the description shows, before and after
    why: str


class MutationContext:
    """The parsed program, the nodes that may be mutated (in source order) and each node's parent."""

    def __init__(self, source: str, entry_point: str, first_line: int = 1):
        self.text = SourceText(source)
        self.tree = ast.parse(source)
        self.original = ast.dump(self.tree)
        self.func = entry_function(self.tree, entry_point)
        self.first_line = first_line
        self.parents: dict[int, tuple[ast.AST, str, int | None]] = {}
        for parent in ast.walk(self.tree):
            for name, value in ast.iter_fields(parent):
                for i, child in (enumerate(value) if isinstance(value, list) else [(None, value)]):
                    if isinstance(child, ast.AST):
                        self.parents[id(child)] = (parent, name, i)
        self.nodes: list[ast.AST] = []
        for stmt in without_docstring(self.func.body):
            self._collect(stmt)
        self.nodes.sort(key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0)))

    def _collect(self, node: ast.AST) -> None:
        """Nodes in scope: not in f-strings (their positions are unreliable before 3.12), annotations or
        docstrings of nested functions, and not above ``first_line``."""
        if isinstance(node, ast.JoinedStr):
            return
        if getattr(node, "lineno", self.first_line) >= self.first_line:
            self.nodes.append(node)
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns"):
                continue
            if name == "body" and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                value = without_docstring(value)
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, ast.AST):
                    self._collect(child)

    def of(self, kind) -> list:
        return [n for n in self.nodes if isinstance(n, kind)]

    def expected(self, target: ast.AST, new: ast.AST | None) -> str:
        """ast.dump of the program with ``target`` replaced by ``new`` (None: removed from its list, ``pass``
        put in its place if the list would be empty)."""
        parent, name, i = self.parents[id(target)]
        old = getattr(parent, name)
        if i is None:
            setattr(parent, name, new)
        else:
            items = list(old)
            if new is None:
                del items[i]
            else:
                items[i] = new
            setattr(parent, name, items or [ast.Pass()])
        try:
            return ast.dump(self.tree)
        finally:
            setattr(parent, name, old)


def entry_function(tree: ast.Module, entry_point: str) -> ast.FunctionDef:
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point:
            return node
    raise RefereeError(f"no top-level function named {entry_point!r} to tamper with")


def is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def without_docstring(body: list) -> list:
    return body[1:] if body and is_docstring(body[0]) else body


def is_int(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


def parse_expression(text: str) -> ast.expr:
    return ast.parse(text, mode="eval").body


def writings(ctx: MutationContext, start: int, end: int, texts: list[str], new: ast.AST) -> list[Option]:
    """The texts to try for replacing [start, end) by ``new``: as given, parenthesised, then ast.unparse."""
    tried, options = set(), []
    rendered = ast.unparse(new)
    for text in [*texts, *(f"({t})" for t in texts), rendered, f"({rendered})"]:
        if text not in tried:
            tried.add(text)
            options.append(Option(start, end, text, new))
    return options


def replace_node(ctx: MutationContext, target: ast.AST, new: ast.AST, texts: list[str]) -> list[Option]:
    return writings(ctx, ctx.text.start(target), ctx.text.end(target), texts, new)


def _swap_token(gap: str, old: str, new: str) -> str | None:
    """``gap`` (the text between two operands: the operator, spaces, parentheses) with operator ``old``
    written as ``new``; None when the gap holds anything else (a comment)."""
    pattern = r"\s+".join(re.escape(w) for w in old.split())
    if old[0].isalpha():
        pattern = rf"\b{pattern}\b"
    found = list(re.finditer(pattern, gap))
    if len(found) != 1 or not re.fullmatch(r"[\s()\\]*", gap[:found[0].start()] + gap[found[0].end():]):
        return None
    before, after = gap[:found[0].start()], gap[found[0].end():]
    if new[0].isalpha():
        new = ("" if before[-1:].isspace() else " ") + new + ("" if after[:1].isspace() else " ")
    return before + new + after


def operator_edits(ctx: MutationContext, node: ast.AST, pairs: list[tuple[ast.AST, ast.AST]], old: list[str],
                   new_symbols: list[str], new: ast.AST) -> list[Option]:
    """Rewrite the operator tokens between each (left, right) pair of operands inside ``node``; if that
    fails, write the whole node again."""
    t = ctx.text
    start, end = t.start(node), t.end(node)
    pieces, cursor = [], start
    for (left, right), old_symbol, new_symbol in zip(pairs, old, new_symbols):
        gap_start, gap_end = t.end(left), t.start(right)
        swapped = _swap_token(t.text[gap_start:gap_end], old_symbol, new_symbol)
        if swapped is None:
            return writings(ctx, start, end, [], new)
        pieces += [t.text[cursor:gap_start], swapped]
        cursor = gap_end
    text = "".join(pieces) + t.text[cursor:end]
    return [Option(start, end, text, new)] + writings(ctx, start, end, [], new)
