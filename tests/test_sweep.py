"""Sweeps: the grid, resuming, a driver killed mid-run, and Ray against the process pool."""

import importlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import vanishing
import vanishing.sweep as sweep_module
from vanishing.sweep import grid, run_sweep, run_trial
from vanishing.sweep.store import config_key, open_store
from vanishing.sweep.summary import best_points, summarize, table_rows
from vanishing.train import TrainConfig

TINY = dict(steps=20, hidden_size=8, batch_size=16, eval_every=10, eval_size=64)
COMPARED = ("status", "solved", "steps", "steps_to_solve", "final", "history", "horizon",
            "probe_length", "chance_loss")


def test_grid_covers_every_combination_in_order():
    configs = grid("adding", ["rnn_tanh", "lstm"], [5, 10], 2, lrs={"lstm": [1e-2, 1e-3]},
                   lr=3e-3, **TINY)
    assert len(configs) == 2 * (1 + 2) * 2
    first = configs[0]
    assert (first.length, first.model, first.lr, first.seed) == (5, "rnn_tanh", 3e-3, 0)
    assert {(c.model, c.lr) for c in configs} == {("rnn_tanh", 3e-3), ("lstm", 1e-2),
                                                  ("lstm", 1e-3)}
    assert all(c.steps == 20 and c.hidden_size == 8 for c in configs)
    assert [c.seed for c in grid("latch", ["gru"], [3], [4, 7])] == [4, 7]


