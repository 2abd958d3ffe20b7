"""The three HTML reports in headless Chromium (Playwright, Debian's chromium): each made
by a real ``vanishing`` run (a tiny demo, a probe, a sweep report), each loads with no
console error and no request leaving the page, every image decodes, its tables hold the
numbers that run printed, hovering a word shows its share, it looks the same with the
network off, and it prints. Screenshots are kept in pytest's tmp dir (the path is printed)
and copied to ``vanishing-out/screenshots/`` when git ignores that folder."""

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import require_playwright

require_playwright()

#: three real CLI runs and a browser: about a minute, so out of the quick subset (the
#: README's test command, what CI runs, includes them)
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ("demo", "probe", "sweep")


def _vanishing(*args: str, cwd: Path) -> str:
    """Run the real command (not a tty: no colour, the shares in brackets); its stdout."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop("FORCE_COLOR", None)
    done = subprocess.run([sys.executable, "-m", "vanishing", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _sweep(cwd: Path) -> str:
    _vanishing("sweep", "--models", "rnn_tanh,lstm", "--lengths", "3,5", "--seeds", "2",
               "--steps", "20", "--hidden-size", "8", "--batch-size", "16", "--eval-every",
               "10", "--workers", "1", "--quiet", "--db", "s.sqlite", "--out", "figs", cwd=cwd)
    return _vanishing("sweep", "--report", "s.sqlite", "--out", "figs", "--markdown",
                      "--html", "sweep.html", cwd=cwd)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """report name -> (path of its HTML, what its run printed); the three runs at once."""
    where = tmp_path_factory.mktemp("reports")
    runs = {
        "demo": lambda: _vanishing("demo", "--gap", "2", "--steps", "30", "--models",
                                   "rnn_tanh,lstm", "--out", "demo", "--quiet", cwd=where),
        "probe": lambda: _vanishing("probe", "--model", "rnn_tanh", "--task", "language",
                                    "--length", "4", "--hidden-size", "16", "--rows", "8",
                                    "--html", "probe.html", cwd=where),
        "sweep": lambda: _sweep(where),
    }
    with ThreadPoolExecutor(3) as pool:
        jobs = {name: pool.submit(run) for name, run in runs.items()}
        printed = {name: job.result() for name, job in jobs.items()}
    paths = {"demo": where / "demo" / "report.html", "probe": where / "probe.html",
             "sweep": where / "sweep.html"}
    return {name: (paths[name], printed[name]) for name in REPORTS}


@pytest.fixture(scope="module")
def shots(tmp_path_factory, pytestconfig):
    """Where the screenshots go (printed once), and the copy in vanishing-out/ if ignored."""
    folder = tmp_path_factory.mktemp("screenshots")
    keep = ROOT / "vanishing-out" / "screenshots"
    ignored = shutil.which("git") is not None and subprocess.run(
        ["git", "check-ignore", "-q", str(keep)], cwd=ROOT).returncode == 0
    said = f"screenshots: {folder}" + (f" (copied to {keep})" if ignored else "")
    plugins = pytestconfig.pluginmanager
    terminal, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin(
        "capturemanager")
    if terminal is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # past pytest's capture, to the terminal
            terminal.write_line(f"\n{said}")
    return folder, keep if ignored else None


class _Watch:
    """A page's console errors, page errors, failed requests and every URL it asked for."""

    def __init__(self, page):
        self.errors, self.failed, self.urls = [], [], []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("requestfailed", lambda r: self.failed.append(r.url))
        page.on("request", lambda r: self.urls.append(r.url))


def _open(browser, path: Path, **context):
    ctx = browser.new_context(viewport={"width": 1200, "height": 900}, **context)
    page = ctx.new_page()
    watch = _Watch(page)
    page.goto(path.as_uri(), wait_until="load")
    return ctx, page, watch


def _tables(page) -> list[list[list[str]]]:
    """Every report table (not the connectivity grid): rows of cell texts, header first."""
    return page.eval_on_selector_all(
        "table:not(.conn)",
        "ts => ts.map(t => [...t.rows].map(r => [...r.cells].map(c => c.textContent)))")


@pytest.mark.parametrize("name", REPORTS)
def test_report_loads_clean_and_every_image_decodes(name, made, browser, shots):
    path, _ = made[name]
    ctx, page, watch = _open(browser, path)
    images = page.eval_on_selector_all(
        "img", "is => is.map(i => [i.complete, i.naturalWidth, i.src.slice(0, 22)])")
    shot = shots[0] / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    if shots[1] is not None:
        shots[1].mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, shots[1] / shot.name)
    ctx.close()
    assert watch.errors == [] and watch.failed == []
    assert watch.urls == [path.as_uri()]  # the page itself; nothing else is fetched
    assert images and all(ok and width > 0 and src == "data:image/png;base64,"
                          for ok, width, src in images), images
    assert shot.stat().st_size > 50_000


