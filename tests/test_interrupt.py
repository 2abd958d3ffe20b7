"""Ctrl-C in the long commands: one line on stderr, exit code 130, no traceback, and
nothing already saved lost. Each command runs in its own process group with stderr on a
pseudo-terminal (so it draws its progress bar, as at a terminal; train, demo and sweep
draw theirs on stdout, so theirs is a second pseudo-terminal); SIGINT goes to the group,
as a terminal's Ctrl-C does, once the progress output shows work done."""

import contextlib
import hashlib
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each run starts a Python with torch: 2-5 s

#: what a progress bar draws: its label, bar, percentage, counts and times
PROGRESS = re.compile(r"━|^(descending|training|\S+ on \S+)|^[\d%:/.\- ]+$")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
ENV = {**os.environ, "COLUMNS": "200"}
#: a bar's count once a step (of train or demo) or a trial (of sweep) is done: "37/10000000"
DONE = r"\b[1-9]\d*/{total}\b"


def _vanishing(args: list[str], cwd) -> subprocess.CompletedProcess:
    """A complete run, no terminal (no progress output)."""
    done = subprocess.run([sys.executable, "-m", "vanishing", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done


def _read(fd: int, wait: float) -> bytes | None:
    """What ``fd`` holds now (or within ``wait`` seconds), None at its end (every
    process holding the pseudo-terminal's other side has closed it)."""
    if not select.select([fd], [], [], wait)[0]:
        return b""
    try:
        return os.read(fd, 65536) or None
    except OSError:  # EIO: the other side closed
        return None


def _gone(pgid: int, wait: float = 20.0) -> bool:
    """Whether every process of the group has ended within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _workers_started(pgid: int) -> bool:
    """Whether a spawned worker process (still importing, perhaps) is in the group."""
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            if proc.name.isdigit() and os.getpgid(int(proc.name)) == pgid and \
                    b"spawn_main" in (proc / "cmdline").read_bytes():
                return True
    return False


def _interrupt(args: list[str], ready, cwd, timeout: float = 180.0,
               stdout_tty: bool = False):
    """Run ``vanishing args``, send SIGINT to its process group once the regular
    expression ``ready`` matches its stderr or stdout (or ``ready(pgid)`` is true);
    return (exit code, stdout without
    terminal codes, the stderr lines that are not progress output). ``stdout_tty``: stdout
    on a pseudo-terminal too (else a file)."""
    err_master, err_slave = pty.openpty()
    out_master, out_slave = pty.openpty() if stdout_tty else (None, None)
    out_path = cwd / "stdout.txt"
    with open(out_path, "wb") as out_file:
        proc = subprocess.Popen([sys.executable, "-m", "vanishing", *args], cwd=cwd,
                                stdout=out_slave if stdout_tty else out_file, stderr=err_slave,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=ENV)
        os.close(err_slave)
        if stdout_tty:
            os.close(out_slave)
        masters = [m for m in (err_master, out_master) if m is not None]
        seen = {m: b"" for m in masters}
        deadline, sent = time.monotonic() + timeout, False
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                for m in select.select(masters, [], [], 0.1)[0]:
                    seen[m] += _read(m, 0) or b""
                text = b"".join(seen.values()).decode(errors="replace")
                if not stdout_tty:
                    text += out_path.read_text(errors="replace")
                if not sent and (ready(proc.pid) if callable(ready) else
                                 re.search(ready, ANSI.sub("\n", text), re.MULTILINE)):
                    os.killpg(proc.pid, signal.SIGINT)
                    sent = True
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            for m in masters:  # to the end: what workers print after the driver is gone too
                while (chunk := _read(m, 0.5)) is not None and time.monotonic() < deadline:
                    seen[m] += chunk
            assert _gone(proc.pid), "a process of the command outlived it"
        finally:
            with contextlib.suppress(ProcessLookupError):  # nothing left behind
                os.killpg(proc.pid, signal.SIGKILL)
            for m in masters:
                os.close(m)
    err_text = seen[err_master].decode(errors="replace")
    out = ANSI.sub("\n", seen[out_master].decode(errors="replace")) if stdout_tty else \
        out_path.read_text()
    assert sent, f"never saw {ready!r}: {err_text[-500:]!r} {out[-500:]!r}"
    assert "Traceback" not in err_text + out, err_text + out
    err = [line.strip() for line in ANSI.sub("\n", err_text).splitlines()]
    return code, out, [line for line in err if line and not PROGRESS.search(line)]


def _one_interrupt_line(code: int, err: list[str], out: str) -> None:
    assert code == 130, (out, err)
    assert len(err) == 1 and err[0].startswith("interrupted (Ctrl-C)"), err


def _hashes(folder) -> dict[str, str]:
    """Every file under ``folder`` (subfolders too: the demo's models/) by its hash."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_descend_ctrl_c_prints_the_path_so_far(tmp_path):
    code, out, err = _interrupt(["descend", "abs(w)", "--start", "1", "--lr", "1e-12",
                                 "--steps", "10000000"], "1%", tmp_path)
    _one_interrupt_line(code, err, out)
    steps = int(re.search(r"status: interrupted \(Ctrl-C\) after (\d+) steps", out)[1])
    assert steps >= 1000 and f"the {steps} steps taken are shown above" in err[0]
    assert "reached: w = " in out


def test_train_ctrl_c_keeps_the_checkpoint_already_saved(tmp_path):
    tiny = ["--task", "adding", "--model", "rnn_tanh", "--length", "20", "--hidden-size", "8",
            "--batch-size", "8", "--eval-every", "1000", "--save", "run.pt"]
    _vanishing(["train", *tiny, "--steps", "5", "--quiet"], tmp_path)
    before = _hashes(tmp_path)
    code, out, err = _interrupt(["train", *tiny, "--steps", "10000000"],
                                DONE.format(total=10000000), tmp_path, stdout_tty=True)
    _one_interrupt_line(code, err, out)
    assert "checkpoint:" not in out
    (tmp_path / "stdout.txt").unlink()
    assert _hashes(tmp_path) == before  # the old checkpoint as it was, and no run.pt.tmp


def test_demo_ctrl_c_leaves_the_last_complete_run_whole(tmp_path):
    tiny = ["--models", "rnn_tanh,gru", "--gap", "2", "--out", "out"]
    _vanishing(["demo", *tiny, "--steps", "2", "--quiet"], tmp_path)
    before = _hashes(tmp_path / "out")
    assert "report.html" in before and "models/gru.pt" in before and len(before) >= 2
    code, out, err = _interrupt(["demo", *tiny, "--steps", "10000000"],
                                DONE.format(total=10000000), tmp_path, stdout_tty=True)
    _one_interrupt_line(code, err, out)
    assert "figures:" not in out
    assert _hashes(tmp_path / "out") == before  # nothing half-written, no stray temporary


def test_sweep_ctrl_c_keeps_finished_trials_and_resumes(tmp_path):
    from vanishing.sweep.store import FINISHED, open_store

    def finished() -> set[str]:
        with open_store(tmp_path / "s.sqlite", readonly=True) as store:
            return {r["key"] for r in store.records() if r["status"] in FINISHED}

    tiny = ["--task", "adding", "--models", "rnn_tanh", "--steps", "40", "--hidden-size", "8",
            "--batch-size", "8", "--eval-every", "20", "--db", "s.sqlite", "--out", "out"]
    _vanishing(["sweep", *tiny, "--lengths", "5", "--seeds", "2", "--workers", "1", "-q"],
               tmp_path)
    first = finished()
    assert len(first) == 2
    bigger = [*tiny, "--lengths", "5,150", "--seeds", "4", "--workers", "2"]  # 6 more
    code, out, err = _interrupt(["sweep", *bigger], DONE.format(total=6), tmp_path,
                                stdout_tty=True)
    _one_interrupt_line(code, err, out)
    kept = finished()
    assert first < kept and len(kept) < 8, (len(kept), out)  # stopped with trials to run
    rerun = _vanishing(["sweep", *bigger, "-q"], tmp_path)
    assert f"ran {8 - len(kept)} trials (0 failed)" in rerun.stdout, rerun.stdout
    assert f"{len(kept)} were already in s.sqlite" in rerun.stdout, rerun.stdout
    assert len(finished()) == 8


def test_sweep_ctrl_c_while_its_workers_start_is_one_line(tmp_path):
    """Workers still importing torch took the SIGINT as a KeyboardInterrupt and printed
    its traceback; the driver then waited for the trials already running."""
    code, out, err = _interrupt(["sweep", "--task", "adding", "--models", "rnn_tanh",
                                 "--lengths", "400", "--seeds", "4", "--steps", "2000",
                                 "--workers", "2", "--db", "s.sqlite", "--out", "out"],
                                _workers_started, tmp_path, timeout=60.0, stdout_tty=True)
    _one_interrupt_line(code, err, out)
    assert "ran " not in out
