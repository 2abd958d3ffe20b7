"""The ``vanishing`` command: a thin layer that parses, calls the library, and reports.

Each command lives in its own module of this package and is registered here.
"""

from __future__ import annotations

import sys

import typer

from .. import __version__
from .demo import demo
from .descend import descend
from .explore import explore
from .probe import probe
from .sweep import sweep
from .tasks import tasks_app
from .train import train_command

app = typer.Typer(
    name="vanishing",
    help="See, measure and beat the vanishing (and exploding) gradient problem in RNNs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vanishing {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """See, measure and beat the vanishing (and exploding) gradient problem in RNNs."""


app.command("demo")(demo)
app.command("descend")(descend)
app.command("explore")(explore)
app.command("probe")(probe)
app.command("sweep")(sweep)
app.add_typer(tasks_app, name="tasks")
app.command("train")(train_command)


def _click_class(name: str) -> type[Exception]:
    """Click's exception class ``name``, from whichever click this typer runs on (recent
    typer vendors its own copy; ``typer.BadParameter`` is public in every version)."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


def main(args: list[str] | None = None) -> None:
    """Console-script entry point: usage errors as one line on stderr, exit code 2.

    Typer's own error panel spans six lines; a wrong option value here reads
    ``error: Invalid value for '--gap': ... (see 'vanishing demo --help')``.
    """
    usage_error, click_error = _click_class("UsageError"), _click_class("ClickException")
    try:
        code = app(args=args, prog_name="vanishing", standalone_mode=False)
    except usage_error as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            typer.echo(ctx.get_help())  # `vanishing` or `vanishing tasks` alone: the help
            sys.exit(0)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = " ".join(exc.format_message().split())
        typer.echo(f"error: {message}{where}", err=True)
        code = 2
    except click_error as exc:
        exc.show()
        code = exc.exit_code
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
