"""The expression parser against Python's math module, and against hostile input."""

import ast
import builtins
import contextlib
import math
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vanishing.descent.expr import (
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_NESTING,
    ExpressionError,
    parse_expression,
)

# (text, reference in plain math, derivative by hand)
ONE_D = [
    ("(w-3)**2", lambda w: (w - 3) ** 2, lambda w: 2 * (w - 3)),
    (
        "exp(-w**2)*sin(3*w)",
        lambda w: math.exp(-(w**2)) * math.sin(3 * w),
        lambda w: math.exp(-(w**2)) * (3 * math.cos(3 * w) - 2 * w * math.sin(3 * w)),
    ),
    (
        "log(1 + exp(w)) - tanh(w)/2",
        lambda w: math.log(1 + math.exp(w)) - math.tanh(w) / 2,
        lambda w: 1 / (1 + math.exp(-w)) - (1 - math.tanh(w) ** 2) / 2,
    ),
    (
        "sqrt(w**2 + 1) + cos(w)**2",
        lambda w: math.sqrt(w**2 + 1) + math.cos(w) ** 2,
        lambda w: w / math.sqrt(w**2 + 1) - 2 * math.cos(w) * math.sin(w),
    ),
    ("2**w - w/2/4", lambda w: 2**w - w / 8, lambda w: math.log(2) * 2**w - 1 / 8),
    ("-w**2 + +w", lambda w: -(w**2) + w, lambda w: -2 * w + 1),
    ("abs(w - 1) * 3", lambda w: abs(w - 1) * 3, lambda w: 3 * math.copysign(1, w - 1)),
    ("w**-2 + w**0.5", lambda w: w**-2 + w**0.5, lambda w: -2 * w**-3 + 0.5 * w**-0.5),
]


@settings(max_examples=40, deadline=None)
@given(w=st.floats(min_value=0.1, max_value=4.0))
@pytest.mark.parametrize(("text", "value", "derivative"), ONE_D, ids=[t for t, _, _ in ONE_D])
def test_value_and_gradient_match_math(text, value, derivative, w):
    if text.startswith("abs") and abs(w - 1) < 1e-9:
        return  # kink: no derivative to compare with
    expr = parse_expression(text)
    x = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    y = expr(x)
    y.backward()
    assert y.dtype == torch.float64
    assert float(y.detach()) == pytest.approx(value(w), rel=1e-12, abs=1e-12)
    assert float(x.grad) == pytest.approx(derivative(w), rel=1e-10, abs=1e-10)


def test_two_variables_rosenbrock_gradient_by_hand():
    expr = parse_expression("(1-x)**2 + 100*(y-x**2)**2")
    assert expr.variables == ("x", "y")
    x = torch.tensor(-1.2, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    expr(x, y).backward()
    xv, yv = -1.2, 1.0
    assert float(x.grad) == pytest.approx(-2 * (1 - xv) - 400 * xv * (yv - xv**2), rel=1e-12)
    assert float(y.grad) == pytest.approx(200 * (yv - xv**2), rel=1e-12)


def test_elementwise_on_a_grid():
    expr = parse_expression("x*y + 1")
    out = expr(torch.arange(3.0), torch.full((3,), 2.0))
    assert out.tolist() == [1.0, 3.0, 5.0]


def test_variables_are_alphabetical_unless_given():
    expr = parse_expression("y**2 + x")
    assert expr.variables == ("x", "y")
    assert float(expr(1.0, 2.0)) == 5.0  # x=1, y=2
    swapped = parse_expression("y**2 + x", variables=["y", "x"])
    assert swapped.variables == ("y", "x")
    assert float(swapped(1.0, 2.0)) == 3.0  # y=1, x=2


@pytest.mark.parametrize(
    ("variables", "match"),
    [
        (["x", "z"], "unknown variable 'z': the expression uses x, y"),
        (["x"], "uses 'y' but variables are x"),
        (["x", "y", "x"], "repeated"),
    ],
)
def test_variables_must_match(variables, match):
    with pytest.raises(ValueError, match=match):
        parse_expression("x**2 + y", variables=variables)


def test_call_with_wrong_number_of_values():
    with pytest.raises(ValueError, match=r"expected 2 value\(s\) for \(x, y\), got 1"):
        parse_expression("x + y")(1.0)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("w.real", "attribute access"),
        ("w[0]", "indexing"),
        ("max(w, 1)", "call of 'max' is not allowed"),
        ("exp(w, 2)", "exactly one argument"),
        ("exp(x=w)", "exactly one argument"),
        ("exp + w", "is a function"),
        ("lambda w: w", "lambda"),
        ("[w for w in (1, 2)]", "comprehension"),
        ("w if w else 1", "if/else"),
        ("w < 3", "comparison"),
        ("w and 1", "and/or"),
        ("'w'", "only real numbers"),
        ("True + w", "only real numbers"),
        ("1j * w", "only real numbers"),
        ("1e999 * w", "not finite"),
        ("w // 2", "operator FloorDiv"),
        ("w % 2", "operator Mod"),
        ("~w", "operator Invert"),
        ("_w + 1", "may not start with '_'"),
        ("w**1000", "exponent 1000 is too large"),
        ("w**(20*6)", "exponent 120 is too large"),
        ("10**400 * w", "exponent 400 is too large"),
        ("w**x**2", "power towers"),
        ("3 + 4", "no variables"),
        ("(w", "invalid syntax"),
        ("", "invalid syntax"),
    ],
)
def test_rejected_with_a_clear_message(text, match):
    with pytest.raises(ExpressionError, match=match):
        parse_expression(text)


