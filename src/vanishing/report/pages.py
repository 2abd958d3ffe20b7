"""The three HTML reports: the demo, a probe's diagnosis and a sweep, each one file.

Each page is laid out from the very objects the terminal prints (the
:class:`~vanishing.report.tables.TextTable` s, the sentences, the connectivity) and draws
its figures from the same measurements, so the numbers in a figure, its table and the
terminal agree. Every figure has the one sentence beside it that says what to see.
Imports matplotlib (the figures).
"""

from __future__ import annotations

from ..demo import DemoReport
from ..diagnose import Diagnosis
from . import connectivity as conn
from . import demo_text, probe_text
from .figures import demo_plots, png_bytes
from .html import Page, Provenance
from .probe_figure import diagnosis_figure
from .sweep_figures import sweep_plots
from .sweep_text import SweepText, figure_sentences

__all__ = ["demo_page", "probe_page", "sweep_page", "connectivity_section"]


def connectivity_section(page: Page, title: str, legend: str, sentence: str,
                         columns: list[str], rows: list[tuple[str, list[conn.Connectivity]]],
                         scale: conn.LogScale) -> Page:
    """A heading, the sentence that says what to see, the colour scale and the shaded
    sentences side by side."""
    page.heading(title).paragraph(sentence).paragraph(legend, css="note")
    return page.block(conn.scale_html(scale) + conn.grid_html(columns, rows, scale))


def demo_page(report: DemoReport, provenance: Provenance) -> str:
    """The demo's report: what it shows in two sentences, the example sentence, the results
    table, the two figures, and which words the gradient reaches."""
    page = Page("France -> French: how far back the gradient reaches")
    for sentence in demo_text.sentences(report):
        page.paragraph(sentence, css="lead")
    page.paragraph(f"example: {report.sample}", mono=True)
    page.table(demo_text.results_table(report))
    page.heading("The gradient through time, and what the models learned")
    for stem, (fig, sentence) in demo_plots(report, captions=False).items():
        page.figure(png_bytes(fig), sentence, alt=stem.replace("-", " "))
    view = demo_text.connectivity_view(report)
    if view is not None:
        connectivity_section(page, view.title, view.legend, view.sentence, view.columns,
                             view.rows, view.scale)
    for note in demo_text.notes(report):
        page.paragraph(note, css="note")
    return page.render(provenance)


def probe_page(diagnosis: Diagnosis, heading: str, rows: int, provenance: Provenance, *,
               title: str, words: conn.Connectivity | None = None) -> str:
    """A probe's report: the heading line, the per-step table, the figure and the summary
    lines of ``vanishing probe``; with ``words``, which words of one input the gradient
    reaches."""
    page = Page(f"Gradient through time: {title}")
    page.paragraph(heading)
    page.figure(png_bytes(diagnosis_figure(diagnosis, title=title)),
                probe_text.figure_sentence(diagnosis), alt="gradient through time")
    page.table(probe_text.probe_table(diagnosis, rows))
    page.heading("Diagnosis")
    page.lines(probe_text.summary(diagnosis))
    if words is not None:
        scale = conn.log_scale([words])
        top = max(range(len(words.words)), key=lambda i: words.shares[i])
        sentence = (f"The gradient of this input's loss is largest at word {top} "
                    f"({words.words[top]!r}, {conn.share_text(words.share(top))} of it) and "
                    f"{conn.share_text(words.share(0))} at the first word.")
        connectivity_section(page, "Which inputs the gradient reaches",
                             "each token shaded by its share of ||dL/de_t|| at the embedding "
                             "output (log colour scale, the first sequence of the probe batch)",
                             sentence, [words.label], [("", [words])], scale)
    return page.render(provenance)


def sweep_page(text: SweepText, provenance: Provenance) -> str:
    """A sweep's report: per task the success and horizon tables, each with its figure,
    and the final-loss table, then the notes and failed trials."""
    tasks = sorted({p.task for p in text.points})
    page = Page(f"Success against sequence length: {', '.join(tasks)}")
    plots, said = sweep_plots(text.points), figure_sentences(text.points)
    tables = iter(text.tables)  # per task: success, horizon, loss (sweep_text's order)
    for task in tasks:
        page.heading(task)
        for kind in ("success", "horizon"):
            stem = f"sweep-{task}-{kind}"
            page.table(next(tables))
            page.figure(png_bytes(plots[stem]), said[stem], alt=stem.replace("-", " "))
        page.table(next(tables))
    page.lines(text.notes + text.failures)
    return page.render(provenance)
