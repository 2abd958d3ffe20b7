"""One self-contained HTML file per report, written with the standard library.

A :class:`Page` collects headings, paragraphs, tables (:class:`~vanishing.report.tables.
TextTable`, the very objects the terminal draws), figures (PNG bytes, inlined as data URIs,
each with the one sentence that says what to see) and blocks of HTML made by this package's
renderers; :meth:`Page.render` adds the :class:`Provenance` (the command, the seed, the
configuration, the versions, the wall time). The file needs no network: no CDN, no web
font, no external script; a Content-Security-Policy that allows only inline styles, inline
script and data: images says so to the browser too. It opens from disk and prints (a print
stylesheet keeps the shades and drops what only works on screen).
"""

from __future__ import annotations

import base64
import html
import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .tables import TextTable

__all__ = ["Provenance", "Page", "versions", "png_data_uri", "table_html", "check_html_path",
           "write_html", "HTML_SUFFIXES"]

HTML_SUFFIXES = (".html", ".htm")

_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'")

_CSS = """
:root { --ink: #1b1b1b; --muted: #5f5f5f; --rule: #d8d8d8; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1100px; padding: 1.5rem 1.25rem 3rem; color: var(--ink);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
h1 { font-size: 1.7rem; line-height: 1.25; margin: 0.5rem 0 0.75rem; }
h2 { font-size: 1.25rem; margin: 2.2rem 0 0.6rem; border-top: 1px solid var(--rule);
  padding-top: 1rem; }
p.lead { font-size: 1.08rem; }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas,
  "DejaVu Sans Mono", monospace; font-size: 0.9em; }
pre { white-space: pre-wrap; word-break: break-word; background: #f6f6f6; padding: 0.5rem 0.7rem; }
.fig { display: grid; grid-template-columns: minmax(0, 3fr) minmax(13em, 1fr); gap: 1.25rem;
  align-items: start; margin: 1rem 0 1.5rem; break-inside: avoid; }
.fig img { width: 100%; height: auto; display: block; }
.fig figcaption, .note { color: var(--muted); font-size: 0.95rem; }
.table-wrap { overflow-x: auto; margin: 0.75rem 0 1.25rem; break-inside: avoid; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 0.92rem; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.35rem; white-space: nowrap; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid var(--rule); }
th { border-bottom: 2px solid #9a9a9a; text-align: left; }
.r { text-align: right; } .l { text-align: left; }
.table-note { color: var(--muted); font-size: 0.88rem; margin-top: 0.3rem; max-width: 60rem; }
dl.meta { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 0.2rem 1rem; }
dl.meta dt { color: var(--muted); } dl.meta dd { margin: 0; }
.conn { width: 100%; table-layout: fixed; }
.conn td, .conn th { vertical-align: top; border: none; padding: 0.3rem 0.5rem; }
.sentence { line-height: 2; margin: 0; }
.w { padding: 0.1rem 0.2rem; border-radius: 3px; cursor: default; }
.w:hover, .w:focus { outline: 2px solid #e6550d; outline-offset: 1px; }
output.readout { display: block; min-height: 1.5em; color: var(--muted); font-size: 0.88rem; }
.scale { position: relative; width: min(32rem, 100%); margin: 0.75rem 0 0.5rem; }
.scale .bar { height: 0.9rem; border: 1px solid #999; }
.scale .ticks { position: relative; height: 1.2rem; font-size: 0.78rem; color: var(--muted); }
.scale .ticks span { position: absolute; transform: translateX(-50%); white-space: nowrap; }
.scale .ticks span:first-child { transform: none; }
.scale .ticks span:last-child { transform: translateX(-100%); }
.scale-label { font-size: 0.85rem; color: var(--muted); }
@media (max-width: 760px) { .fig { grid-template-columns: 1fr; } }
@media print {
  @page { margin: 1.4cm; }
  body { max-width: none; padding: 0; font-size: 10pt; }
  h2 { break-after: avoid; }
  .fig { grid-template-columns: 1fr; gap: 0.3rem; }
  .fig img { max-width: 16cm; }
  .w, .scale .bar { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .w:hover, .w:focus { outline: none; }
  output.readout { display: none; }
  .table-wrap { overflow: visible; }
}
"""

#: Shows a word's share under its sentence on hover or keyboard focus (inline, no network).
_SCRIPT = """
(function () {
  function show(event) {
    var word = event.target.closest ? event.target.closest('.w') : null;
    if (!word) return;
    var out = word.closest('.panel').querySelector('output.readout');
    out.textContent = word.textContent + ': ' + word.dataset.share + ' of the gradient';
  }
  document.addEventListener('mouseover', show);
  document.addEventListener('focusin', show);
})();
"""