def test_demo_tables_hold_the_terminals_numbers(made, browser):
    path, printed = made["demo"]
    terminal = [[c.strip() for c in line.strip("│").split("│")]
                for line in printed.splitlines() if line.startswith("│")]
    ctx, page, _ = _open(browser, path)
    results = _tables(page)[0]
    ctx.close()
    assert results[0][:3] == ["model", "accuracy", "best"]
    assert results[1:] == terminal and len(terminal) == 2


def test_probe_table_holds_the_terminals_numbers(made, browser):
    path, printed = made["probe"]
    terminal = [line.split() for line in printed.splitlines()
                if re.match(r"^\s*(\d+|\.\.\.)\s+(\d+|\.\.\.)\s", line)]
    ctx, page, _ = _open(browser, path)
    table = _tables(page)[0]
    ctx.close()
    assert table[0][:2] == ["T - t", "t"]
    assert table[1:] == terminal and len(terminal) >= 8


def test_sweep_tables_hold_the_terminals_numbers(made, browser):
    path, printed = made["sweep"]
    terminal, table = [], None
    for line in printed.splitlines():
        if line.startswith("| "):
            if table is None:
                table = []
                terminal.append(table)
            table.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif not line.startswith("|---"):
            table = None
    ctx, page, _ = _open(browser, path)
    html = _tables(page)
    ctx.close()
    assert len(html) == 3 and html == terminal  # seeds solved, horizon, loss against chance


def _printed_shares(printed: str) -> list[list[tuple[str, float]]]:
    """The demo's connectivity as printed without colour: per (model, moment), in the
    terminal's order, the words with their shares in brackets."""
    pairs = [(w, float(v)) for w, v in re.findall(r"(\S+)\[(\d(?:\.\d+)?e[+-]\d+)\]", printed)]
    words = 12  # --gap 2: 4 + country + "." + 2 + 4
    return [pairs[i:i + words] for i in range(0, len(pairs), words)]


def test_hovering_a_word_shows_its_share_as_the_terminal_printed_it(made, browser):
    path, printed = made["demo"]
    terminal = _printed_shares(printed)
    labels = [f"{m}, {when}" for m in ("rnn_tanh", "lstm")
              for when in ("at initialisation", "after training")]
    assert len(terminal) == len(labels)
    ctx, page, _ = _open(browser, path)
    for label, expected in zip(labels, terminal, strict=True):
        sentence = page.locator(f'p.sentence[aria-label="{label}"]')
        words = sentence.locator(".w")
        assert words.count() == len(expected)
        each = [words.nth(i) for i in range(words.count())]
        shares = [w.get_attribute("data-share") for w in each]
        values = [float(w.get_attribute("data-value")) for w in each]  # full precision
        assert [(w.inner_text(), float(f"{v:.0e}")) for w, v in zip(each, values,
                                                                     strict=True)] == expected
        assert shares == [f"{v:.1e}" for v in values]
        country = words.nth(4)
        country.hover()
        readout = sentence.locator("xpath=..").locator("output.readout")
        assert readout.inner_text() == f"{country.inner_text()}: {shares[4]} of the gradient"
        assert shares[4] in country.get_attribute("title")
    ctx.close()


def test_probe_of_token_input_shows_the_share_on_hover(made, browser):
    path, _ = made["probe"]
    ctx, page, _ = _open(browser, path)
    word = page.locator(".w").last
    word.hover()
    assert page.locator("output.readout").inner_text() == \
        f"speak: {word.get_attribute('data-share')} of the gradient"
    ctx.close()


@pytest.mark.parametrize("name", REPORTS)
def test_offline_the_report_looks_the_same(name, made, browser):
    path, _ = made[name]
    looks = []
    for offline in (False, True):
        ctx, page, watch = _open(browser, path, offline=offline)
        looks.append(page.screenshot(full_page=True))
        assert watch.errors == [] and watch.failed == [] and watch.urls == [path.as_uri()]
        ctx.close()
    assert looks[0] == looks[1]


def test_demo_report_prints(made, browser):
    path, _ = made["demo"]
    ctx, page, _ = _open(browser, path)
    page.emulate_media(media="print")
    assert page.locator("output.readout").first.is_hidden()  # hover help: screen only
    adjust = page.eval_on_selector(".w", "w => getComputedStyle(w).printColorAdjust")
    pdf = page.pdf(format="A4")
    ctx.close()
    assert adjust == "exact"  # the shades survive printing
    assert pdf.startswith(b"%PDF") and len(pdf) > 50_000
