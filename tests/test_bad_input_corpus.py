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
    return {
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
    }


@pytest.mark.parametrize("case", list(_api_cases()))
def test_api_bad_input_is_one_error_line_and_files_unchanged(case, folder):
    with pytest.raises((ValueError, TypeError)) as info:
        _api_cases()[case]()
    assert "\n" not in str(info.value).strip(), str(info.value)
    assert folder()
