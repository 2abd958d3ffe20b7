"""The long-term-dependency tasks: shapes, purity, chance baselines, solvability, bad input.

Each oracle below reads the answer off ``x`` with its own code (not the task's), builds an
``output`` in the model-output format, and must meet the task's ``solved`` criterion; each
chance baseline is measured on a large batch and compared with the task's formula.
"""

import inspect
import math
import operator
import re
import sys

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from vanishing.models import build_model
from vanishing.tasks import get_task, task_names
from vanishing.tasks.digits import PERMUTATION_SEED, PIXELS, TRAIN_SIZE, load
from vanishing.tasks.language import PAIRS
from vanishing.tasks.latch import GuessResult, random_guessing
from vanishing.tasks.temporal_order import CLASSES

# (name, options, a small valid length) for every registered task
CASES = [
    ("adding", {}, 12),
    ("adding-h97", {}, 40),
    ("adding-h97", {"jitter": False}, 40),
    ("copying", {}, 7),
    ("temporal-order", {}, 30),
    ("latch", {}, 9),
    ("latch", {"lead": 3}, 9),
    ("digits", {}, 64),
    ("digits", {"split": "test"}, 64),
    ("digits-permuted", {}, 64),
    ("language", {}, 6),
    ("language", {"distractors": True}, 12),
]
IDS = [f"{n}{'-' + '-'.join(f'{k}={v}' for k, v in o.items()) if o else ''}" for n, o, _ in CASES]


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: intra-op threads only add contention on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_registry_holds_the_suite():
    assert set(task_names()) == {"adding", "adding-h97", "copying", "temporal-order", "latch",
                                 "language", "digits", "digits-permuted"}
    assert {n for n, _, _ in CASES} == set(task_names())