def versions() -> dict[str, str]:
    """The versions a report was made with: vanishing, torch, Python."""
    import torch

    from .. import __version__

    return {"vanishing": __version__, "torch": torch.__version__,
            "Python": platform.python_version()}


@dataclass
class Provenance:
    """How a report was made.

    Attributes:
        command: the exact command line.
        seed: the seed (or seeds, e.g. ``"0-2"``) the numbers were drawn with.
        wall_time: seconds from the command's start to the report.
        config: (name, value) pairs of the configuration, in the order to show.
        versions: see :func:`versions`.
    """

    command: str
    seed: str
    wall_time: float
    config: list[tuple[str, str]]
    versions: dict[str, str] = field(default_factory=versions)


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` of PNG bytes (refused if they are not a PNG)."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("a figure must be PNG bytes (they start with the PNG signature)")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def table_html(table: TextTable) -> str:
    """A :class:`TextTable` as ``<table>``: its title as the caption, its caption as a note
    under it; every cell escaped, as the terminal prints it."""
    cls = ["r" if a == "right" else "l" for a in table.align]
    head = "".join(f'<th class="{c}" scope="col">{html.escape(h)}</th>'
                   for h, c in zip(table.header, cls, strict=True))
    body = "".join("<tr>" + "".join(f'<td class="{c}">{html.escape(v)}</td>'
                                    for v, c in zip(row, cls, strict=True)) + "</tr>"
                   for row in table.rows)
    note = f'<p class="table-note">{html.escape(table.caption)}</p>' if table.caption else ""
    return (f'<div class="table-wrap"><table><caption>{html.escape(table.title)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}</div>")


class Page:
    """A report being built, part by part, in reading order."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []

    def heading(self, text: str) -> Page:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")
        return self

    def paragraph(self, text: str, *, css: str = "", mono: bool = False) -> Page:
        inner = f"<code>{html.escape(text)}</code>" if mono else html.escape(text)
        attr = f' class="{css}"' if css else ""
        self.parts.append(f"<p{attr}>{inner}</p>")
        return self

    def lines(self, lines: list[str]) -> Page:
        """Lines of the terminal's text (a diagnosis, notes) as they read there."""
        if lines:
            self.parts.append("<pre>" + html.escape("\n".join(lines)) + "</pre>")
        return self

    def table(self, table: TextTable) -> Page:
        self.parts.append(table_html(table))
        return self

    def figure(self, png: bytes, sentence: str, *, alt: str) -> Page:
        """A figure with the one sentence that says what to see, beside it."""
        self.parts.append(f'<figure class="fig"><img src="{png_data_uri(png)}" '
                          f'alt="{html.escape(alt)}"><figcaption>{html.escape(sentence)}'
                          f"</figcaption></figure>")
        return self

    def block(self, markup: str) -> Page:
        """HTML made by this package's renderers (escaped there), added as it is."""
        self.parts.append(markup)
        return self

    def render(self, provenance: Provenance) -> str:
        """The whole document, provenance last."""
        p = provenance
        facts = [("command", f"<code>{html.escape(p.command)}</code>"),
                 ("seed", html.escape(p.seed)),
                 ("wall time", html.escape(f"{p.wall_time:.1f} s")),
                 ("versions", html.escape(", ".join(f"{k} {v}" for k, v in
                                                    p.versions.items())))]
        facts += [(k, html.escape(v)) for k, v in p.config]
        meta = "".join(f"<dt>{html.escape(k)}</dt><dd>{v}</dd>" for k, v in facts)
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>\n<body>"
            f"<h1>{html.escape(self.title)}</h1>\n" + "\n".join(self.parts) +
            f'\n<h2>How this report was made</h2><dl class="meta">{meta}</dl>'
            f"<script>{_SCRIPT}</script></body></html>\n")


def check_html_path(path: str | Path, option: str = "--html") -> Path:
    """``path`` if a report can be written there, checked before any work; creates nothing.

    The folder must exist (it is not created) and be writable; the path must end in
    ``.html`` or ``.htm`` and must not be a folder. An existing file will be replaced.
    """
    path = Path(path)
    if path.suffix.lower() not in HTML_SUFFIXES:
        raise ValueError(f"{option} must end in .html, got {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"{option} {str(path)!r} is a folder, not a file")
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"{option}: folder {str(folder)!r} does not exist")
    try:  # a file made and removed at once proves the folder takes new files
        with tempfile.TemporaryFile(dir=folder):
            pass
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise ValueError(f"{option} {str(path)!r} cannot be written ({exc.strerror})") from None
    return path


def write_html(path: str | Path, text: str) -> Path:
    """Write the document (UTF-8); through a temporary file in the same folder, so a
    report is never left half written."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".report-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as open() would have made it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
