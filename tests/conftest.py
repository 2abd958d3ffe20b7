import importlib.util
import os
from html.parser import HTMLParser

import pytest
import torch

#: Debian's chromium: Playwright cannot download a browser of its own here (scripts/test
#: installs this one with apt-get when it is missing).
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(autouse=True, scope="session")
def _cpu_settings():
    """One thread (small models gain nothing from two, and two collapse on a busy CPU);
    denormals flushed, as the library's entry points do."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    yield
    torch.set_num_threads(threads)


class _Cells(HTMLParser):
    """The text of every <td> and <th>, row by row, and every src and href."""

    def __init__(self):
        super().__init__()
        self.rows, self.links, self._cell = [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = ""
        self.links += [v for k, v in attrs if k in ("src", "href")]

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


@pytest.fixture
def parse_html():
    """``parse_html(markup)``: an object with ``rows`` (cell texts per <tr>) and ``links``."""

    def parse(markup: str) -> _Cells:
        cells = _Cells()
        cells.feed(markup)
        return cells

    return parse


def require_playwright() -> None:
    """At the top of a browser-test module: pytest-playwright must be installed (the dev
    extras install it); under CI its absence fails the run, elsewhere the module skips."""
    if importlib.util.find_spec("pytest_playwright") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true and pytest-playwright is not installed (pip install -e "
                        "'.[dev]')", pytrace=False)
        pytest.skip("pytest-playwright is not installed; run scripts/test",
                    allow_module_level=True)


def browser_missing(reason: str) -> None:
    """Under CI a missing browser fails the run; elsewhere the browser tests skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}: scripts/test installs it (apt-get install chromium, "
                    f"pip install -e '.[dev]')", pytrace=False)
    pytest.skip(f"{reason}; run scripts/test to install it")


if importlib.util.find_spec("pytest_playwright") is not None:

    @pytest.fixture(scope="session")
    def browser_type_launch_args(browser_type_launch_args):
        """Debian's chromium, without the sandbox (root in a container)."""
        if not os.access(CHROMIUM, os.X_OK):
            browser_missing(f"no browser at {CHROMIUM}")
        return {**browser_type_launch_args, "executable_path": CHROMIUM,
                "args": ["--no-sandbox"]}
