"""Programmatic bug insertion ("tampering") for training and measuring critics.

Each mutation operator (``off_by_one``, ``flip_comparison``, ``flip_boolean``, ``wrong_operator``,
``swap_arguments``, ``drop_statement``, ``wrong_constant``, ``wrong_return``) lists every candidate
mutation of one program. Only the body of the function under test is mutated (never its docstring, its
signature, a prompt's helper functions, annotations or f-strings), and only from ``first_line`` on (for
HumanEval: the canonical solution, not the prompt).

A mutation edits the source text of just the changed node (an operator token, an expression, a statement's
lines), so the rest of the program keeps its formatting; the edit is kept only when the edited program
parses to exactly the intended syntax tree (else parenthesised, else ``ast.unparse`` of the node is tried),
so an edit can never change more than it says.

``tamper`` keeps a mutation only when the tampered program's tests FAIL in the sandbox: a mutation the tests
cannot see (dead code, an equivalent change) is no bug a critic could be asked to find, and is counted as
rejected. Candidates are shuffled with a seeded RNG per program, tried round-robin over operators, at most
one per operator until each operator had its turn (diversity), at most ``max_tries`` sandbox runs and
``per_program`` kept mutations per program, deduplicated by their syntax tree.

Records give the changed line span in the tampered program (``line_start``..``line_end``, 1-based) and in
the original (``original_line_start``..``original_line_end``); a removed statement leaves an empty span in
the tampered program (``line_end == line_start - 1``, ``line_start`` being the line that now follows it).
``natural_bugs`` gives QuixBugs' real one-line bugs as records of the same shape (operator "natural").
"""

from __future__ import annotations

import ast
import bisect
import copy
import difflib
import io
import math
import random
import re
import time
import tokenize
from dataclasses import dataclass, replace
from pathlib import Path

from referee.errors import RefereeError
from referee.programs.datasets import DEFAULT_LIMITS, Program, check_programs, load_quixbugs, run_tests
from referee.programs.sandbox import Limits

OPERATORS = ("off_by_one", "flip_comparison", "flip_boolean", "wrong_operator", "swap_arguments", "drop_statement",
             "wrong_constant", "wrong_return")
MAX_TRIES = 30  # sandbox runs per program
MIN_TIMEOUT_S = 3.0  # per-program timeout: this, or 5x the correct program's test time if longer
MAX_DROPPED_LINES = 3  # drop_statement removes statements of at most this many lines (a guard, not a whole loop)

SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
           ast.LShift: "<<", ast.RShift: ">>", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.Lt: "<",
           ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.In: "in",
           ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.And: "and", ast.Or: "or"}
COMPARISON_FLIPS = {
    ast.Lt: [(ast.LtE, "the comparison is no longer strict"), (ast.Gt, "the comparison points the wrong way")],
    ast.LtE: [(ast.Lt, "the comparison became strict"), (ast.GtE, "the comparison points the wrong way")],
    ast.Gt: [(ast.GtE, "the comparison is no longer strict"), (ast.Lt, "the comparison points the wrong way")],
    ast.GtE: [(ast.Gt, "the comparison became strict"), (ast.LtE, "the comparison points the wrong way")],
    ast.Eq: [(ast.NotEq, "the equality test is negated")], ast.NotEq: [(ast.Eq, "the equality test is negated")],
    ast.In: [(ast.NotIn, "the membership test is negated")],
    ast.NotIn: [(ast.In, "the membership test is negated")],
    ast.Is: [(ast.IsNot, "the identity test is negated")], ast.IsNot: [(ast.Is, "the identity test is negated")],
}
OPERATOR_SWAPS = {ast.Add: [ast.Sub], ast.Sub: [ast.Add], ast.Mult: [ast.Add, ast.FloorDiv],
                  ast.Div: [ast.FloorDiv, ast.Mult], ast.FloorDiv: [ast.Div, ast.Mod], ast.Mod: [ast.FloorDiv],
                  ast.Pow: [ast.Mult], ast.LShift: [ast.RShift], ast.RShift: [ast.LShift],
                  ast.BitAnd: [ast.BitOr, ast.BitXor], ast.BitOr: [ast.BitAnd], ast.BitXor: [ast.BitOr]}
