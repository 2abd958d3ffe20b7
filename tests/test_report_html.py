"""The HTML report builder: tables from TextTable cell by cell, figures inlined, provenance,
no network reference anywhere, the path checked before any work, the file written whole."""

import io
import os
import re

import pytest
from matplotlib.figure import Figure

from vanishing.report.figures import png_bytes
from vanishing.report.html import (
    Page,
    Provenance,
    check_html_path,
    png_data_uri,
    table_html,
    versions,
    write_html,
)
from vanishing.report.tables import TextTable

TABLE = TextTable("T <1>", ["model", "x & y"], [["lstm", "1.5e-01"], ["<i>", "..."]],
                  caption="c > d")


def _png():
    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1], [1, 0])
    return png_bytes(fig)


def test_table_holds_the_text_tables_cells_escaped(parse_html):
    markup = table_html(TABLE)
    assert parse_html(markup).rows == [TABLE.header, *TABLE.rows]
    assert "<i>" not in markup and "T &lt;1&gt;" in markup and "c &gt; d" in markup
    assert markup.count('class="r"') == 3 and markup.count('class="l"') == 3


def test_page_is_self_contained_with_its_provenance(parse_html):
    prov = Provenance("vanishing demo --steps 5 --html 'a b.html'", "0", 12.34,
                      [("gap", "2"), ("lr", "0.01")])
    page = Page("France -> French")
    page.paragraph("one & two").table(TABLE).figure(_png(), "What to see.", alt="a figure")
    markup = page.render(prov)
    parsed = parse_html(markup)
    # nothing to fetch: the one image is a data URI, the icon is empty, no http(s) anywhere
    assert [link.split(",")[0] for link in parsed.links] == ["data:", "data:image/png;base64"]
    assert not re.search(r"https?:|//[a-z]", markup.replace("http-equiv", ""))
    assert "default-src 'none'" in markup and "@media print" in markup
    assert "<figcaption>What to see.</figcaption>" in markup
    for text in ("vanishing demo --steps 5 --html &#x27;a b.html&#x27;", "12.3 s",
                 f"torch {versions()['torch']}", "Python", "<dt>gap</dt><dd>2</dd>"):
        assert text in markup
    assert markup.startswith("<!DOCTYPE html>") and markup.rstrip().endswith("</html>")


def test_png_data_uri_refuses_what_is_not_a_png():
    assert png_data_uri(_png()).startswith("data:image/png;base64,iVBORw0KGgo")
    with pytest.raises(ValueError, match="PNG"):
        png_data_uri(b"<svg/>")


def test_check_html_path_refuses_before_any_work_and_creates_nothing(tmp_path):
    assert check_html_path(tmp_path / "r.html") == tmp_path / "r.html"
    cases = [(tmp_path / "missing" / "r.html", "folder .* does not exist"),
             (tmp_path / "r.txt", "must end in .html"),
             (tmp_path / "dir.html", "is a folder"),
             ("/proc/r.html", "cannot be written")]
    (tmp_path / "dir.html").mkdir()
    for path, message in cases:
        with pytest.raises(ValueError, match=message):
            check_html_path(path, "--html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.html"]


def test_check_html_path_refuses_a_file_it_may_not_replace(tmp_path, monkeypatch):
    f = tmp_path / "r.html"
    f.write_text("keep")
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as for a read-only file
    with pytest.raises(ValueError, match="cannot be written .Permission denied"):
        check_html_path(f)
    assert f.read_text() == "keep"


def test_write_html_replaces_whole_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "r.html"
    path.write_text("old")
    write_html(path, "<p>new é</p>")
    assert path.read_text(encoding="utf-8") == "<p>new é</p>"
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_figure_png_bytes_decode():
    from matplotlib.image import imread

    assert imread(io.BytesIO(_png()), format="png").shape[:2] == (120, 240)
