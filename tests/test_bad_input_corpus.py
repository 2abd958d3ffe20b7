"""A corpus of bad input, CLI and API: exit code 2 and one line on stderr (no traceback)
for the CLI, a ValueError/TypeError of one line for the API, and every file that existed
before unchanged (hashes of the working folder before and after)."""

import hashlib
import pickle

import pytest
import torch

from vanishing.cli import main

HUGE = "9" * 25
FILES = {"notes.txt": b"my own notes\n", "weights.pt": None, "evil.pt": None,
         "foreign.sqlite": b"SQLite format 3\x00" + b"\x00" * 84, "empty.pt": b""}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A working folder with files a user may have; yields their hashes to compare."""
    for name, data in FILES.items():
        path = tmp_path / name
        if name == "weights.pt":
            torch.save({"core.weight": torch.zeros(2, 2)}, path)
        elif name == "evil.pt":
            path.write_bytes(pickle.dumps({"a": __import__("collections").Counter()},
                                          protocol=4))
        else:
            path.write_bytes(data)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)

    def digest():
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(tmp_path.iterdir()) if p.is_file()}

    before = digest()
    yield lambda: digest() == before and sorted(p.name for p in tmp_path.iterdir()) == \
        sorted([*FILES, "sub"])


INT_OPTIONS = [
    ("demo", ["--gap", "--steps", "--seed", "--threads"]),
    ("probe", ["--length", "--hidden-size", "--input-size", "--layers", "--batch", "--seed",
               "--max-lag", "--rows"]),
    ("train", ["--length", "--steps", "--hidden-size", "--batch-size", "--seed",
               "--eval-every", "--threads"]),
    ("sweep", ["--seeds", "--steps", "--hidden-size", "--batch-size", "--eval-every"]),
]
CLI = [[command, flag, value] for command, flags in INT_OPTIONS for flag in flags
       for value in (HUGE, "-" + HUGE)]
CLI += [["descend", "w**2", "--start", "1", flag, value]
        for flag in ("--steps", "--rows") for value in (HUGE, "-" + HUGE)]
CLI += [
    ["probe", "--hidden-size", "1000000000000"],
    ["probe", "--layers", "100000"],
    ["train", "--hidden-size", "70000"],
    ["probe", "--model", "lstm", "--hidden-size", "65536"],  # in range: 64 GiB of weights
    ["descend", "abs(w)", "--start", "1", "--steps", "1000000000000"],
    ["sweep", "--lengths", f"10,{HUGE}", "--db", "new.sqlite"],
    ["sweep", "--lengths", "", "--db", "new.sqlite"],
    ["sweep", "--lengths", "a,b", "--db", "new.sqlite"],
    ["sweep", "--db", "foreign.sqlite"],
    ["sweep", "--report", "foreign.sqlite"],
    ["sweep", "--report", "notes.txt"],
    ["sweep", "--report", "missing.sqlite"],
    ["sweep", "--db", "sub"],
    ["sweep", "--db", "nofolder/x.sqlite"],
    ["tasks", "guess", "-L", HUGE],
    ["tasks", "show", "language", "-o", "pairs=" + "1+" * 30_000 + "1"],
    ["tasks", "show", "language", "-o", "pairs=" + "[" * 900],
    ["tasks", "show", "language", "-o", "nokey"],
    ["tasks", "show", "language", "-o", "pairs=-1"],
    ["tasks", "show", "nosuchtask"],
    ["tasks", "show", ""],
    ["probe", "--model", ""],
    ["probe", "--model", "nosuchmodel"],
    ["probe", "--task", ""],
    ["probe", "--init", ""],
    ["probe", "--checkpoint", "weights.pt"],
    ["probe", "--checkpoint", "evil.pt"],
    ["probe", "--checkpoint", "empty.pt"],
    ["probe", "--checkpoint", "notes.txt"],
    ["probe", "--checkpoint", "sub"],
    ["probe", "--checkpoint", "missing.pt"],
    ["probe", "--checkpoint", "weights.pt", "--model", "lstm"],
    ["probe", "--radius", "-1"],
    ["probe", "--radius", "nan"],
    ["probe", "--threshold", "2"],
    ["probe", "--length", "1"],
    ["probe", "--plot", "sub"],
    ["probe", "--plot", "x.gif"],
    ["descend", "", "--start", "1"],
    ["descend", "w +", "--start", "1"],
    ["descend", "__import__('os').system('true')", "--start", "1"],
    ["descend", "w**2", "--start", "nan"],
    ["descend", "w**2", "--start", "1,2"],
    ["descend", "w**2", "--start", "1", "--lr", "-1"],
    ["descend", "w**2", "--start", "1", "--plot", "sub"],
    ["descend", "w**2", "--start", "1", "--plot", ""],
    ["descend", "w**2", "--start", "1", "--plot", "x.gif"],
    ["descend", "log(w)", "--start", "-1"],
    ["train", "--model", ""],
    ["train", "--task", "nosuchtask"],
    ["train", "--lr", "-1"],
    ["demo", "--models", ""],
    # each fixed in this file's second round (the test failed before the fix):
    ["descend", "w**2", "--start", "1", "--rows", "-1"],  # was: every row, exit 0
    ["descend", "sqrt(w)", "--start", "0"],  # gradient inf at the start: was exit 0
    ["probe", "--length", "200000", "--batch", "1"],  # past any task's length: was run
    ["train", "--task", "adding", "--length", "200000"],
    ["sweep", "--lengths", "10,200000", "--db", "new.sqlite"],  # was: workers started
    ["train", "--model", "rnn_tanh", "--forget-bias", "2"],  # no forget gate: was ignored
    ["train", "--model", "exprnn", "--forget-bias", "2"],
    ["tasks", "show", "language", "-o", "pairs=3", "-o", "pairs=4"],  # was: the last won
    # each fixed in the third round:
    ["sweep", "--models", "lstm,lstm", "--db", "new.sqlite"],  # was: ran once, "(lstm, lstm)"
    ["sweep", "--lengths", "10,10", "--db", "new.sqlite"],  # was: counted twice in the banner
    ["train", "--save", "nofolder/x.pt", "--steps", "1"],  # was: trained, made the folder
    # refused before already, each a different kind of mistake:
    ["demo", "--models", "lstm,lstm"],
    ["demo", "--models", "lstm,nosuch"],
    ["demo", "--out", "notes.txt"],
    ["demo", "--html", "nofolder/r.html"],
    ["demo", "--device", "cuda"],
    ["demo", "--gap", "-1"],
    ["descend", "w**2", "--start", "1", "--momentum", "1"],
    ["descend", "w**2", "--start", "1", "--tol", "nan"],
    ["descend", "w**2", "--start", "1", "--vars", "w,w"],
    ["descend", "w**2", "--start", "1", "--vars", "x"],
    ["descend", "x+y", "--start", "1"],
    ["descend", "w**2", "--start", "1e400"],
    ["descend", "x+y+z", "--start", "1,1,1", "--plot", "x.png"],
    ["descend", "w.real", "--start", "1"],
    ["descend", "w**2**2", "--start", "2"],
    ["descend", "exp(exp(exp(w)))", "--start", "10"],
    ["probe", "--rows", "-1"],
    ["probe", "--max-lag", "-1"],
    ["probe", "--length", "0"],
    ["probe", "--model", "indrnn", "--init", "chrono"],
    ["probe", "--model", "exprnn", "--radius", "2"],
    ["probe", "--task", "adding", "--input-size", "3"],
    ["probe", "--checkpoint", "weights.pt", "--hidden-size", "3"],
    ["probe", "--checkpoint", "foreign.sqlite"],
    ["probe", "--html", "nofolder/x.html"],
    ["probe", "--device", "tpu"],
    ["tasks", "show", "digits", "-o", "split=nosuch"],
    ["tasks", "show", "language", "-o", "distractors=maybe"],
    ["tasks", "show", "adding", "-o", "nosuchkey=1"],
    ["tasks", "show", "temporal-order", "-L", "2"],
    ["tasks", "show", "adding", "--seed", "-1"],
    ["tasks", "-L", "-1"],
    ["train", "--truncate", "0"],
    ["train", "--floss", "-1"],
    ["train", "--floss", "nan"],
    ["train", "--model", "lstm", "--init", "chrono", "--length", "2"],
    ["train", "--model", "indrnn", "--task", "adding", "--length", "5", "--radius", "3"],
    ["train", "--save", "sub"],
    ["train", "--optimizer", "rmsprop"],
    ["train", "--clip", "nan"],
    ["sweep", "--lrs", "x:1", "--db", "new.sqlite"],
    ["sweep", "--lrs", "lstm:", "--db", "new.sqlite"],
    ["sweep", "--lengths", "1.5", "--db", "new.sqlite"],
    ["sweep", "--db", "empty.pt"],
    ["sweep", "--report", "foreign.sqlite", "--db", "foreign.sqlite"],
    ["sweep", "--task", "digits", "--lengths", "10", "--db", "new.sqlite"],
    ["sweep", "--seeds", "0", "--db", "new.sqlite"],
    ["sweep", "--workers", "0", "--db", "new.sqlite"],
    ["sweep"],
]


@pytest.mark.parametrize("argv", CLI, ids=lambda a: " ".join(a)[:60])
def test_cli_bad_input_is_one_line_exit_2_and_files_unchanged(argv, folder, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    out, err = capsys.readouterr()
    assert stop.value.code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in out + err and "Warning" not in err
    assert folder()


def _api_cases():
    from vanishing.descent import descend
    from vanishing.models import build_model
    from vanishing.probe import hidden_gradients
    from vanishing.tasks import get_task
    from vanishing.train import load_checkpoint

    model = build_model("lstm", 3, 4, 2)
    x = torch.randn(2, 5, 3)
    language = get_task("language")
    return {**_more_api_cases(), **{
        "checkpoint: bare state dict": lambda: load_checkpoint("weights.pt"),
        "checkpoint: refused pickle": lambda: load_checkpoint("evil.pt"),
        "checkpoint: empty file": lambda: load_checkpoint("empty.pt"),
        "checkpoint: folder": lambda: load_checkpoint("sub"),
        "build_model: nan forget_bias": lambda: build_model("lstm", 3, 4, 2,
                                                            forget_bias=float("nan")),
        "build_model: zero hidden": lambda: build_model("lstm", 3, 0, 2),
        "build_model: unknown": lambda: build_model("", 3, 4, 2),
        "hidden_gradients: loss str": lambda: hidden_gradients(model, x, loss="mse"),
        "hidden_gradients: float16": lambda: hidden_gradients(model, x.half()),
        "hidden_gradients: 2-D": lambda: hidden_gradients(model, x[0]),
        "hidden_gradients: nan input": lambda: hidden_gradients(
            model, torch.full((2, 5, 3), float("nan"))),
        "task metrics: wrong shape": lambda: language.metrics(torch.zeros(2), torch.zeros(
            2, dtype=torch.long)),
        "task loss: wrong classes": lambda: language.loss(torch.zeros(2, 3), torch.tensor(
            [0, 7])),
        "task chance_loss: negative": lambda: get_task("copying").chance_loss(-20),
        "task sample: negative": lambda: language.sample(-1, 2, torch.Generator()),
        "descend: nan start": lambda: descend("w**2", [float("nan")], lr=0.1, steps=3),
        "descend: zero steps": lambda: descend("w**2", [1.0], lr=0.1, steps=0),
        "descend: hostile": lambda: descend("__import__('os')", [1.0], lr=0.1, steps=3),
    }}


def _more_api_cases():
    """Case -> (call, a word the message must hold: what was expected)."""
    from vanishing.cells.base import make_cell
    from vanishing.cells.indrnn import IndRNNCell
    from vanishing.cells.lru import LRUCell
    from vanishing.descent import classify_step_size, descend, hessian_at
    from vanishing.diagnose import diagnose
    from vanishing.init import initialize, spectral_radius
    from vanishing.jacobian import jacobian_products, lyapunov_exponents
    from vanishing.models import build_model
    from vanishing.monitor import GradientMonitor
    from vanishing.probe import input_gradients, layer_gradients
    from vanishing.sweep import grid, run_sweep
    from vanishing.sweep.store import open_store
    from vanishing.tasks import get_task
    from vanishing.train import TrainConfig, load_checkpoint
    from vanishing.unroll import unroll

    rnn, cell = build_model("rnn_tanh", 3, 4, 2), make_cell("rnn_tanh", 3, 4)
    x = torch.randn(2, 5, 3)
    adding = get_task("adding")
    return {
        # each fixed in this round (the test failed before the fix):
        "get_task: unknown option names the known": (
            lambda: get_task("language", nosuch=1), "expected one of pairs, distractors"),
        "chance_loss: length past any task's": (lambda: adding.chance_loss(10**9), "at most"),
        "grid: length past the task's": (
            lambda: grid("adding", ["lstm"], [10**9], 1), "at most"),
        "build_model: forget_bias on a cell with no forget gate": (
            lambda: build_model("rnn_tanh", 3, 4, 2, forget_bias=1.0), "forget gate"),
        "initialize: forget_bias on a GRU": (
            lambda: initialize(build_model("gru", 3, 4, 2), forget_bias=1.0), "forget gate"),
        "make_cell: negative hidden_size": (lambda: make_cell("lstm", 3, -4),
                                                "hidden_size must be a positive int"),
        "make_cell: a hidden_size past the allocator": (
            lambda: make_cell("lstm", 3, 10**12), "hidden_size must be at most 65,536"),
        "make_cell: a huge input_size, a cell of vanishing.cells": (
            lambda: make_cell("indrnn", 10**9, 4), "input_size must be at most 65,536"),
        "diagnose: max_growth below 1": (lambda: diagnose(rnn, x, max_growth=-1.0), ">= 1"),
        "descend: gradient inf at the start": (
            lambda: descend("sqrt(w)", 0.0, lr=0.1, steps=3), "gradient"),
        # each fixed in the third round (torch's allocator error before):
        "build_model: hidden_size past the bound": (
            lambda: build_model("lstm", 3, 10**12, 2), "hidden_size must be at most 65,536"),
        "grid: a seed given twice": (
            lambda: grid("adding", ["lstm"], [10], [0, 1, 0]), "each seed once"),
        "build_model: weights beyond the free memory": (
            lambda: build_model("gru", 3, 65_536, 2), "GiB of memory free here"),
        "build_model: input_size past the bound": (
            lambda: build_model("gru", 10**12, 4, 2), "input_size must be at most 65,536"),
        "build_model: output_size past the bound": (
            lambda: build_model("rnn_tanh", 3, 4, 10**12), "output_size must be at most"),
        "build_model: a cell's hidden_size past the bound": (
            lambda: build_model("lru", 3, 10**12, 2), "hidden_size must be at most"),
        "build_model: num_layers past the bound": (
            lambda: build_model("mingru", 3, 4, 2, num_layers=10**6), "num_layers must be at "
                                                                      "most 64"),
        "build_model: embedding_size past the bound": (
            lambda: build_model("lstm", 10, 4, 2, tokens=True, embedding_size=10**12),
            "embedding_size must be at most"),
        # ... and the duplicates grid dropped quietly (the CLI's banner still listed them):
        "grid: a model twice": (
            lambda: grid("adding", ["lstm", "gru", "lstm"], [10], 1), "each model once"),
        "grid: a length twice": (lambda: grid("adding", ["lstm"], [10, 10], 1), "each length"),
        # refused before already:
        "unroll: wrong features": (lambda: unroll(cell, torch.randn(2, 5, 7)), "3 features"),
        "unroll: lengths past T": (
            lambda: unroll(cell, x, lengths=torch.tensor([9, 1])), "[1, 5]"),
        "unroll: float lengths": (
            lambda: unroll(cell, x, lengths=torch.tensor([2.5, 1.0])), "integer"),
        "unroll: not a cell": (lambda: unroll(torch.nn.Linear(3, 4), x), "Cell"),
        "unroll: wrong state": (lambda: unroll(cell, x, torch.zeros(3, 4)), "(2, 4)"),
        "make_cell: unknown lists the known": (lambda: make_cell("nosuch", 3, 4), "lstm"),
        "build_model: size as a string": (lambda: build_model("lstm", "3", 4, 2), "int"),
        "input_gradients: empty batch": (
            lambda: input_gradients(rnn, torch.randn(0, 5, 3)), "batch >= 1"),
        "input_gradients: inf": (
            lambda: input_gradients(rnn, torch.full((2, 5, 3), float("inf"))), "finite"),
        "layer_gradients: no recurrent step": (
            lambda: layer_gradients(torch.nn.Linear(3, 2), x), "recurrent"),
        "descend: momentum 1": (
            lambda: descend("w**2", 1.0, lr=0.1, steps=3, momentum=1.0), "momentum < 1"),
        "descend: steps a float": (lambda: descend("w**2", 1.0, lr=0.1, steps=3.0), "integer"),
        "descend: empty start": (lambda: descend("w**2", [], lr=0.1, steps=3), "non-empty"),
        "descend: f returns a vector": (
            lambda: descend(lambda w: torch.stack([w, w]), 1.0, lr=0.1, steps=3), "scalar"),
        "hessian_at: NaN point": (lambda: hessian_at("w**2", float("nan")), "finite"),
        "classify_step_size: NaN curvature": (
            lambda: classify_step_size(0.1, float("nan")), "finite"),
        "task loss: shape": (lambda: adding.loss(torch.zeros(2, 1), torch.zeros(2)), "shape"),
        "task heldout: unknown part": (
            lambda: adding.heldout(10, 2, torch.Generator(), part="train"), "validation"),
        "task sample: generator an int": (
            lambda: adding.sample(10, 2, 0), "torch.Generator"),
        "load_checkpoint: missing": (lambda: load_checkpoint("missing.pt"), "does not exist"),
        "load_checkpoint: a SQLite file": (lambda: load_checkpoint("foreign.sqlite"),
                                           "not a readable vanishing checkpoint"),
        "open_store: text file": (lambda: open_store("notes.txt"), "not an SQLite database"),
        "open_store: folder": (lambda: open_store("sub"), "not a file"),
        "open_store: read-only, missing": (
            lambda: open_store("missing.sqlite", readonly=True), "does not exist"),
        "grid: models a string": (lambda: grid("adding", "lstm", [10], 1), "list"),
        "grid: unknown option": (
            lambda: grid("adding", ["lstm"], [10], 1, nosuch=1), "TrainConfig fields"),
        "run_sweep: no configs": (lambda: run_sweep([], "new.sqlite"), "non-empty"),
        "TrainConfig: truncate 0": (lambda: TrainConfig(truncate=0), "positive"),
        "TrainConfig: floss negative": (lambda: TrainConfig(floss=-1.0), "> 0"),
        "TrainConfig: unknown optimizer": (lambda: TrainConfig(optimizer="rmsprop"), "adam"),
        "GradientMonitor: every 0": (lambda: GradientMonitor(rnn, every=0), "positive"),
        "GradientMonitor: no recurrent step": (
            lambda: GradientMonitor(torch.nn.Linear(2, 2)), "recurrent"),
        "jacobian_products: unknown layer": (
            lambda: jacobian_products(rnn, x, layer="nosuch"), "core.l0"),
        "lyapunov_exponents: k past the state": (
            lambda: lyapunov_exponents(cell, x, k=99), "[1, 4]"),
        "initialize: unknown scheme": (lambda: initialize(rnn, "nosuch"), "orthogonal"),
        "initialize: chrono without max_length": (
            lambda: initialize(build_model("lstm", 3, 4, 2), "chrono"), "max_length"),
        "spectral_radius: not square": (
            lambda: spectral_radius(torch.ones(3, 2)), "square"),
        "IndRNN: no bound at T = 0": (lambda: IndRNNCell(3, 4, max_length=0), ">= 1"),
        "LRU: r_min >= r_max": (lambda: LRUCell(3, 4, r_min=0.9, r_max=0.5), "below r_max"),
        "LRU: r_max past 1": (lambda: LRUCell(3, 4, r_max=1.5), "(0, 1)"),
    }


@pytest.mark.parametrize("case", list(_api_cases()))
def test_api_bad_input_is_one_error_line_and_files_unchanged(case, folder):
    call, expected = (_api_cases()[case], "") if callable(_api_cases()[case]) else \
        _api_cases()[case]
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert "\n" not in str(info.value).strip(), str(info.value)
    assert expected in str(info.value), (expected, str(info.value))
    assert folder()
