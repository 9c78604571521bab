"""The view model's numbers and layout decisions: one format for every magnitude, no rounding
that changes what a number says, buckets that leave exact zeros out, grids that drop, stack and
split columns rather than cut a cell, captions that explain only what is shown."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from gradflow.engine.magnitudes import Magnitudes, Status, from_log10
from gradflow.render import view
from gradflow.render.grid import MARK_NOTE, Cell, Column, Grid

MAGNITUDE = re.compile(r"\d\.\de[+-]\d{2,}")


# ---- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "digits", "text"),
    [
        (2e118, 2, "2.0e+118"),  # not 2e+118 beside 1.1e+158
        (1.1e158, 2, "1.1e+158"),
        (1e-5, 2, "1.0e-05"),
        (-3.5e-9, 2, "-3.5e-09"),
        (12345.0, 4, "1.2e+04"),
        (0.5, 2, "0.5"),
        (0.0123, 2, "0.012"),
        (123.0, 2, "123"),
        (82.0776, 4, "82.08"),
        (575.01, 4, "575"),
        (0.0, 2, "0"),
        (math.nan, 2, "nan"),
        (math.inf, 2, "inf"),
    ],
)
def test_number_text_uses_one_exponent_format(x: float, digits: int, text: str) -> None:
    assert view.number_text(x, digits) == text


@pytest.mark.parametrize("log10", [-2000.3, -320.0, -31.4, -3.0, -0.01, 0.0, 2.5, 118.3, 158.04])
def test_every_magnitude_has_a_mantissa_digit(log10: float) -> None:
    assert MAGNITUDE.fullmatch(view.magnitude_text(log10, Status.OK))


@pytest.mark.parametrize(
    ("log10", "power", "decades"),
    [
        (-0.04, "10^0.0", "0.0"),  # never 10^-0.0 or -0.0
        (0.04, "10^0.0", "0.0"),
        (-30.94, "10^-30.9", "-30.9"),
        (14.44, "10^14.4", "+14.4"),
        (-math.inf, "0", "-inf"),
        (math.inf, "inf", "+inf"),
        (math.nan, "nan", "nan"),
    ],
)
def test_powers_and_decades(log10: float, power: str, decades: str) -> None:
    assert view.power_text(log10) == power
    assert view.decades_text(log10) == decades


@pytest.mark.parametrize(
    ("share", "text"),
    [
        (0.9976, "99.8%"),
        (0.004, "0.4%"),
        (0.00004, "<0.01%"),
        (0.99999, ">99.99%"),
        (0.5, "50%"),
        (0.995, "99.5%"),
        (1.0, "100%"),
        (0.0, "0%"),
    ],
)
def test_percent_text(share: float, text: str) -> None:
    assert view.percent_text(share) == text


def test_no_share_but_the_ends_reads_as_an_end() -> None:
    shares = np.concatenate([np.random.default_rng(0).random(2000), 1 - np.logspace(-9, -1, 50)])
    shares = np.concatenate([shares, np.logspace(-9, -1, 50)])
    for share in shares.tolist():
        assert view.percent_text(share) not in ("0%", "100%", "0.0%", "100.0%")


# ---- rows -----------------------------------------------------------------------------------


def _rows(*spans: tuple[int, int]) -> list[view.Row]:
    return [view.Row(f"{a + 1}-{b}", "x", range(a, b)) for a, b in spans]


def test_a_zero_is_shown_only_when_the_whole_bucket_is_zero() -> None:
    m = from_log10(np.array([-math.inf, -4.0, -2.0, -math.inf, -math.inf, -math.inf, -3.0, -5.0]))
    means = view.per_row(m, _rows((0, 3), (3, 6), (6, 8)))
    np.testing.assert_allclose(means.values.log10, [-3.0, -math.inf, -4.0])
    assert means.partial.tolist() == [True, False, False]
    assert [c.text for c in view.magnitude_cells(means)] == ["1.0e-03*", "0", "1.0e-04"]


def test_nan_and_inf_in_a_bucket_are_not_hidden_by_leaving_zeros_out() -> None:
    m = from_log10(np.array([-math.inf, math.nan, -math.inf, math.inf, math.inf, math.nan]))
    means = view.per_row(m, _rows((0, 2), (2, 4), (4, 6)))
    assert means.values.status() == [Status.NAN, Status.INF, Status.NAN]
    assert [c.text for c in view.magnitude_cells(means)] == ["nan", "inf*", "nan"]


def test_layers_without_a_value_are_left_out_and_a_row_of_none_is_a_dash() -> None:
    """grad:weight at a zero-initialised branch end: ‖∂L/∂W‖/0 is no ratio."""
    m = from_log10(np.array([-math.inf, math.inf, -2.0, math.inf]))
    defined = np.array([True, False, True, False])
    assert [c.text for c in view.magnitude_cells(view.per_row(m, _rows((0, 2), (2, 4)), defined))
            ] == ["0", "1.0e-02"]  # fmt: skip
    singles = view.per_row(m, _rows((0, 1), (1, 2), (2, 3), (3, 4)), defined)
    assert [c.text for c in view.magnitude_cells(singles)] == ["0", "-", "1.0e-02", "-"]


def test_decades_say_which_side_is_zero_and_carry_the_mark() -> None:
    variant = view.Means(
        from_log10(np.array([-math.inf, -math.inf, -1.0, -2.0])),
        np.array([False, False, False, True]),
        np.zeros(4, bool),
    )
    none = np.zeros(4, bool)
    base = view.Means(from_log10(np.array([-math.inf, -3.0, -math.inf, -3.04])), none, none)
    assert [c.text for c in view.decade_cells(variant, base)] == ["both 0", "-inf", "+inf", "+1.0*"]


def test_a_missing_cosine_is_a_dash() -> None:
    assert [c.text for c in view.cosine_cells(np.array([math.nan, -0.001, 0.4]))] == [
        "-", "+0.00", "+0.40"
    ]  # fmt: skip


def test_statistics_means_ignore_nan() -> None:
    values = np.array([1.0, np.nan, np.nan, np.nan, 2.0, 4.0])
    np.testing.assert_array_equal(
        view.mean_per_row(values, _rows((0, 2), (2, 4), (4, 6))), [1.0, np.nan, 3.0]
    )


# ---- grids ----------------------------------------------------------------------------------


def _grid() -> Grid:
    """Three variants of three columns each, with row labels and optional columns."""
    rows = 3
    columns = [
        Column("#", [Cell(str(i)) for i in range(rows)], key=True),
        Column("name", [Cell(f"layer{i}") for i in range(rows)], drop=2, key=True),
    ]
    for variant in ("plain", "post", "pre"):
        extra, wide = "extra: an optional column", "wide: the first to go"
        columns += [
            Column(f"{variant}\n‖∂L/∂W‖", [Cell("1.0e-30")] * rows, group=variant),
            Column(f"{variant}\nextra", [Cell("12345678")] * rows, 1, 1, extra, variant),
            Column(f"{variant}\nwide", [Cell("x" * 14)] * rows, 1, 3, wide, variant),
        ]
    return Grid("Title", columns, notes=("a note",))


@pytest.mark.parametrize("width", [1, 20, 30, 40, 50, 60, 80, 100, 200])
def test_arrange_never_cuts_and_keeps_every_mandatory_column(width: int) -> None:
    grid = _grid()
    layout = grid.arrange(width)
    shown = [(p.title, c) for p in layout.panels for c in p.columns]
    narrowest = min(c.width for c in grid.columns if not c.key) + grid.columns[0].width + 5
    if width >= narrowest:
        assert all(panel.width <= width for panel in layout.panels)
    mandatory = [c for c in grid.columns if not c.drop and not c.key]
    for column in mandatory:  # in a panel of its own variant, the variant's name off its header
        assert any(c.cells == column.cells and column.header.endswith(c.header) for _, c in shown)
    for panel in layout.panels:
        assert panel.columns[0].header == "#"  # every panel keeps its row labels


def test_arrange_drops_before_it_stacks_and_stacks_before_it_splits() -> None:
    grid = _grid()
    assert len(grid.arrange(200).panels) == 1
    wide = grid.arrange(grid.width)
    assert len(wide.panels) == 1 and wide.panels[0].columns == grid.columns
    dropped = grid.arrange(grid.width - 1)
    assert len(dropped.panels) == 1
    assert {c.header for c in dropped.panels[0].columns} == {
        c.header for c in grid.columns if c.drop != 3
    }
    assert len(grid.arrange(34).panels) == 1  # every optional column gone: 34 wide
    stacked = grid.arrange(20)
    assert [p.title for p in stacked.panels] == ["plain", "post", "pre"]
    assert [c.header for c in stacked.panels[1].columns] == ["#", "‖∂L/∂W‖"]
    # stacked panels have room again for optional columns, the same in each
    roomy = grid.arrange(30)
    assert [[c.header for c in p.columns] for p in roomy.panels] == [["#", "‖∂L/∂W‖", "extra"]] * 3


def test_a_grid_without_variants_splits_its_columns_repeating_the_row_labels() -> None:
    rows = [Cell("plain"), Cell("post")]
    columns = [Column("variant", rows, numeric=False, key=True)]
    columns += [Column(f"ratio{i}", [Cell("10^-30.9")] * 2) for i in range(4)]
    grid = Grid("Summary", columns)
    layout = grid.arrange(32)
    assert [[c.header for c in p.columns] for p in layout.panels] == [
        ["variant", "ratio0", "ratio1"], ["variant", "ratio2", "ratio3"]
    ]  # fmt: skip
    assert all(p.width <= 32 for p in layout.panels)
    assert layout.title == "Summary" and all(not p.title for p in layout.panels)


def test_caption_explains_only_the_columns_shown() -> None:
    grid = _grid()
    assert grid.arrange(200).caption == "a note; extra: an optional column; wide: the first to go"
    assert grid.arrange(grid.width - 1).caption == "a note; extra: an optional column"
    # the last columns to go (drop 1) are named where left out; the extras (drop 3) are not
    assert grid.arrange(20).caption == (
        "a note; left out to fit the width: extra (--format json has all)"
    )
    assert grid.fit(20).caption == grid.arrange(20).caption  # fitted: it remembers what it left


def test_caption_explains_the_marks_shown() -> None:
    grid = Grid("t", [Column("a", [Cell("1.0e-01*"), Cell("0")])], zero_note="0: all zero")
    assert grid.caption == f"{MARK_NOTE}; 0: all zero"
    assert Grid("t", [Column("a", [Cell("1.0e-01")])]).caption == ""


def test_magnitudes_helper_is_exact() -> None:
    """from_log10 round trip, so that the cells above are exactly what per_row gave."""
    m = Magnitudes.from_values([1e-3])
    assert view.magnitude_text(float(m.log10[0]), m.status()[0]) == "1.0e-03"


@pytest.mark.parametrize(
    ("changes", "classic"),
    [({}, True), ({"weight_var": 4.0}, False), ({"init": "he"}, False),
     ({"norm": "batch"}, False), ({"activation": "tanh"}, False)],
)  # fmt: skip
def test_the_sigmoid_xavier_lesson_is_named_only_for_xavier_s_own_scale(
    changes: dict[str, object], classic: bool
) -> None:
    """σ_w² = 4 is not Xavier's scale: the line must not call the network the classic case."""
    from gradflow.engine.spec import NetworkSpec

    assert view.is_classic(NetworkSpec(**changes)) is classic  # type: ignore[arg-type]


