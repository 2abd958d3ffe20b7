"""What the tool shows people, as plain data first and figures second.

Text (no matplotlib; shared by the terminal and the HTML report):
:mod:`~vanishing.report.tables` (:class:`~vanishing.report.tables.TextTable`, Markdown),
:mod:`~vanishing.report.probe_text`, :mod:`~vanishing.report.sweep_text`,
:mod:`~vanishing.report.demo_text`, :mod:`~vanishing.report.train_text`.

Figures: :mod:`~vanishing.report.figures` for the demo, :mod:`~vanishing.report.probe_figure`
for a diagnosis, :mod:`~vanishing.report.sweep_figures` for a sweep. Import the submodule
you need: each figure module pulls in matplotlib, which the rest of the library never loads.
"""