NON_COMMUTATIVE = (ast.Sub, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.LShift, ast.RShift)
SYMMETRIC_CALLS = {"max", "min", "print"}  # swapping their arguments changes nothing a test sees
NUMERIC_CALLS = {"len", "sum", "abs", "int", "round", "float", "max", "min", "pow"}
BOOLEAN_CALLS = {"isinstance", "all", "any", "callable", "hasattr", "bool"}
NEVER_DROPPED = (ast.Pass, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom,
                 ast.Global, ast.Nonlocal)


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


# ---------------------------------------------------------------------------------------------------------
# Source text and the part of the tree that may be mutated


class _Text:
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
class _Option:
    """One way to write a proposed mutation: replace text[start:end] by ``text``, which must parse to the
    original tree with ``target`` replaced by ``new`` (None: ``target``, a statement, removed)."""

    start: int
    end: int
    text: str
    new: ast.AST | None


@dataclass
class _Proposal:
    target: ast.AST
    options: list[_Option]
    shown: ast.AST  # the node whose text the description shows, before and after
    why: str


class _Context:
    """The parsed program, the nodes that may be mutated (in source order) and each node's parent."""

    def __init__(self, source: str, entry_point: str, first_line: int = 1):
        self.text = _Text(source)
        self.tree = ast.parse(source)
        self.original = ast.dump(self.tree)
        self.func = _entry_function(self.tree, entry_point)
        self.first_line = first_line
        self.parents: dict[int, tuple[ast.AST, str, int | None]] = {}
        for parent in ast.walk(self.tree):
            for name, value in ast.iter_fields(parent):
                for i, child in (enumerate(value) if isinstance(value, list) else [(None, value)]):
                    if isinstance(child, ast.AST):
                        self.parents[id(child)] = (parent, name, i)
        self.nodes: list[ast.AST] = []
        for stmt in _without_docstring(self.func.body):
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
                value = _without_docstring(value)
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


def _entry_function(tree: ast.Module, entry_point: str) -> ast.FunctionDef:
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point:
            return node
    raise RefereeError(f"no top-level function named {entry_point!r} to tamper with")


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _without_docstring(body: list) -> list:
    return body[1:] if body and _is_docstring(body[0]) else body


def _is_int(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


def _expr(text: str) -> ast.expr:
    return ast.parse(text, mode="eval").body


def _writings(ctx: _Context, start: int, end: int, texts: list[str], new: ast.AST) -> list[_Option]:
    """The texts to try for replacing [start, end) by ``new``: as given, parenthesised, then ast.unparse."""
    tried, options = set(), []
    rendered = ast.unparse(new)
    for text in [*texts, *(f"({t})" for t in texts), rendered, f"({rendered})"]:
        if text not in tried:
            tried.add(text)
            options.append(_Option(start, end, text, new))
    return options


def _replace_node(ctx: _Context, target: ast.AST, new: ast.AST, texts: list[str]) -> list[_Option]:
    return _writings(ctx, ctx.text.start(target), ctx.text.end(target), texts, new)


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


def _operator_options(ctx: _Context, node: ast.AST, pairs: list[tuple[ast.AST, ast.AST]], old: list[str],
                      new_symbols: list[str], new: ast.AST) -> list[_Option]:
    """Rewrite the operator tokens between each (left, right) pair of operands inside ``node``; if that
    fails, write the whole node again."""
    t = ctx.text
    start, end = t.start(node), t.end(node)
    pieces, cursor = [], start
    for (left, right), old_symbol, new_symbol in zip(pairs, old, new_symbols):
        gap_start, gap_end = t.end(left), t.start(right)
        swapped = _swap_token(t.text[gap_start:gap_end], old_symbol, new_symbol)
        if swapped is None:
            return _writings(ctx, start, end, [], new)
        pieces += [t.text[cursor:gap_start], swapped]
        cursor = gap_end
    text = "".join(pieces) + t.text[cursor:end]
    return [_Option(start, end, text, new)] + _writings(ctx, start, end, [], new)


# ---------------------------------------------------------------------------------------------------------
# The operators: each yields proposals; ``mutations`` turns them into checked edits


def _propose_off_by_one(ctx: _Context):
    """Bounds and indexes +/- 1: range() arguments, subscripts and slice bounds, ordering comparisons'
    bounds and integers compared for equality."""
    for node in ctx.nodes:
        targets = []
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
            targets = [(a, "a range bound is off by one") for a in node.args[:2] if not isinstance(a, ast.Starred)]
        elif isinstance(node, ast.Subscript):
            s = node.slice
            if isinstance(s, ast.Slice):
                targets = [(b, "a slice bound is off by one") for b in (s.lower, s.upper) if b is not None]
            elif not isinstance(s, ast.Tuple) and not (isinstance(s, ast.Constant) and not _is_int(s)):
                targets = [(s, "an index is off by one")]
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for i, op in enumerate(node.ops):
                ordering = isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE))
                for operand in ([operands[i]] if i == 0 and _is_int(operands[0]) else []) + [operands[i + 1]]:
                    if ordering or _int_value(operand) is not None:
                        targets.append((operand, "a bound in the comparison is off by one"))
        for target, why in targets:
            for delta in (1, -1):
                new, texts = _shifted(ctx, target, delta)
                yield _Proposal(target, _replace_node(ctx, target, new, texts), node, why)


