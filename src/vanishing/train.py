r"""Train a sequence model on a task by gradient descent.

The update rule the project teaches, written out for ``optimizer="sgd"``::

    W <- W - lr * dL/dW          for every parameter W

``adam`` uses ``torch.optim.Adam``. Optional clipping rescales the whole gradient when
its norm exceeds ``clip`` (Pascanu et al. 2013: the remedy for *exploding* gradients;
it does nothing for vanishing ones).

Held-out evaluation uses ``task.heldout(part="validation")``: fresh sequences from a
generator separate from the training stream (for ``digits``: 144 validation images),
drawn once so every evaluation sees the same samples. Training stops early once the
task's ``solved`` criterion holds on them. Because that set also chose when to stop,
the finished model is scored once more on ``task.heldout(part="test")``, a set nothing
else looked at (fresh sequences from a third stream; for ``digits``, the 360 test
images): ``TrainResult.test``, the number to report. A loss that becomes NaN or inf ends the run
with status ``diverged``, keeping everything measured until then.

Denormal floats are flushed to zero while training (``torch.set_flush_denormal``):
vanishing gradients pass through denormals, which are 10-100x slower on a CPU.

A built or trained model is probed through :func:`probe_inputs`, the one place that
sets a probe up: a float64 copy of the model, float64 inputs and the task's loss.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from . import _checks
from .cells import Cell
from .device import DEVICES, probe_dtype
from .device import resolve as resolve_device
from .jacobian import lyapunov_exponents
from .models import MODELS, SequenceModel, build_model
from .tasks import Task, get_task

__all__ = ["TrainConfig", "TrainResult", "train", "build", "build_model_for", "evaluate",
           "save_checkpoint", "load_checkpoint", "ProbeInputs", "probe_inputs", "OPTIMIZERS",
           "FLOSS_ROWS", "flossing_penalty", "PROBE_SEED_OFFSET", "probe_generator"]

#: A probe batch of seed s is drawn from ``Generator().manual_seed(PROBE_SEED_OFFSET + s)``
#: (``vanishing probe --seed s`` and ``vanishing explore`` alike), apart from the
#: training data's streams.
PROBE_SEED_OFFSET = 10_000


def probe_generator(seed: int) -> torch.Generator:
    """The generator a probe batch of ``seed`` is drawn from."""
    return torch.Generator().manual_seed(PROBE_SEED_OFFSET + seed)


OPTIMIZERS = ("sgd", "adam")
#: sequences of each batch that gradient flossing reads
FLOSS_ROWS = 8
#: Streams per seed s: training data 2s, held-out 2s + 1, test TEST_SEED_OFFSET + s.
TEST_SEED_OFFSET = 1 << 40


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run. Same config (and CPU), same numbers.

    Attributes:
        task: task name (see ``vanishing tasks``).  task_options: keyword arguments for it.
        model: model name (``rnn_tanh``, ``rnn_relu``, ``irnn``, ``lstm``, ``gru``).
        length: the task's distance in time (for ``language``: the gap in words).
        hidden_size, embedding_size, num_layers: model size (embedding: token tasks only).
        init, radius, forget_bias: override the model's initialisation (see
            ``vanishing.init``); None keeps the model's preset.
        steps: maximum optimisation steps.  batch_size: sequences per step.
        lr: learning rate.  optimizer: ``sgd`` (W <- W - lr dL/dW) or ``adam``.
        clip: gradient-norm clipping threshold, or None.
        seed: seeds the weights and the data streams.
        eval_every: steps between held-out evaluations.  eval_size: held-out sequences
            (tasks on a fixed dataset use fixed validation and test parts instead).
        early_stop: stop as soon as the task counts as solved on held-out data.
        truncate: truncated BPTT window k >= 1: the state is detached every k steps
            (counted back from the last), so no gradient reaches more than k - 1 steps
            back within the sequence (see :meth:`vanishing.models.SequenceModel.forward`);
            None backpropagates through the whole sequence.
        floss: gradient flossing (Engelken 2023): add ``floss * sum(lambda_1^2)`` to the
            loss at every step, lambda_1 the top Lyapunov exponent of the first layer on
            the first :data:`FLOSS_ROWS` sequences of the batch
            (:func:`vanishing.jacobian.lyapunov_exponents`, differentiated through); it
            pulls lambda_1 towards 0. Needs a cell with a closed-form Jacobian. None: off.
        device: ``cpu``, ``cuda``, ``mps`` or ``auto`` (see :mod:`vanishing.device`); the
            data is drawn on the CPU from the run's generators whatever the device.
    """

    task: str = "language"
    model: str = "lstm"
    length: int = 20
    hidden_size: int = 64
    embedding_size: int | None = 32
    num_layers: int = 1
    init: str | None = None
    radius: float | None = None
    forget_bias: float | None = None
    steps: int = 2000
    batch_size: int = 64
    lr: float = 3e-3
    optimizer: str = "adam"
    clip: float | None = 1.0
    seed: int = 0
    eval_every: int = 100
    eval_size: int = 512
    early_stop: bool = True
    task_options: dict = field(default_factory=dict)
    truncate: int | None = None
    floss: float | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        _checks.one_of("model", self.model, MODELS)
        _checks.one_of("optimizer", self.optimizer, OPTIMIZERS)
        _checks.nonneg_int("length", self.length)
        for name in ("hidden_size", "num_layers", "steps", "batch_size", "eval_every",
                     "eval_size"):
            _checks.positive_int(name, getattr(self, name))
        _checks.positive_float("lr", self.lr)
        if self.truncate is not None:
            _checks.positive_int("truncate", self.truncate)
        if self.floss is not None:
            _checks.positive_float("floss", self.floss)
        if not isinstance(self.device, str) or self.device.split(":")[0] not in DEVICES:
            raise ValueError(f"unknown device {self.device!r}; expected one of "
                             f"{', '.join(DEVICES)}")
        if self.clip is not None:
            _checks.positive_float("clip", self.clip)
        _checks.nonneg_int("seed", self.seed)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s): {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass
class TrainResult:
    """What a run measured.

    Attributes:
        status: ``solved`` (criterion met on held-out data), ``unsolved`` (budget spent)
            or ``diverged`` (loss became NaN or inf).
        steps: optimisation steps taken.  steps_to_solve: first step found solved, or None.
        history: one dict per evaluation: ``step``, ``train_loss`` and the task's metrics
            (a run that diverges at a training step ends it with ``step`` and
            ``train_loss`` alone).
        final: (derived from ``history``) the last validation metrics.
        test: metrics of the finished model on the test part, which neither training nor
            early stopping saw (empty for a diverged run).  wall_time: seconds.
    """

    config: TrainConfig
    model: SequenceModel
    task: Task
    status: str
    steps: int
    steps_to_solve: int | None
    history: list[dict] = field(default_factory=list)
    test: dict = field(default_factory=dict)
    wall_time: float = 0.0
    chance_loss: float = float("nan")

    @property
    def final(self) -> dict[str, float]:
        """The task's metrics at the last evaluation in ``history`` (on the validation set,
        which decided early stopping), without ``step`` and ``train_loss``; {} if the run
        ended before its first evaluation."""
        for entry in reversed(self.history):
            if "loss" in entry:  # every task's metrics hold its loss
                return {k: v for k, v in entry.items() if k not in ("step", "train_loss")}
        return {}


def build(config: TrainConfig) -> tuple[Task, SequenceModel]:
    """The task and a freshly initialised model for ``config``."""
    task = get_task(config.task, **config.task_options)
    task.check(config.length, 1, torch.Generator())
    model = build_model_for(config, task.input_size, task.output_size, tokens=task.tokens,
                            readout=task.readout)
    return task, model


def build_model_for(config: TrainConfig, input_size: int, output_size: int, *,
                    tokens: bool = False, readout: str = "last") -> SequenceModel:
    """The model ``config`` describes (model, sizes, initialisation, seed), for input of
    ``input_size`` features per step (a vocabulary of ``input_size`` ids if ``tokens``)
    and ``output_size`` outputs read at the last step (``readout="last"``) or at every
    step (``"all"``); ``config.task`` is not read. :func:`build` calls it with the task's
    sizes; a probe of random input calls it with its own."""
    overrides = {"init": config.init, "radius": config.radius,
                 "forget_bias": config.forget_bias}
    model = build_model(
        config.model, input_size, config.hidden_size, output_size, tokens=tokens,
        embedding_size=config.embedding_size if tokens else None, readout=readout,
        num_layers=config.num_layers, seed=config.seed,
        # the longest dependency, for chrono and for cells whose init or constraint
        # reads it (IndRNN: |u| <= 2^(1/T))
        max_length=config.length if config.init == "chrono" else max(config.length, 1),
        **{k: v for k, v in overrides.items() if v is not None},  # None: the model's preset
    )
    model.truncate = config.truncate
    return model


class ProbeInputs(NamedTuple):
    """What a probe of a model reads: ``hidden_gradients(model, x, loss)``."""

    model: nn.Module
    x: torch.Tensor
    loss: Callable[[torch.Tensor], torch.Tensor] | None


def probe_inputs(model: nn.Module, x: torch.Tensor, task: Task | None = None,
                 y: torch.Tensor | None = None) -> ProbeInputs:
    """Set up a probe of a built or trained ``model`` on the batch ``(x, y)`` in float64.

    Returns ``(model64, x64, loss)``: a float64 deep copy of ``model`` (the model itself is
    left as it is), ``x`` in float64 if it holds floats (token ids stay integers), and
    ``loss(out) = task.loss(out, y)`` with a floating ``y`` in float64, or None without a
    task (the probe's default loss). In float64, gradients far below float32's range
    (1e-38) are measured as the small numbers they are. Denormal floats are flushed to
    zero (``torch.set_flush_denormal(True)``): a vanishing gradient passes through them,
    and they are 10-100x slower on a CPU.

    Shapes: ``x`` is (N, T, input_size) floats or (N, T) token ids; ``y`` as
    ``task.sample`` returns it for that ``x``.
    """
    if (task is None) != (y is None):
        raise ValueError(f"probe_inputs needs a task and its targets y together, got task "
                         f"{type(task).__name__} and y {type(y).__name__}")
    torch.set_flush_denormal(True)
    where = next(model.parameters()).device
    dtype = probe_dtype(where)  # float64, except on MPS
    model64 = copy.deepcopy(model).to(dtype)
    x64 = (x.to(dtype) if x.is_floating_point() else x).to(where)
    if task is None:
        return ProbeInputs(model64, x64, None)
    y64 = (y.to(dtype) if y.is_floating_point() else y).to(where)
    return ProbeInputs(model64, x64, lambda out: task.loss(out, y64))


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, x: torch.Tensor, y: torch.Tensor,
             chunk: int = 1024) -> dict[str, float]:
    """Held-out metrics of ``model`` on ``(x, y)``, computed in chunks."""
    outs = [model(x[i: i + chunk]) for i in range(0, x.shape[0], chunk)]
    return task.metrics(torch.cat(outs), y)


