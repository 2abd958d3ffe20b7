"""The README's library example runs as written (with a shorter training loop)."""

import warnings
from pathlib import Path

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


def test_tutorial_monitor_example_prints_what_the_tutorial_shows(capsys):
    text = (README.parent / "docs" / "tutorial.md").read_text()
    section = text[text.index("## 9. Your own model"):]
    start = section.index("```python") + len("```python")
    code = section[start: section.index("```", start)]
    shown_start = section.index("```console", start) + len("```console")
    shown = section[shown_start: section.index("```", shown_start)].strip()
    exec(compile(code, "tutorial.md", "exec"), {})
    assert capsys.readouterr().out.strip() == shown


def test_probe_your_own_model_example_prints_what_the_readme_shows(capsys):
    text = README.read_text()
    section = text[text.index("## Probe your own model"):]
    start = section.index("```python") + len("```python")
    code = section[start: section.index("```", start)]
    shown_start = section.index("```console", start) + len("```console")
    shown = section[shown_start: section.index("```", shown_start)].strip()
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == shown


def test_tutorial_record_example_prints_what_the_tutorial_shows(capsys):
    text = (README.parent / "docs" / "tutorial.md").read_text()
    i = text.index("Here is\nthe time-series example")
    start = text.index("```python", i) + len("```python")
    code = text[start: text.index("```", start)]
    shown_start = text.index("```console", start) + len("```console")
    shown = text[shown_start: text.index("```", shown_start)].strip()
    exec(compile(code, "tutorial.md", "exec"), {})
    assert capsys.readouterr().out.strip() == shown


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
