"""The mutation operators: each lists every candidate mutation of one program as ``Proposal``s.

``off_by_one``, ``flip_comparison``, ``flip_boolean``, ``wrong_operator``, ``swap_arguments``,
``drop_statement``, ``wrong_constant`` and ``wrong_return``, each a generator over a ``MutationContext``
(``referee.programs.edits``); ``referee.programs.mutations`` turns proposals into checked edits.
"""

from __future__ import annotations

import ast
import copy
import re

from referee.programs.edits import (MutationContext, Option, Proposal, is_docstring, is_int, operator_edits,
                                    parse_expression, replace_node, writings)

OPERATORS = ("off_by_one", "flip_comparison", "flip_boolean", "wrong_operator", "swap_arguments", "drop_statement",
             "wrong_constant", "wrong_return")
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


def _propose_off_by_one(ctx: MutationContext):
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
            elif not isinstance(s, ast.Tuple) and not (isinstance(s, ast.Constant) and not is_int(s)):
                targets = [(s, "an index is off by one")]
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for i, op in enumerate(node.ops):
                ordering = isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE))
                for operand in ([operands[i]] if i == 0 and is_int(operands[0]) else []) + [operands[i + 1]]:
                    if ordering or _int_value(operand) is not None:
                        targets.append((operand, "a bound in the comparison is off by one"))
        for target, why in targets:
            for delta in (1, -1):
                new, texts = _shifted(ctx, target, delta)
                yield Proposal(target, replace_node(ctx, target, new, texts), node, why)


def _int_value(node: ast.AST) -> int | None:
    if is_int(node):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and is_int(node.operand):
        return -node.operand.value
    return None


def _shifted(ctx: MutationContext, e: ast.expr, delta: int) -> tuple[ast.expr, list[str]]:
    """``e`` + delta, folded into a constant where there is one: ``n`` -> ``n + 1``, ``i - 1`` -> ``i``."""
    t = ctx.text
    value = _int_value(e)
    if value is not None:
        return parse_expression(str(value + delta)), [str(value + delta)]
    if isinstance(e, ast.BinOp) and isinstance(e.op, (ast.Add, ast.Sub)) and is_int(e.right):
        k = e.right.value if isinstance(e.op, ast.Add) else -e.right.value
        if k + delta == 0:
            return e.left, [t.seg(e.left)]
        new = ast.BinOp(e.left, ast.Add() if k + delta > 0 else ast.Sub(), ast.Constant(abs(k + delta)))
        if (k > 0) == (k + delta > 0):
            return new, [t.text[t.start(e):t.start(e.right)] + str(abs(k + delta)) + t.text[t.end(e.right):t.end(e)]]
        return new, []
    op, sign = (ast.Add(), "+") if delta > 0 else (ast.Sub(), "-")
    return ast.BinOp(e, op, ast.Constant(1)), [f"{t.seg(e)} {sign} 1"]


def _propose_flip_comparison(ctx: MutationContext):
    """Each comparison operator turned into a plausible neighbour (< <=, < >, == !=, in / not in)."""
    for node in ctx.of(ast.Compare):
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            for new_op, why in COMPARISON_FLIPS.get(type(op), []):
                new = copy.copy(node)
                new.ops = [*node.ops[:i], new_op(), *node.ops[i + 1:]]
                options = operator_edits(ctx, node, [(operands[i], operands[i + 1])], [SYMBOLS[type(op)]],
                                         [SYMBOLS[new_op]], new)
                yield Proposal(node, options, node, why)