def _int_value(node: ast.AST) -> int | None:
    if _is_int(node):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and _is_int(node.operand):
        return -node.operand.value
    return None


def _shifted(ctx: _Context, e: ast.expr, delta: int) -> tuple[ast.expr, list[str]]:
    """``e`` + delta, folded into a constant where there is one: ``n`` -> ``n + 1``, ``i - 1`` -> ``i``."""
    t = ctx.text
    value = _int_value(e)
    if value is not None:
        return _expr(str(value + delta)), [str(value + delta)]
    if isinstance(e, ast.BinOp) and isinstance(e.op, (ast.Add, ast.Sub)) and _is_int(e.right):
        k = e.right.value if isinstance(e.op, ast.Add) else -e.right.value
        if k + delta == 0:
            return e.left, [t.seg(e.left)]
        new = ast.BinOp(e.left, ast.Add() if k + delta > 0 else ast.Sub(), ast.Constant(abs(k + delta)))
        if (k > 0) == (k + delta > 0):
            return new, [t.text[t.start(e):t.start(e.right)] + str(abs(k + delta)) + t.text[t.end(e.right):t.end(e)]]
        return new, []
    op, sign = (ast.Add(), "+") if delta > 0 else (ast.Sub(), "-")
    return ast.BinOp(e, op, ast.Constant(1)), [f"{t.seg(e)} {sign} 1"]


def _propose_flip_comparison(ctx: _Context):
    """Each comparison operator turned into a plausible neighbour (< <=, < >, == !=, in / not in)."""
    for node in ctx.of(ast.Compare):
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            for new_op, why in COMPARISON_FLIPS.get(type(op), []):
                new = copy.copy(node)
                new.ops = [*node.ops[:i], new_op(), *node.ops[i + 1:]]
                options = _operator_options(ctx, node, [(operands[i], operands[i + 1])], [SYMBOLS[type(op)]],
                                            [SYMBOLS[new_op]], new)
                yield _Proposal(node, options, node, why)


def _propose_flip_boolean(ctx: _Context):
    """and <-> or, a ``not`` dropped, a condition negated, True <-> False."""
    t = ctx.text
    for node in ctx.nodes:
        if isinstance(node, ast.BoolOp):
            new_op = ast.Or if isinstance(node.op, ast.And) else ast.And
            new = copy.copy(node)
            new.op = new_op()
            n = len(node.values) - 1
            options = _operator_options(ctx, node, list(zip(node.values, node.values[1:])),
                                        [SYMBOLS[type(node.op)]] * n, [SYMBOLS[new_op]] * n, new)
            yield _Proposal(node, options, node, "the wrong boolean operator is used")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            text = t.seg(node)[3:].lstrip()  # keeps the operand's own parentheses
            shown = ctx.parents[id(node)][0] if isinstance(ctx.parents[id(node)][0], ast.expr) else node
            yield _Proposal(node, _replace_node(ctx, node, node.operand, [text]), shown, "a `not` was dropped")
        elif isinstance(node, (ast.If, ast.While, ast.IfExp)) and not (
                isinstance(node.test, ast.UnaryOp) and isinstance(node.test.op, ast.Not)):
            new, seg = ast.UnaryOp(ast.Not(), node.test), t.seg(node.test)
            texts = [f"not {seg}", f"not ({seg})"]
            if not isinstance(node.test, (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant)):
                texts.reverse()  # `not (a < b)` reads better than `not a < b`
            options = _replace_node(ctx, node.test, new, texts)
            yield _Proposal(node.test, options, node.test, "the condition is negated")
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            new = ast.Constant(not node.value)
            yield _Proposal(node, _replace_node(ctx, node, new, [str(not node.value)]),
                            _enclosing_expression(ctx, node), "a boolean constant is flipped")


