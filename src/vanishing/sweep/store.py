"""Sweep results in one SQLite file: one row per trial, keyed by a hash of its config.

A trial is one ``train(config)``. Its key is the SHA-256 of the config's canonical JSON
(:func:`config_key`), so the same config always lands on the same row and a rerun can
skip it. Rows hold a status:

- ``done``: training ran to the end; ``solved`` says whether the task's criterion held.
- ``diverged``: the loss became NaN or inf.
- ``failed``: the trial raised (``message`` says what); a sweep with ``retry_failed``
  reruns it.

A finished row (``done`` or ``diverged``) is never replaced; a ``failed`` row is replaced
by the next attempt. Each write is one transaction, so a driver killed at any moment
leaves every finished trial in the file and no half-written one.

The file is recognised before SQLite opens it: its 100-byte header must say SQLite, carry
this project's ``application_id`` (:data:`APPLICATION_ID`) and a schema version
(``user_version``) this code reads. A foreign, corrupt or newer file raises
:class:`StoreError` and is left byte for byte as it was. A new store is built in a
temporary file and linked into place, so it never replaces a file that appeared meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..train import TrainConfig

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "STATUSES", "FINISHED", "StoreError", "Store",
           "config_key", "canonical_json", "check_path", "open_store"]

#: ``PRAGMA application_id``: the bytes "VNSH", marking a vanishing results store.
APPLICATION_ID = int.from_bytes(b"VNSH", "big")
#: ``PRAGMA user_version``: the layout of the tables below.
SCHEMA_VERSION = 1
#: Statuses of a finished trial: its row is final, never rerun or replaced.
FINISHED = ("done", "diverged")
STATUSES = (*FINISHED, "failed")
_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE trials (
    key TEXT PRIMARY KEY,              -- sha256 of the canonical config JSON
    config TEXT NOT NULL,              -- canonical JSON of TrainConfig.to_dict()
    task TEXT NOT NULL, model TEXT NOT NULL, length INTEGER NOT NULL,
    seed INTEGER NOT NULL, lr REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({statuses})),
    solved INTEGER,                    -- 1/0 for done and diverged, NULL for failed
    steps INTEGER, steps_to_solve INTEGER,
    final TEXT,                        -- JSON: last held-out metrics
    history TEXT,                      -- JSON: one dict per evaluation
    chance_loss REAL,
    horizon INTEGER,                   -- gradient horizon of the trained model (steps)
    probe_length INTEGER,              -- time steps the probe read
    message TEXT,                      -- why a trial failed, or a note
    wall_time REAL,
    vanishing_version TEXT, torch_version TEXT, host TEXT,
    finished_at TEXT NOT NULL
);
CREATE INDEX trials_cell ON trials (task, model, length);
""".format(statuses=", ".join(f"'{s}'" for s in STATUSES))
_COLUMNS = ("key", "config", "task", "model", "length", "seed", "lr", "status", "solved",
            "steps", "steps_to_solve", "final", "history", "chance_loss", "horizon",
            "probe_length", "message", "wall_time", "vanishing_version", "torch_version",
            "host", "finished_at")
_JSON = ("config", "final", "history")


class StoreError(ValueError):
    """The file is not a results store this code can use (foreign, corrupt or newer)."""


#: TrainConfig fields added after stores existed, with their defaults: left out of the
#: key while at the default, so every earlier store resumes where it stopped.
ADDED_LATER = {"truncate": None, "floss": None, "device": "cpu"}


def canonical_json(config: TrainConfig) -> str:
    """The config as JSON with sorted keys and no spaces; float fields always as floats.

    ``lr=1`` and ``lr=1.0`` are the same run, so numbers in float-typed fields are written
    as floats before hashing. Fields in :data:`ADDED_LATER` are left out at their default.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"expected a TrainConfig, got {type(config).__name__}")
    data = config.to_dict()
    for name, default in ADDED_LATER.items():  # keys of stores made before them stay put
        if data.get(name) == default:
            data.pop(name, None)
    for name, kind in TrainConfig.__annotations__.items():
        value = data.get(name)
        if "float" in str(kind) and isinstance(value, int) and not isinstance(value, bool):
            data[name] = float(value)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def config_key(config: TrainConfig) -> str:
    """SHA-256 (hex) of :func:`canonical_json`: the trial's row key."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