def _propose_flip_boolean(ctx: MutationContext):
    """and <-> or, a ``not`` dropped, a condition negated, True <-> False."""
    t = ctx.text
    for node in ctx.nodes:
        if isinstance(node, ast.BoolOp):
            new_op = ast.Or if isinstance(node.op, ast.And) else ast.And
            new = copy.copy(node)
            new.op = new_op()
            n = len(node.values) - 1
            options = operator_edits(ctx, node, list(zip(node.values, node.values[1:])),
                                     [SYMBOLS[type(node.op)]] * n, [SYMBOLS[new_op]] * n, new)
            yield Proposal(node, options, node, "the wrong boolean operator is used")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            text = t.seg(node)[3:].lstrip()  # keeps the operand's own parentheses
            shown = ctx.parents[id(node)][0] if isinstance(ctx.parents[id(node)][0], ast.expr) else node
            yield Proposal(node, replace_node(ctx, node, node.operand, [text]), shown, "a `not` was dropped")
        elif isinstance(node, (ast.If, ast.While, ast.IfExp)) and not (
                isinstance(node.test, ast.UnaryOp) and isinstance(node.test.op, ast.Not)):
            new, seg = ast.UnaryOp(ast.Not(), node.test), t.seg(node.test)
            texts = [f"not {seg}", f"not ({seg})"]
            if not isinstance(node.test, (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant)):
                texts.reverse()  # `not (a < b)` reads better than `not a < b`
            options = replace_node(ctx, node.test, new, texts)
            yield Proposal(node.test, options, node.test, "the condition is negated")
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            new = ast.Constant(not node.value)
            yield Proposal(node, replace_node(ctx, node, new, [str(not node.value)]),
                           _enclosing_expression(ctx, node), "a boolean constant is flipped")


def _enclosing_expression(ctx: MutationContext, node: ast.AST) -> ast.AST:
    """The statement or outermost expression around ``node``, for showing a one-token change in context."""
    while True:
        parent = ctx.parents[id(node)][0]
        if isinstance(parent, ast.stmt) and not isinstance(parent, (ast.If, ast.While, ast.For)):
            return parent if parent.end_lineno - parent.lineno < 2 else node
        if not isinstance(parent, ast.expr):
            return node
        node = parent


def _propose_wrong_operator(ctx: MutationContext):
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
            options = operator_edits(ctx, node, [pair], [old + suffix], [SYMBOLS[new_op] + suffix], new)
            yield Proposal(node, options, node, "the wrong operator is used")


def _propose_swap_arguments(ctx: MutationContext):
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
                    options = [Option(t.start(a), t.end(b), text, new)] + writings(
                        ctx, t.start(node), t.end(node), [], new)
                    yield Proposal(node, options, node, f"two arguments of `{name or 'the call'}` are swapped")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, NON_COMMUTATIVE) and \
                ast.dump(node.left) != ast.dump(node.right):
            new = ast.BinOp(node.right, node.op, node.left)
            a, b = node.left, node.right
            text = t.seg(b) + t.text[t.end(a):t.start(b)] + t.seg(a)
            options = [Option(t.start(a), t.end(b), text, new)] + writings(ctx, t.start(node), t.end(node), [],
                                                                           new)
            yield Proposal(node, options, node, f"the operands of `{SYMBOLS[type(node.op)]}` are swapped")


def _propose_drop_statement(ctx: MutationContext):
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
                if isinstance(stmt, NEVER_DROPPED) or (stmt is block[0] and is_docstring(stmt)) or \
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
                    options.append(Option(line_start, line_end, "", None))
                options.append(Option(start, end, "pass", ast.Pass()))
                yield Proposal(stmt, options, stmt, _drop_reason(stmt))


def _drop_reason(stmt: ast.stmt) -> str:
    if isinstance(stmt, ast.Return):
        return "a return statement is missing"
    if isinstance(stmt, (ast.If, ast.For, ast.While, ast.With, ast.Try)):
        return f"a whole `{type(stmt).__name__.lower()}` block is missing"
    return "a needed statement is missing"


def _propose_wrong_constant(ctx: MutationContext):
    """An integer constant changed: 0 -> 1, 1 -> 0, n -> n + 1."""
    for node in ctx.nodes:
        if is_int(node):
            value = {0: 1, 1: 0}.get(node.value, node.value + 1)
            yield Proposal(node, replace_node(ctx, node, ast.Constant(value), [str(value)]),
                           _enclosing_expression(ctx, node), "a constant is wrong")


def _propose_wrong_return(ctx: MutationContext):
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
            new = parse_expression(text)
            yield Proposal(value, replace_node(ctx, value, new, texts), node, why)


def _variables(ctx: MutationContext, node: ast.AST) -> list[str]:
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


PROPOSERS = {"off_by_one": _propose_off_by_one, "flip_comparison": _propose_flip_comparison,
              "flip_boolean": _propose_flip_boolean, "wrong_operator": _propose_wrong_operator,
              "swap_arguments": _propose_swap_arguments, "drop_statement": _propose_drop_statement,
              "wrong_constant": _propose_wrong_constant, "wrong_return": _propose_wrong_return}

