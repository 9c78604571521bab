"""Tables as plain data: cells with a tone, columns that may be dropped, and grids that fit a
width by dropping optional columns, then stacking one panel per variant, then splitting columns.

What the rich table and the markdown export both draw; no rendering here.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import NamedTuple

from gradflow.engine.spec import Choice

DASH = "-"  # ASCII, so row labels survive any log; also a cell with nothing to show
MARK = "*"  # after a bucket's mean that leaves some exactly-zero layers out
MARK_NOTE = f"{MARK}: mean of the row's nonzero layers; its other layers are exactly 0"


class Tone(Choice):
    """How a cell reads; the rich table turns tones into colours, markdown ignores them."""

    PLAIN = "plain"
    GOOD = "good"
    BAD = "bad"
    ODD = "odd"  # beyond float64's range: exact, but worth a second look
    BROKEN = "broken"  # nan or inf


# Cells and layouts are named tuples, as the view models (render/view.py). Columns and grids stay
# frozen dataclasses: a column caches its width, and grids are rebuilt with replace() while they
# are fitted to a screen. Neither is compared: no generated == or repr, which cost start-up time.
class Cell(NamedTuple):
    text: str
    tone: Tone = Tone.PLAIN


@dataclass(frozen=True, eq=False, repr=False)
class Column:
    header: str  # "‖∂L/∂W‖", or "post\n‖∂L/∂W‖" in a compare
    cells: list[Cell]
    numeric: bool = True  # right-aligned
    # 0: always shown; otherwise dropped on a narrow screen, highest first. Where left out, the
    # caption names those up to NAMED_DROP (‖∂L/∂in‖, cos, min..max), not the extras above it
    # (grad:weight, act std) nor row labels (layer names).
    drop: int = 0
    note: str = ""  # explains the column in the caption, which names only the columns shown
    group: str = ""  # the variant the column belongs to ("" for row labels and shared columns)
    key: bool = False  # labels the rows: repeated in every panel of a stacked grid

    @cached_property
    def width(self) -> int:
        return max(len(text) for text in [*self.header.split("\n"), *(c.text for c in self.cells)])


@dataclass(frozen=True, eq=False, repr=False)
class Grid:
    """A table as plain data: what the rich table and the markdown export both draw."""

    title: str
    columns: list[Column]
    notes: tuple[str, ...] = ()  # caption sentences about the whole grid
    zero_note: str = "0: exactly zero"  # the caption's word on a ``0`` cell, when one is shown
    dropped: tuple[str, ...] = ()  # columns ``fit`` left out, by name: the caption says so

    @property
    def rows(self) -> list[list[Cell]]:
        return [list(cells) for cells in zip(*(c.cells for c in self.columns), strict=True)]

    @property
    def width(self) -> int:
        """Columns wide as drawn: one space of padding each side, one rule between columns."""
        return sum(c.width + 3 for c in self.columns) - 1 if self.columns else 0

    @property
    def caption(self) -> str:
        """The notes, then what the shown columns and marks mean (nothing about dropped ones)."""
        return explain(self, self.columns)

    def fit(self, width: int) -> Grid:
        """Drop optional columns, highest ``drop`` first, until the grid fits ``width``."""
        return fit_together([self], width)[0]

    def only(self, group: str) -> Grid:
        """The key columns and one variant's columns, titled with the variant (and so without
        it atop their headers)."""
        columns = [
            replace(c, header=c.header.removeprefix(f"{group}\n"))
            for c in self.columns
            if c.key or c.group == group
        ]
        return replace(self, title=group, columns=columns, notes=())

    def chunks(self, width: int) -> list[Grid]:
        """Consecutive runs of columns that fit ``width`` each, the key columns in every run (a
        run that does not fit even alone is kept whole: a cell is never cut)."""
        keys = [c for c in self.columns if c.key]
        runs: list[list[Column]] = [[]]
        for column in (c for c in self.columns if not c.key):
            if runs[-1] and replace(self, columns=[*keys, *runs[-1], column]).width > width:
                runs.append([])
            runs[-1].append(column)
        return [
            replace(self, title=self.title if i == 0 else "", columns=[*keys, *run])
            for i, run in enumerate(runs)
        ]

    def arrange(self, width: int) -> Layout:
        """The grid laid out for a screen ``width`` columns wide, never cutting a cell: optional
        columns dropped; if it is still too wide, one panel per variant stacked top to bottom
        (dropping columns again, the same in every panel); if one is still too wide, its columns
        split over panels that repeat the row labels."""
        panels = [replace(self.fit(width), title="")]
        groups = list(dict.fromkeys(c.group for c in self.columns if c.group))
        if panels[0].width > width and len(groups) > 1:
            panels = fit_together([self.only(g) for g in groups], width)
        panels = [chunk for panel in panels for chunk in panel.chunks(width)]
        shown = [c for panel in panels for c in panel.columns]
        return Layout(self.title, panels, explain(self, shown))


class Layout(NamedTuple):
    """A grid arranged for a screen: its title, its panels top to bottom (one unless the grid
    was too wide; then each titled with its variant), and one caption for all of them."""

    title: str
    panels: list[Grid]
    caption: str


def fit_together(grids: Sequence[Grid], width: int) -> list[Grid]:
    """Drop the same optional columns from every grid, highest ``drop`` first, until all fit."""
    grids = list(grids)
    levels = sorted({c.drop for g in grids for c in g.columns if c.drop}, reverse=True)
    for level in levels:
        if all(g.width <= width for g in grids):
            break
        grids = [
            replace(
                g,
                columns=[c for c in g.columns if c.drop != level],
                dropped=(
                    *g.dropped,
                    *(_name(c) for c in g.columns if c.drop == level and _named(c)),
                ),
            )
            for g in grids
        ]
    return grids


NAMED_DROP = 2  # see Column.drop


def _named(column: Column) -> bool:
    """Whether the caption names the column where it was left out."""
    return 0 < column.drop <= NAMED_DROP and not column.key


def _name(column: Column) -> str:
    """A column by its header, without the variant above it: ``‖∂L/∂in‖``, ``cos``."""
    return " ".join(column.header.removeprefix(f"{column.group}\n").split("\n"))


def explain(grid: Grid, columns: Sequence[Column]) -> str:
    """A caption: the grid's notes, each shown column's note once, the marks that are shown,
    and the columns left out to fit the width (of ``grid``'s, those not in ``columns``)."""
    texts = [c.text for column in columns if not column.key for c in column.cells]
    parts = [*grid.notes, *dict.fromkeys(c.note for c in columns if c.note)]
    if any(text.endswith(MARK) for text in texts):
        parts.append(MARK_NOTE)
    if "0" in texts:
        parts.append(grid.zero_note)
    shown = {_name(c) for c in columns}
    dropped = dict.fromkeys([*grid.dropped, *(_name(c) for c in grid.columns if _named(c))])
    left_out = [name for name in dropped if name not in shown]
    if left_out:
        parts.append(f"left out to fit the width: {', '.join(left_out)} (--format json has all)")
    return "; ".join(parts)


def packed(items: Sequence[str], indent: str, width: int) -> list[str]:
    """The items on as few lines of ``width`` as they fit, three spaces apart, each whole (a
    legend's "% -1.1" is never split across lines) unless it is wider than a line on its own;
    lines after the first start ``indent``."""
    room = max(1, width - len(indent))
    pieces = [
        piece
        for item in items
        for piece in (
            textwrap.wrap(item, room, break_on_hyphens=False) if len(item) > room else [item]
        )
    ]
    lines = [indent]
    for item in pieces:
        if lines[-1] != indent and len(lines[-1]) + 3 + len(item) > width:
            lines.append(indent)
        lines[-1] += item if lines[-1] == indent else "   " + item
    return lines
