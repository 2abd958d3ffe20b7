"""The ``vanishing`` command: a thin layer that parses, calls the library, and reports.

Each command lives in its own module of this package and is registered here.
"""

from __future__ import annotations

import typer

from .. import __version__
from .demo import demo
from .descend import descend
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
app.command("probe")(probe)
app.command("sweep")(sweep)
app.add_typer(tasks_app, name="tasks")
app.command("train")(train_command)


def main() -> None:
    """Console-script entry point."""
    app()
