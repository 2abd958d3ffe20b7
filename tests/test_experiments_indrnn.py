"""Slow: IndRNN (Li et al. 2018) learns the adding problem at T = 500, where the tanh RNN
stays at chance.

Not "solves on two seeds in ~3 minutes": measured here (2 shared cores), the test took 326 s;
seed 0 solved the task (validation MSE < 0.01) at step 750, test MSE
0.0075; seed 1 ended at test MSE 0.0100 after 1200 steps, unsolved by the criterion. The
test asserts what the budget achieved on both: test MSE < 0.02, an eighth of chance (1/6).
Smaller budgets did less: 2 x 32 units, the cut at 400, 1000 steps: 0.082 and 0.021.

The paper's set-up, shrunk: 2 layers (64 units, not 128), batch 50, Adam with |u| <=
2^(1/T) kept after every step, the lower layer's u ~ U(0, 2^(1/T)) and the last layer's
U((1/2)^(1/T), 2^(1/T)), and a learning rate of 2e-3 cut 10x after ``DECAY_AT`` steps (the
paper cuts 2e-4 by 10x on a plateau). The loop is :func:`vanishing.train.train`'s (same
data streams, clipping at 1, early stop on the validation set, scored on the test set)
written out, for the two things ``TrainConfig`` cannot say: the per-layer u range and the
learning-rate cut.
"""

import time

import pytest
import torch

from vanishing.cells.indrnn import IndRNNCell
from vanishing.models import SequenceModel, build_model
from vanishing.tasks import get_task
from vanishing.train import TEST_SEED_OFFSET, evaluate

T = 500
HIDDEN, BATCH, LR, DECAY_AT, STEPS, EVAL_EVERY, EVAL_SIZE = 64, 50, 2e-3, 700, 1200, 50, 256


def indrnn(seed: int) -> SequenceModel:
    model = SequenceModel("indrnn", 2, HIDDEN, 1, num_layers=2, max_length=T, seed=seed)
    lower = model.core.cells[0]
    lower.last_layer = False  # the paper's range below the last layer: U(0, 2^(1/T))
    lower.initialize_("default", generator=torch.Generator().manual_seed(seed))
    return model


def fit(model: torch.nn.Module, seed: int) -> dict:
    """train()'s loop with the learning-rate cut; the metrics at the end."""
    torch.set_flush_denormal(True)
    task, start = get_task("adding"), time.perf_counter()
    data = torch.Generator().manual_seed(2 * seed)
    x_val, y_val = task.heldout(T, EVAL_SIZE, torch.Generator().manual_seed(2 * seed + 1),
                                "validation")
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=LR)
    cells = [m for m in model.modules() if isinstance(m, IndRNNCell)]
    solved, step = False, 0
    for step in range(1, STEPS + 1):
        if step == DECAY_AT + 1:
            opt.param_groups[0]["lr"] = LR / 10
        x, y = task.sample(T, BATCH, data)
        loss = task.loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        for cell in cells:
            cell.constrain_()
        if step % EVAL_EVERY == 0 and task.solved(evaluate(model, task, x_val, y_val)):
            solved = True
            break
    test_gen = torch.Generator().manual_seed(TEST_SEED_OFFSET + seed)
    test = evaluate(model, task, *task.heldout(T, EVAL_SIZE, test_gen, "test"))
    return {"solved": solved, "steps": step, "test_mse": test["mse"],
            "seconds": time.perf_counter() - start}


@pytest.mark.slow
def test_indrnn_learns_adding_at_500_where_the_tanh_rnn_does_not():
    for seed in (0, 1):
        run = fit(indrnn(seed), seed)
        assert run["test_mse"] < 0.02, (seed, run)
    tanh = fit(build_model("rnn_tanh", 2, HIDDEN, 1, seed=0), 0)  # one layer, same budget
    assert not tanh["solved"] and tanh["test_mse"] > 0.8 / 6, tanh  # chance: 1/6


if __name__ == "__main__":  # the measurement behind the budget
    torch.set_num_threads(1)
    for name, seed in (("indrnn", 0), ("indrnn", 1), ("rnn_tanh", 0)):
        model = indrnn(seed) if name == "indrnn" else build_model(name, 2, HIDDEN, 1, seed=seed)
        print(name, seed, fit(model, seed), flush=True)
