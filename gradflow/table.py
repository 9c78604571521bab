"""The page a person sees: rich tables (per layer, per block, summary) and the bar chart.

Returns renderables; only the CLI prints them.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from gradflow import chart, view
from gradflow.report import Report
from gradflow.view import Grid, Tone

TONE_STYLE = {
    Tone.PLAIN: "",
    Tone.GOOD: "green",
    Tone.BAD: "red",
    Tone.ODD: "yellow",
    Tone.BROKEN: "bold magenta",
}


def rich_table(grid: Grid) -> Table:
    table = Table(
        title=grid.title,
        caption=grid.caption or None,
        caption_style="dim",
        box=box.SIMPLE_HEAD,
        title_justify="left",
        caption_justify="left",
        title_style="bold",
        show_edge=False,
    )
    for column in grid.columns:
        table.add_column(column.header, justify="right" if column.numeric else "left")
    for cells in grid.rows:
        table.add_row(*(Text(c.text, style=TONE_STYLE[c.tone]) for c in cells))
    return table


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
        rich_table(view.layer_grid(reports, rows).fit(width)),
    ]
    blocks = view.block_grid(reports, max_rows)
    if blocks is not None:
        parts += [Text(), rich_table(blocks.fit(width))]
    title = "‖∂L/∂W‖ per layer" if unicode else "|dL/dW| per layer"
    parts += [Text(), Text(f"{title}, log scale, layer 1 at the top", style="bold")]
    parts += [Text(line) for line in chart.layer_chart(reports, rows, width=width, unicode=unicode)]
    parts += [Text(), rich_table(view.summary_grid(reports))]
    if len(reports) > 1:
        parts += [Text(), Text(view.comparison_sentence(reports), style="bold")]
    return parts
