"""Which device a run uses: ``auto``, ``cpu``, ``cuda`` (or ``cuda:N``) or ``mps``.

Models, batches and probes follow the model's device; random numbers are always drawn
on the CPU from the run's own ``torch.Generator`` and then moved, so the same seed gives
the same data on every device. ``auto`` is CUDA when it is available, else the CPU. The
probe's float64 copy stays on the model's device where that device has float64 (CUDA
and the CPU do; MPS does not, and gets a float32 copy). Tested on the CPU only: the
project's machines have no GPU.
"""

from __future__ import annotations

import torch

__all__ = ["DEVICES", "resolve", "probe_dtype"]

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve(name: str | torch.device) -> torch.device:
    """The ``torch.device`` for a name, or a one-line ValueError naming what is missing."""
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str) or name.split(":")[0] not in DEVICES:
        raise ValueError(f"unknown device {name!r}; expected one of {', '.join(DEVICES)} "
                         f"(or cuda:N)")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: CUDA is not available here "
                             f"(torch.cuda.is_available() is False); use cpu or auto")
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} "
                             f"CUDA device(s)")
    if name == "mps" and not (hasattr(torch.backends, "mps")
                              and torch.backends.mps.is_available()):
        raise ValueError("device 'mps': MPS is not available here; use cpu or auto")
    return torch.device(name)


def probe_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device has it (CPU, CUDA), float32 on MPS."""
    return torch.float32 if device.type == "mps" else torch.float64
