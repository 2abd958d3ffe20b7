"""Shared pieces of the command-line layer: one console, one way to report errors.

The library raises ``ValueError`` / ``TypeError`` naming what was expected; the CLI
turns them into one line on stderr and exit code 2 (bad usage). ``OSError`` (an
unwritable path, a missing file) is reported the same way, and so is running out of
memory (a length or batch far beyond this machine), with what to shrink.
"""

from __future__ import annotations

import contextlib
import functools
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..report.html import write_html
from ..report.tables import TextTable

# Wide enough for the tables when output goes to a file or a pipe (rich assumes 80 there).
_WIDTH = None if sys.stdout.isatty() else 110
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=_WIDTH)

#: ``--device`` on train, probe, demo and sweep (see :mod:`vanishing.device`)
DeviceOption = Annotated[str, typer.Option(
    help="Device: auto (CUDA when available), cpu, cuda or mps. Tested on the CPU only.")]

F = TypeVar("F", bound=Callable)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr and return the ``typer.Exit`` to raise."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def handle_errors(func: F) -> F:
    """Decorate a command so library errors end as one line and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (ValueError, TypeError, OSError) as exc:
            raise fail(f"{type(exc).__name__}: {exc}") from None
        except (MemoryError, RuntimeError) as exc:
            if not isinstance(exc, MemoryError) and not _out_of_memory(exc):
                raise  # a bug: keep the traceback
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "MemoryError"
            raise fail(f"out of memory ({first}); try a shorter sequence, a smaller batch "
                       "or fewer hidden units (see --help)") from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def flag_errors(flag: str) -> Iterator[None]:
    """Put the option's name in front of a library ``ValueError`` that names only a path:
    ``'x.sqlite' is not a file`` reads ``--db 'x.sqlite' is not a file``."""
    try:
        yield
    except ValueError as exc:
        raise type(exc)(f"{flag} {exc}") from None


def rich_table(table: TextTable, *, caption: bool = True, no_wrap: bool = False,
               **options) -> Table:
    """The terminal's drawing of a report table (text escaped, so it prints as it reads);
    ``caption=False`` leaves the caption for the caller to print; ``options`` go to
    ``rich.table.Table`` (``box``, ``pad_edge``, ...)."""
    out = Table(title=escape(table.title),
                caption=escape(table.caption) if caption and table.caption else None, **options)
    for name, align in zip(table.header, table.align, strict=True):
        out.add_column(escape(name), justify=align, no_wrap=no_wrap)
    for row in table.rows:
        out.add_row(*(escape(cell) for cell in row))
    return out


def _out_of_memory(exc: RuntimeError) -> bool:
    text = str(exc).lower()
    return "allocate" in text or "out of memory" in text


def show_progress(quiet: bool) -> bool:
    """Progress bars only when asked for and when stderr is a terminal."""
    return not quiet and sys.stderr.isatty()


def check_writable_dir(path: Path, option: str) -> Path:
    """Create ``path`` if needed and prove it is writable, before any long work starts."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ValueError(f"{option} {str(path)!r} is not a writable folder "
                         f"({exc.strerror})") from None
    return path


def command_line(ctx: typer.Context) -> str:
    """The running command as typed, for a report: ``vanishing demo --steps 50``.

    From ``sys.argv`` when this process is the ``vanishing`` program (or ``python -m
    vanishing``); a command called in-process (as the tests do) is rebuilt from the
    options that were given on its command line, in declaration order.
    """
    argv = sys.argv
    if Path(argv[0]).name in ("vanishing", "__main__.py") and ctx.info_name in argv[1:]:
        return shlex.join(["vanishing", *argv[1:]])
    words = ["vanishing", str(ctx.info_name)]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if source is None or source.name != "COMMANDLINE" or not param.opts:
            continue
        value = ctx.params[param.name]
        if getattr(param, "is_flag", False):
            words.append(param.opts[0] if value else (param.secondary_opts or param.opts)[0])
        else:
            words += [param.opts[0], str(value)]
    return shlex.join(words)


def write_report(path: Path, text: str) -> None:
    """Write an HTML report and say where, with its size."""
    write_html(path, text)
    size = path.stat().st_size
    console.print(f"report: {escape(str(path))} ({size / 1000:.0f} kB)")
