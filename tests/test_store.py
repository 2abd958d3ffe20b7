"""The results store: keys, one row per trial, and files it must refuse and never touch."""

import sqlite3

import pytest

from vanishing.sweep.store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    StoreError,
    canonical_json,
    config_key,
    open_store,
)
from vanishing.train import TrainConfig

CONFIG = TrainConfig(task="adding", model="lstm", length=5, seed=3)


def record(config=CONFIG, status="done", **extra):
    import json

    return {"key": config_key(config), "config": json.loads(canonical_json(config)),
            "status": status, "solved": None if status == "failed" else True,
            "finished_at": "2024-01-01T00:00:00+00:00", **extra}


def test_key_is_the_hash_of_the_canonical_config():
    assert config_key(CONFIG) == config_key(TrainConfig.from_dict(CONFIG.to_dict()))
    assert config_key(TrainConfig(task="adding", lr=1)) == config_key(
        TrainConfig(task="adding", lr=1.0))
    assert config_key(CONFIG) != config_key(TrainConfig(task="adding", model="lstm",
                                                        length=5, seed=4))
    assert canonical_json(CONFIG).startswith('{"batch_size":64,')


def test_new_store_is_marked_and_rows_round_trip(tmp_path):
    path = tmp_path / "r.sqlite"
    with open_store(path) as store:
        assert store.put(record(final={"loss": 0.5, "mse": 0.5}, horizon=4, steps=10))
    head = path.read_bytes()[:100]
    assert int.from_bytes(head[68:72], "big") == APPLICATION_ID
    assert int.from_bytes(head[60:64], "big") == SCHEMA_VERSION
    assert [p.name for p in tmp_path.iterdir()] == ["r.sqlite"]  # no temporary left behind
    with open_store(path, readonly=True) as store:
        row = store.get(config_key(CONFIG))
        assert row["final"] == {"loss": 0.5, "mse": 0.5} and row["horizon"] == 4
        assert row["solved"] is True and row["model"] == "lstm" and row["seed"] == 3
        assert store.statuses() == {config_key(CONFIG): "done"}
        with pytest.raises(ValueError, match="read-only"):
            store.put(record())


def test_finished_rows_are_never_replaced_failed_rows_are(tmp_path):
    path = tmp_path / "r.sqlite"
    other = TrainConfig(task="adding", model="gru", length=5)
    with open_store(path) as store:
        store.put(record(steps=7))
        assert not store.put(record(status="failed", message="boom"))
        assert store.get(config_key(CONFIG))["steps"] == 7
        store.put(record(other, status="failed", message="boom"))
        assert store.put(record(other, steps=9))
        assert store.get(config_key(other))["status"] == "done"
        assert len(store.records()) == 2
        with pytest.raises(ValueError, match="status must be one of"):
            store.put(record(status="solved"))


def _foreign_sqlite(path):
    con = sqlite3.connect(path)
    with con:
        con.execute("CREATE TABLE trials (key TEXT, value TEXT)")
        con.execute("INSERT INTO trials VALUES ('a', 'precious')")
    con.close()


def _damaged_store(path):
    with open_store(path) as store:
        for seed in range(40):
            c = TrainConfig(task="adding", length=5, seed=seed)
            store.put(record(c, history=[{"step": i, "loss": 0.1} for i in range(30)]))
    data = bytearray(path.read_bytes())
    data[4096: 4096 + 64] = b"\xff" * 64  # trash the header of the second page
    path.write_bytes(bytes(data))


def _newer_store(path):
    open_store(path).close()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"not a database, just some text\n" * 10), "not an SQLite"),
        (lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\x00" * 20), "not an SQLite"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (_foreign_sqlite, "not a vanishing results store"),
        (_damaged_store, "damaged|cannot be read"),
        (_newer_store, "newer vanishing"),
    ],
    ids=["text", "truncated", "empty", "foreign-sqlite", "damaged", "newer-schema"],
)
@pytest.mark.parametrize("readonly", [False, True])
def test_foreign_or_corrupt_files_are_refused_and_left_untouched(tmp_path, make, message,
                                                                 readonly):
    path = tmp_path / "r.sqlite"
    make(path)
    before = path.read_bytes()
    names = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(StoreError, match=message):
        open_store(path, readonly=readonly)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # no journal, no temp file


def test_paths_that_cannot_hold_a_store(tmp_path):
    with pytest.raises(ValueError, match="folder .* does not exist"):
        open_store(tmp_path / "missing" / "r.sqlite")
    with pytest.raises(ValueError, match="does not exist; run a sweep"):
        open_store(tmp_path / "r.sqlite", readonly=True)
    with pytest.raises(ValueError, match="is not a file"):
        open_store(tmp_path)
    with pytest.raises(TypeError, match="db must be a path"):
        open_store(3)
