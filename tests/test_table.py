"""The laid-out table against rich.Table: the same bytes, colours included, wherever it is used."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from gradflow.analysis.analyze import analyze, compare
from gradflow.engine.spec import NetworkSpec
from gradflow.render import table, view
from gradflow.render.view import Cell, Column, Grid, Tone


def _render(renderable: object, width: int, color: bool) -> str:
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        force_terminal=color,
        color_system="truecolor" if color else None,
        highlight=False,
    )
    console.print(renderable)
    return buffer.getvalue()


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
    # every tone, a bottom-aligned multi-line header, a left-aligned column, no title or caption
    tones = [Cell(f"{tone.value} cell", tone) for tone in Tone]
    names = [Cell(f"row{i}") for i in range(len(tones))]
    grids.append(
        Grid("", [Column("name", names, numeric=False), Column("two\nlines\nhere", tones)])
    )
    return grids


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize("width", [100, 160])
def test_laid_out_table_draws_what_rich_table_draws(width: int, color: bool) -> None:
    checked = 0
    for grid in _grids():
        fitted = grid.fit(width)
        laid_out = table.rich_table(fitted, width)
        if not isinstance(laid_out, table.LaidOutTable):
            continue
        assert _render(laid_out, width, color) == _render(
            table.measured_table(fitted), width, color
        )
        checked += 1
    assert checked >= 6  # the comparison ran on (nearly) every grid


def test_grid_too_wide_for_the_screen_falls_back_to_rich_measuring() -> None:
    grid = _grids()[3]  # compare's layer grid
    assert isinstance(table.rich_table(grid, 30), type(table.measured_table(grid)))
    lines = _render(table.rich_table(grid, 30), 30, False).splitlines()
    assert max(len(line) for line in lines) <= 30
