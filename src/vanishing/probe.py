r"""Gradient through time: the total dL/dh_t for every step, in one backward pass.

For a model whose recurrent core is unrolled with a zero probe p added to every h_t
(see :func:`vanishing.unroll.unroll`), one ``backward()`` leaves

    p.grad[:, t] = dL/dh_t = sum over s >= t of (dh_s/dh_t)^T (direct dL/dh_s)

and ``||dL/dh_t||`` against the distance ``T - t`` shows how far back the gradient
reaches: for a vanilla RNN it falls geometrically (it *vanishes*), so the weight update
carries almost nothing from early steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .models import SequenceModel
from .unroll import make_probe

__all__ = ["Trace", "hidden_gradients"]


@dataclass
class Trace:
    """Per-step gradient norms of one probe.

    Attributes:
        norms: (T,) batch-mean ||dL/dh_t|| of the last recurrent layer, float64.
        layers: layer name -> its own (T,) norms.
    """

    norms: np.ndarray
    layers: dict[str, np.ndarray] = field(default_factory=dict)

    def relative(self) -> np.ndarray:
        """norms / norms[-1]: the gradient at each step relative to the last step."""
        return self.norms / self.norms[-1]

    def horizon(self, threshold: float = 1e-3) -> int:
        """Largest lag k with ||dL/dh_(T-k)|| / ||dL/dh_T|| above ``threshold``."""
        rel = self.relative()[::-1]  # rel[k] = lag k
        above = np.nonzero(rel > threshold)[0]
        return int(above.max()) if above.size else 0


def _default_loss(output: Tensor) -> Tensor:
    return (output[:, -1] if output.dim() == 3 else output).sum()


def hidden_gradients(
    model: SequenceModel, x: Tensor, loss: Callable[[Tensor], Tensor] | None = None
) -> Trace:
    """The total dL/dh_t at every step of every layer, in one backward pass.

    Args:
        model: a :class:`~vanishing.models.SequenceModel` (its unrolled path is used; the
            parameters are shared with the fused path, so this is the model as trained).
        x: the model's input, (N, L, H_in) floats or (N, L) token ids.
        loss: callable of the model's output returning a scalar; default: the sum of the
            last step's output.

    Returns:
        A :class:`Trace`. Norms are computed in float64 from the gradients' dtype; run
        the model in float64 (``copy.deepcopy(model).double()``) to see gradients below
        float32's range.
    """
    loss = loss or _default_loss
    param = next(model.parameters())
    like = torch.zeros(x.shape[0], x.shape[1], 1, dtype=param.dtype)
    probes = [make_probe(like, model.hidden_size) for _ in range(model.core.num_layers)]
    with torch.enable_grad():
        out, _ = model.forward_unrolled(x, probes=probes)
        value = loss(out)
        grads = torch.autograd.grad(value, probes, allow_unused=True)
    layers = {}
    for i, g in enumerate(grads):
        g = torch.zeros_like(probes[i]) if g is None else g
        layers[f"layer{i}"] = g.double().norm(dim=-1).mean(dim=0).numpy()
    return Trace(norms=layers[f"layer{len(grads) - 1}"], layers=layers)