@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        (("adding", ["transformer"], [5], 1), {}, ValueError, "unknown model 'transformer'"),
        (("addition", ["lstm"], [5], 1), {}, ValueError, "unknown task 'addition'"),
        (("adding", ["lstm"], [0], 1), {}, ValueError, "length must be a positive int, got 0"),
        (("adding", ["lstm"], [1], 1), {}, ValueError, "length must be >= 2"),
        (("adding", ["lstm"], [5], 0), {}, ValueError, "seeds must be a positive int"),
        (("adding", ["lstm"], [5], 1), {"stepz": 3}, ValueError, "unknown sweep option"),
        (("adding", ["lstm"], [5], 1), {"lrs": [0.0]}, ValueError, "lr must be a finite"),
        (("adding", ["lstm"], [5], 1), {"lrs": {"gru": [1e-3]}}, ValueError, "not in the sweep"),
        (("adding", "lstm", [5], 1), {}, ValueError, "non-empty list of names"),
    ],
)
def test_grid_rejects_bad_input(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        grid(*args, **kwargs)


def test_failed_trial_is_recorded_not_raised():
    record = run_trial({"task": "adding", "bogus": 1})
    assert record["status"] == "failed" and "unknown TrainConfig field(s): bogus" in \
        record["message"]
    assert record["torch_version"] == torch.__version__
    assert record["vanishing_version"] == vanishing.__version__


def test_rerun_skips_finished_trials_and_retries_failed_ones(tmp_path):
    db = tmp_path / "r.sqlite"
    configs = grid("adding", ["rnn_tanh"], [4], 2, **TINY)
    seen = []
    first = run_sweep(configs, db, workers=1,
                      progress=lambda d, t, r: seen.append((d, t, r["status"])))
    assert (first.ran, first.skipped, first.failed) == (2, 0, 0)
    assert seen == [(1, 2, "done"), (2, 2, "done")]
    with open_store(db) as store:
        row = store.get(config_key(configs[0]))
        assert row["horizon"] is not None and 0 <= row["horizon"] <= 3
        assert row["probe_length"] == 4 and row["wall_time"] > 0
    again = run_sweep(configs + configs[:1], db, workers=1)  # a duplicate config runs once
    assert (again.ran, again.skipped) == (0, 2)
    # a trial stored as failed is skipped unless retry_failed
    extra = TrainConfig(task="adding", model="gru", length=4, **TINY)
    with open_store(db) as store:
        store.put({"key": config_key(extra), "config": extra.to_dict(), "status": "failed",
                   "message": "worker died", "finished_at": "x"})
    assert run_sweep([extra], db).ran == 0
    retried = run_sweep([extra], db, retry_failed=True, workers=1)
    assert retried.ran == 1
    with open_store(db, readonly=True) as store:
        assert store.get(config_key(extra))["status"] == "done"
        assert len(store.records()) == 3


def test_summaries_pick_the_best_lr_per_point(tmp_path):
    def row(seed, lr, solved, steps):
        return {"config": {"task": "adding", "model": "lstm", "length": 5, "lr": lr,
                           "seed": seed, "steps": 100}, "task": "adding", "model": "lstm",
                "length": 5, "lr": lr, "status": "done", "solved": solved,
                "steps_to_solve": steps if solved else None, "horizon": 4, "probe_length": 5,
                "final": {"loss": 0.1}}

    records = [row(0, 1e-3, True, 300), row(1, 1e-3, False, None),
               row(0, 1e-2, True, 200), row(1, 1e-2, True, 400)]
    points = summarize(records)
    assert [(p.lr, p.solved, p.measured) for p in points] == [(1e-3, 1, 2), (1e-2, 2, 2)]
    (best,) = best_points(points)
    assert best.lr == 1e-2 and best.median_steps == 300 and best.lrs_tried == (1e-3, 1e-2)
    header, rows = table_rows([best])
    assert header == ["model", "T = 5"] and rows == [["lstm", "2/2 (300) @1e-2"]]


def test_bad_sweep_arguments(tmp_path):
    configs = grid("adding", ["lstm"], [4], 1, **TINY)
    with pytest.raises(ValueError, match="workers must be a positive int, got 0"):
        run_sweep(configs, tmp_path / "r.sqlite", workers=0)
    with pytest.raises(ValueError, match="non-empty list of TrainConfig"):
        run_sweep([], tmp_path / "r.sqlite")
    with pytest.raises(ValueError, match="folder .* does not exist"):
        run_sweep(configs, tmp_path / "nope" / "r.sqlite")
    with pytest.raises(ValueError, match="length must be >= 2"):
        run_sweep([TrainConfig(task="adding", length=1)], tmp_path / "r.sqlite")
    assert not (tmp_path / "r.sqlite").exists()  # nothing created before the input is valid


def test_library_runs_in_process_by_default_and_the_cli_default_is_one_worker_per_cpu(
        tmp_path, monkeypatch):
    calls = []

    def pool(todo, workers):  # stands in for the spawned pool: records its size
        calls.append(workers)
        return ((k, c, run_trial(c.to_dict())) for k, c in todo)

    monkeypatch.setattr(importlib.import_module("vanishing.sweep.run"), "pool_results", pool)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    configs = grid("adding", ["rnn_tanh"], [4], 2, **TINY)
    # a plain script without a __main__ guard must not spawn workers unasked
    assert run_sweep(configs, tmp_path / "a.sqlite").ran == 2 and calls == []
    assert run_sweep(configs, tmp_path / "b.sqlite", workers=sweep_module.default_workers()
                     ).ran == 2
    assert calls == [3]


def test_unreachable_ray_address_fails_at_once_and_creates_no_store(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the socket is: nothing listens there
    configs = grid("adding", ["rnn_tanh"], [4], 1, **TINY)
    start = time.monotonic()
    with pytest.raises(ValueError, match=f"cannot reach Ray at '127.0.0.1:{port}'"):
        run_sweep(configs, tmp_path / "r.sqlite", ray=f"127.0.0.1:{port}")
    with pytest.raises(ValueError, match=f"cannot reach Ray at 'ray://localhost:{port}'"):
        run_sweep(configs, tmp_path / "r.sqlite", ray=f"ray://localhost:{port}")
    assert time.monotonic() - start < 15
    for bad in ("headnode", "host:port", "host:0", ":6379"):
        with pytest.raises(ValueError, match="'auto', 'local' or a cluster address HOST:PORT"):
            run_sweep(configs, tmp_path / "r.sqlite", ray=bad)
    assert list(tmp_path.iterdir()) == []


SCRIPT = textwrap.dedent("""
    import sys
    from vanishing.sweep import grid, run_sweep

    configs = grid("adding", ["rnn_tanh", "gru"], [4, 6], 3, steps=400, hidden_size=8,
                   batch_size=16, eval_every=50, eval_size=64, early_stop=False)
    if __name__ == "__main__":
        print(run_sweep(configs, sys.argv[1], workers=2).ran)
""")


def _children(pid):
    path = f"/proc/{pid}/task/{pid}/children"
    try:
        with open(path) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _rows(db):
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return dict(con.execute("SELECT key, finished_at FROM trials"))
        finally:
            con.close()
    except sqlite3.Error:  # not created yet
        return {}


@pytest.mark.slow
def test_sweep_killed_mid_run_resumes_without_losing_or_repeating_trials(tmp_path):
    script, db = tmp_path / "sweep_script.py", tmp_path / "r.sqlite"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    driver = subprocess.Popen([sys.executable, str(script), str(db)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    workers = []
    while len(_rows(db)) < 2 and time.monotonic() < deadline and driver.poll() is None:
        workers = _children(driver.pid) or workers
        time.sleep(0.02)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(timeout=10)
    before = _rows(db)
    assert 2 <= len(before) < 12, "the sweep must be killed part way"

    rerun = subprocess.run([sys.executable, str(script), str(db)], env=env, timeout=120,
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert int(rerun.stdout.split()[-1]) == 12 - len(before)
    sys.path.insert(0, str(tmp_path))
    try:
        from sweep_script import configs
    finally:
        sys.path.remove(str(tmp_path))
    after = _rows(db)
    assert sorted(after) == sorted(config_key(c) for c in configs)  # each trial exactly once
    assert {k: after[k] for k in before} == before  # finished trials kept, not rerun
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*), count(DISTINCT key) FROM trials").fetchone() == \
            (12, 12)
        assert con.execute("SELECT count(*) FROM trials WHERE status != 'done'").fetchone() == \
            (0,)
    # the killed driver's pool workers exit with it instead of waiting forever
    time.sleep(1.0)
    alive = [p for p in workers if os.path.exists(f"/proc/{p}")
             and "spawn" in open(f"/proc/{p}/cmdline").read()]
    assert alive == []


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_ray_gives_the_same_metrics_as_the_process_pool(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'vanishing[ray]'")
    # Ray runs its workers at nice 15; on a shared machine they would wait behind every
    # other process (importing torch took 50 s instead of 2 s here)
    monkeypatch.setenv("RAY_worker_niceness", "0")
    # every kind of core: fused torch.nn ones and each cell of vanishing.cells (IndRNN's
    # constraint, the LRU's complex state, the minimal cells, expRNN's parametrization
    # must all survive pickling to a worker and back)
    models = ["rnn_tanh", "lstm", "indrnn", "lru", "mingru", "minlstm", "exprnn"]
    configs = grid("adding", models, [5], 2, **TINY)
    pool = run_sweep(configs, tmp_path / "pool.sqlite", workers=2)
    assert pool.ran == 14 and pool.failed == 0
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = run_sweep(configs, tmp_path / "ray.sqlite", ray="auto")
    finally:
        ray.shutdown()
    assert on_ray.ran == 14 and on_ray.failed == 0
    with open_store(tmp_path / "pool.sqlite") as a, open_store(tmp_path / "ray.sqlite") as b:
        rows_a, rows_b = a.records(pool.keys), b.records(on_ray.keys)
    assert len(rows_a) == len(rows_b) == 14
    assert {r["config"]["model"] for r in rows_b} == set(models)
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert ra["key"] == rb["key"]
        assert {k: ra[k] for k in COMPARED} == {k: rb[k] for k in COMPARED}


def test_figures_show_one_task(tmp_path):
    from vanishing.report.sweep_figures import plot_success
    from vanishing.sweep.summary import SweepPoint

    points = [SweepPoint("adding", "lstm", 5, 1e-2, {}), SweepPoint("latch", "lstm", 5, 1e-2, {})]
    with pytest.raises(ValueError, match="one task, got 2"):
        plot_success(points, tmp_path / "x.png")