def _enclosing_expression(ctx: _Context, node: ast.AST) -> ast.AST:
    """The statement or outermost expression around ``node``, for showing a one-token change in context."""
    while True:
        parent = ctx.parents[id(node)][0]
        if isinstance(parent, ast.stmt) and not isinstance(parent, (ast.If, ast.While, ast.For)):
            return parent if parent.end_lineno - parent.lineno < 2 else node
        if not isinstance(parent, ast.expr):
            return node
        node = parent


def _propose_wrong_operator(ctx: _Context):
    """Arithmetic and bitwise operators swapped plausibly (+ -, * +, / //, // %, & | ^, << >>), in
    expressions and augmented assignments."""
    for node in ctx.nodes:
        if isinstance(node, ast.BinOp):
            pair, old = (node.left, node.right), SYMBOLS.get(type(node.op))
            suffix = ""
        elif isinstance(node, ast.AugAssign):
            pair, old = (node.target, node.value), SYMBOLS.get(type(node.op))
            suffix = "="
        else:
            continue
        for new_op in OPERATOR_SWAPS.get(type(node.op), []):
            new = copy.copy(node)
            new.op = new_op()
            options = _operator_options(ctx, node, [pair], [old + suffix], [SYMBOLS[new_op] + suffix], new)
            yield _Proposal(node, options, node, "the wrong operator is used")


def _propose_swap_arguments(ctx: _Context):
    """Two positional arguments of a call swapped, or the operands of a non-commutative operator."""
    t = ctx.text
    for node in ctx.nodes:
        if isinstance(node, ast.Call) and len(node.args) >= 2 and not any(
                isinstance(a, ast.Starred) for a in node.args):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name in SYMMETRIC_CALLS:
                continue
            args = node.args[:4]
            for i in range(len(args)):
                for j in range(i + 1, len(args)):
                    a, b = args[i], args[j]
                    if ast.dump(a) == ast.dump(b):
                        continue
                    new = copy.copy(node)
                    new.args = list(node.args)
                    new.args[i], new.args[j] = b, a
                    text = t.seg(b) + t.text[t.end(a):t.start(b)] + t.seg(a)
                    options = [_Option(t.start(a), t.end(b), text, new)] + _writings(
                        ctx, t.start(node), t.end(node), [], new)
                    yield _Proposal(node, options, node, f"two arguments of `{name or 'the call'}` are swapped")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, NON_COMMUTATIVE) and \
                ast.dump(node.left) != ast.dump(node.right):
            new = ast.BinOp(node.right, node.op, node.left)
            a, b = node.left, node.right
            text = t.seg(b) + t.text[t.end(a):t.start(b)] + t.seg(a)
            options = [_Option(t.start(a), t.end(b), text, new)] + _writings(ctx, t.start(node), t.end(node), [],
                                                                              new)
            yield _Proposal(node, options, node, f"the operands of `{SYMBOLS[type(node.op)]}` are swapped")


