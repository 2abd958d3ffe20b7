"""Safe arithmetic expressions, compiled to functions of torch tensors.

``parse_expression("(w-3)**2")`` returns an :class:`Expression`: a callable that takes
one tensor per variable and returns ``L`` built from torch ops, so autograd gives its
gradient. The text is never passed to ``eval`` or ``exec``. It goes through

1. a bounded scan: at most ``MAX_LENGTH`` characters and ``MAX_NESTING`` levels of
   brackets, checked *before* ``ast.parse`` so hostile input cannot exhaust the C stack;
2. ``ast.parse(mode="eval")`` and an explicit walk that accepts only a whitelist:
   numbers, variable names, ``+ - * / **``, unary ``-``/``+`` and calls of
   ``exp log sin cos tanh sqrt abs`` with one argument; the tree may be at most
   ``MAX_DEPTH`` nodes deep;
3. power rules: an exponent may not contain ``**`` (no towers such as ``9**9**9**9``)
   and an exponent without variables must satisfy ``|p| <= MAX_EXPONENT``.

Everything else (attribute access, subscripts, other calls, lambdas, comprehensions,
comparisons, strings, names starting with ``_``) raises :class:`ExpressionError`, a
``ValueError`` whose message says what was rejected and what is allowed.

Variables are ordered **alphabetically** (``"y**2 + x"`` has variables ``("x", "y")``),
so the order does not depend on how the formula is written; pass ``variables=`` to
choose another order.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Sequence

import torch

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "MAX_LENGTH",
    "MAX_NESTING",
    "Expression",
    "ExpressionError",
    "parse_expression",
]

MAX_LENGTH = 1000  # characters
MAX_NESTING = 50  # bracket depth, checked before ast.parse
MAX_DEPTH = 100  # depth of the syntax tree
MAX_EXPONENT = 100.0  # |p| for a constant exponent in x**p

FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "exp": torch.exp,
    "log": torch.log,
    "sin": torch.sin,
    "cos": torch.cos,
    "tanh": torch.tanh,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
}

_BINARY = {
    ast.Add: torch.add,
    ast.Sub: torch.sub,
    ast.Mult: torch.mul,
    ast.Div: torch.div,
    ast.Pow: torch.pow,
}
_UNARY = {ast.USub: torch.neg, ast.UAdd: torch.positive}
_FUNCTION_NAMES = ", ".join(sorted(FUNCTIONS))
_ALLOWED = f"numbers, variable names, + - * / **, unary minus, and {_FUNCTION_NAMES}"

Env = dict[str, torch.Tensor]
Node = Callable[[Env], torch.Tensor]


class ExpressionError(ValueError):
    """An expression string was rejected; the message says why and what is allowed."""


class Expression:
    """A parsed expression: ``expr(*values)`` evaluates it with torch ops.

    Args:
        text: the source text, kept for display.
        variables: names of the inputs, in the order ``__call__`` takes them.

    ``values`` are tensors (or numbers) that broadcast together; the result has their
    broadcast shape, dtype float64, and is differentiable with respect to each value.
    """

    def __init__(self, text: str, variables: tuple[str, ...], fn: Node) -> None:
        self.text = text
        self.variables = variables
        self._fn = fn

    def __call__(self, *values: torch.Tensor | float) -> torch.Tensor:
        if len(values) != len(self.variables):
            raise ValueError(
                f"Expression {self.text!r}: expected {len(self.variables)} value(s) for "
                f"({', '.join(self.variables)}), got {len(values)}"
            )
        env = {
            n: torch.as_tensor(v, dtype=torch.float64)
            for n, v in zip(self.variables, values, strict=True)
        }
        return self._fn(env)

    def __repr__(self) -> str:
        return f"Expression({self.text!r}, variables={self.variables})"


def parse_expression(text: str, variables: Sequence[str] | None = None) -> Expression:
    """Parse ``text`` into an :class:`Expression` without evaluating any Python.

    Args:
        text: e.g. ``"(1-x)**2 + 100*(y-x**2)**2"``.
        variables: the order of the inputs; must name exactly the variables used.
            Default: alphabetical.

    Raises:
        ExpressionError: the text is too long, too deeply nested, not valid syntax,
            uses anything outside the whitelist, or ``variables`` does not match.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"expression must be a string, got {type(text).__name__}")
    _check_nesting(text)
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression is too long: {len(text)} characters, at most {MAX_LENGTH}"
        )
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"invalid syntax in {text!r} at column {exc.offset}") from None
    _check_depth(tree)
    compiler = _Compiler()
    fn = compiler.compile(tree.body)
    names = compiler.names
    if variables is None:
        order = tuple(sorted(names))
    else:
        order = tuple(variables)
        _check_order(order, names)
    if not order:
        raise ExpressionError(f"expression {text!r} has no variables; write it in terms of e.g. w")
    return Expression(text, order, fn)


