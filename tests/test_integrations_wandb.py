"""WandbWriter: an offline run (no account, no network) holds in its history the very numbers
of the monitor's traces, against the vanishing/step axis, beside the loop's own logs."""

import json
import struct
from pathlib import Path

import pytest
import torch

wandb = pytest.importorskip("wandb", reason="needs wandb: pip install 'vanishing[wandb]' "
                            "(CI installs it)")

from wandb.proto import wandb_internal_pb2  # noqa: E402

from vanishing import build_model  # noqa: E402
from vanishing.integrations.wandb import WandbWriter  # noqa: E402
from vanishing.monitor import GradientMonitor  # noqa: E402


@pytest.fixture
def offline_run(tmp_path, monkeypatch):
    """A wandb run in offline mode with every wandb folder under tmp_path."""
    for var in ("DIR", "CONFIG_DIR", "CACHE_DIR", "DATA_DIR", "ARTIFACT_DIR"):
        (tmp_path / var).mkdir()
        monkeypatch.setenv(f"WANDB_{var}", str(tmp_path / var))
    monkeypatch.setenv("WANDB_MODE", "offline")
    settings = wandb.Settings(silent=True, console="off", x_disable_stats=True,
                              x_disable_meta=True, disable_git=True, save_code=False)
    run = wandb.init(project="vanishing-test", dir=tmp_path / "DIR", settings=settings)
    yield run
    run.finish()


def _history(run_dir):
    """The history rows of an offline run's .wandb file (a LevelDB-style log of protobuf
    records: 7-byte file header, 32 KiB blocks, records of crc, length, type, data)."""
    (path,) = run_dir.glob("run-*.wandb")
    data, pos, part, rows = path.read_bytes(), 7, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        part, pos = part + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(part)
            part = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                             for item in record.history.item})
    return rows


def test_offline_history_holds_the_traces_numbers(offline_run):
    model = build_model("rnn_tanh", 2, 16, 1, seed=0, radius=0.5)  # vanishing: alarm at 1
    monitor = GradientMonitor(model, every=2, warn=False)
    log = WandbWriter()  # the current run
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        x = torch.randn(8, 30, 2, generator=g)
        with monitor.record():
            loss = model(x).pow(2).mean()
        model.zero_grad()
        loss.backward()
        monitor.step(loss)
        log.update(monitor)
        offline_run.log({"loss": loss.item()})  # the loop's own logging, untouched
    offline_run.finish()  # writes out the run
    rows = _history(Path(offline_run.dir).parent)
    probes = {r["vanishing/step"]: r for r in rows if "vanishing/step" in r}
    assert sorted(probes) == sorted(monitor.traces) == [1, 3, 5]
    assert sum("loss" in r for r in rows) == 5
    for step, trace in monitor.traces.items():
        row = probes[step]
        assert row["vanishing/core.l0/horizon"] == trace.horizon(1e-3)
        for k in (0, 1, 10, 29):
            assert row[f"vanishing/core.l0/grad_lag_{k}"] == pytest.approx(trace.norms[29 - k],
                                                                         rel=1e-12)
        assert row["vanishing/core.l0/decay_rate"] == pytest.approx(trace.decay_rate())
        assert "vanishing/core.l0/grad_lag_100" not in row
        assert row["vanishing/core.l0/log10_grad/_type"] == "histogram"
        assert sum(row["vanishing/core.l0/log10_grad/values"]) == 30
    assert probes[1]["vanishing/alarm_vanishing"] == 1
    assert "step 1: vanishing gradient" in probes[1]["vanishing/alarms"]
    assert "vanishing/alarm_vanishing" not in probes[3]


def test_no_run_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(wandb, "run", None)
    with pytest.raises(ValueError, match=r"no wandb run; call wandb.init\(\) first"):
        WandbWriter()