def _propose_drop_statement(ctx: _Context):
    """One statement removed (its whole lines), or replaced by ``pass`` where its block would be empty or it
    shares a line. Never a docstring, ``pass``, import, definition, or a compound statement of more than
    ``MAX_DROPPED_LINES`` lines."""
    t = ctx.text
    for owner in [ctx.func, *ctx.nodes]:
        for name in ("body", "orelse", "finalbody"):
            block = getattr(owner, name, None)
            if not isinstance(block, list) or not block or not isinstance(block[0], ast.stmt):
                continue
            for stmt in block:
                if isinstance(stmt, NEVER_DROPPED) or (stmt is block[0] and _is_docstring(stmt)) or \
                        stmt.lineno < ctx.first_line or stmt.end_lineno - stmt.lineno >= MAX_DROPPED_LINES:
                    continue
                start, end = t.start(stmt), t.end(stmt)
                if t.text.startswith("elif", start):
                    continue  # an `elif` clause is not a statement of its own in the text; its body's are
                options = []
                line_start = t.starts[stmt.lineno - 1]
                line_end = t.starts[stmt.end_lineno] if stmt.end_lineno < len(t.starts) else len(t.text)
                alone = not t.text[line_start:start].strip() and re.fullmatch(r"\s*(#.*)?\n?", t.text[end:line_end])
                if len(block) > 1 and alone:
                    options.append(_Option(line_start, line_end, "", None))
                options.append(_Option(start, end, "pass", ast.Pass()))
                yield _Proposal(stmt, options, stmt, _drop_reason(stmt))


def _drop_reason(stmt: ast.stmt) -> str:
    if isinstance(stmt, ast.Return):
        return "a return statement is missing"
    if isinstance(stmt, (ast.If, ast.For, ast.While, ast.With, ast.Try)):
        return f"a whole `{type(stmt).__name__.lower()}` block is missing"
    return "a needed statement is missing"


def _propose_wrong_constant(ctx: _Context):
    """An integer constant changed: 0 -> 1, 1 -> 0, n -> n + 1."""
    for node in ctx.nodes:
        if _is_int(node):
            value = {0: 1, 1: 0}.get(node.value, node.value + 1)
            yield _Proposal(node, _replace_node(ctx, node, ast.Constant(value), [str(value)]),
                            _enclosing_expression(ctx, node), "a constant is wrong")


def _propose_wrong_return(ctx: _Context):
    """A returned value replaced by another variable of the same function, its negation, or None."""
    t = ctx.text
    for node in ctx.of(ast.Return):
        value = node.value
        if value is None or (isinstance(value, ast.Constant) and value.value is None):
            continue
        shown = t.seg(value)
        choices = [(name, [name], "the wrong variable is returned") for name in _variables(ctx, node)
                   if name != shown][:3]
        if _looks_boolean(value):
            if isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.Not):
                choices.append((t.seg(value.operand), [shown[3:].lstrip()], "the returned condition is negated"))
            else:
                simple = isinstance(value, (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant))
                choices.append((f"not ({shown})", [f"not {shown}" if simple else f"not ({shown})"],
                                "the returned condition is negated"))
        elif _looks_numeric(value):
            choices.append((f"-({shown})", [f"-{shown}"], "the returned value is negated"))
        choices.append(("None", ["None"], "None is returned instead of the result"))
        for text, texts, why in choices:
            new = _expr(text)
            yield _Proposal(value, _replace_node(ctx, value, new, texts), node, why)


def _variables(ctx: _Context, node: ast.AST) -> list[str]:
    """Parameters and assigned names of the function around ``node`` (not of nested functions or
    comprehensions), in order of appearance."""
    func = node
    while not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
        func = ctx.parents[id(func)][0]
    a = func.args
    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg) if x is not None]
    stack = list(reversed(func.body))
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ListComp,
                          ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.id not in names:
            names.append(n.id)
        stack.extend(reversed([c for c in ast.iter_child_nodes(n)]))
    return names