def _check_header(path: Path) -> None:
    """Refuse anything that is not a store of a schema this code reads, reading only."""
    with open(path, "rb") as f:
        head = f.read(100)
    if not head:
        raise StoreError(f"{str(path)!r} is an empty file, not a vanishing results store; "
                         f"delete it or choose another path")
    if len(head) < 100 or not head.startswith(_MAGIC):
        raise StoreError(f"{str(path)!r} is not an SQLite database (another kind of file, "
                         f"or a corrupt one); it was left untouched: choose another path")
    app_id = int.from_bytes(head[68:72], "big")
    version = int.from_bytes(head[60:64], "big")
    if app_id != APPLICATION_ID:
        raise StoreError(f"{str(path)!r} is an SQLite database but not a vanishing results "
                         f"store (application_id {app_id:#x}, expected {APPLICATION_ID:#x}); "
                         f"it was left untouched: choose another path")
    if version > SCHEMA_VERSION:
        raise StoreError(f"{str(path)!r} was written by a newer vanishing (schema {version}, "
                         f"this one reads {SCHEMA_VERSION}); upgrade vanishing to use it")
    if version < 1:
        raise StoreError(f"{str(path)!r} has the vanishing application_id but no schema "
                         f"version: it is corrupt; it was left untouched")


def _create(path: Path) -> None:
    """Build an empty store in a temporary file beside ``path`` and link it into place."""
    folder = path.parent
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    try:
        con = sqlite3.connect(tmp)
        try:
            with con:
                con.executescript(_SCHEMA)
                con.execute("INSERT INTO meta VALUES ('format', 'vanishing-sweep-store')")
                con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        finally:
            con.close()
        try:
            os.link(tmp, path)  # fails if path appeared meanwhile: never replaces a file
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(tmp, path)
    except (OSError, sqlite3.Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ValueError(f"{str(path)!r}: cannot create a results store there "
                         f"({reason})") from None
    finally:
        tmp.unlink(missing_ok=True)


class Store:
    """An open results store; use :func:`open_store`. A context manager (closes on exit).

    Rows are dicts with the columns of the ``trials`` table; ``config``, ``final`` and
    ``history`` decoded from JSON and ``solved`` as a bool (None for failed trials).
    """

    def __init__(self, path: Path, con: sqlite3.Connection, readonly: bool) -> None:
        self.path, self._con, self.readonly = path, con, readonly

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._con.close()

    def statuses(self) -> dict[str, str]:
        """key -> status for every trial in the store."""
        try:
            return dict(self._con.execute("SELECT key, status FROM trials"))
        except sqlite3.Error as exc:
            raise StoreError(f"{str(self.path)!r} holds a damaged trial record "
                             f"({type(exc).__name__}); it was left untouched") from None

    def get(self, key: str) -> dict | None:
        """The row of ``key``, or None."""
        rows = list(self._select("WHERE key = ?", (key,)))
        return rows[0] if rows else None

    def records(self, keys: Iterable[str] | None = None) -> list[dict]:
        """Every row (or the rows of ``keys``, in that order, missing ones left out)."""
        if keys is None:
            return list(self._select("ORDER BY task, model, length, lr, seed"))
        found = {}
        keys = list(keys)
        for i in range(0, len(keys), 500):  # SQLite caps the number of parameters
            chunk = keys[i: i + 500]
            marks = ",".join("?" * len(chunk))
            found.update((r["key"], r) for r in self._select(f"WHERE key IN ({marks})", chunk))
        return [found[k] for k in keys if k in found]

    def put(self, record: dict) -> bool:
        """Write one trial in one transaction; True if written.

        A new key is inserted; an existing ``failed`` row is replaced; a finished row is
        kept as it is (returns False): a finished trial is never lost or rewritten.
        """
        if self.readonly:
            raise ValueError(f"{str(self.path)!r} was opened read-only")
        if record.get("status") not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, "
                             f"got {record.get('status')!r}")
        missing = {"key", "config", "finished_at"} - set(record)
        if missing:
            raise ValueError(f"trial record lacks {', '.join(sorted(missing))}")
        config = record["config"]
        row = {c: record.get(c) for c in _COLUMNS}
        row.update({c: config[c] for c in ("task", "model", "length", "seed", "lr")})
        for c in _JSON:
            row[c] = None if row[c] is None else json.dumps(row[c], sort_keys=True)
        if row["solved"] is not None:
            row["solved"] = int(bool(row["solved"]))
        cols = ", ".join(_COLUMNS)
        marks = ", ".join(f":{c}" for c in _COLUMNS)
        update = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "key")
        finished = ", ".join(f"'{s}'" for s in FINISHED)
        with self._con:  # one transaction
            cur = self._con.execute(
                f"INSERT INTO trials ({cols}) VALUES ({marks}) ON CONFLICT (key) DO UPDATE "
                f"SET {update} WHERE trials.status NOT IN ({finished})", row)
        return cur.rowcount > 0

    def _select(self, where: str, args: Iterable = ()) -> Iterator[dict]:
        """Rows decoded; a record SQLite or JSON cannot read is one :class:`StoreError`
        naming the store (and the column), never its raw bytes."""
        try:
            cur = self._con.execute(f"SELECT {', '.join(_COLUMNS)} FROM trials {where}",
                                    tuple(args))
            for values in cur:
                yield self._decode(dict(zip(_COLUMNS, values, strict=True)))
        except sqlite3.Error as exc:
            raise StoreError(f"{str(self.path)!r} holds a damaged trial record "
                             f"({type(exc).__name__}); it was left untouched") from None

    def _decode(self, row: dict) -> dict:
        for c in _JSON:
            try:
                row[c] = None if row[c] is None else json.loads(row[c])
            except (ValueError, TypeError) as exc:
                raise StoreError(f"{str(self.path)!r} holds a damaged trial record: its "
                                 f"{c} is not JSON ({type(exc).__name__}); it was left "
                                 "untouched") from None
        if not isinstance(row["config"], dict):
            raise StoreError(f"{str(self.path)!r} holds a damaged trial record: its config "
                             "is not a JSON object; it was left untouched")
        if row["solved"] is not None:
            row["solved"] = bool(row["solved"])
        return row


