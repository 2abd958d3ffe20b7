"""A table as plain text: what the terminal draws (rich), Markdown prints, and an HTML report
lays out, built once from the measurements so every view shows the same numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ALIGNS", "TextTable", "markdown_lines"]

ALIGNS = ("left", "right")


@dataclass
class TextTable:
    """Column names, rows of cells (strings), a title and a caption.

    Attributes:
        title: the line above the table.
        header: one name per column.
        rows: each a list of ``len(header)`` cells; a row of ``"..."`` marks rows left out.
        caption: the line under the table ('' for none).
        align: ``left`` or ``right`` per column; default: the first column left, the
            others (numbers) right.
    """

    title: str
    header: list[str]
    rows: list[list[str]]
    caption: str = ""
    align: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.align:
            self.align = ["left"] + ["right"] * (len(self.header) - 1)
        if len(self.align) != len(self.header) or not set(self.align) <= set(ALIGNS):
            raise ValueError(f"align must give left or right for each of the "
                             f"{len(self.header)} columns, got {self.align!r}")
        for row in self.rows:
            if len(row) != len(self.header):
                raise ValueError(f"a row of {self.title!r} must have {len(self.header)} "
                                 f"cells, got {len(row)}: {row!r}")


def markdown_lines(table: TextTable) -> list[str]:
    """The table in Markdown: the title in bold, a pipe table, then the caption."""
    lines = [f"**{table.title}**", "", "| " + " | ".join(table.header) + " |",
             "|" + "---|" * len(table.header)]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return [*lines, "", table.caption, ""]
