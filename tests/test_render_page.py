"""The whole page as a terminal shows it, at every width: no cell cut, no trailing space, a
caption only for what is shown; exact zeros shown as such; the summary's three ratios and the
reasons for each verdict."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console, Group

from gradflow.analysis.analyze import analyze, compare
from gradflow.analysis.results import Report
from gradflow.analysis.verdict import Quantity
from gradflow.engine.spec import NetworkSpec, Skip
from gradflow.render import table, view
from gradflow.render.grid import DASH, MARK, MARK_NOTE, Grid

SPEC = NetworkSpec(depth=12, width=16, batch=8, block_size=2, skip=Skip.POST)
VARIANTS = (Skip.NONE, Skip.POST, Skip.PRE)
WIDTHS = (40, 60, 80, 100, 200)


@pytest.fixture(scope="module")
def cases() -> dict[str, tuple[str, list[Report]]]:
    return {
        "analyze": ("analyze", [analyze(SPEC.replace(loss="xent", activation="relu"))]),
        "compare": ("compare", compare(SPEC, VARIANTS)),
        "zero_init": ("compare", compare(SPEC.replace(zero_init_residual=True), VARIANTS)),
        "default": ("compare", compare(NetworkSpec(depth=50), VARIANTS)),
    }


def render(
    command: str,
    reports: list[Report],
    width: int,
    max_rows: int | None = 5,
    unicode: bool = False,
) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, highlight=False)
    page = table.page(command, reports, max_rows=max_rows, width=width, unicode=unicode)
    console.print(Group(*page))
    return buffer.getvalue()


def grids(command: str, reports: list[Report], max_rows: int | None = 5) -> list[Grid]:
    sections = view.sections(command, reports, max_rows=max_rows, unicode=False)
    return [s for s in sections if isinstance(s, Grid)]


def row_pattern(texts: list[str]) -> re.Pattern[str]:
    """A row's cells in order, whole, separated by spaces."""
    return re.compile(r"(^|\s)" + r"\s+".join(re.escape(t) for t in texts) + r"($|\s)", re.M)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("case", ["analyze", "compare", "zero_init", "default"])
def test_no_cell_is_ever_cut(cases: dict, case: str, width: int) -> None:
    command, reports = cases[case]
    out = render(command, reports, width)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= width
    assert "…" not in out
    assert all(line == line.rstrip() for line in lines)  # no trailing spaces
    for each in grids(command, reports):
        layout = each.arrange(width)
        for panel in layout.panels:
            assert panel.width <= width
            for header in (h for c in panel.columns for h in c.header.split("\n")):
                assert header in out
            for cells in panel.rows:
                assert row_pattern([c.text for c in cells]).search(out), cells
        # the weight gradients and their ratios are never dropped: every such cell is shown
        shown = {id(c.cells[0]) for p in layout.panels for c in p.columns}
        for column in (c for c in each.columns if not c.drop):
            assert id(column.cells[0]) in shown, column.header


@pytest.mark.parametrize("width", [1, 2, 7, 15, 25, 39])
def test_any_width_prints_the_page(cases: dict, width: int) -> None:
    """Below 40 columns (the CLI's floor) lines may be cropped, but nothing crashes and every
    section is there."""
    command, reports = cases["compare"]
    lines = render(command, reports, width).splitlines()
    assert len(lines) > 40
    assert max(len(line) for line in lines) <= width


@pytest.mark.parametrize("width", WIDTHS)
def test_captions_explain_only_the_columns_shown(cases: dict, width: int) -> None:
    command, reports = cases["default"]
    for each in grids(command, reports):
        layout = each.arrange(width)
        shown = {id(c.cells) for p in layout.panels for c in p.columns}
        for note in {c.note for c in each.columns if c.note}:
            has = any(id(c.cells) in shown for c in each.columns if c.note == note)
            assert (note in layout.caption) == has, (width, note)


def test_at_80_columns_cos_is_dropped_and_named_as_left_out(cases: dict) -> None:
    out = render(*cases["default"], 80)
    split = out[out.index("Split at the addition") : out.index("per layer, log scale")]
    assert "cos:" not in split and " cos " not in split.splitlines()[1]  # no column, no note
    assert "left out to fit the width: cos (--format json has all)" in " ".join(split.split())
    wide = render(*cases["default"], 200)
    split = wide[wide.index("Split at the addition") : wide.index("per layer, log scale")]
    assert " cos" in split and "cos:" in split


def test_narrow_screens_stack_the_variants(cases: dict) -> None:
    command, reports = cases["default"]
    out = render(command, reports, 40)
    lines = out.splitlines()
    assert {"plain", "post", "pre"} <= set(lines)  # the stacked panels' titles
    first_rows = [line.split() for line in lines if line.split()[:1] == ["1-10"]]
    assert len(first_rows) >= 3 + 2  # one per stacked panel (layers, blocks), and the chart's


# ---- exact zeros ----------------------------------------------------------------------------