def test_size_limits():
    with pytest.raises(ExpressionError, match=f"at most {MAX_LENGTH}"):
        parse_expression("w+" * MAX_LENGTH + "w")
    with pytest.raises(ExpressionError, match=f"more than {MAX_NESTING} brackets"):
        parse_expression("(" * (MAX_NESTING + 1) + "w" + ")" * (MAX_NESTING + 1))
    with pytest.raises(ExpressionError, match=f"more than {MAX_DEPTH} levels"):
        parse_expression("-" * (MAX_LENGTH - 1) + "w")  # no brackets, still deep
    assert parse_expression("(" * MAX_NESTING + "w" + ")" * MAX_NESTING).variables == ("w",)


HOSTILE = [
    "__import__('os').system('id')",
    "().__class__.__bases__",
    "().__class__.__bases__[0].__subclasses__()",
    "open('pwned', 'w')",
    "open('x')",
    "exec('import os')",
    "eval('1')",
    "(lambda: __import__('os'))()",
    "[c for c in ().__class__.__base__.__subclasses__()]",
    "(" * 10_000 + "w" + ")" * 10_000,
    "-" * 10_000 + "w",
    "9**9**9**9",
    "w**9**9**9",
    "9" * 5000,
]


@contextlib.contextmanager
def booby_traps(monkeypatch):
    """Inside: os.system, eval, exec, open and compile-to-bytecode record the call and raise.

    ``compile(..., ast.PyCF_ONLY_AST)`` is let through: that is ``ast.parse``, which
    builds a tree and runs nothing.
    """
    calls = []
    real_compile = builtins.compile

    def compile_to_ast_only(source, filename, mode, flags=0, *args, **kwargs):
        if not flags & ast.PyCF_ONLY_AST:
            calls.append("compile")
            raise AssertionError("compile to bytecode was called")
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    def trap(name):
        def record(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} was called")

        return record

    with monkeypatch.context() as m:
        m.setattr(os, "system", trap("os.system"))
        for name in ("eval", "exec", "open"):
            m.setattr(builtins, name, trap(name))
        m.setattr(builtins, "compile", compile_to_ast_only)
        yield calls


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_expressions_are_rejected_and_nothing_runs(text, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with booby_traps(monkeypatch) as calls, pytest.raises(ExpressionError) as info:
        parse_expression(text)
    assert calls == []
    assert not (tmp_path / "pwned").exists()
    message = str(info.value)
    assert 0 < len(message) < 200 and "\n" not in message  # one line, not a dump of the input


def test_valid_expressions_need_no_eval_either(monkeypatch):
    with booby_traps(monkeypatch) as calls:
        value = float(parse_expression("exp(w) * 2 + sin(x)")(0.0, 0.0))
    assert calls == []
    assert value == 2.0
