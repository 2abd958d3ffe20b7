"""The results store: keys, one row per trial, and files it must refuse and never touch."""

import hashlib
import json
import sqlite3

import pytest

from vanishing.sweep.store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    StoreError,
    canonical_json,
    check_path,
    config_key,
    open_store,
)
from vanishing.train import TrainConfig

CONFIG = TrainConfig(task="adding", model="lstm", length=5, seed=3)


def record(config=CONFIG, status="done", **extra):
    return {"key": config_key(config), "config": json.loads(canonical_json(config)),
            "status": status, "solved": None if status == "failed" else True,
            "finished_at": "2024-01-01T00:00:00+00:00", **extra}


#: CONFIG written out field by field, as the store's key format fixes it.
CONFIG_FIELDS = {"task": "adding", "model": "lstm", "length": 5, "hidden_size": 64,
                 "embedding_size": 32, "num_layers": 1, "init": None, "radius": None,
                 "forget_bias": None, "steps": 2000, "batch_size": 64, "lr": 0.003,
                 "optimizer": "adam", "clip": 1.0, "seed": 3, "eval_every": 100,
                 "eval_size": 512, "early_stop": True, "task_options": {}}


def _sha256_of_sorted_compact_json(fields: dict) -> str:
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_key_is_the_sha256_of_the_config_as_sorted_compact_json():
    assert config_key(CONFIG) == _sha256_of_sorted_compact_json(CONFIG_FIELDS)
    # a float field given as an int is the same run, hashed with the float written out
    as_int = TrainConfig(task="adding", model="lstm", length=5, seed=3, lr=1)
    assert config_key(as_int) == _sha256_of_sorted_compact_json({**CONFIG_FIELDS, "lr": 1.0})
    assert '"lr":1.0' in canonical_json(as_int)
    assert config_key(CONFIG) != _sha256_of_sorted_compact_json({**CONFIG_FIELDS, "seed": 4})
    assert config_key(TrainConfig.from_dict(CONFIG.to_dict())) == config_key(CONFIG)


def test_new_store_is_marked_and_rows_round_trip(tmp_path):
    path = tmp_path / "r.sqlite"
    with open_store(path) as store:
        assert store.put(record(final={"loss": 0.5, "mse": 0.5}, horizon=4, steps=10)) is True
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
        assert store.put(record(status="failed", message="boom")) is False
        assert store.get(config_key(CONFIG))["steps"] == 7
        store.put(record(other, status="failed", message="boom"))
        assert store.put(record(other, steps=9)) is True
        assert store.get(config_key(other))["status"] == "done"
        diverged = TrainConfig(task="adding", model="rnn_relu", length=5)
        assert store.put(record(diverged, status="diverged", steps=3)) is True
        assert store.put(record(diverged, status="failed", message="boom")) is False
        assert store.get(config_key(diverged))["status"] == "diverged"
        assert len(store.records()) == 3
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


def test_a_path_is_checked_without_creating_or_changing_anything(tmp_path):
    new = tmp_path / "new.sqlite"
    assert check_path(new) == new and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="folder .* does not exist; create it first"):
        check_path(tmp_path / "missing" / "r.sqlite")
    _foreign_sqlite(new)
    before = new.read_bytes()
    with pytest.raises(StoreError, match="not a vanishing results store"):
        check_path(new)
    assert new.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["new.sqlite"]


def test_store_errors_name_the_path_not_a_command_line_flag(tmp_path):
    messages = []
    for make in (lambda p: p.write_bytes(b""), _foreign_sqlite, lambda p: None):
        path = tmp_path / f"s{len(messages)}.sqlite"
        make(path)
        with pytest.raises(ValueError) as info:
            open_store(path if path.exists() else tmp_path / "no" / "r.sqlite")
        messages.append(str(info.value))
    assert all("--" not in m and ".sqlite'" in m for m in messages), messages


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


@pytest.mark.parametrize("column, value", [
    ("config", b"\xff\xfe raw \x00 bytes"),   # not UTF-8: sqlite3 cannot decode it
    ("config", "{not json"),
    ("history", "[1, 2"),
    ("config", "[1, 2]"),
])
def test_a_corrupt_record_is_one_store_error_without_raw_bytes(tmp_path, column, value):
    path = tmp_path / "r.sqlite"
    with open_store(path) as store:
        store.put(record())
    con = sqlite3.connect(path)
    with con:
        con.execute(f"UPDATE trials SET {column} = CAST(? AS TEXT)", (value,))
    con.close()
    before = _digest(tmp_path)
    with open_store(path, readonly=True) as store:
        with pytest.raises(StoreError, match="damaged trial record") as info:
            store.records()
    text = str(info.value)
    assert "\n" not in text and "raw" not in text and "\\x" not in text
    assert _digest(tmp_path) == before


def test_a_store_that_cannot_be_written_is_refused_on_opening(tmp_path, monkeypatch):
    """A read-only folder makes SQLite unable to create its journal: the first write
    fails. Simulated with query_only (the tests may run as root, who may write anyway)."""
    path = tmp_path / "r.sqlite"
    with open_store(path) as store:
        store.put(record())
    before = _digest(tmp_path)
    connect = sqlite3.connect

    def read_only(*args, **kwargs):
        con = connect(*args, **kwargs)
        con.execute("PRAGMA query_only = ON")
        return con

    monkeypatch.setattr(sqlite3, "connect", read_only)
    with pytest.raises(ValueError, match=r"cannot be written .*read-only\?\); it was left"):
        open_store(path)
    with open_store(path, readonly=True) as store:  # reading still works
        assert len(store.records()) == 1
    assert _digest(tmp_path) == before
    monkeypatch.undo()
    with open_store(path) as store:  # the check leaves no row behind
        assert store.put(record(CONFIG.__class__(task="adding", model="gru", length=5)))
        assert len(store.records()) == 2
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*) FROM meta WHERE key = 'write-check'").fetchone()[0] == 0
