"""What the tool shows people, as plain data first and figures second.

Text (no matplotlib; shared by the terminal and the HTML report):
:mod:`~vanishing.report.tables` (:class:`~vanishing.report.tables.TextTable`, Markdown),
:mod:`~vanishing.report.probe_text`, :mod:`~vanishing.report.sweep_text`,
:mod:`~vanishing.report.demo_text`, :mod:`~vanishing.report.train_text`.

Connectivity: :mod:`~vanishing.report.connectivity`, the share of the answer's gradient that
reaches each word (||dL/de_t|| at the embedding output), for any token model, drawn as HTML,
rich text or plain text.

Figures: :mod:`~vanishing.report.figures` for the demo, :mod:`~vanishing.report.probe_figure`
for a diagnosis, :mod:`~vanishing.report.sweep_figures` for a sweep. Import the submodule
you need: each figure module pulls in matplotlib, which the rest of the library never loads.

HTML: :mod:`~vanishing.report.html` builds one self-contained file (standard library only);
:mod:`~vanishing.report.pages` lays out the demo's, a probe's and a sweep's report from the
same objects the terminal prints (it imports the figures, so matplotlib).
"""