def _check_nesting(text: str) -> None:
    """Reject deep bracket nesting by a linear scan (bounded by MAX_LENGTH + 1 chars)."""
    depth = 0
    for ch in text[: MAX_LENGTH + 1]:
        if ch in "([{":
            depth += 1
            if depth > MAX_NESTING:
                raise ExpressionError(
                    f"expression is nested too deeply: more than {MAX_NESTING} brackets"
                )
        elif ch in ")]}":
            depth -= 1


def _check_depth(tree: ast.AST) -> None:
    """Iterative depth check, so the recursive compiler below stays shallow."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression is nested too deeply: more than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _check_order(order: tuple[str, ...], names: set[str]) -> None:
    used = ", ".join(sorted(names)) or "none"
    if len(set(order)) != len(order):
        raise ExpressionError(f"variables {order} contain a repeated name")
    for name in order:
        if name not in names:
            raise ExpressionError(f"unknown variable {name!r}: the expression uses {used}")
    for name in sorted(names):
        if name not in order:
            raise ExpressionError(
                f"the expression uses {name!r} but variables are {', '.join(order)}; "
                f"list every one of: {used}"
            )


class _Compiler:
    """Walk a whitelisted tree; ``compile`` returns a closure ``env -> tensor``."""

    def __init__(self) -> None:
        self.names: set[str] = set()  # variables seen so far

    def compile(self, node: ast.AST) -> Node:
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            op, arg = _UNARY[type(node.op)], self.compile(node.operand)
            return lambda env: op(arg(env))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            if isinstance(node.op, ast.Pow):
                return self._power(node)
            op = _BINARY[type(node.op)]
            left, right = self.compile(node.left), self.compile(node.right)
            return lambda env: op(left(env), right(env))
        if isinstance(node, ast.Call):
            return self._call(node)
        raise ExpressionError(f"{_describe(node)} is not allowed; allowed: {_ALLOWED}")

    def _constant(self, node: ast.Constant) -> Node:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ExpressionError(f"constant {value!r} is not allowed; only real numbers are")
        try:
            number = float(value)
        except OverflowError:
            raise ExpressionError("number is too large for float64") from None
        if not math.isfinite(number):  # a literal such as 1e999 (a literal is never NaN)
            raise ExpressionError(f"number {value!r} is not finite in float64")
        tensor = torch.tensor(number, dtype=torch.float64)
        return lambda env: tensor

    def _name(self, node: ast.Name) -> Node:
        name = node.id
        if name.startswith("_"):
            raise ExpressionError(f"name {name!r} is not allowed: names may not start with '_'")
        if name in FUNCTIONS:
            raise ExpressionError(f"{name!r} is a function: call it, as in {name}(w)")
        self.names.add(name)
        return lambda env: env[name]

    def _power(self, node: ast.BinOp) -> Node:
        if _contains(node.right, lambda n: isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow)):
            raise ExpressionError("power towers such as a**b**c are not allowed; use exp() instead")
        base, exponent = self.compile(node.left), self.compile(node.right)
        if _contains(node.right, lambda n: isinstance(n, ast.Name) and n.id not in FUNCTIONS):
            return lambda env: torch.pow(base(env), exponent(env))
        p = float(exponent({}))  # constant: fold it once, in float64, no Python big ints
        if not abs(p) <= MAX_EXPONENT:
            raise ExpressionError(f"exponent {p:g} is too large: at most {MAX_EXPONENT:g} in size")
        return lambda env: torch.pow(base(env), p)

    def _call(self, node: ast.Call) -> Node:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS:
            what = repr(name) if name else _describe(node.func)
            raise ExpressionError(f"call of {what} is not allowed; functions are {_FUNCTION_NAMES}")
        if len(node.args) != 1 or node.keywords:
            raise ExpressionError(f"{name}() takes exactly one argument, as in {name}(w)")
        fn, arg = FUNCTIONS[name], self.compile(node.args[0])
        return lambda env: fn(arg(env))


def _contains(node: ast.AST, predicate: Callable[[ast.AST], bool]) -> bool:
    return any(predicate(n) for n in ast.walk(node))


def _describe(node: ast.AST) -> str:
    """A readable name for a rejected syntax node."""
    if isinstance(node, ast.Attribute):
        return f"attribute access ('.{node.attr}')"
    if isinstance(node, ast.BinOp | ast.UnaryOp):
        return f"operator {type(node.op).__name__}"
    return {
        ast.Lambda: "lambda",
        ast.Subscript: "indexing",
        ast.Compare: "comparison",
        ast.BoolOp: "and/or",
        ast.IfExp: "if/else",
        ast.ListComp: "a comprehension",
        ast.GeneratorExp: "a comprehension",
        ast.SetComp: "a comprehension",
        ast.DictComp: "a comprehension",
        ast.NamedExpr: "assignment (:=)",
    }.get(type(node), type(node).__name__)
