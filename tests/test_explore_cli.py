"""`vanishing explore` as a command: its help, refused ports, no --host, and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from vanishing.cli import main


def _run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(["explore", *args])
    out, err = capsys.readouterr()
    return done.value.code, out, err


def test_help_names_the_options(capsys):
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    for option in ("--port", "--models", "--train-steps", "127.0.0.1"):
        assert option in out


@pytest.mark.parametrize("port", ["-1", "65536", "eighty", "1e3", ""])
def test_a_bad_port_is_one_line_and_exit_2(capsys, port):
    code, out, err = _run(capsys, "--port", port)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--port" in err


@pytest.mark.parametrize("option", ["--host", "--bind", "--address"])
def test_there_is_no_option_for_another_address(capsys, option):
    code, _, err = _run(capsys, option, "0.0.0.0")
    assert code == 2 and "No such option" in err and len(err.strip().splitlines()) == 1


def test_a_port_in_use_is_one_line_and_exit_2(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code, _, err = _run(capsys, "--port", str(taken.getsockname()[1]))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "error:" in err


def _serve(tmp_path, *args: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "vanishing", "explore", "--models",
                             str(tmp_path / "models"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    first = proc.stdout.readline()
    assert first.startswith("vanishing explore: http://127.0.0.1:"), first + proc.stderr.read()
    return proc, first.split()[2]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_it_in_one_line_with_exit_0(tmp_path, stop):
    proc, url = _serve(tmp_path)
    try:
        with urllib.request.urlopen(url + "api/options", timeout=30) as answer:
            assert json.load(answer)["words"]["available"] == []
        proc.send_signal(stop)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and err == "" and out == "stopped\n"


def test_a_given_port_is_the_port_it_listens_on(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc, url = _serve(tmp_path, "--port", str(port))
    try:
        assert url == f"http://127.0.0.1:{port}/"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
