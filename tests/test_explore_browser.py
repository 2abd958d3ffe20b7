"""`vanishing explore` in headless Chromium (Playwright, Debian's chromium): for each
panel, moving a control changes what is drawn, and the values in the page (its data-
attributes, at full precision) equal the library's own numbers for the same settings,
computed here by a direct call; no console error, no request leaves 127.0.0.1; the page
trains the demo models when they are missing. Screenshots are kept in pytest's tmp dir
(and copied to vanishing-out/screenshots/ when git ignores it); with
VANISHING_DOCS_SCREENSHOT=1 the models are trained with the demo's full budget and the
whole page is saved as docs/img/explore.png."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import require_playwright
from vanishing import build_model
from vanishing.demo import DEFAULT_MODELS, DEFAULT_STEPS, demo_config
from vanishing.descent import descend, step_size_verdict
from vanishing.explore import make_server
from vanishing.probe import hidden_gradients
from vanishing.report.connectivity import task_connectivity
from vanishing.tasks.language import LanguageTask
from vanishing.train import load_checkpoint, save_checkpoint, train

require_playwright()

#: a browser and a few small trainings: out of the quick subset, like the other browser tests
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DOCS = os.environ.get("VANISHING_DOCS_SCREENSHOT") == "1"
TASK = LanguageTask()


def _serve(folder: Path, train_steps: int = 3):
    server = make_server(0, folder, train_steps)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """The demo's models, 5 steps each (the demo's full budget for the docs' screenshot)."""
    folder = tmp_path_factory.mktemp("models")
    for name in DEFAULT_MODELS:
        steps = DEFAULT_STEPS if DOCS else 5
        save_checkpoint(folder / f"{name}.pt", train(demo_config(name, 20, steps, 0)))
    return folder


@pytest.fixture(scope="module")
def served(checkpoints):
    server, thread = _serve(checkpoints)
    yield server
    server.close()
    thread.join(10)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Where the screenshots go, and the copy in vanishing-out/ if git ignores it."""
    folder = tmp_path_factory.mktemp("screenshots")
    keep = ROOT / "vanishing-out" / "screenshots"
    ignored = shutil.which("git") is not None and subprocess.run(
        ["git", "check-ignore", "-q", str(keep)], cwd=ROOT).returncode == 0
    print(f"screenshots: {folder}" + (f" (copied to {keep})" if ignored else ""))
    return folder, keep if ignored else None


def _shot(page, shots, name: str) -> Path:
    path = shots[0] / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if shots[1] is not None:
        shots[1].mkdir(parents=True, exist_ok=True)
        shutil.copy(path, shots[1] / path.name)
    return path


class _Page:
    """A page of the server with its console errors and every URL it asked for."""

    def __init__(self, browser, server):
        self.ctx = browser.new_context(viewport={"width": 1200, "height": 900})
        self.page = self.ctx.new_page()
        self.errors, self.urls = [], []
        self.page.on("console", lambda m: self.errors.append(m.text)
                     if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.urls.append(r.url))
        self.page.goto(server.url, wait_until="load")
        self.page.wait_for_selector("#time-curve")
        self.page.wait_for_selector("#descent-iterates circle")
        self.server = server

    def refused(self, count: int) -> None:
        """The last ``count`` console errors are the browser's note of a 400 the test
        asked for (Chromium logs every 4xx answer); take them off the list."""
        tail = self.errors[-count:]
        assert len(tail) == count and all("status of 400" in e for e in tail), self.errors
        del self.errors[-count:]

    def close(self):
        self.ctx.close()
        assert self.errors == []
        assert self.urls and all(u.startswith(self.server.url) for u in self.urls), self.urls


@pytest.fixture
def opened(browser, served):
    opened = _Page(browser, served)
    yield opened
    opened.close()


@pytest.fixture
def page(opened):
    return opened.page


def _move(page, selector: str, value: str) -> None:
    """Set a slider or field as a user's drag ends, firing its input event."""
    page.eval_on_selector(selector, "(e, v) => { e.value = v; "
                                    "e.dispatchEvent(new Event('input', {bubbles: true})); }",
                          value)


