import math

import numpy as np
import pytest
import torch

from vanishing.train import (
    TrainConfig,
    build,
    load_checkpoint,
    save_checkpoint,
    train,
)

F64 = torch.float64
TINY = dict(task="language", length=2, hidden_size=16, embedding_size=8, batch_size=32,
            eval_every=10, eval_size=128)


def test_sgd_is_the_plain_update_rule():
    """One sgd step equals W - lr * dL/dW computed here with autograd on a copy."""
    config = TrainConfig(model="gru", steps=1, optimizer="sgd", lr=0.5, clip=None, **TINY)
    task, model = build(config)
    x, y = task.sample(config.length, config.batch_size,
                       torch.Generator().manual_seed(2 * config.seed))
    loss = task.loss(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    expected = [p.detach() - 0.5 * g for p, g in zip(model.parameters(), grads, strict=True)]
    result = train(config)
    for e, p in zip(expected, result.model.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), e)


def test_same_seed_same_numbers_and_other_seed_differs():
    config = TrainConfig(model="lstm", steps=12, **TINY)
    a, b = train(config), train(config)
    assert a.history == b.history
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)
    c = train(TrainConfig(model="lstm", steps=12, seed=1, **TINY))
    assert c.history != a.history


def test_divergence_ends_the_run_without_traceback():
    config = TrainConfig(model="rnn_relu", radius=4.0, optimizer="sgd", lr=1e6, clip=None,
                         steps=50, **(TINY | {"length": 30}))
    result = train(config)
    assert result.status == "diverged"
    assert result.steps < 50
    assert not math.isfinite(result.history[-1].get("train_loss", result.final.get("loss")))
    assert result.test == {}  # no score for a model that blew up


def test_early_stop_when_solved():
    config = TrainConfig(model="gru", steps=400, lr=3e-2, **TINY)
    result = train(config)
    assert result.status == "solved" and result.steps == result.steps_to_solve < 400
    assert result.final["accuracy"] >= 0.99
    assert result.history[-1]["step"] == result.steps
    # the test score comes from sentences the stopping rule never saw, scored independently
    from vanishing.train import TEST_SEED_OFFSET

    task = result.task
    x_test, y_test = task.sample(config.length, config.eval_size,
                                 torch.Generator().manual_seed(TEST_SEED_OFFSET + config.seed))
    x_eval, _ = task.sample(config.length, config.eval_size,
                            torch.Generator().manual_seed(2 * config.seed + 1))
    assert not torch.equal(x_test, x_eval)
    with torch.no_grad():
        hits = (result.model(x_test).argmax(-1) == y_test).float().mean()
    assert result.test["accuracy"] == pytest.approx(float(hits), abs=1e-7)


def test_progress_callback_sees_every_step():
    seen = []
    train(TrainConfig(model="rnn_tanh", steps=7, **TINY), progress=lambda s, i: seen.append(s))
    assert seen == list(range(1, 8))


def test_checkpoint_round_trip(tmp_path):
    result = train(TrainConfig(model="lstm", steps=5, **TINY))
    path = save_checkpoint(tmp_path / "run" / "model.pt", result)
    config, model = load_checkpoint(path)
    assert config == result.config
    x, _ = result.task.sample(2, 4, torch.Generator().manual_seed(9))
    torch.testing.assert_close(model(x), result.model(x))


def test_bad_checkpoints(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not a readable vanishing checkpoint"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="not a vanishing checkpoint"):
        load_checkpoint(foreign)
    assert corrupt.read_bytes() == b"not a checkpoint at all"


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(steps=0), ValueError, "steps must be a positive int, got 0"),
        (dict(length=-1), ValueError, "length must be >= 0, got -1"),
        (dict(lr=float("nan")), ValueError, "lr must be a finite number > 0"),
        (dict(lr=-0.1), ValueError, "lr must be a finite number > 0"),
        (dict(model="mamba"), ValueError, "unknown model 'mamba'"),
        (dict(optimizer="lbfgs"), ValueError, "unknown optimizer 'lbfgs'"),
        (dict(clip=0.0), ValueError, "clip must be a finite number > 0"),
        (dict(batch_size=2.5), TypeError, "batch_size must be an int"),
    ],
)
def test_bad_config(kwargs, err, match):
    with pytest.raises(err, match=match):
        TrainConfig(**kwargs)


