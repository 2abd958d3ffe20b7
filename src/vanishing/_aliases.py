"""Old import paths of modules that moved into packages, kept working.

``import vanishing.store`` gives the very module object ``vanishing.sweep.store`` (not a
copy), so names, ``isinstance`` checks and monkeypatching agree on both paths. One finder
on ``sys.meta_path`` answers for the names in :data:`MOVED` only; it imports nothing
until an old path is asked for, and it warns about nothing (the paths stay supported).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys

__all__ = ["MOVED", "install"]

#: old module path -> where it lives now
MOVED = {
    "vanishing.store": "vanishing.sweep.store",
    "vanishing.sweep_summary": "vanishing.sweep.summary",
    "vanishing.expr": "vanishing.descent.expr",
    "vanishing.plots": "vanishing.report.figures",
    "vanishing.plots_descent": "vanishing.descent.plot",
    "vanishing.plots_probe": "vanishing.report.probe_figure",
    "vanishing.plots_sweep": "vanishing.report.sweep_figures",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def create_module(self, spec):
        module = importlib.import_module(MOVED[spec.name])
        self._specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module):
        # the import system stamped the alias spec on the real module: give its own back
        module.__spec__ = self._specs[module.__name__]


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