def flossing_penalty(model: SequenceModel, x: torch.Tensor) -> torch.Tensor:
    """sum(lambda_1^2) of the model's first layer on the first :data:`FLOSS_ROWS`
    sequences of ``x``, with the graph to the weights (see ``TrainConfig.floss``)."""
    inputs = model.encode(x[:FLOSS_ROWS])
    return lyapunov_exponents(model.cells()[0], inputs, k=1).pow(2).sum()


def _sgd_step(params: list[nn.Parameter], lr: float) -> None:
    """The plain update rule, W <- W - lr * dL/dW."""
    with torch.no_grad():
        for w in params:
            if w.grad is not None:
                w -= lr * w.grad


def train(
    config: TrainConfig,
    *,
    progress: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Train ``config.model`` on ``config.task``; see the module doc.

    Args:
        config: the run.
        progress: optional callback ``progress(step, info)`` called after every step with
            ``info = {"loss": float}``, and after every evaluation with the metrics too.

    Returns:
        A :class:`TrainResult`; it never raises for a diverging run.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train expects a TrainConfig, got {type(config).__name__}")
    torch.set_flush_denormal(True)
    start = time.perf_counter()
    device = resolve_device(config.device)
    task, model = build(config)
    model.to(device)
    data_gen = torch.Generator().manual_seed(2 * config.seed)
    eval_gen = torch.Generator().manual_seed(2 * config.seed + 1)
    x_eval, y_eval = (t.to(device) for t in task.heldout(config.length, config.eval_size,
                                                          eval_gen, "validation"))
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=config.lr) if config.optimizer == "adam" else None
    constrained = [m for m in model.modules() if isinstance(m, Cell)]  # e.g. IndRNN's |u|

    result = TrainResult(config, model, task, "unsolved", 0, None,
                         chance_loss=task.chance_loss(config.length))
    model.train()
    for step in range(1, config.steps + 1):
        x, y = (t.to(device) for t in task.sample(config.length, config.batch_size, data_gen))
        loss = task.loss(model(x), y)
        if config.floss is not None:
            loss = loss + config.floss * flossing_penalty(model, x)
        value = loss.detach().item()
        result.steps = step
        if not math.isfinite(value):
            result.status = "diverged"
            result.history.append({"step": step, "train_loss": value})
            break
        model.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip is not None:
            nn.utils.clip_grad_norm_(params, config.clip)
        if opt is None:
            _sgd_step(params, config.lr)
        else:
            opt.step()
        for cell in constrained:
            cell.constrain_()
        info: dict = {"loss": value}
        if step % config.eval_every == 0 or step == config.steps:
            metrics = evaluate(model, task, x_eval, y_eval)
            result.history.append({"step": step, "train_loss": value, **metrics})
            info.update(metrics)
            if not math.isfinite(metrics["loss"]):
                result.status = "diverged"
            elif task.solved(metrics):
                result.status = "solved"
                result.steps_to_solve = result.steps_to_solve or step
        if progress is not None:
            progress(step, info)
        if result.status == "diverged" or (result.status == "solved" and config.early_stop):
            break
    model.eval()
    if result.status != "diverged":
        test_gen = torch.Generator().manual_seed(TEST_SEED_OFFSET + config.seed)
        x_test, y_test = task.heldout(config.length, config.eval_size, test_gen, "test")
        result.test = evaluate(model, task, x_test.to(device), y_test.to(device))
    result.wall_time = time.perf_counter() - start
    return result


