"""One-step recurrences, one file each, and the :class:`Cell` base they share.

* :mod:`~vanishing.cells.base`: :class:`Cell` (the project/recur split and what the
  library reads from a cell: state split, gates, gamma, closed-form Jacobian), the
  registry :data:`CELLS` and :func:`make_cell`;
* :mod:`~vanishing.cells.elman`, :mod:`~vanishing.cells.lstm`, :mod:`~vanishing.cells.gru`;
* :mod:`~vanishing.cells.twin`: a cell that computes one layer of a fused torch module.

A new recurrence is a new file here that subclasses :class:`Cell`, calls
:func:`register`, and is imported below.
"""

# the import order is the order of CELLS
from .base import CELLS, Cell, make_cell, register
from .elman import NONLINEARITIES, ElmanCell

# isort: split
from .lstm import LSTMCell

# isort: split
from .gru import GRUCell

# isort: split
from .twin import TORCH_MODES, twin

__all__ = ["Cell", "ElmanCell", "LSTMCell", "GRUCell", "CELLS", "NONLINEARITIES", "TORCH_MODES",
           "make_cell", "register", "twin"]
