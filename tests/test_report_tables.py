"""The plain table every report view shares."""

import pytest

from vanishing.report.tables import TextTable, markdown_lines


def test_markdown_of_a_table():
    table = TextTable("adding: seeds solved", ["model", "T = 5"], [["lstm", "2/2 (40)"]],
                      caption="solved / seeds")
    assert table.align == ["left", "right"]
    assert markdown_lines(table) == ["**adding: seeds solved**", "", "| model | T = 5 |",
                                     "|---|---|", "| lstm | 2/2 (40) |", "", "solved / seeds",
                                     ""]


def test_rows_and_alignment_must_fit_the_header():
    with pytest.raises(ValueError, match="must have 2 cells, got 1"):
        TextTable("t", ["a", "b"], [["x"]])
    with pytest.raises(ValueError, match="left or right for each of the 2 columns"):
        TextTable("t", ["a", "b"], [], align=["left", "centre"])
