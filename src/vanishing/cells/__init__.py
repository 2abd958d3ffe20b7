"""One-step recurrences, one file each, and the :class:`Cell` base they share.

* :mod:`~vanishing.cells.base`: :class:`Cell` (the project/recur split and what the
  library reads from a cell: state split, gates, gamma, closed-form Jacobian, its own
  initialisation and constraint), the registry :data:`CELLS` and :func:`make_cell`;
* :mod:`~vanishing.cells.elman`, :mod:`~vanishing.cells.lstm`, :mod:`~vanishing.cells.gru`,
  and every other module in this folder;
* :mod:`~vanishing.cells.twin`: a cell that computes one layer of a fused torch module.

A new recurrence is a new file here that subclasses :class:`Cell` and calls
:func:`register`: every module of this package is imported below, so nothing else needs
an edit (the classic cells first, then the others by file name: the order of
:data:`CELLS`).
"""

import importlib
import pkgutil

# the import order is the order of CELLS
from .base import CELLS, Cell, make_cell, register
from .elman import NONLINEARITIES, ElmanCell

# isort: split
from .lstm import LSTMCell

# isort: split
from .gru import GRUCell

# isort: split
from .twin import TORCH_MODES, twin

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["Cell", "ElmanCell", "LSTMCell", "GRUCell", "CELLS", "NONLINEARITIES", "TORCH_MODES",
           "make_cell", "register", "twin"]
