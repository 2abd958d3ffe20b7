"""vanishing: see, measure and beat the vanishing (and exploding) gradient problem in RNNs."""

from ._aliases import install as _install_aliases
from .cells import CELLS, Cell, ElmanCell, GRUCell, LSTMCell, make_cell, twin
from .init import initialize, spectral_radius
from .models import MODELS, SequenceModel, build_model
from .unroll import make_probe, unroll

__version__ = "0.1.0"

_install_aliases()  # vanishing.store, vanishing.expr, vanishing.plots, ...: see _aliases

__all__ = [
    "__version__",
    "CELLS",
    "Cell",
    "ElmanCell",
    "GRUCell",
    "LSTMCell",
    "MODELS",
    "SequenceModel",
    "build_model",
    "initialize",
    "make_cell",
    "make_probe",
    "spectral_radius",
    "twin",
    "unroll",
]
