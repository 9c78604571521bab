"""The page a person sees: rich tables (per layer, per block, summary) and the bar chart.

Returns renderables; only the CLI prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment
from rich.text import Text

from gradflow.analysis.results import Report
from gradflow.render import chart, view
from gradflow.render.view import Grid, Tone

if TYPE_CHECKING:
    from rich.table import Table

TONE_STYLE = {
    Tone.PLAIN: "",
    Tone.GOOD: "green",
    Tone.BAD: "red",
    Tone.ODD: "yellow",
    Tone.BROKEN: "bold magenta",
}


BOX, TITLE_STYLE, CAPTION_STYLE = box.SIMPLE_HEAD, "bold", "dim"


def rich_table(grid: Grid, width: int) -> RenderableType:
    """The grid as a rich table for a screen ``width`` columns wide."""
    if sum(c.width + 3 for c in grid.columns) <= width:
        return LaidOutTable(grid)
    return measured_table(grid)  # too wide even after dropping optional columns


def measured_table(grid: Grid) -> Table:
    """rich.Table's own layout: it measures every cell, then shrinks and wraps to fit."""
    from rich.table import Table  # imported only when needed: it costs ~10 ms

    table = Table(
        title=grid.title,
        caption=grid.caption or None,
        box=BOX,
        show_edge=False,
        title_style=TITLE_STYLE,
        caption_style=CAPTION_STYLE,
        title_justify="left",
        caption_justify="left",
    )
    for column in grid.columns:
        table.add_column(column.header, justify="right" if column.numeric else "left")
    for cells in grid.rows:
        table.add_row(*(Text(c.text, style=TONE_STYLE[c.tone]) for c in cells))
    return table


class LaidOutTable:
    """A grid that fits the screen, drawn exactly as ``measured_table`` draws it.

    Every cell is one line of known width, so the layout is fixed before drawing; rich.Table
    measures, wraps and pads each cell through its general machinery (~0.3 ms a cell), which
    made rendering the slowest step of ``gradflow compare``. The tests hold the two to the same
    text at every width where this one is used.
    """

    def __init__(self, grid: Grid) -> None:
        self.grid = grid

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        columns = self.grid.columns
        sizes = [c.width for c in columns]
        align = [str.rjust if c.numeric else str.ljust for c in columns]
        widths = [size + 2 for size in sizes]  # padding: one space each side
        around = options.update(width=sum(widths) + len(widths) - 1, highlight=False, height=None)
        if self.grid.title:
            title = console.render_str(self.grid.title, style=TITLE_STYLE, highlight=False)
            yield from console.render(title, around.update(justify="left"))

        header, space = console.get_style("table.header"), Segment(" ")
        headers = [c.header.split("\n") for c in columns]
        height = max(len(lines) for lines in headers)
        for row in range(height):
            for j, lines in enumerate(headers):
                if j:
                    yield space
                blank = height - len(lines)  # headers sit at the bottom
                if row < blank:
                    yield Segment(" " * widths[j], header)
                else:
                    text = align[j](lines[row - blank], sizes[j])
                    yield from (Segment(" ", header), Segment(text, header), Segment(" ", header))
            yield Segment.line()
        rule = BOX.substitute(options, safe=console.safe_box)
        yield Segment(rule.get_row(widths, "head", edge=False))
        yield Segment.line()

        styles = {tone: console.get_style(style) for tone, style in TONE_STYLE.items()}
        for cells in self.grid.rows:
            yield space
            for j, cell in enumerate(cells):
                if j:
                    yield Segment("   ")  # padding, separator, padding
                yield Segment(align[j](cell.text, sizes[j]), styles[cell.tone])
            yield from (space, Segment.line())
        if self.grid.caption:
            caption = console.render_str(self.grid.caption, style=CAPTION_STYLE, highlight=False)
            yield from console.render(caption, around.update(justify="left"))


def page(
    command: str,
    reports: Sequence[Report],
    *,
    max_rows: int | None,
    width: int,
    unicode: bool,
) -> list[RenderableType]:
    """Everything ``analyze``/``compare`` show on a terminal, top to bottom."""
    rows = view.layer_rows(view.naming_report(reports), max_rows)
    parts: list[RenderableType] = [
        Text(view.header_line(command, reports), style="bold"),
        Text(view.shown_line(reports)),
        Text(),
        rich_table(view.layer_grid(reports, rows).fit(width), width),
    ]
    blocks = view.block_grid(reports, max_rows)
    if blocks is not None:
        parts += [Text(), rich_table(blocks.fit(width), width)]
    title = "‖∂L/∂W‖ per layer" if unicode else "|dL/dW| per layer"
    parts += [Text(), Text(f"{title}, log scale, layer 1 at the top", style="bold")]
    parts += [Text(line) for line in chart.layer_chart(reports, rows, width=width, unicode=unicode)]
    parts += [Text(), rich_table(view.summary_grid(reports), width)]
    if len(reports) > 1:
        parts += [Text(), Text(view.comparison_sentence(reports), style="bold")]
    return parts
