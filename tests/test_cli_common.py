"""The CLI's shared checks: one range check for every numeric option, before any work."""

import pytest

from vanishing.cli import main
from vanishing.cli._common import LIMITS, check_int

HUGE = "9" * 23  # beyond int64


def _refused(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    out, err = capsys.readouterr()
    assert stop.value.code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(("argv", "flag"), [
    (["demo", "--gap", HUGE], "--gap"),
    (["probe", "--length", HUGE], "--length"),
    (["probe", "--hidden-size", HUGE], "--hidden-size"),
    (["probe", "--seed", HUGE], "--seed"),
    (["train", "--length", HUGE], "--length"),
    (["train", "--hidden-size", "-" + HUGE], "--hidden-size"),
    (["tasks", "guess", "-L", HUGE], "--length"),
    (["tasks", "show", "adding", "--seed", HUGE], "--seed"),
    (["sweep", "--lengths", f"10,{HUGE}", "--db", "never.sqlite"], "--lengths"),
])
def test_integers_beyond_int64_are_one_line(argv, flag, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = _refused(argv, capsys)
    bounded = flag == "--hidden-size" and not argv[-1].startswith("-")  # its own bound
    assert (f"{flag} must be at most 65,536, got a" in line) if bounded else \
        (f"{flag} must be between" in line and "64-bit" in line)
    assert list(tmp_path.iterdir()) == []  # refused before any work


@pytest.mark.parametrize(("argv", "message"), [
    (["probe", "--hidden-size", "1000000000000"], "--hidden-size must be at most 65,536"),
    (["train", "--hidden-size", "65537"], "--hidden-size must be at most 65,536"),
    (["descend", "abs(w)", "--start", "1", "--steps", "1000000000000"],
     "--steps must be at most 10,000,000"),
])
def test_absurd_sizes_are_refused_with_the_stated_maximum(argv, message, capsys, tmp_path,
                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert message in _refused(argv, capsys)


def test_the_maxima_are_stated_in_help(capsys):
    for argv, text in [(["probe", "--help"], "at most 65536"),
                       (["descend", "--help"], "1 to 10^7")]:
        with pytest.raises(SystemExit):
            main(argv)
        assert text in capsys.readouterr().out


def test_check_int():
    assert check_int("--x", 5, 10) == 5
    assert check_int("--x", -(2**63 - 1)) == -(2**63 - 1)
    with pytest.raises(ValueError, match="--x must be at most 10"):
        check_int("--x", 11, 10)
    with pytest.raises(ValueError, match="64-bit"):
        check_int("--x", 2**63)
    assert LIMITS["hidden_size"] == 65_536 and LIMITS["steps"] == 10**7


@pytest.mark.parametrize(("argv", "message"), [
    (["probe", "--model", ""], "--model must not be empty (leave the option out"),
    (["probe", "--model", "  "], "--model must not be empty"),
    (["probe", "--task", ""], "--task must not be empty"),
    (["descend", "", "--start", "1"], "expression must not be empty"),
    (["sweep", "--models", "", "--db", "x.sqlite"], "--models must not be empty"),
    (["tasks", "show", "language", "-o", "pairs=" + "1+" * 30_000 + "1"],
     "must be at most 10,000 characters"),
    (["tasks", "show", "language", "-o", "pairs=" + "1+" * 2_000 + "1"],
     "'pairs': the value must be at most 1000 characters"),
])
def test_empty_and_overlong_text_is_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert message in _refused(argv, capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_deeply_nested_task_option_is_one_value_error():
    from vanishing.cli.tasks import parse_options

    assert parse_options(["pairs=4", "split=test"]) == {"pairs": 4, "split": "test"}
    with pytest.raises(ValueError, match="at most 1000 characters"):
        parse_options(["pairs=" + "[" * 5000])
