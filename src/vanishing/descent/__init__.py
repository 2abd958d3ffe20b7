"""Gradient descent on a cost function, step by step: the update rule and its paths
(:mod:`~vanishing.descent.core`), the safe formula parser (:mod:`~vanishing.descent.expr`)
and the figure of a path (:mod:`~vanishing.descent.plot`, imported on demand: it needs
matplotlib).
"""

from .core import (
    CostFunction,
    DescentInterrupted,
    DescentPath,
    Status,
    StepRegime,
    StepVerdict,
    Trace,
    classify_step_size,
    curvature_at,
    descend,
    hessian_at,
    step_size_verdict,
)
from .expr import Expression, ExpressionError, parse_expression

__all__ = ["CostFunction", "DescentInterrupted", "DescentPath", "Status", "StepRegime",
           "StepVerdict", "Trace", "classify_step_size", "curvature_at", "descend", "hessian_at",
           "step_size_verdict",
           "Expression", "ExpressionError", "parse_expression"]
