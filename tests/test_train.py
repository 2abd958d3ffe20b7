import math

import pytest
import torch

from vanishing.train import (
    TrainConfig,
    build,
    load_checkpoint,
    save_checkpoint,
    train,
)

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