# -- 1. descent ---------------------------------------------------------------------------------
def _drawn_path(page) -> tuple[list[float], list[float], list[float]]:
    circles = page.locator("#descent-iterates circle")
    rows = circles.evaluate_all(
        "cs => cs.map(c => [c.dataset.w, c.dataset.loss, c.dataset.slope])")
    return tuple([float(r[i]) for r in rows] for i in range(3))


def _expected_path(start: float, lr: float, momentum: float = 0.0, steps: int = 30):
    path = descend("(w-3)**2", start, lr=lr, steps=steps, momentum=momentum)
    return path, (list(path.iterates[:, 0]), list(path.losses), list(path.gradients[:, 0]))


def test_descent_controls_redraw_the_librarys_path(page, shots):
    assert _drawn_path(page) == _expected_path(-4.0, 0.1)[1]
    regime = page.locator("#descent-regime")
    assert regime.get_attribute("data-regime") == "monotone"
    page.focus("#lr")
    for _ in range(65):  # the keyboard moves the slider by its step, 0.01: 0.1 -> 0.75
        page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('#descent-command').textContent"
                           ".includes('--lr 0.75 ')")
    path, expected = _expected_path(-4.0, 0.75)
    assert _drawn_path(page) == expected
    assert regime.get_attribute("data-regime") == step_size_verdict("(w-3)**2", path).regime.value
    assert regime.get_attribute("data-regime") == "oscillating"
    _move(page, "#lr", "1.1")
    page.wait_for_function("() => document.querySelector('#descent-regime').dataset.regime "
                           "=== 'divergent'")
    _move(page, "#lr", "0.1")
    _move(page, "#momentum", "0.5")
    page.wait_for_function("() => document.querySelector('#descent-command').textContent"
                           ".includes('--momentum 0.5')")
    assert _drawn_path(page) == _expected_path(-4.0, 0.1, 0.5)[1]
    _shot(page, shots, "explore-descent")


def test_dragging_the_start_point_and_stepping(page):
    dot = page.locator("#start-point")
    box = dot.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y, steps=5)
    page.mouse.move(x + 120, y, steps=5)
    page.mouse.up()
    page.wait_for_function("() => !document.querySelector('#descent-command').textContent"
                           ".includes('--start -4.0 ')")
    page.wait_for_function(  # the answer to the last change is the one drawn
        "() => document.querySelector('#descent-plot').dataset.pending === '0'")
    command = page.locator("#descent-command").inner_text()
    start = float(command.split("--start ")[1].split()[0])
    assert -4.0 < start < 3.0
    assert _drawn_path(page) == _expected_path(start, 0.1)[1]
    assert float(page.locator("#start-point").get_attribute("data-w")) == start
    page.click("#reset")
    assert page.locator("#descent-iterates circle").count() == 1
    page.click("#step")
    page.click("#step")
    assert page.locator("#descent-iterates circle").count() == 3
    assert page.locator("#descent-at").inner_text().startswith("step 2 of 30")
    _move(page, "#steps", "8")
    page.wait_for_function("() => document.querySelector('#descent-command').textContent"
                           ".endsWith('--steps 8')")
    assert page.locator("#descent-iterates circle").count() == 3  # still at step 2
    page.click("#play")
    page.wait_for_function("() => document.querySelectorAll('#descent-iterates circle').length "
                           "=== 9", timeout=20_000)
    assert _drawn_path(page) == _expected_path(start, 0.1, steps=8)[1]


# -- 2. through time ----------------------------------------------------------------------------
def _drawn_relative(page) -> np.ndarray:
    values = json.loads(page.locator("#time-curve").get_attribute("data-values"))
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _library_relative(cell: str, hidden: int, length: int, **init):
    model = build_model(cell, 8, hidden, 1, seed=0, max_length=length, **init).double()
    x = torch.randn(16, length, 8, generator=torch.Generator().manual_seed(10_000)).double()
    return hidden_gradients(model, x)