def save_checkpoint(path: str | Path, result: TrainResult) -> Path:
    """Write the model's state dict and its config (plain tensors and builtins only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": "vanishing-checkpoint-1",
        "config": result.config.to_dict(),
        "state_dict": {k: v.cpu() for k, v in result.model.state_dict().items()},
        "status": result.status,
        "steps": result.steps,
    }
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
        tmp.replace(path)  # never leave a half-written checkpoint under the real name
    except BaseException:  # Ctrl-C or a full disk: no stray .tmp either
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> tuple[TrainConfig, SequenceModel]:
    """Rebuild a model from a checkpoint, never unpickling code (``weights_only=True``).

    Every way a file can fail to be the right checkpoint is one ``ValueError`` line naming
    the file: missing, unreadable or refused by the safe unpickler, a bare
    ``torch.save(model.state_dict())`` (pointed to the Python API), no config or state
    dict, a config this version cannot build, weights missing, unexpected or of another
    shape than its config's model (another model, task or hidden size).
    """
    path = Path(path)
    where = f"checkpoint {str(path)!r}"
    payload = _read_checkpoint(path, where)
    if _is_state_dict(payload):
        raise ValueError(f"{where} is a bare state dict (torch.save(model.state_dict())), "
                         "not a vanishing checkpoint; load it from Python: build the same "
                         "model (vanishing.build_model) and call "
                         "model.load_state_dict(torch.load(path, weights_only=True))")
    if not isinstance(payload, dict) or payload.get("format") != "vanishing-checkpoint-1":
        raise ValueError(f"{where} is not a vanishing checkpoint")
    for key in ("config", "state_dict"):
        if not isinstance(payload.get(key), dict):
            raise ValueError(f"{where} is damaged: it has no {key!r} dict")
    try:
        config = TrainConfig.from_dict(payload["config"])
        _, model = build(config)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} has a config this version cannot build ({exc})") from None
    _check_weights(where, config, model, payload["state_dict"])
    model.load_state_dict(payload["state_dict"])
    return config, model


def _read_checkpoint(path: Path, where: str) -> object:
    """The unpickled payload of ``path`` with ``weights_only=True``, or one ValueError line
    (torch's own warning about the pickle protocol of a refused file is silenced)."""
    if not path.is_file():
        raise ValueError(f"{where} does not exist or is not a file")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol",
                                    category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise ValueError(f"{where} is not a readable vanishing checkpoint "
                         f"({type(exc).__name__})") from None


def _is_state_dict(payload: object) -> bool:
    return (isinstance(payload, dict) and bool(payload) and "format" not in payload
            and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                    for k, v in payload.items()))


def _check_weights(where: str, config: TrainConfig, model: nn.Module, state: dict) -> None:
    """One line if ``state`` does not fit ``model`` (names or shapes)."""
    expected = model.state_dict()
    what = (f"{config.model}, task {config.task}, hidden size {config.hidden_size}, "
            f"{config.num_layers} layer(s)")
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        parts = [f"missing {_names(missing)}" if missing else "",
                 f"unexpected {_names(extra)}" if extra else ""]
        raise ValueError(f"{where} does not fit its config ({what}): weights "
                         f"{'; '.join(p for p in parts if p)}")
    for key, want in expected.items():
        got = state[key]
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(want.shape):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise ValueError(f"{where} does not fit its config ({what}): {key} has shape "
                             f"{shape}, the model expects {tuple(want.shape)}")


def _names(keys: list[str], most: int = 3) -> str:
    shown = ", ".join(keys[:most])
    return shown + (f" and {len(keys) - most} more" if len(keys) > most else "")