def check_path(path: str | Path, *, readonly: bool = False) -> Path:
    """``path`` as a ``Path`` if :func:`open_store` can use it; creates and changes nothing.

    An existing file must be a store this code reads (its header is read, nothing else)
    and, unless ``readonly``, writable; a missing one needs an existing folder (and
    ``readonly=False``). Whether a file can be created there is only known by creating it.

    Raises:
        StoreError: the file exists but is not a store this code reads.
        ValueError: the path is a folder, not writable, missing (``readonly``) or in a
            folder that does not exist.
        TypeError: ``path`` is not a path.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"db must be a path, got {type(path).__name__}")
    path = Path(path)
    if path.exists():
        if not path.is_file():
            raise ValueError(f"{str(path)!r} is not a file")
        _check_header(path)
        if not readonly and not os.access(path, os.W_OK):
            raise ValueError(f"{str(path)!r} is not writable")
    elif readonly:
        raise ValueError(f"{str(path)!r} does not exist; run a sweep into it first")
    elif not path.parent.is_dir():
        raise ValueError(f"{str(path)!r}: the folder {str(path.parent)!r} does not exist; "
                         f"create it first")
    return path


def open_store(path: str | Path, *, readonly: bool = False) -> Store:
    """Open the results store at ``path``, creating it unless ``readonly``.

    Raises:
        StoreError: the file exists but is not a store this code reads (left untouched).
        ValueError: as :func:`check_path`, or a new store cannot be created there.
    """
    path = check_path(path, readonly=readonly)
    if not path.exists():
        _create(path)
        _check_header(path)  # if another process created it first, it must be a store too
    uri = f"{path.resolve().as_uri()}?mode={'ro' if readonly else 'rw'}"
    try:
        con = sqlite3.connect(uri, uri=True, timeout=60)
        check = con.execute("PRAGMA quick_check").fetchone()[0]
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    except sqlite3.Error as exc:
        raise StoreError(f"{str(path)!r} cannot be read as a vanishing results store ({exc}); "
                         f"it was left untouched") from None
    if check != "ok" or not {"meta", "trials"} <= tables:
        con.close()
        raise StoreError(f"{str(path)!r} is a damaged vanishing results store "
                         f"(quick_check: {check}); it was left untouched")
    if not readonly:
        _check_writable(path, con)
    return Store(path, con, readonly)


def _check_writable(path: Path, con: sqlite3.Connection) -> None:
    """Prove a write goes through (SQLite also needs to create its journal in the
    folder) with a row inserted and rolled back, so that a sweep is refused before its
    first trial rather than losing it; the file's content is unchanged either way."""
    try:
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("INSERT INTO meta VALUES ('write-check', '')")
        finally:
            if con.in_transaction:
                con.rollback()
    except sqlite3.Error as exc:
        con.close()
        raise ValueError(f"{str(path)!r} cannot be written ({exc}; is its folder "
                         f"{str(path.parent)!r} read-only?); it was left untouched") from None