def test_caption_names_every_column_left_out_but_the_extras_and_row_labels() -> None:
    """A sweep page at 90 columns left out first/last min..max (drop 2) and said nothing."""
    rows = 2
    grid = Grid("t", [
        Column("#", [Cell("1")] * rows, key=True),
        Column("name", [Cell("layer1")] * rows, drop=2, key=True),  # a row label
        Column("gain", [Cell("-1.00")] * rows),
        Column("gain\nmin..max", [Cell("-1.00..-1.00")] * rows, drop=1),
        Column("first/last\nmin..max", [Cell("-1.00..-1.00")] * rows, drop=2),
        Column("act std", [Cell("1.0e+00")] * rows, drop=3),  # an extra
    ])  # fmt: skip
    assert grid.fit(12).caption == (
        "left out to fit the width: first/last min..max, gain min..max (--format json has all)"
    )
    assert grid.fit(1000).caption == ""


def test_packed_items_stay_whole_unless_wider_than_a_line() -> None:
    from gradflow.render.grid import packed

    items = ["a 1", "b 2", "the ~1e-3 rule of thumb is off this scale"]
    lines = packed(items, "", 20)
    assert lines == ["a 1   b 2", "the ~1e-3 rule of", "thumb is off this", "scale"]
    assert all(len(line) <= 20 for line in lines)  # at 40 columns train's line was cut short