def test_unknown_task_and_bad_task_options():
    with pytest.raises(ValueError, match="unknown task 'french'"):
        train(TrainConfig(task="french"))
    with pytest.raises(TypeError, match="task 'language'"):
        train(TrainConfig(task_options={"colour": "red"}))
    with pytest.raises(TypeError, match="expects a TrainConfig"):
        train({"task": "language"})


def test_digits_stops_on_validation_images_and_is_scored_on_test_images():
    from vanishing.tasks.digits import TRAIN_SIZE, VALIDATION_SIZE, load

    config = TrainConfig(task="digits", model="gru", length=64, hidden_size=16, steps=30,
                         eval_every=15, batch_size=32, early_stop=False, seed=3)
    result = train(config)
    images, labels = load()

    def accuracy(rows):  # row-major pixels, as the task reads them
        with torch.no_grad():
            logits = result.model(images[rows, :, None])
        return float((logits.argmax(-1) == labels[rows]).float().mean())

    validation = slice(TRAIN_SIZE - VALIDATION_SIZE, TRAIN_SIZE)
    assert result.final["accuracy"] == pytest.approx(accuracy(validation), abs=1e-7)
    assert result.test["accuracy"] == pytest.approx(accuracy(slice(TRAIN_SIZE, None)), abs=1e-7)


def test_build_is_build_model_with_the_tasks_sizes_and_the_configs_overrides():
    from vanishing.models import build_model

    config = TrainConfig(task="adding", model="rnn_tanh", length=5, hidden_size=12,
                         num_layers=2, init="orthogonal", radius=0.8, seed=4)
    task, model = build(config)
    expected = build_model("rnn_tanh", 2, 12, 1, num_layers=2, init="orthogonal", radius=0.8,
                           seed=4)  # adding: (value, marker) in, one number out
    assert (task.input_size, task.output_size) == (2, 1)
    assert model.state_dict().keys() == expected.state_dict().keys()
    for name, value in expected.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


def test_build_model_for_random_input_reads_the_sizes_it_is_given():
    from vanishing.train import build_model_for

    model = build_model_for(TrainConfig(model="gru", hidden_size=6, seed=1), 3, 1)
    assert model.core.weight_ih_l0.shape == (3 * 6, 3)  # GRU: 3 gates x H rows, 3 inputs
    assert model(torch.randn(2, 7, 3)).shape == (2, 1)


def test_probe_inputs_copy_the_model_to_float64_and_keep_the_tasks_loss():
    from vanishing.train import probe_inputs

    config = TrainConfig(model="lstm", **TINY)
    task, model = build(config)
    x, y = task.sample(config.length, 4, torch.Generator().manual_seed(0))
    torch.set_flush_denormal(False)
    try:
        model64, x64, loss = probe_inputs(model, x, task, y)
        denormal = (torch.tensor([1e-310], dtype=torch.float64) * 1.0).item()
    finally:
        torch.set_flush_denormal(True)  # as the session runs (conftest)
    assert denormal == 0.0  # flushed to zero
    assert next(model.parameters()).dtype == torch.float32  # the model itself is untouched
    assert {p.dtype for p in model64.parameters()} == {torch.float64}
    assert x64.dtype == torch.int64 and torch.equal(x64, x)  # token ids stay ids
    out = model64(x64)
    expected = torch.nn.functional.cross_entropy(out, y)  # the language task's loss
    torch.testing.assert_close(loss(out), expected)