@pytest.mark.parametrize("name, options, length", CASES, ids=IDS)
def test_shapes_and_model_format(name, options, length):
    task = get_task(name, **options)
    x, y = task.sample(length, 5, gen())
    steps = task.sequence_length(length)
    jitter = getattr(task, "jitter", False)
    assert (length <= x.shape[1] <= steps) if jitter else x.shape[1] == steps
    if task.tokens:
        assert x.shape == (5, x.shape[1]) and x.dtype == torch.long
        assert 0 <= int(x.min()) and int(x.max()) < task.input_size
    else:
        assert x.shape == (5, x.shape[1], task.input_size) and x.dtype == torch.float32
    # the output a model built the way train.build builds it must fit loss and metrics
    model = build_model("gru", task.input_size, 8, task.output_size, tokens=task.tokens,
                        embedding_size=4 if task.tokens else None, readout=task.readout)
    out = model(x)
    loss = task.loss(out, y)
    assert loss.dim() == 0 and loss.requires_grad and math.isfinite(loss.item())
    metrics = task.metrics(out.detach(), y)
    assert metrics["loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert task.metric in metrics
    assert isinstance(task.solved(metrics), bool)
    assert task.describe() == type(task).__doc__.strip().splitlines()[0]
    assert isinstance(task.source, str) and re.search(r"\b(19|20)\d\d\b", task.source)
    # decode shows the sample asked for: index 1 of the batch is that sample on its own
    decoded = task.decode(x, y, 1)
    assert isinstance(decoded, str) and decoded == task.decode(x[1:2], y[1:2], 0)


@pytest.mark.parametrize("name, options, length", CASES, ids=IDS)
def test_pure_and_deterministic(name, options, length):
    task = get_task(name, **options)
    torch.manual_seed(1234)
    state = torch.random.get_rng_state()
    x1, y1 = task.sample(length, 16, gen(7))
    x2, y2 = task.sample(length, 16, gen(7))
    x3, _ = task.sample(length, 16, gen(8))
    assert torch.equal(torch.random.get_rng_state(), state), "sample touched the global RNG"
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.shape != x3.shape or not torch.equal(x1, x3)
    # the stream advances: two draws from one generator differ
    g = gen(7)
    a, _ = task.sample(length, 16, g)
    b, _ = task.sample(length, 16, g)
    assert a.shape != b.shape or not torch.equal(a, b)


# -- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, options, length", CASES, ids=IDS)
def test_bad_batch_and_generator(name, options, length):
    task = get_task(name, **options)
    for batch in (0, -3):
        with pytest.raises(ValueError, match=f"batch must be a positive int, got {batch}"):
            task.sample(length, batch, gen())
    with pytest.raises(TypeError, match="batch must be an int, got float"):
        task.sample(length, 2.0, gen())
    with pytest.raises(TypeError, match="generator must be a torch.Generator, got int"):
        task.sample(length, 2, 0)


@pytest.mark.parametrize("name, options, too_short", [
    ("adding", {}, 1), ("adding-h97", {}, 19), ("copying", {}, 0), ("temporal-order", {}, 9),
    ("latch", {}, 1), ("latch", {"lead": 3}, 3), ("language", {"distractors": True}, 3),
])
def test_length_too_short_names_the_minimum(name, options, too_short):
    task = get_task(name, **options)
    with pytest.raises(ValueError, match=rf"{name}: length must be >= {too_short + 1} .*"
                                         rf"got {too_short}$"):
        task.sample(too_short, 2, gen())
    task.sample(too_short + 1, 2, gen())  # the minimum itself is fine


@pytest.mark.parametrize("name", ["digits", "digits-permuted"])
@pytest.mark.parametrize("length", [0, 63, 65, 128])
def test_digits_length_must_be_64(name, length):
    with pytest.raises(ValueError, match=f"{name}: length must be 64 .*got {length}$"):
        get_task(name).sample(length, 2, gen())


@pytest.mark.parametrize("name, options, error, message", [
    ("addin", {}, ValueError, "unknown task 'addin'; expected one of adding, adding-h97"),
    ("digits", {"split": "val"}, ValueError, "split must be one of train, test, got 'val'"),
    ("latch", {"lead": 0}, ValueError, "lead must be a positive int, got 0"),
    ("adding-h97", {"jitter": 2}, TypeError, "jitter must be true or false, got 2"),
    ("language", {"distractors": "yes"}, TypeError, "distractors must be true or false"),
    ("copying", {"symbols": 4}, TypeError, "task 'copying'"),
])
def test_bad_task_and_options(name, options, error, message):
    with pytest.raises(error, match=message):
        get_task(name, **options)


def test_output_of_the_wrong_shape_is_refused():
    adding, copying = get_task("adding"), get_task("copying")
    x, y = adding.sample(10, 4, gen())
    with pytest.raises(ValueError, match=r"output must have the target's shape \(4, 1\), "
                                         r"got \(4,\)"):
        adding.loss(torch.zeros(4), y)
    x, y = copying.sample(5, 4, gen())
    with pytest.raises(ValueError, match=r"output must have shape \(4, 25, 9\)"):
        copying.metrics(torch.zeros(4, 9), y)


# -- solved: the criterion's words and the check agree -----------------------------------

#: the rules the module docstrings (and the papers) state, written out by hand
DOCUMENTED_CRITERIA = {
    "adding": "mse < 0.01",
    "adding-h97": "mse < 0.01 and accuracy (|err| < 0.04) >= 0.99",
    "copying": "accuracy (all 10 symbols exact) >= 0.99",
    "temporal-order": "accuracy >= 0.99",
    "latch": "accuracy >= 0.99",
    "language": "accuracy >= 0.99",
    "digits": "accuracy >= 0.9 (on split=test)",
    "digits-permuted": "accuracy >= 0.9 (on split=test)",
}
COMPARE = {"<": operator.lt, "<=": operator.le, ">=": operator.ge, ">": operator.gt}


def _clauses(text):
    """The criterion read from its words alone: ``[(metric, operator, threshold), ...]``,
    clauses joined by "and", notes in brackets dropped."""
    clauses = []
    for clause in re.sub(r"\s*\([^)]*\)", "", text).split(" and "):
        metric, op, number = clause.split()
        clauses.append((metric, op, float(number)))
    return clauses


def _pass_and_fail(op, threshold):
    """A value the clause accepts and one it refuses, as near the threshold as float64 goes."""
    below, above = math.nextafter(threshold, -math.inf), math.nextafter(threshold, math.inf)
    return {"<": (below, threshold), "<=": (threshold, above), ">=": (threshold, below),
            ">": (above, threshold)}[op]


def _assert_solved_where_the_words_say(task):
    clauses = _clauses(task.criterion)
    passing = {metric: _pass_and_fail(op, t)[0] for metric, op, t in clauses}
    assert all(COMPARE[op](passing[m], t) for m, op, t in clauses)
    assert task.solved(passing) is True, passing
    for metric, op, t in clauses:  # one clause just refused: not solved
        failing = passing | {metric: _pass_and_fail(op, t)[1]}
        assert task.solved(failing) is False, failing


@pytest.mark.parametrize("name", sorted(DOCUMENTED_CRITERIA))
def test_criterion_states_the_documented_rule(name):
    assert set(DOCUMENTED_CRITERIA) == set(task_names())
    assert get_task(name).criterion == DOCUMENTED_CRITERIA[name]


@pytest.mark.parametrize("name, options, length", CASES, ids=IDS)
def test_solved_flips_exactly_where_the_criterion_says(name, options, length):
    _assert_solved_where_the_words_say(get_task(name, **options))


@pytest.mark.parametrize("name, threshold, value", [
    ("adding", "solved_mse", 0.05),  # regression
    ("adding-h97", "solved_mse", 0.02),
    ("adding-h97", "solved_accuracy", 0.9),
    ("copying", "solved_accuracy", 0.75),
    ("temporal-order", "solved_accuracy", 0.6),  # classification
    ("latch", "solved_accuracy", 0.55),
    ("language", "solved_accuracy", 0.8),
    ("digits", "solved_accuracy", 0.95),
    ("digits-permuted", "solved_accuracy", 0.85),
])
def test_criterion_and_check_share_one_threshold(name, threshold, value):
    """Move the threshold: the words and the check move together."""
    task = get_task(name)
    setattr(task, threshold, value)
    assert value in [t for _, _, t in _clauses(task.criterion)], task.criterion
    _assert_solved_where_the_words_say(task)
    assert get_task(name).criterion == DOCUMENTED_CRITERIA[name]  # other instances keep theirs


def test_adding_h97_error_tolerance_in_the_words_is_the_one_metrics_uses():
    task = get_task("adding-h97")
    y = torch.full((4, 1), 0.25, dtype=torch.float64)
    for tolerance in (0.04, 0.1):
        task.tolerance = tolerance
        stated = float(re.search(r"\|err\| < ([0-9.]+)\)", task.criterion).group(1))
        assert stated == tolerance
        errors = torch.tensor([[0.9], [-0.9], [1.1], [-1.1]], dtype=torch.float64) * stated
        assert task.metrics(y + errors, y)["accuracy"] == 0.5  # within it: the first two


# -- chance baselines, measured ----------------------------------------------------------

BIG = 200_000


def test_adding_chance_is_the_mean_predictor():
    task = get_task("adding")
    _, y = task.sample(30, BIG, gen(1))
    assert float(y.mean()) == pytest.approx(1.0, abs=0.005)  # E[y] = 1/2 + 1/2
    mse = float(task.loss(torch.ones_like(y), y))
    assert task.chance_loss(30) == pytest.approx(1 / 6)
    assert mse == pytest.approx(1 / 6, abs=0.003)


@pytest.mark.parametrize("length", [20, 41])
def test_adding_h97_chance_is_the_half_predictor(length):
    task = get_task("adding-h97")
    _, y = task.sample(length, BIG // 2, gen(2))
    assert float(y.mean()) == pytest.approx(0.5, abs=0.002)
    mse = float(task.loss(torch.full_like(y, 0.5), y))
    assert task.chance_loss(length) == pytest.approx(19 / 480)
    assert mse == pytest.approx(19 / 480, abs=0.0008)


@pytest.mark.parametrize("length", [1, 30])
def test_copying_chance_knows_the_layout_but_not_the_symbols(length):
    task = get_task("copying")
    x, y = task.sample(length, 20_000, gen(3))
    steps = length + 20
    # the symbols are uniform over 1..8
    freq = torch.bincount(x[:, :10].flatten(), minlength=10).float() / x[:, :10].numel()
    assert torch.allclose(freq[1:9], torch.full((8,), 1 / 8), atol=0.005)
    # memoryless predictor: certain blank for T + 10 steps, uniform 1..8 for the last 10
    out = torch.full((len(x), steps, 9), -1e4)
    out[:, : steps - 10, 0] = 0.0
    out[:, steps - 10:, 1:] = 0.0
    expected = 10 * math.log(8) / (length + 20)
    assert task.chance_loss(length) == pytest.approx(expected)
    assert float(task.loss(out, y)) == pytest.approx(expected, rel=1e-6)
    assert task.metrics(out, y)["accuracy"] < 0.01  # and it does not count as solved


@pytest.mark.parametrize("name, options, length, classes", [
    ("temporal-order", {}, 40, 4), ("latch", {}, 20, 2), ("language", {}, 5, 8),
    ("digits", {}, 64, 10), ("digits", {"split": "test"}, 64, 10),
    ("digits-permuted", {}, 64, 10),
])
def test_classification_chance_is_the_label_entropy(name, options, length, classes):
    task = get_task(name, **options)
    _, y = task.sample(length, 100_000, gen(4))
    freq = torch.bincount(y, minlength=classes).double() / len(y)
    # the best input-blind predictor outputs the label frequencies
    out = freq.log().float().expand(len(y), -1)
    assert task.chance_loss(length) <= math.log(classes) + 1e-12
    assert float(task.loss(out, y)) == pytest.approx(task.chance_loss(length), abs=0.01)


def test_digits_chance_uses_the_split_frequencies():
    _, labels = load()
    for split, split_labels in (("train", labels[:TRAIN_SIZE - 144]),
                                ("test", labels[TRAIN_SIZE:])):
        p = torch.bincount(split_labels, minlength=10).double() / len(split_labels)
        entropy = float(-(p * p.log()).sum())
        assert get_task("digits", split=split).chance_loss(64) == pytest.approx(entropy)


# -- oracles: each task is solvable from its input ---------------------------------------

def test_adding_oracle_and_layout():
    task = get_task("adding")
    length = 11
    x, y = task.sample(length, 4096, gen(5))
    values, marks = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert set(marks.unique().tolist()) == {0.0, 1.0}
    assert (marks[:, : length // 2].sum(1) == 1).all()
    assert (marks[:, length // 2:].sum(1) == 1).all()
    oracle = (values * marks).sum(1, keepdim=True)
    assert task.solved(task.metrics(oracle, y))
    assert task.metrics(oracle, y)["mse"] < 1e-12
    assert not task.solved(task.metrics(torch.ones_like(y), y))


@pytest.mark.parametrize("jitter", [True, False])
def test_adding_h97_oracle_and_layout(jitter):
    task = get_task("adding-h97", jitter=jitter)
    length = 30
    x, y = task.sample(length, 20_000, gen(6))
    values, marks = x[..., 0], x[..., 1]
    steps = x.shape[1]
    assert (length <= steps <= length + 3) if jitter else steps == length
    assert ((values >= -1) & (values <= 1)).all()
    marked = marks == 1
    assert (marked.sum(1) == 2).all()
    first = marked.float().argmax(1)  # X1: one of the first ten pairs
    assert (first < 10).all()
    assert (marked[:, length // 2:].sum(1) == 0).all()  # both within the first T/2 pairs
    # -1 at the first and final pair unless the first pair is marked
    assert (marks[:, -1] == -1).all()
    assert (marks[:, 0] == torch.where(marked[:, 0], 1.0, -1.0)).all()
    assert (marks[:, 1:-1] != -1).all()
    # X1 is set to zero when the first pair is marked. The first pair is surely X1 when
    # the other mark lies at 10 or later (X2 there keeps its value, as the paper says)
    other = marked[:, 1:].float().argmax(1) + 1
    surely_x1 = marked[:, 0] & (other >= 10)
    assert surely_x1.sum() > 100 and (values[surely_x1, 0] == 0).all()
    assert (values[marked[:, 0], 0] != 0).any()  # X2 at the first pair
    # the second marker is uniform over the other T/2 - 1 positions of the first half
    counts = marked[:, : length // 2].sum(0).float()
    assert counts[10:].std() / counts[10:].mean() < 0.1
    oracle = 0.5 + (values * marked).sum(1, keepdim=True) / 4
    metrics = task.metrics(oracle, y)
    assert metrics["accuracy"] == 1.0 and task.solved(metrics)
    near = oracle + torch.where(torch.arange(len(y))[:, None] % 50 == 0, 0.05, 0.0)
    assert task.metrics(near, y)["accuracy"] == pytest.approx(0.98)
    assert not task.solved(task.metrics(near, y))  # 2% wrong: not solved


def test_jitter_covers_t_to_t_plus_t_over_10():
    task = get_task("adding-h97")
    g = gen(9)
    seen = {task.sample(40, 1, g)[0].shape[1] for _ in range(200)}
    assert seen == set(range(40, 45))


def test_copying_oracle():
    task = get_task("copying")
    length = 13
    x, y = task.sample(length, 2000, gen(10))
    steps = length + 20
    blanks = torch.zeros(steps, dtype=torch.bool)
    blanks[10: 10 + length - 1] = True
    blanks[-10:] = True
    assert (x[:, blanks] == 0).all() and (x[:, 10 + length - 1] == 9).all()
    assert ((x[:, :10] >= 1) & (x[:, :10] <= 8)).all()
    recall = torch.zeros_like(y)
    recall[:, -10:] = x[:, :10]
    out = F.one_hot(recall, 9).float() * 20
    metrics = task.metrics(out, y)
    assert metrics["accuracy"] == 1.0 and task.solved(metrics)
    wrong = recall.clone()
    wrong[::50, -1] = wrong[::50, -1] % 8 + 1  # one symbol off in 2% of sequences
    metrics = task.metrics(F.one_hot(wrong, 9).float(), y)
    assert metrics["accuracy"] == pytest.approx(0.98) and not task.solved(metrics)
    assert metrics["symbol_accuracy"] == pytest.approx(1 - 0.02 / 10)


@pytest.mark.parametrize("length", [10, 37, 200])
def test_temporal_order_oracle_and_layout(length):
    task = get_task("temporal-order")
    x, y = task.sample(length, 4000, gen(11))
    assert torch.equal(x.sum(-1), torch.ones(x.shape[:2]))  # one-hot
    ids = x.argmax(-1)
    relevant = ids < 2
    assert (relevant.sum(1) == 2).all()
    pos = torch.nonzero(relevant)[:, 1].view(-1, 2)
    k = int(length * 0.1)
    assert ((pos[:, 0] >= k) & (pos[:, 0] < 2 * k)).all()
    assert ((pos[:, 1] >= int(length * 0.5)) & (pos[:, 1] < int(length * 0.5) + k)).all()
    names = ["".join("AB"[int(ids[i, p])] for p in pos[i]) for i in range(len(y))]
    oracle_class = torch.tensor([CLASSES.index(n) for n in names])
    assert torch.equal(oracle_class, y)
    out = F.one_hot(oracle_class, 4).float()
    assert task.solved(task.metrics(out, y))
    assert torch.bincount(y, minlength=4).min() > 0.2 * len(y)


def test_latch_oracle_and_noise():
    task = get_task("latch", lead=2)
    x, y = task.sample(50, 20_000, gen(12))
    assert torch.equal(x[:, :2, 0], (2.0 * y[:, None] - 1).expand(-1, 2))
    noise = x[:, 2:, 0]
    assert float(noise.mean()) == pytest.approx(0, abs=0.005)
    assert float(noise.var()) == pytest.approx(0.2, rel=0.01)
    oracle = torch.stack([-x[:, 0, 0], x[:, 0, 0]], dim=1)
    assert task.solved(task.metrics(oracle, y))
    # the last input alone says nothing: sign of x_L is a coin flip
    last = torch.stack([-x[:, -1, 0], x[:, -1, 0]], dim=1)
    assert task.metrics(last, y)["accuracy"] == pytest.approx(0.5, abs=0.02)


def _nearest_neighbour(train_x, train_y, x):
    return train_y[torch.cdist(x, train_x).argmin(1)]


@pytest.mark.parametrize("name", ["digits", "digits-permuted"])
def test_digits_test_split_is_solvable_by_1nn_on_the_train_split(name):
    train, test = get_task(name), get_task(name, split="test")
    x_train, y_train = train.images, train.labels
    x, y = test.sample(64, 2000, gen(13))
    guess = _nearest_neighbour(x_train, y_train, x[..., 0][:, torch.argsort(test.order())])
    metrics = test.metrics(F.one_hot(guess, 10).float(), y)
    assert metrics["accuracy"] >= 0.9 and test.solved(metrics)


def test_digits_data_and_splits():
    from sklearn.datasets import load_digits

    ref = load_digits()
    images, labels = load()
    assert images.shape == (1797, PIXELS) and float(images.max()) == 1.0
    assert torch.allclose(images * 16, torch.tensor(ref.data, dtype=torch.float32))
    train, test = get_task("digits"), get_task("digits", split="test")
    assert len(train.labels) == TRAIN_SIZE - 144 and len(test.labels) == 1797 - TRAIN_SIZE
    # sampled images are images of their split, with their labels
    for task, rows in ((train, slice(0, TRAIN_SIZE - 144)), (test, slice(TRAIN_SIZE, None))):
        x, y = task.sample(64, 500, gen(14))
        d = torch.cdist(x[..., 0], images[rows], compute_mode="donot_use_mm_for_euclid_dist")
        assert (d.min(1).values == 0).all()
        assert torch.equal(labels[rows][d.argmin(1)], y)


@pytest.mark.parametrize("name", ["digits", "digits-permuted"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_digits_heldout_parts_are_fixed_and_disjoint_from_training(name, split):
    from vanishing.tasks.digits import VALIDATION_SIZE

    task = get_task(name, split=split)
    images, labels = load()
    parts = {"validation": slice(TRAIN_SIZE - VALIDATION_SIZE, TRAIN_SIZE),
             "test": slice(TRAIN_SIZE, None)}
    for part, rows in parts.items():
        x, y = task.heldout(64, 7, gen(0), part)  # the size asked for is not used
        assert torch.equal(y, labels[rows])
        assert torch.equal(x[..., 0], images[rows][:, task.order()])
    if split == "train":  # training draws only from the first 1293 images
        x, _ = task.sample(64, 3000, gen(1))
        d = torch.cdist(x[..., 0][:, torch.argsort(task.order())], images,
                        compute_mode="donot_use_mm_for_euclid_dist")
        assert int(d.argmin(1).max()) < TRAIN_SIZE - VALIDATION_SIZE
    with pytest.raises(ValueError, match="unknown held-out part 'train'"):
        task.heldout(64, 1, gen(0), "train")


def test_generated_tasks_hold_out_fresh_samples_of_the_size_asked():
    task = get_task("adding")
    x, y = task.heldout(30, 9, gen(5))
    x2, y2 = task.sample(30, 9, gen(5))
    assert x.shape[0] == 9 and torch.equal(x, x2) and torch.equal(y, y2)


def test_permuted_digits_use_one_fixed_documented_permutation():
    plain, perm = get_task("digits"), get_task("digits-permuted")
    order = torch.randperm(64, generator=torch.Generator().manual_seed(PERMUTATION_SEED))
    assert torch.equal(perm.order(), order) and torch.equal(get_task("digits-permuted").order(),
                                                             order)
    assert sorted(order.tolist()) == list(range(64)) and not torch.equal(order, torch.arange(64))
    x, y = plain.sample(64, 32, gen(15))
    xp, yp = perm.sample(64, 32, gen(15))
    assert torch.equal(y, yp) and torch.equal(xp, x[:, order])
    assert perm.decode(xp, yp, 3) == plain.decode(x, y, 3)  # decode undoes the order
    assert str(PERMUTATION_SEED) in sys.modules[type(perm).__module__].__doc__


def test_language_oracle():
    task = get_task("language")
    x, y = task.sample(9, 1000, gen(16))
    words = [[task.vocab[int(i)] for i in row] for row in x]
    countries = [c for c, _ in PAIRS[: task.pairs]]
    oracle = torch.tensor([countries.index(w[4]) for w in words])
    assert task.solved(task.metrics(F.one_hot(oracle, task.pairs).float(), y))


# -- docstrings show real samples ----------------------------------------------------------

@pytest.mark.parametrize("name, length, options", [
    ("copying", 3, {}), ("temporal-order", 20, {}), ("latch", 8, {}), ("digits", 64, {}),
])
def test_docstring_sample_is_what_seed_0_draws(name, length, options):
    task = get_task(name, **options)
    x, y = task.sample(length, 1, gen(0))
    doc = inspect.getmodule(type(task)).__doc__
    for line in task.decode(x, y).splitlines():
        assert line.strip() in doc, line


def test_adding_docstring_samples():
    doc = inspect.getmodule(type(get_task("adding"))).__doc__
    x, y = get_task("adding").sample(6, 1, gen(0))
    assert f"{float(y):.4f}" in doc
    x, y = get_task("adding-h97").sample(20, 1, gen(0))
    assert x.shape[1] == 22 and f"{float(y):.4f}" in doc


# -- random weight guessing --------------------------------------------------------------

def _torch_rnn_accuracy(weights, x, y):
    """Independent reference: the guessed weights in a stock torch.nn.RNN."""
    h = weights["w_in"].numel()
    rnn = nn.RNN(1, h, nonlinearity="tanh", batch_first=True)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(weights["w_in"][:, None])
        rnn.weight_hh_l0.copy_(weights["w_hh"])
        rnn.bias_ih_l0.copy_(weights["b"])
        rnn.bias_hh_l0.zero_()
        hs, _ = rnn(x)
        out = hs[:, -1] @ weights["w_out"] + weights["b_out"]
    return float(((out > 0).long() == y).float().mean())


def test_random_guessing_solves_latch_quickly():
    result = random_guessing(50, trials=500, batch=128, generator=gen(0))
    assert isinstance(result, GuessResult)
    assert result.solved and 1 <= result.trials_used <= 500
    assert result.accuracy >= 0.99 and result.test_accuracy >= 0.99
    assert set(result.weights) == {"w_in", "w_hh", "b", "w_out", "b_out"}
    x, y = get_task("latch").sample(50, 2000, gen(99))
    assert _torch_rnn_accuracy(result.weights, x, y) >= 0.98
    again = random_guessing(50, trials=500, batch=128, generator=gen(0))
    assert again.trials_used == result.trials_used


def test_random_guessing_reports_failure_honestly():
    result = random_guessing(30, trials=20, scale=0.01, batch=64, chunk=8, generator=gen(1))
    assert not result.solved and result.trials_used == 20
    assert math.isnan(result.test_accuracy) and 0 <= result.accuracy < 0.99
    assert set(result.weights) == {"w_in", "w_hh", "b", "w_out", "b_out"}


@pytest.mark.parametrize("kwargs, message", [
    ({"trials": 0}, "trials must be a positive int, got 0"),
    ({"hidden_size": 0}, "hidden_size must be a positive int, got 0"),
    ({"scale": -1.0}, "scale must be a finite number > 0, got -1.0"),
    ({"batch": 0}, "batch must be a positive int, got 0"),
])
def test_random_guessing_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        random_guessing(20, generator=gen(), **kwargs)
    with pytest.raises(ValueError, match="latch: length must be >= 2"):
        random_guessing(1, generator=gen())


@pytest.mark.parametrize("name", task_names())
def test_metrics_and_loss_on_the_wrong_shape_or_classes_are_one_value_error(name):
    task = get_task(name)
    x, y = task.sample(task.min_length, 3, gen())
    out = torch.zeros(*y.shape, task.output_size) if not y.is_floating_point() \
        else torch.zeros(y.shape)
    task.metrics(out, y)  # the right shape is accepted
    for bad in (out[..., :1].squeeze(-1) if out.dim() > 1 else out[:1],  # a dimension short
                torch.zeros(*out.shape[:-1], out.shape[-1] + 3),  # more classes / targets
                torch.zeros(5, *out.shape[1:])):  # another batch
        for method in (task.metrics, task.loss):
            with pytest.raises(ValueError, match=rf"{name}: output must have") as info:
                method(bad, y)
            assert "\n" not in str(info.value)


def test_loss_with_fewer_classes_than_labels_names_the_classes():
    task = get_task("language", pairs=8)
    y = torch.tensor([0, 7])
    with pytest.raises(ValueError, match=r"output must have shape \(2, 8\) .*8 classes"):
        task.loss(torch.zeros(2, 3), y)
    with pytest.raises(ValueError, match="class labels must be in 0..7"):
        task.loss(torch.zeros(2, 8), torch.tensor([0, 9]))


@pytest.mark.parametrize("name", task_names())
def test_chance_loss_at_a_negative_length_is_a_value_error(name):
    task = get_task(name)
    for length in (-1, -20, task.min_length - 1):
        if length < task.min_length:
            with pytest.raises(ValueError, match="length must be"):
                task.chance_loss(length)
    with pytest.raises(TypeError, match="length must be an int"):
        task.chance_loss(2.5)
    assert math.isfinite(task.chance_loss(task.min_length))
