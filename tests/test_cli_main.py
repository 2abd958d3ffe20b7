"""The console entry point: errors found while parsing the command line are one line too."""

import pytest

from vanishing.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--gap", "abc"], "Invalid value for '--gap'"),
        (["demo", "--nope"], "No such option: --nope"),
        (["descend"], "Missing argument"),
        (["tasks", "show"], "Missing argument"),
        (["probe", "--length", "1.5"], "Invalid value for '--length'"),
        (["sweep", "--seeds", "x"], "Invalid value for '--seeds'"),
        (["nosuchcommand"], "No such command"),
    ],
)
def test_usage_errors_are_one_line_on_stderr_with_exit_code_2(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    out, err = capsys.readouterr()
    assert stop.value.code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert "--help" in lines[0]


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        ([], "Usage: vanishing [OPTIONS] COMMAND"),
        (["--help"], "Usage: vanishing [OPTIONS] COMMAND"),
        (["demo", "--help"], "Usage: vanishing demo [OPTIONS]"),
        (["tasks"], "temporal-order: Pascanu, Mikolov & Bengio 2013"),
    ],
)
def test_help_and_listings_exit_0(argv, shown, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    out, err = capsys.readouterr()
    assert stop.value.code == 0 and err == ""
    assert shown in out


def test_out_of_memory_is_one_line_and_other_runtime_errors_keep_their_traceback(capsys):
    import typer

    from vanishing.cli._common import handle_errors

    @handle_errors
    def huge():
        torch_message = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 2e11"
        raise RuntimeError(torch_message)

    @handle_errors
    def bug():
        raise RuntimeError("shape mismatch in a matmul")

    with pytest.raises(typer.Exit) as stop:
        huge()
    assert stop.value.exit_code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "out of memory" in err and "--help" in err
    with pytest.raises(RuntimeError, match="shape mismatch"):
        bug()