def test_probe_inputs_of_random_input_have_no_loss_and_refuse_half_a_task():
    from vanishing.train import probe_inputs

    task, model = build(TrainConfig(task="adding", model="rnn_tanh", length=5))
    x = torch.randn(2, 5, 2)
    model64, x64, loss = probe_inputs(model, x)
    assert x64.dtype == torch.float64 and torch.equal(x64, x.double()) and loss is None
    with pytest.raises(ValueError, match="a task and its targets y together"):
        probe_inputs(model, x, task)


def test_final_is_the_last_evaluation_even_when_a_training_step_diverges_later():
    result = train(TrainConfig(model="gru", steps=20, early_stop=False, **TINY))
    evaluations = [h for h in result.history if "loss" in h]
    assert [h["step"] for h in evaluations] == [10, 20]
    last = evaluations[-1]
    assert result.final == {"loss": last["loss"], "accuracy": last["accuracy"]}
    result.history.append({"step": 21, "train_loss": float("nan")})  # diverged at a step
    assert result.final == {"loss": last["loss"], "accuracy": last["accuracy"]}
    result.history.clear()
    assert result.final == {}


def test_truncated_bptt_cuts_the_gradient_beyond_its_window():
    """TrainConfig(truncate=k): the probe of the training graph is exactly zero beyond lag
    k - 1 and, inside the last window, equals full BPTT of a hand nn.RNNCell loop."""
    from vanishing.probe import hidden_gradients
    from vanishing.train import TrainConfig, build

    k, length = 4, 11
    config = TrainConfig(task="adding", model="rnn_tanh", length=length, hidden_size=6,
                         truncate=k, seed=1)
    task, model = build(config)
    assert model.truncate == k
    x, y = task.sample(length, 5, torch.Generator().manual_seed(0))
    model = model.double()
    x, y = x.double(), y.double()
    full_out = torch.nn.functional.linear(model.core(x)[0][:, -1], model.head.weight,
                                          model.head.bias)
    torch.testing.assert_close(model(x), full_out)  # the forward values are unchanged
    trace = hidden_gradients(model, x, lambda out: task.loss(out, y))
    by_lag = trace.norms[::-1]
    assert by_lag.shape == (length,) and np.all(by_lag[:k] > 0) and np.all(by_lag[k:] == 0)
    # hand reference: full BPTT through an nn.RNNCell with the same weights
    cell = torch.nn.RNNCell(x.shape[-1], 6).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(model.core, name + "_l0"))
    h, zeros = torch.zeros(5, 6, dtype=torch.float64), []
    for x_t in x.unbind(1):
        zeros.append(torch.zeros(5, 6, dtype=torch.float64, requires_grad=True))
        h = cell(x_t, h) + zeros[-1]
    grads = torch.autograd.grad(task.loss(model.head(h), y), zeros)
    want = np.array([float(g.norm(dim=1).mean()) for g in grads])[::-1]
    np.testing.assert_allclose(by_lag[:k], want[:k], rtol=1e-10)
    assert np.all(want[k:] > 0)  # full BPTT reaches further: the cut is truncation's
    from vanishing.diagnose import diagnose  # the probe says why the gradient stops
    d = diagnose(model, x, lambda out: task.loss(out, y))
    assert d.horizon == k - 1 and any("truncated BPTT, window k = 4" in n for n in d.notes)
    assert not any("a user-named step" in n for n in d.notes)  # the cut, not a fused call
    model.truncate = length  # a window as long as the sequence cuts nothing: no such note
    d = diagnose(model, x, lambda out: task.loss(out, y))
    assert d.horizon > k - 1 and not any("truncated" in n for n in d.notes)
    with pytest.raises(ValueError, match="truncate must be a positive int"):
        TrainConfig(truncate=0)


