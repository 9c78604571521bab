"""The whole page as a terminal shows it: exact zeros shown as such."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console, Group

from gradflow.analysis.analyze import compare
from gradflow.analysis.results import Report
from gradflow.engine.spec import NetworkSpec, Skip
from gradflow.render import table, view

SPEC = NetworkSpec(depth=12, width=16, batch=8, block_size=2, skip=Skip.POST)
VARIANTS = (Skip.NONE, Skip.POST, Skip.PRE)


@pytest.fixture(scope="module")
def zero_init() -> list[Report]:
    return compare(SPEC.replace(zero_init_residual=True), VARIANTS)


def render(reports: list[Report], width: int, max_rows: int | None = 5) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, highlight=False)
    page = table.page("compare", reports, max_rows=max_rows, width=width, unicode=False)
    console.print(Group(*page))
    return buffer.getvalue()


def test_zero_init_residual_shows_the_nonzero_layers_marked(zero_init: list[Report]) -> None:
    """Each bucket holds branch first layers (exactly 0 by construction) and branch ends (not):
    no bucket may read 0, and nothing may read nan or "non-finite"."""
    layer = view.layer_grid(zero_init, view.layer_rows(zero_init[1], 5))
    for column in layer.columns:
        if column.header in ("post\n‖∂L/∂W‖", "pre\n‖∂L/∂W‖"):
            assert all(c.text.endswith(view.MARK) and c.text != "0" for c in column.cells)
        if "decades" in column.header:
            assert all(re.fullmatch(r"[+-]\d+\.\d\*", c.text) for c in column.cells)
    out = render(zero_init, 100)
    flat = " ".join(out.split())
    assert view.MARK_NOTE in flat
    assert "nan" not in out and "non-finite" not in out
    chart = out[out.index("per layer, log scale") : out.index("Summary")]
    assert chart.count("#" + view.MARK) == 2 * len(view.layer_rows(zero_init[1], 5))
    sentence = view.comparison_sentence(zero_init)
    assert "exactly zero with post" in sentence and "exactly zero with pre" in sentence
    assert "--zero-init-residual" in sentence
    assert " ".join(sentence.split()) in flat


def test_zero_init_residual_with_every_row_shows_the_zeros(zero_init: list[Report]) -> None:
    layer = view.layer_grid(zero_init, view.layer_rows(zero_init[1], None))
    post = next(c for c in layer.columns if c.header == "post\n‖∂L/∂W‖")
    assert [c.text == "0" for c in post.cells] == [i % 2 == 0 for i in range(SPEC.depth)]
    weights = next(c for c in layer.columns if c.header == "post\ngrad:weight")
    assert [c.text for c in weights.cells][1::2] == [view.DASH] * (SPEC.depth // 2)  # ‖W‖ = 0
