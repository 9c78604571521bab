"""The drawn table against rich.Table's own layout, line for line; no trailing spaces; tones as
styles."""

from __future__ import annotations

import dataclasses
import io

import pytest
from rich import box
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from gradflow.analysis.analyze import analyze, compare
from gradflow.engine.spec import NetworkSpec
from gradflow.render import table, view
from gradflow.render.grid import Cell, Column, Grid, Layout, Tone


def _render(renderable: RenderableType, width: int) -> list[str]:
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, highlight=False).print(renderable)
    return buffer.getvalue().splitlines()


def reference(grid: Grid) -> Table:
    """rich.Table drawing the grid's columns, as gradflow drew them before it laid them out."""
    reference = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for column in grid.columns:
        reference.add_column(column.header, justify="right" if column.numeric else "left")
    for cells in grid.rows:
        reference.add_row(*(Text(c.text) for c in cells))
    return reference


def _grids() -> list[Grid]:
    spec = NetworkSpec(depth=12, width=16, batch=8, block_size=3, skip="post")
    single = [analyze(spec.replace(norm="batch", activation="relu", init="he"))]
    several = compare(spec.replace(loss="xent"), ["none", "post", "pre"])
    grids = []
    for reports in (single, several):
        rows = view.layer_rows(view.naming_report(reports), 5)
        grids.append(view.layer_grid(reports, rows))
        blocks = view.block_grid(reports, None)
        assert blocks is not None
        grids += [blocks, view.summary_grid(reports)]
    # every tone, a bottom-aligned multi-line header, a left-aligned last column
    tones = [Cell(f"{tone.value} cell", tone) for tone in Tone]
    names = [Cell(f"row{i}") for i in range(len(tones))]
    grids.append(
        Grid("", [Column("two\nlines\nhere", tones), Column("name", names, numeric=False)])
    )
    return grids


@pytest.mark.parametrize("grid", _grids(), ids=lambda g: g.title[:12] or "tones")
def test_drawn_table_is_rich_tables_layout_without_trailing_spaces(grid: Grid) -> None:
    width = grid.width
    untitled = dataclasses.replace(grid, title="")
    drawn = _render(table.LaidOutTable(Layout("", [untitled], ""), width), width)
    expected = [line.rstrip() for line in _render(reference(grid), width)]
    assert drawn == expected
    assert all(line == line.rstrip() for line in drawn)
    assert max(len(line) for line in drawn) == width


def test_stacked_panels_are_titled_and_captioned_once() -> None:
    grid = _grids()[4]  # compare's block grid: two residual variants
    layout = grid.arrange(45)
    assert [panel.title for panel in layout.panels] == ["post", "pre"]
    lines = _render(table.LaidOutTable(layout, 45), 45)
    assert lines[0] == grid.title
    assert "post" in lines and "pre" in lines
    assert " ".join(lines).count("skip: the gradient") == 1
    assert max(len(line) for line in lines) <= 45


def test_tones_become_styles() -> None:
    grid = _grids()[-1]
    console = Console(file=io.StringIO(), width=80, force_terminal=True, color_system="truecolor")
    segments = list(console.render(table.LaidOutTable(Layout("", [grid], ""), 80)))
    for tone, style in table.TONE_STYLE.items():
        # the segment holding the cell (unstyled cells share one with their unstyled neighbours)
        (got,) = [s.style for s in segments if f"{tone.value} cell" in s.text]
        assert (got or console.get_style("none")) == console.get_style(style or "none")


def test_the_caption_explains_the_decades_columns_once() -> None:
    """Two ÷pre columns, one with ±inf cells (plain has no zeroed branch ends): their notes
    differed by the inf suffix, and the caption said both."""
    spec = NetworkSpec(depth=6, width=16, batch=8, skip="pre", zero_init_residual=True,
                       loss="xent", classes=3)  # fmt: skip
    reports = compare(spec, ["pre", "none", "post"])
    grid = view.layer_grid(reports, view.layer_rows(reports[0], None))
    lines = _render(table.LaidOutTable(grid.arrange(200), 200), 200)
    assert " ".join(lines).count("÷pre: decades") == 1


def test_summary_lines_stay_aligned_when_a_ratio_is_wider_than_usual() -> None:
    """At depth 3000 plain's ratio reads 10^-1930.6, wider than the 9 columns the others
    take: every variant's line shifted against pre's."""
    spec = NetworkSpec(depth=3000, width=4, batch=2, skip="pre")
    lines = view.summary_lines(compare(spec, ["none", "post", "pre"]))[:3]
    assert any(len(part) > 9 for line in lines for part in line.split() if "^" in part)
    for word in ("gain", "signal", "rms(y)"):
        assert len({line.index(word) for line in lines}) == 1, lines