def test_gradient_flossing_moves_the_top_lyapunov_exponent_towards_zero():
    """Engelken 2023: on a tanh RNN whose gradient vanishes (radius 0.5), training with
    the flossing term pulls lambda_1 towards 0; the same run without it barely moves."""
    from vanishing.jacobian import lyapunov_exponents
    from vanishing.train import TrainConfig, build, train

    def top(model, task):
        x, _ = task.sample(20, 16, torch.Generator().manual_seed(99))
        with torch.no_grad():
            return float(lyapunov_exponents(model.cells()[0], model.encode(x))[0])

    base = dict(task="adding", model="rnn_tanh", length=20, hidden_size=8, steps=40,
                batch_size=16, radius=0.5, lr=1e-2, eval_every=20, eval_size=32,
                early_stop=False)
    task, start_model = build(TrainConfig(**base))
    before = top(start_model, task)
    plain = top(train(TrainConfig(**base)).model, task)
    flossed = top(train(TrainConfig(**base, floss=1.0)).model, task)
    assert before < -0.5
    assert abs(flossed) < 0.5 * abs(before)  # pulled towards 0
    assert abs(plain - before) < 0.25 * abs(before)  # the task alone does not do it
    with pytest.raises(ValueError, match="floss"):
        TrainConfig(floss=0.0)


def test_devices_are_named_and_checked_and_auto_is_the_cpu_here():
    """No GPU on these machines: auto resolves to the CPU and trains exactly as cpu does;
    cuda and mps are refused in one line; the data is drawn on the CPU either way."""
    import torch as _torch

    from vanishing.device import probe_dtype, resolve
    from vanishing.train import TrainConfig, train

    assert resolve("cpu") == _torch.device("cpu") and probe_dtype(resolve("cpu")) == F64
    if not _torch.cuda.is_available():
        assert resolve("auto") == _torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve("cuda")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        TrainConfig(device="gpu")
    small = dict(task="adding", model="gru", length=5, hidden_size=4, steps=6, batch_size=8,
                 eval_every=3, eval_size=16)
    a, b = train(TrainConfig(**small)), train(TrainConfig(**small, device="auto"))
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert p.device == q.device and _torch.equal(p, q)


def _checkpoint(tmp_path, **changes):
    """A real checkpoint's payload with ``changes`` applied (None deletes a key)."""
    path = save_checkpoint(tmp_path / "good.pt", train(TrainConfig(model="lstm", steps=1,
                                                                   **TINY)))
    payload = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is None:
            del payload[key]
        else:
            payload[key] = value(payload[key]) if callable(value) else value
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    return bad


def _one_line(exc_info):
    text = str(exc_info.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize(("changes", "message"), [
    ({"config": None}, "no 'config'"),
    ({"state_dict": None}, "no 'state_dict'"),
    ({"config": lambda c: {**c, "hidden_size": 32}}, "hidden size 32.*has shape"),
    ({"config": lambda c: {**c, "model": "gru"}}, "gru.*does not fit|has shape"),
    ({"config": lambda c: {**c, "task": "adding"}}, "does not fit its config"),
    ({"config": lambda c: {**c, "bogus": 1}}, "cannot build.*bogus"),
    ({"state_dict": lambda s: dict(list(s.items())[1:])}, "weights missing"),
    ({"state_dict": lambda s: {**s, "extra.weight": torch.zeros(1)}}, "unexpected extra"),
])
def test_mismatched_checkpoints_are_one_line(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message) as info:
        load_checkpoint(_checkpoint(tmp_path, **changes))
    _one_line(info)


def test_a_bare_state_dict_is_named_and_pointed_to_the_api(tmp_path):
    path = tmp_path / "mine.pt"
    torch.save(train(TrainConfig(model="gru", steps=1, **TINY)).model.state_dict(), path)
    with pytest.raises(ValueError, match=r"bare state dict.*load_state_dict") as info:
        load_checkpoint(path)
    _one_line(info)


def test_a_refused_pickle_is_one_line_without_torch_warnings(tmp_path, recwarn):
    import collections
    import pickle

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"a": collections.Counter()}, protocol=4))
    with pytest.raises(ValueError, match="not a readable vanishing checkpoint"):
        load_checkpoint(path)
    assert not [w for w in recwarn if "pickle" in str(w.message)]