def _looks_boolean(node: ast.AST) -> bool:
    if isinstance(node, (ast.Compare, ast.BoolOp)) or (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
        return True
    if isinstance(node, ast.Constant):
        return isinstance(node.value, bool)
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in BOOLEAN_CALLS


def _looks_numeric(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return type(node.value) in (int, float)
    if isinstance(node, ast.BinOp):
        return not isinstance(node.op, ast.Mod)  # "%" is string formatting too
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in NUMERIC_CALLS


_PROPOSERS = {"off_by_one": _propose_off_by_one, "flip_comparison": _propose_flip_comparison,
              "flip_boolean": _propose_flip_boolean, "wrong_operator": _propose_wrong_operator,
              "swap_arguments": _propose_swap_arguments, "drop_statement": _propose_drop_statement,
              "wrong_constant": _propose_wrong_constant, "wrong_return": _propose_wrong_return}


def candidates(source: str, entry_point: str, operator: str, first_line: int = 1) -> tuple[list[Mutation], int]:
    """Every mutation ``operator`` proposes for the body of ``entry_point`` (from ``first_line`` on), and how
    many proposals could not be written as an edit that parses to the intended tree."""
    if operator not in _PROPOSERS:
        raise RefereeError(f"unknown mutation operator {operator!r}; expected one of {', '.join(OPERATORS)}")
    ctx = _Context(_plain_newlines(source), entry_point, first_line)
    found, failed = [], 0
    for proposal in _PROPOSERS[operator](ctx):
        mutation = _realise(ctx, operator, len(found) + failed, proposal)
        if mutation is None:
            failed += 1
        else:
            found.append(mutation)
    return found, failed


def _plain_newlines(source: str) -> str:
    return source.replace("\r\n", "\n").replace("\r", "\n")


def _realise(ctx: _Context, operator: str, index: int, proposal: _Proposal) -> Mutation | None:
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


def _mutation(ctx: _Context, operator: str, index: int, proposal: _Proposal, option: _Option, new_source: str,
              dumped: str) -> Mutation:
    t, new = ctx.text, _Text(new_source)
    first, last = t.span(option.start, option.end)
    new_first, new_last = new.span(option.start, option.start + len(option.text))
    shown_start, shown_end = t.start(proposal.shown), t.end(proposal.shown)
    before = _snippet(t.text[shown_start:shown_end])
    if option.new is None:
        description = f"In line {first}, `{before}` was removed: {proposal.why}."
    else:
        after = _snippet(t.text[shown_start:option.start] + option.text + t.text[option.end:shown_end])
        lines = f"line {new_first}" if new_last <= new_first else f"lines {new_first}-{new_last}"
        description = f"In {lines}, `{before}` became `{after}`: {proposal.why}."
    return Mutation(operator, index, new_source, new_first, new_last, first, last, t.lines(first, last),
                    new.lines(new_first, new_last), description, dumped)


def _snippet(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _public(name: str):
    def operator(source: str, entry_point: str, first_line: int = 1) -> list[Mutation]:
        return candidates(source, entry_point, name, first_line)[0]

    operator.__name__ = operator.__qualname__ = name
    operator.__doc__ = f"All ``{name}`` mutations of ``entry_point``'s body. " + (_PROPOSERS[name].__doc__ or "")
    return operator


off_by_one = _public("off_by_one")
flip_comparison = _public("flip_comparison")
flip_boolean = _public("flip_boolean")
wrong_operator = _public("wrong_operator")
swap_arguments = _public("swap_arguments")
drop_statement = _public("drop_statement")
wrong_constant = _public("wrong_constant")
wrong_return = _public("wrong_return")


# ---------------------------------------------------------------------------------------------------------
# Tampering programs, checked against their tests


def tamper(programs: list[Program], seed: int = 0, per_program: int = 3, operators=OPERATORS,
           limits: Limits | None = None, max_tries: int = MAX_TRIES, on_program=None) -> tuple[list[dict], dict]:
    """Tampered versions of each program whose tests fail (module doc), and a report of what was tried.

    Programs whose correct version fails its own tests are skipped and listed in the report, never counted.
    ``on_program(program)`` is called after each program is checked and after each is tampered (progress).
    """
    operators = _check_operators(operators)
    if per_program < 1 or max_tries < 1:
        raise RefereeError("per_program and max_tries should be at least 1")
    started = time.monotonic()
    passing, failing = check_programs(programs, limits, on_program)
    counts = {op: dict.fromkeys(("candidates", "unparseable", "tried", "duplicates", "kept", "rejected_tests_passed",
                                 "timed_out"), 0) for op in operators}
    records, without = [], []
    for program in passing:
        kept = _tamper_one(program, seed, per_program, operators, _program_limits(program, limits), max_tries,
                           counts)
        records += kept
        if on_program is not None:
            on_program(program)
        if not kept:
            without.append(program.id)
    tried = sum(c["tried"] for c in counts.values())
    rejected = sum(c["rejected_tests_passed"] for c in counts.values())
    report = {"programs": len(programs), "tampered": len(passing) - len(without), "records": len(records),
              "skipped_failing_own_tests": failing, "without_mutation": without, "operators": counts,
              "tried": tried, "rejected_tests_passed": rejected,
              "rejected_share_tests_passed": round(rejected / tried, 4) if tried else None,
              "seed": seed, "per_program": per_program, "seconds": round(time.monotonic() - started, 1)}
    return records, report


def _check_operators(operators) -> tuple[str, ...]:
    names = tuple(op if isinstance(op, str) else getattr(op, "__name__", "") for op in operators)
    unknown = [n for n in names if n not in _PROPOSERS]
    if unknown or not names:
        raise RefereeError(f"unknown mutation operator(s) {unknown}; expected some of {', '.join(OPERATORS)}")
    return names


def _program_limits(program: Program, limits: Limits | None) -> Limits:
    """A per-program timeout: 5x the correct program's test time, at least MIN_TIMEOUT_S, at most the
    limit given; so a mutation that loops forever costs seconds, not the whole limit."""
    base = limits or DEFAULT_LIMITS
    seconds = program.meta.get("test_seconds")
    if seconds is None:
        return base
    timeout = min(base.timeout_s, max(MIN_TIMEOUT_S, 5 * seconds))
    return replace(base, timeout_s=timeout, cpu_s=max(1, min(base.cpu_s, math.ceil(timeout))))


def _tamper_one(program: Program, seed: int, per_program: int, operators: tuple[str, ...], limits: Limits,
                max_tries: int, counts: dict) -> list[dict]:
    rng = random.Random(f"referee-tamper:{seed}:{program.id}")
    first_line = program.meta.get("editable_from_line", 1)
    pools = {}
    for op in operators:
        try:
            found, failed = candidates(program.source, program.entry_point, op, first_line)
        except RefereeError as e:
            raise RefereeError(f"{program.id}: {e}") from None
        counts[op]["candidates"] += len(found)
        counts[op]["unparseable"] += failed
        rng.shuffle(found)
        pools[op] = found
    order = list(operators)
    rng.shuffle(order)
    queue = _round_robin([pools[op] for op in order])
    kept, kept_ops, done, seen, tries = [], set(), set(), {ast.dump(ast.parse(program.source))}, 0
    for diverse in (True, False):
        for i, mutation in enumerate(queue):
            if len(kept) >= per_program or tries >= max_tries:
                break
            if i in done or (diverse and mutation.operator in kept_ops):
                continue
            done.add(i)
            if mutation.normalised in seen:
                counts[mutation.operator]["duplicates"] += 1
                continue
            seen.add(mutation.normalised)
            tries += 1
            counts[mutation.operator]["tried"] += 1
            outcome = run_tests(mutation.source, program.tests, limits)
            if outcome["passed"]:
                counts[mutation.operator]["rejected_tests_passed"] += 1
                continue
            counts[mutation.operator]["kept"] += 1
            counts[mutation.operator]["timed_out"] += outcome["timed_out"]
            kept_ops.add(mutation.operator)
            kept.append(_record(program, mutation, outcome, seed))
    return kept


def _round_robin(pools: list[list]) -> list:
    out = []
    for i in range(max((len(p) for p in pools), default=0)):
        out += [p[i] for p in pools if i < len(p)]
    return out


def _record(program: Program, m: Mutation, outcome: dict, seed: int) -> dict:
    return {"id": f"{program.id}/{m.operator}/{m.index}", "program_id": program.id, "origin": program.origin,
            "entry_point": program.entry_point, "operator": m.operator, "line_start": m.line_start,
            "line_end": m.line_end, "original_line_start": m.original_line_start,
            "original_line_end": m.original_line_end, "original_code": m.original_code,
            "tampered_code": m.tampered_code, "description": m.description, "source": m.source,
            "tests_failed_with": outcome["error"], "timed_out": outcome["timed_out"], "seed": seed}


# ---------------------------------------------------------------------------------------------------------
# QuixBugs' real bugs


def natural_bugs(folder: str | Path, limits: Limits | None = None, limit: int | None = None) -> tuple[list[dict], dict]:
    """QuixBugs' buggy programs (those with JSON cases) as records shaped like ``tamper``'s, the changed
    lines found by diffing the function's code (comments and blank lines aside) against the correct one.
    Only bugs the tests catch are records; the report lists the others, and the programs without cases."""
    started = time.monotonic()
    correct, skipped = load_quixbugs(folder, "correct", limit)
    buggy = {p.id: p for p in load_quixbugs(folder, "buggy", limit)[0]}
    records, passing_anyway, several_hunks = [], [], []
    correct, failing = check_programs(correct, limits)  # for per-program timeouts; a failing one is no reference
    for good in correct:
        bad = buggy.get(good.id)
        if bad is None:
            raise RefereeError(f"{folder}: no buggy version of {good.entry_point} in python_programs/")
        (first, last), (new_first, new_last), hunks = changed_lines(good.source, bad.source, good.entry_point)
        if hunks > 1:
            several_hunks.append(good.id)
        outcome = run_tests(bad.source, bad.tests, _program_limits(good, limits))
        if outcome["passed"]:
            passing_anyway.append(good.id)
            continue
        before, after = _Text(good.source), _Text(bad.source)
        original_code, tampered_code = before.lines(first, last), after.lines(new_first, new_last)
        where = f"line {new_first}" if new_last <= new_first else f"lines {new_first}-{new_last}"
        if not tampered_code:
            description = f"Before line {new_first}, `{_snippet(original_code)}` was removed: "
        elif not original_code:
            description = f"In {where}, `{_snippet(tampered_code)}` was added: "
        else:
            description = f"In {where}, `{_snippet(original_code)}` became `{_snippet(tampered_code)}`: "
        description += "a real one-line bug from QuixBugs."
        records.append({"id": f"{good.id}/natural/0", "program_id": good.id, "origin": "quixbugs",
                        "entry_point": good.entry_point, "operator": "natural", "line_start": new_first,
                        "line_end": new_last, "original_line_start": first, "original_line_end": last,
                        "original_code": original_code, "tampered_code": tampered_code, "description": description,
                        "source": bad.source, "tests_failed_with": outcome["error"],
                        "timed_out": outcome["timed_out"], "seed": None})
    report = {"programs": len(correct) + len(failing), "records": len(records), "tests_pass_anyway": passing_anyway,
              "skipped_failing_own_tests": failing,
              "several_hunks": several_hunks, "skipped_without_cases": skipped,
              "seconds": round(time.monotonic() - started, 1)}
    return records, report


def changed_lines(correct: str, buggy: str, entry_point: str) -> tuple[tuple[int, int], tuple[int, int], int]:
    """The lines of ``entry_point`` that differ between two versions, comments, blank lines and trailing
    spaces aside: ((first, last) in correct, (first, last) in buggy, number of separate changes). An
    empty span (last = first - 1) is a line one version lacks, placed where it would be."""
    a_lines, a_numbers = _code_lines(correct, entry_point)
    b_lines, b_numbers = _code_lines(buggy, entry_point)
    hunks = [op for op in difflib.SequenceMatcher(None, a_lines, b_lines, autojunk=False).get_opcodes()
             if op[0] != "equal"]
    if not hunks:
        raise RefereeError(f"{entry_point}: the two versions have the same code")
    i1, j1 = hunks[0][1], hunks[0][3]
    i2, j2 = hunks[-1][2], hunks[-1][4]
    return _number_span(a_numbers, i1, i2), _number_span(b_numbers, j1, j2), len(hunks)


def _number_span(numbers: list[int], i: int, j: int) -> tuple[int, int]:
    if j > i:
        return numbers[i], numbers[j - 1]
    at = numbers[i] if i < len(numbers) else numbers[-1] + 1
    return at, at - 1


def _code_lines(source: str, entry_point: str) -> tuple[list[str], list[int]]:
    """The function's non-blank lines with comments and trailing spaces removed, and their line numbers."""
    func = _entry_function(ast.parse(source), entry_point)
    comments = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.start[1]
    lines, numbers = [], []
    all_lines = source.splitlines()
    for number in range(func.lineno, func.end_lineno + 1):
        line = all_lines[number - 1]
        line = line[:comments[number]] if number in comments else line
        if line.strip():
            lines.append(line.rstrip())
            numbers.append(number)
    return lines, numbers
