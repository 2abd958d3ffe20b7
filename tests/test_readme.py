"""The README's library example runs as written (with a shorter training loop)."""

import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block(title: str) -> str:
    text = README.read_text()
    start = text.index("```python", text.index(title)) + len("```python")
    return text[start: text.index("```", start)]


def test_library_example_runs():
    code = _python_block("## As a library")
    assert "range(200)" in code
    scope: dict = {}
    with warnings.catch_warnings(record=True):  # the monitor also warns for each alarm
        warnings.simplefilter("always")
        exec(compile(code.replace("range(200)", "range(2)"), "README.md", "exec"), scope)
    trace, alarms = scope["trace"], scope["alarms"]
    assert trace.norms.shape == (200,) and trace.horizon(1e-3) < 199
    monitor = scope["monitor"]
    assert monitor.steps == 2 and list(monitor.traces) == [1]  # every=50: probed at step 1 only
    assert alarms == []  # step 2 is no probe step and its loss is finite: nothing to raise
    assert all(alarm.step == 1 and alarm.kind in ("vanishing", "exploding")
               for alarm in monitor.alarms)


TUTORIAL = README.parent / "docs" / "tutorial.md"


def _example(path: Path, marker: str) -> tuple[str, str]:
    """The first ```python block after ``marker`` in ``path``, and the output shown right
    after it (the next ```console or ```text block)."""
    text = path.read_text()
    start = text.index("```python", text.index(marker)) + len("```python")
    code = text[start: text.index("```", start)]
    shown = min(i for i in (text.find("```console", start), text.find("```text", start))
                if i >= 0)
    shown = text.index("\n", shown) + 1
    return code, text[shown: text.index("```", shown)].strip()


def _prints_what_is_shown(path: Path, marker: str, capsys) -> None:
    code, shown = _example(path, marker)
    exec(compile(code, path.name, "exec"), {})
    assert capsys.readouterr().out.strip() == shown


def test_tutorial_monitor_example_prints_what_the_tutorial_shows(capsys):
    _prints_what_is_shown(TUTORIAL, "## 9. Your own model", capsys)


def test_probe_your_own_model_example_prints_what_the_readme_shows(capsys):
    _prints_what_is_shown(README, "## Probe your own model", capsys)


def test_tutorial_record_example_prints_what_the_tutorial_shows(capsys):
    _prints_what_is_shown(TUTORIAL, "Here is\nthe time-series example", capsys)


def test_tutorial_lru_ring_example_prints_what_the_tutorial_shows(capsys):
    _prints_what_is_shown(TUTORIAL, "### 11.3", capsys)


def test_tutorial_flossing_example_prints_what_the_tutorial_shows(capsys):
    _prints_what_is_shown(TUTORIAL, "Gradient flossing (Engelken 2023", capsys)


@pytest.mark.slow
def test_tutorial_beating_it_probe_lines_are_what_the_commands_print(capsys):
    """Section 11's `vanishing probe` examples: each shown horizon and decay-rate line is
    the command's own (up to the "(...)" the tutorial elides)."""
    from vanishing.cli import main

    text = TUTORIAL.read_text()
    section = text[text.index("## 11. Beating it"):]
    checked = 0
    for block in section.split("```console")[1:]:
        block = block[: block.index("```")]
        for command in block.split("$ ")[1:]:
            lines = command.strip().splitlines()
            if not lines[0].startswith("vanishing probe --model"):
                continue
            with pytest.raises(SystemExit) as done:
                main(lines[0].split()[1:])
            assert done.value.code in (0, None)
            out = capsys.readouterr().out.splitlines()
            for line in lines[1:]:
                if line.startswith(("horizon:", "decay rate:")):
                    head = line.split(" (", 1)[0]
                    assert any(o.startswith(head) for o in out), (lines[0], line)
                    checked += 1
    assert checked == 12  # two lines each: lstm, lstm chrono, mingru, mingru chrono, indrnn, exprnn


def test_integration_examples_run_as_written(tmp_path, monkeypatch):
    """The README's TensorBoard, Lightning and W&B examples, each run (in a tmp folder)."""
    import pytest

    for name in ("tensorboard", "lightning", "wandb"):
        pytest.importorskip(name, reason=f"pip install 'vanishing[{name}]' (CI installs it)")
    monkeypatch.chdir(tmp_path)
    text = README.read_text()
    section = text[text.index("## Where you already look"):text.index("## Development")]
    blocks, start = [], 0
    while "```python" in section[start:]:
        start = section.index("```python", start) + len("```python")
        blocks.append(section[start: section.index("```", start)])
    assert len(blocks) == 3
    scope: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's own advice (num_workers, ...)
        exec(compile(blocks[0].replace("range(100)", "range(2)"), "README.md", "exec"), scope)
        assert list(scope["monitor"].traces) == [1]
        assert list((tmp_path / "runs" / "my-lstm").iterdir())  # an events file
        exec(compile(blocks[1], "README.md", "exec"), {})
        metrics = next((tmp_path / "logs").rglob("metrics.csv")).read_text()
        assert "vanishing/rnn.l0/horizon" in metrics
        monkeypatch.setenv("WANDB_SILENT", "true")
        monkeypatch.setenv("WANDB_MODE", "offline")  # restored after the test
        # an absolute folder: wandb's service process may have started in another folder
        wandb_block = blocks[2].replace('"wandb-runs"', repr(str(tmp_path / "wandb-runs")))
        exec(compile(wandb_block, "README.md", "exec"), scope)
    assert list((tmp_path / "wandb-runs").rglob("*.wandb"))
