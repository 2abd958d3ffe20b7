"""Ctrl-C in the long commands: one line on stderr, exit code 130, no traceback, and
nothing already saved lost. Each command runs in its own process group with stderr on a
pseudo-terminal (so it draws its progress bar, as at a terminal); SIGINT goes to the
group, as a terminal's Ctrl-C does, once the progress output has started."""

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow  # each run starts a Python with torch: 2-5 s

#: what a progress bar draws: its label, bar, percentage, counts and times
PROGRESS = re.compile(r"━|^(descending|training|\S+ on \S+)|^[\d%:/.\- ]+$")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def _interrupt(args: list[str], ready: str, cwd, timeout: float = 120.0):
    """Run ``vanishing args``, send SIGINT once ``ready`` shows on stderr or stdout;
    return (exit code, stdout, the stderr lines that are not progress output)."""
    master, slave = pty.openpty()
    out_path = cwd / "stdout.txt"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "vanishing", *args], cwd=cwd,
                                stdout=out, stderr=slave, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "COLUMNS": "100"})
        os.close(slave)
        seen, deadline, sent = b"", time.monotonic() + timeout, False
        while proc.poll() is None and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
            if not sent and (ready.encode() in seen or ready.encode() in out_path.read_bytes()):
                os.killpg(proc.pid, signal.SIGINT)
                sent = True
        try:
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        while select.select([master], [], [], 0.1)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        os.close(master)
    assert sent, f"never saw {ready!r}: {seen[-500:]!r}"
    err = [line.strip() for line in ANSI.sub("\n", seen.decode(errors="replace")).splitlines()]
    return code, out_path.read_text(), [line for line in err if line and not PROGRESS.search(line)]


def test_descend_ctrl_c_prints_the_path_so_far(tmp_path):
    code, out, err = _interrupt(["descend", "abs(w)", "--start", "1", "--lr", "1e-12",
                                 "--steps", "10000000"], "1%", tmp_path)
    assert code == 130, (out, err)
    assert len(err) == 1 and err[0].startswith("interrupted (Ctrl-C)"), err
    assert "Traceback" not in out + " ".join(err)
    steps = int(re.search(r"status: interrupted \(Ctrl-C\) after (\d+) steps", out)[1])
    assert steps >= 1000 and f"the {steps} steps taken are shown above" in err[0]
    assert "reached: w = " in out