def _wait_for_time(page, cell: str, length: int, radius=None, forget_bias=None) -> None:
    """Until the curve drawn is the answer for these settings (hidden 64, preset init)."""
    want = {"cell": cell, "hidden": 64, "length": length, "init": "preset", "radius": radius,
            "forget_bias": forget_bias}
    page.wait_for_function(
        "want => { const c = document.querySelector('#time-curve'); if (!c) return false;"
        " const got = JSON.parse(c.dataset.settings);"
        " return Object.keys(want).every(k => got[k] === want[k]); }", arg=want)


def _drawn_as_the_library(page, cell: str, length: int, **init):
    """Wait for the curve of these settings (hidden 64), check it against the library's
    own ||dL/dh_t|| / ||dL/dh_T|| computed here, and return that trace."""
    _wait_for_time(page, cell, length, **init)
    trace = _library_relative(cell, 64, length, **init)
    np.testing.assert_allclose(_drawn_relative(page), trace.relative()[::-1], rtol=1e-9)
    return trace


def test_through_time_controls_redraw_the_librarys_gradient(page, shots):
    trace = _library_relative("rnn_tanh", 64, 200)
    np.testing.assert_allclose(_drawn_relative(page), trace.relative()[::-1], rtol=1e-9)
    assert int(page.locator("#time-horizon").get_attribute("data-value")) == trace.horizon()
    before = page.locator("#time-curve").get_attribute("d")
    page.select_option("#cell", "lstm")
    page.focus("#length")
    for _ in range(10):
        page.keyboard.press("ArrowLeft")  # T: 200 -> 190
    _drawn_as_the_library(page, "lstm", 190)
    assert page.locator("#time-curve").get_attribute("d") != before
    page.check("#forget-on")
    _move(page, "#forget", "4")
    trace = _drawn_as_the_library(page, "lstm", 190, forget_bias=4.0)
    assert "no --forget-bias" in page.locator("#time-command").inner_text()
    assert int(page.locator("#time-horizon").get_attribute("data-value")) == trace.horizon()
    decay = float(page.locator("#time-decay").get_attribute("data-value"))
    assert decay == pytest.approx(trace.decay_rate(), rel=1e-9)
    page.select_option("#cell", "rnn_tanh")
    page.uncheck("#forget-on")
    page.check("#radius-on")
    _move(page, "#radius", "0.5")
    _drawn_as_the_library(page, "rnn_tanh", 190, radius=0.5)
    assert "--radius 0.5 " in page.locator("#time-command").inner_text()
    assert json.loads(page.locator("#time-pascanu").get_attribute("data-guaranteed")) == [True]
    _shot(page, shots, "explore-time")


def test_a_refused_setting_shows_the_librarys_error(page, opened):
    page.select_option("#init", "chrono")  # rnn_tanh has no gates: the library refuses
    page.wait_for_function("() => document.querySelector('#time-error').textContent.length > 0")
    assert "chrono" in page.locator("#time-error").inner_text()
    opened.refused(1)
    page.select_option("#init", "preset")
    page.wait_for_function("() => document.querySelector('#time-error').textContent === ''")


# -- 3. France -> French ------------------------------------------------------------------------
def _rows(page) -> dict[str, dict]:
    return {row.get_attribute("data-model"): {
        "prediction": row.locator(".prediction").get_attribute("data-prediction"),
        "words": row.locator(".w").evaluate_all("ws => ws.map(w => w.textContent)"),
        "shares": [float(v) for v in row.locator(".w").evaluate_all(
            "ws => ws.map(w => w.dataset.value)")],
    } for row in page.locator("#words-models .model").all()}


