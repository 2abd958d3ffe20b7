"""TensorBoardWriter: a monitor's run read back with tensorboard's EventAccumulator holds the
Trace's own numbers under grouped tags in one run; the integrations import without their
packages and say which extra to install."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from vanishing import build_model
from vanishing.integrations import trace_scalars
from vanishing.monitor import GradientMonitor
from vanishing.probe import Trace, hidden_gradients


@pytest.fixture
def accumulator():
    pytest.importorskip("tensorboard", reason="needs tensorboard: pip install "
                        "'vanishing[tensorboard]' (CI installs it)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def read(folder):
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0,
                                                           "images": 0, "tensors": 0})
        acc.Reload()
        return acc

    return read


def _train(model, monitor, tb, steps, length=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        x = torch.randn(8, length, 2, generator=g)
        with monitor.record():
            loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        monitor.step(loss)
        tb.update(monitor)
        opt.step()


def test_a_monitor_run_reads_back_as_the_traces_own_numbers(tmp_path, accumulator):
    from vanishing.integrations import TensorBoardWriter

    model = build_model("rnn_tanh", 2, 16, 1, seed=0, radius=0.5)  # vanishing: alarm at 1
    monitor = GradientMonitor(model, every=3, warn=False)
    tb = TensorBoardWriter(tmp_path, figure_interval=0)
    _train(model, monitor, tb, steps=7)
    tb.close()
    assert sorted(monitor.traces) == [1, 4, 7] and [a.step for a in monitor.alarms] == [1]
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []  # one run, no sub-runs
    acc = accumulator(tmp_path)

    def scalar(tag):
        return {e.step: e.value for e in acc.Scalars(tag)}

    horizon = scalar("vanishing/core.l0/horizon")
    assert horizon == {s: t.horizon(1e-3) for s, t in monitor.traces.items()}
    for k in (0, 1, 10, 29):
        got = scalar(f"vanishing/core.l0/grad_lag_{k}")
        want = {s: t.norms[29 - k] for s, t in monitor.traces.items()}
        assert got.keys() == want.keys()
        np.testing.assert_allclose([got[s] for s in want], list(want.values()), rtol=1e-6)
    decay = scalar("vanishing/core.l0/decay_rate")
    np.testing.assert_allclose([decay[s] for s in monitor.traces],
                               [t.decay_rate() for t in monitor.traces.values()], rtol=1e-6)
    tags = acc.Tags()
    assert "vanishing/core.l0/grad_lag_100" not in tags["scalars"]  # only lags < T
    assert scalar("vanishing/alarm_vanishing") == {1: 1.0}
    (text,) = acc.Tensors("vanishing/alarms/text_summary")
    assert text.step == 1 and b"vanishing gradient" in text.tensor_proto.string_val[0]
    (hist, *_) = acc.Histograms("vanishing/core.l0/log10_grad")
    logs = np.log10(monitor.traces[1].norms)
    assert hist.step == 1 and hist.histogram_value.num == 30
    np.testing.assert_allclose([hist.histogram_value.min, hist.histogram_value.max],
                               [logs.min(), logs.max()], rtol=1e-6)
    assert [e.step for e in acc.Images("vanishing/profile")] == [1, 4, 7]


def test_any_trace_every_layer_and_figures_at_most_once_per_interval(tmp_path, accumulator):
    from vanishing.integrations import TensorBoardWriter

    model = build_model("lstm", 2, 8, 1, num_layers=2, seed=0)
    trace = hidden_gradients(model, torch.randn(4, 12, 2, generator=torch.Generator()
                                                .manual_seed(1)))
    tb = TensorBoardWriter(str(tmp_path), lags=(2,))  # a path as str, default interval
    for step in (5, 6):
        tb.write(trace, step)
    tb.close()
    acc = accumulator(tmp_path)
    for layer in ("core.l0", "core.l1"):
        norms = trace.layers[layer]
        assert {e.step: e.value for e in acc.Scalars(f"vanishing/{layer}/horizon")} == {
            5: Trace(norms=norms).horizon(1e-3), 6: Trace(norms=norms).horizon(1e-3)}
        (lag2, _) = acc.Scalars(f"vanishing/{layer}/grad_lag_2")
        assert lag2.value == pytest.approx(norms[-3], rel=1e-6)
        assert f"vanishing/{layer}/grad_lag_11" in acc.Tags()["scalars"]  # T - 1
    assert [e.step for e in acc.Images("vanishing/profile")] == [5]  # 60 s between figures


def test_trace_scalars_leave_out_what_a_layer_cannot_say():
    trace = Trace(norms=np.array([0.0, 1e-3, 1.0]), main_layer="a",
                  layers={"a": np.array([0.0, 1e-3, 1.0]), "b": np.array([1.0, 0.0])})
    got = trace_scalars(trace, lags=(0, 1, 10))
    assert got["vanishing/a/horizon"] == 0.0 and got["vanishing/a/grad_lag_2"] == 0.0
    assert "vanishing/a/grad_lag_10" not in got
    assert "vanishing/b/horizon" not in got  # the last step is zero: no reference
    assert got["vanishing/b/grad_lag_1"] == 1.0


def test_a_writer_must_be_a_summary_writer_or_a_folder():
    from vanishing.integrations.tensorboard import TensorBoardWriter

    with pytest.raises(TypeError, match="SummaryWriter or a log folder, got int"):
        TensorBoardWriter(3)


def test_integrations_import_without_their_packages_and_name_the_extra():
    code = textwrap.dedent("""
        import sys
        for name in ("tensorboard", "torch.utils.tensorboard", "lightning", "wandb"):
            sys.modules[name] = None  # as if not installed
        import vanishing.integrations as vi
        import vanishing.integrations.lightning, vanishing.integrations.tensorboard
        import vanishing.integrations.wandb
        for make in (lambda: vi.TensorBoardWriter("runs"), vi.GradientMonitorCallback,
                     vi.WandbWriter):
            try:
                make()
            except ImportError as exc:
                print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == [f'vanishing.integrations.{extra} needs the {extra} package: pip install '
                   f'"vanishing[{extra}]"' for extra in ("tensorboard", "lightning", "wandb")]
