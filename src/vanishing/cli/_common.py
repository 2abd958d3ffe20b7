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

from .._checks import MAX_LAYERS, MAX_SIZE
from ..report.html import write_html

try:  # typer >= 0.20 carries its own copy of click
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover
    from click import get_current_context
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


#: Exit code of a command stopped by Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130


def interrupted(what: str = "") -> typer.Exit:
    """Print the one line of a Ctrl-C on stderr (``interrupted (Ctrl-C)`` and ``what``
    was kept) and return the ``typer.Exit`` (code 130) to raise."""
    err_console.print(f"interrupted (Ctrl-C){'; ' + escape(what) if what else ''}",
                      soft_wrap=True)
    return typer.Exit(INTERRUPTED)


#: Largest integer any numeric option takes (torch and NumPy index with int64).
INT64_MAX = 2**63 - 1
#: Stated maxima of the CLI's numeric options, by parameter name; every command's
#: integer options are checked against these (and against int64) before any work.
#: Lengths and gaps are bounded by each task's own stated limits.
LIMITS = {
    "hidden_size": MAX_SIZE, "input_size": MAX_SIZE, "embedding_size": MAX_SIZE,
    "layers": MAX_LAYERS, "num_layers": MAX_LAYERS,
    "steps": 10_000_000, "trials": 10_000_000,
    "batch": 1_000_000, "batch_size": 1_000_000, "eval_size": 1_000_000,
    "eval_every": 10_000_000, "truncate": 1_000_000, "max_lag": 1_000_000,
    "seeds": 10_000, "threads": 1024, "workers": 1024,
}


def check_int(flag: str, value: int, most: int | None = None) -> int:
    """The one range check of a numeric option: ``value`` within int64 and at most
    ``most`` (when given), else a one-line ValueError naming the option and the bound."""
    if abs(value) > INT64_MAX:
        bound = f"at most {most:,}" if most is not None and value > 0 else \
            f"between {-INT64_MAX} and {INT64_MAX} (a 64-bit integer)"
        raise ValueError(f"{flag} must be {bound}, got a {len(str(abs(value)))}-digit number")
    if most is not None and value > most:
        raise ValueError(f"{flag} must be at most {most:,}, got {value:,}")
    return value


#: Longest text any option or argument takes (a formula, a list, a KEY=VALUE pair).
MAX_TEXT = 10_000


def check_text(flag: str, value: str) -> str:
    """The one check of a text option: not empty (an empty name is never the default:
    an unset shell variable must not pick one) and at most :data:`MAX_TEXT` characters."""
    if not value.strip():
        hint = " (leave the option out for its default)" if flag.startswith("-") else ""
        raise ValueError(f"{flag} must not be empty{hint}")
    if len(value) > MAX_TEXT:
        raise ValueError(f"{flag} must be at most {MAX_TEXT:,} characters, got {len(value):,}")
    return value


def check_options(options: dict[str, object]) -> None:
    """:func:`check_int` on every integer among a command's parsed options, with the
    bound of :data:`LIMITS` for its name, and :func:`check_text` on every text (lists of
    them too)."""
    for name, value in options.items():
        flag = _flag(name)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, int) and not isinstance(item, bool):
                check_int(flag, item, LIMITS.get(name))
            elif isinstance(item, str):
                check_text(flag, item)


def _flag(name: str) -> str:
    """The option as typed (``--length`` for the parameter ``lengths``)."""
    ctx = get_current_context(silent=True)
    for param in ctx.command.params if ctx is not None else []:
        if param.name == name and param.opts:
            return max(param.opts, key=len)
    return "--" + name.replace("_", "-")


def handle_errors(func: F) -> F:
    """Decorate a command so library errors end as one line and exit code 2, and Ctrl-C
    as one line and exit code 130 (:func:`interrupted`); its integer options are
    range-checked (:func:`check_options`) before it runs."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            check_options(kwargs)
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            raise interrupted() from None
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