def _library_words(folder: Path, words: list[str], answer: int | None):
    x = torch.tensor([[TASK.index[w] for w in words]])
    out = {}
    for name in DEFAULT_MODELS:
        _, model = load_checkpoint(folder / f"{name}.pt")
        model.eval()
        with torch.no_grad():
            predicted = int(model(x).argmax())
        target = predicted if answer is None else answer
        view = task_connectivity(model, TASK, x, torch.tensor([target]))
        out[name] = (TASK.language(predicted), list(view.shares))
    return out


def _check_words(page, folder: Path, words: list[str], answer: int | None) -> None:
    rows = _rows(page)
    assert list(rows) == list(DEFAULT_MODELS)
    for name, (prediction, shares) in _library_words(folder, words, answer).items():
        assert rows[name]["words"] == words
        assert rows[name]["prediction"] == prediction
        np.testing.assert_allclose(rows[name]["shares"], shares, rtol=1e-9)


def test_sentences_typed_and_drawn_show_the_librarys_numbers(page, opened, checkpoints, shots):
    page.wait_for_selector("#words-models .model")
    x0, y0 = TASK.sample(20, 1, torch.Generator().manual_seed(0))
    _check_words(page, checkpoints, [TASK.vocab[int(i)] for i in x0[0]], int(y0[0]))
    page.fill("#sentence", "i grew up in italy . we walked to school and now i speak")
    page.press("#sentence", "Enter")
    page.wait_for_function("() => document.querySelector('#words-answer').textContent"
                           ".includes('italian')")
    words = "i grew up in italy . we walked to school and now i speak".split()
    _check_words(page, checkpoints, words, TASK.index["italy"] - TASK.index["france"])
    country = page.locator('#words-models .model[data-model="lstm"] .w').nth(4)
    country.hover()
    readout = page.locator('#words-models .model[data-model="lstm"] output.readout')
    share = country.get_attribute("data-share")
    assert readout.inner_text().startswith(f"italy: {share} of the gradient")
    page.click("#random")  # seed 0 -> 1
    page.wait_for_function("() => document.querySelector('#seed').value === '1'")
    x1, y1 = TASK.sample(20, 1, torch.Generator().manual_seed(1))
    words = [TASK.vocab[int(i)] for i in x1[0]]
    page.wait_for_function("w => document.querySelector('#sentence').value === w",
                           arg=" ".join(words))
    _check_words(page, checkpoints, words, int(y1[0]))
    page.fill("#sentence", "i grew up in narnia and now i speak elvish")
    page.click("#read")
    page.wait_for_selector("#words-error .unknown")
    assert page.locator("#words-error .unknown").all_inner_texts() == ["narnia", "elvish"]
    assert "not in the language task's vocabulary" in page.locator("#words-error").inner_text()
    opened.refused(1)
    _shot(page, shots, "explore-words")


def test_the_whole_page(page, shots):
    page.wait_for_selector("#words-models .model")
    page.wait_for_timeout(300)
    shot = _shot(page, shots, "explore")
    assert shot.stat().st_size > 50_000
    if DOCS:
        shutil.copy(shot, ROOT / "docs" / "img" / "explore.png")


def test_without_models_the_page_trains_them(browser, tmp_path, shots):
    server, thread = _serve(tmp_path / "models", train_steps=3)
    try:
        opened = _Page(browser, server)
        page = opened.page
        assert page.locator("#train-box").is_visible()
        assert page.locator("#words-models").inner_text().startswith("no demo model yet")
        page.click("#train")
        page.wait_for_selector('#train-state[data-state="done"]', state="attached",
                               timeout=120_000)
        page.wait_for_selector("#words-models .model")
        assert not page.locator("#train-box").is_visible()
        seed = int(page.locator("#seed").input_value())
        x, y = TASK.sample(20, 1, torch.Generator().manual_seed(seed))
        _check_words(page, tmp_path / "models", [TASK.vocab[int(i)] for i in x[0]], int(y[0]))
        _shot(page, shots, "explore-trained")
        opened.close()
    finally:
        server.close()
        thread.join(10)
