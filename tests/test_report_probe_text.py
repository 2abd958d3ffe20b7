"""The probe's text: numbers far below float64 written out, underflow told from a true
zero, the rows shown, and a table whose numbers are the gradients measured independently."""

import copy
import decimal
import subprocess
import sys

import numpy as np
import pytest
import torch

from vanishing.diagnose import diagnose
from vanishing.models import build_model
from vanishing.probe import hidden_gradients
from vanishing.report.probe_text import (
    heading,
    lags_shown,
    pow10,
    probe_table,
    summary,
    underflowed,
)


@pytest.mark.parametrize("log10", [-911.5, -1000.0, -307.7, -42.123, 5.5, 400.25])
def test_pow10_writes_out_what_decimal_arithmetic_gives(log10):
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        exact = decimal.Decimal(10) ** decimal.Decimal(repr(log10))
        exponent = exact.adjusted()
        mantissa = float(exact.scaleb(-exponent))
    text = pow10(log10)
    m, e = text.split("e")
    assert int(e) == exponent and float(m) == pytest.approx(mantissa, abs=5e-4)


def test_pow10_in_float_range_and_at_the_ends():
    assert pow10(-0.3) == f"{10 ** -0.3:.4g}" == "0.5012"
    assert pow10(2.5) == "316.2"
    assert pow10(-4.00001) == "1e-04"  # 9.99977e-05 rounds up to the next power of ten
    assert pow10(float("-inf")) == "0" and pow10(float("inf")) == "inf"


def test_an_exact_zero_is_underflow_only_below_a_tiny_later_norm():
    norms = np.array([0.0, 0.0, 1e-3, 1.0, 0.0, 1e-160, 0.5])
    assert underflowed(norms).tolist() == [False, False, False, False, True, False, False]
    assert underflowed(np.array([0.0, 1e-120, 1.0])).tolist() == [True, False, False]


def test_rows_shown_keep_the_first_lags_the_horizon_and_the_first_step():
    assert lags_shown(10, 16, 3) == list(range(10)) == lags_shown(10, 0, 3)
    shown = lags_shown(200, 16, 50)
    assert shown == sorted(set(shown))
    assert {0, 1, 2, 3, 4, 50, 51, 199} <= set(shown) and len(shown) <= 16


def test_the_table_shows_the_gradients_hidden_gradients_measures():
    model = build_model("rnn_tanh", 3, 8, 1, seed=2)
    x = torch.randn(4, 30, 3, generator=torch.Generator().manual_seed(1))
    expected = hidden_gradients(copy.deepcopy(model).double(), x.double()).norms
    d = diagnose(copy.deepcopy(model).double(), x.double(), threshold=1e-3)
    table = probe_table(d, rows=0)
    assert table.header == ["T - t", "t", "||dL/dh_t||", "/ ||dL/dh_T||", "||dh_T/dh_t||_2"]
    assert len(table.rows) == 30 and table.align == ["right"] * 5
    for lag, row in enumerate(table.rows):
        t = 29 - lag
        assert row[:2] == [str(lag), str(t)]
        assert float(row[2]) == pytest.approx(expected[t], rel=1e-3)
        assert float(row[3]) == pytest.approx(expected[t] / expected[-1], rel=1e-3)
    sampled = probe_table(d, rows=8).rows
    assert ["..."] * 5 in sampled and sampled[-1][0] == "29"
    lines = summary(d)
    assert lines[0].startswith(f"horizon: {d.horizon} steps (||dL/dh_t|| stays above 0.001")
    assert lines[-1].startswith("try: ") and any(ln.startswith("diagnosis: ") for ln in lines)


def test_heading_names_the_input_and_the_loss():
    assert heading("lstm", None, 50, 16, 50) == (
        "probe: lstm; random N(0, 1) input, loss = sum of the last output; batch 16, T = 50 "
        "steps; float64, denormals flushed to zero, Jacobian norms in log space")
    assert "; task adding (length 12), its loss; batch 2, T = 12 steps;" in heading(
        "gru", "adding", 12, 2, 12)


def test_the_text_modules_do_not_load_matplotlib():
    code = ("import sys; import vanishing.report.probe_text, vanishing.report.sweep_text, "
            "vanishing.report.demo_text, vanishing.report.train_text, vanishing.report.tables;"
            " print('matplotlib' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