def test_zero_init_residual_shows_the_nonzero_layers_marked(cases: dict) -> None:
    """Each bucket holds branch first layers (exactly 0 by construction) and branch ends (not):
    no bucket may read 0, and nothing may read nan or "non-finite"."""
    command, reports = cases["zero_init"]
    layer = grids(command, reports)[0]
    for column in layer.columns:
        if column.group in ("post", "pre") and "‖∂L/∂W‖" in column.header:
            assert all(c.text.endswith(MARK) and c.text != "0" for c in column.cells)
        if "decades" in column.header:
            assert all(re.fullmatch(r"[+-]\d+\.\d\*", c.text) for c in column.cells)
    out = render(command, reports, 100)
    flat = " ".join(out.split())
    assert MARK_NOTE in flat
    assert "nan" not in out and "non-finite" not in out
    chart = out[out.index("per layer, log scale") : out.index("Summary")]
    assert chart.count("#" + MARK) == 2 * len(view.layer_rows(reports[1], 5))
    sentence = view.comparison_sentence(reports)
    assert "exactly zero with post" in sentence and "exactly zero with pre" in sentence
    assert "--zero-init-residual" in sentence
    assert " ".join(sentence.split()) in flat


def test_zero_init_residual_with_every_row_shows_the_zeros(cases: dict) -> None:
    command, reports = cases["zero_init"]
    layer = grids(command, reports, max_rows=None)[0]
    post = next(c for c in layer.columns if c.header == "post\n‖∂L/∂W‖")
    assert [c.text == "0" for c in post.cells] == [i % 2 == 0 for i in range(SPEC.depth)]
    out = render(command, reports, 100, max_rows=None)
    assert "0: exactly zero" in " ".join(out.split())
    weights = next(c for c in layer.columns if c.header == "post\ngrad:weight")
    assert [c.text for c in weights.cells][1::2] == [DASH] * (SPEC.depth // 2)  # ‖W‖ = 0


def test_a_signal_that_dies_makes_the_weight_ratio_not_applicable() -> None:
    spec = NetworkSpec(depth=200, width=4, batch=2, activation="linear", init="orthogonal",
                       weight_var=1e-4, loss="linear")  # fmt: skip
    report = analyze(spec)
    assert report.summary.zero_from is not None
    summary = grids("analyze", [report])[-1]
    assert summary.columns[1].cells[0].text == "n/a"
    reason = view.verdict_reason(report)
    assert f"from layer {report.summary.zero_from}" in reason and "layer 200" in reason
    line = view.summary_lines([report])[0]
    assert "n/a" in line and "inf" not in line


# ---- the summary ----------------------------------------------------------------------------


def test_summary_shows_the_three_ratios_and_the_reasons(cases: dict) -> None:
    command, reports = cases["default"]
    summary = grids(command, reports)[-1]
    ratios = {
        q: [c.text for c in col.cells]
        for q, col in zip(Quantity, summary.columns[1:4], strict=True)
    }
    for quantity, texts in ratios.items():
        assert texts == [view.power_text(view.ratio_log10(r, quantity)) for r in reports]
    out = " ".join(render(command, reports, 100).split())
    for r in reports:
        for finding in r.summary.findings:
            assert view.finding_text(finding) in out
    assert "plain is vanishing" in out and "pre is healthy" in out
    lines = view.summary_lines(reports)
    assert len(lines) == len(reports) + 1
    for line, r in zip(lines[:-1], reports, strict=True):
        for quantity in Quantity:
            assert view.QUANTITY_TEXT[quantity] in line
        assert view.verdict_reason(r) in line


def test_xent_head_unicode_and_every_row(cases: dict) -> None:
    command, reports = cases["analyze"]
    out = render(command, reports, 100, max_rows=None, unicode=True)
    assert any(line.split()[:2] == ["head", "head"] for line in out.splitlines())
    assert "█" in out and "‖∂L/∂W‖ per layer" in out


def test_postnorm_is_a_variant_like_the_others() -> None:
    spec = SPEC.replace(norm="layer")
    reports = compare(spec, [Skip.NONE, Skip.POSTNORM])
    out = render("compare", reports, 100)
    assert "postnorm (" in out and "Compared with plain" in out


def test_a_pass_that_overflows_says_so_and_which_end_is_nan() -> None:
    spec = NetworkSpec(depth=1100, width=4, batch=2, activation="linear", init="orthogonal",
                       weight_var=4.0, loss="linear")  # fmt: skip
    report = analyze(spec)
    summary = grids("analyze", [report])[-1]
    loss = next(c for c in summary.columns if c.header == "loss")
    assert loss.cells[0].text == "nan"  # a broken number, not a missing one
    reason = view.verdict_reason(report)
    assert "non-finite values from layer" in reason
    assert "last-layer weight gradient is nan" in reason
    out = render("analyze", [report], 80)
    assert "nonfinite" in out


def test_the_page_does_not_load_rich_table() -> None:
    """rich.table costs ~10 ms to import and the page does not need it."""
    code = (
        "import io, sys\n"
        "from rich.console import Console, Group\n"
        "from gradflow.analysis.analyze import compare\n"
        "from gradflow.engine.spec import NetworkSpec\n"
        "from gradflow.render import table\n"
        "reports = compare(NetworkSpec(depth=4, width=4, batch=2, skip='pre'), ['none', 'pre'])\n"
        "page = table.page('compare', reports, max_rows=None, width=40, unicode=False)\n"
        "Console(file=io.StringIO(), width=40).print(Group(*page))\n"
        "assert 'rich.table' not in sys.modules\n"
    )
    root = str(Path(__file__).resolve().parents[1])  # this tree's gradflow, not an installed one
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
