"""What the tool shows people: figures (:mod:`~vanishing.report.figures` for the demo,
:mod:`~vanishing.report.probe_figure` for a diagnosis, :mod:`~vanishing.report.sweep_figures`
for a sweep). Import the submodule you need: each pulls in matplotlib, which the rest of
the library never loads.
"""
