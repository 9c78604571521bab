"""The bar chart: log scaling, one scale across panels, decade labels, marks for special values;
and the rows it draws (buckets of layers, geometric means, exact text beyond float range)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from gradflow.engine.magnitudes import Magnitudes, Status, from_log10
from gradflow.render import chart, view
from gradflow.render.grid import MARK, MARK_NOTE

WIDTH = 100


def magnitudes(log10s: list[float]) -> Magnitudes:
    """Exact magnitudes from log10 values, also far beyond float64's range."""
    return from_log10(np.array(log10s))


def bars(lines: list[str], labels: list[str]) -> dict[str, list[str]]:
    """Each labelled row's panels, without the leading ``|``."""
    out = {}
    for line in lines:
        label, _, rest = line.strip().partition(" ")
        if label in labels:
            out[label] = [cell.rstrip() for cell in rest.split("|")[1:]]
    return out


def bar_length(cell: str) -> int:
    return len(cell.rstrip())


def legend(lines: list[str]) -> str:
    """The legend under the axis, its wrapped lines joined again."""
    start = max(i for i, line in enumerate(lines) if line.strip().startswith(("+", "1e"))) + 1
    return " ".join(line.strip() for line in lines[start:])


def test_bar_length_is_linear_in_log10() -> None:
    log10s = [-30.0, -20.0, -10.0, 0.0]
    labels = ["1", "2", "3", "4"]
    lines = chart.render(labels, [chart.Series("plain", magnitudes(log10s))], width=WIDTH)
    lengths = [bar_length(bars(lines, labels)[label][0]) for label in labels]
    field = WIDTH - len("1 ") - 2
    # the scale runs from 1e-30 to 1e0 over the whole field: a bar per decade is field/30 cells
    assert lengths[-1] == field
    steps = np.diff(lengths)
    assert np.all(np.abs(steps - field / 3) <= 1)


def test_every_nonzero_magnitude_gets_a_cell() -> None:
    lines = chart.render(["1", "2"], [chart.Series("x", magnitudes([-12.0, 0.0]))], width=60)
    assert bar_length(bars(lines, ["1"])["1"][0]) >= 1


def test_panels_share_one_scale() -> None:
    small = chart.Series("plain", magnitudes([-30.0, -1.0]))
    large = chart.Series("pre", magnitudes([-1.0, 0.0]))
    lines = chart.render(["1", "2"], [small, large], width=WIDTH)
    rows = bars(lines, ["1", "2"])
    # the same magnitude (1e-1) draws the same bar in both panels
    assert bar_length(rows["2"][0]) == bar_length(rows["1"][1])
    # and a panel whose values span one decade does not stretch that decade over its field
    field = (WIDTH - 2) // 2 - 2
    one_decade = bar_length(rows["2"][1]) - bar_length(rows["1"][1])
    assert 0 < one_decade <= field / 30 + 1


def test_decade_labels_sit_under_ticks() -> None:
    lines = chart.render(["1"], [chart.Series("x", magnitudes([-20.0, 0.0]))], width=WIDTH)
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("+"))
    axis, names = lines[at], lines[at + 1]
    labels = {m.group(): m.start() for m in re.finditer(r"1e-?\d+", names)}
    assert "1e0" in labels and "1e-20" in labels
    for text, start in labels.items():
        centre = start + len(text) // 2
        # a '+' tick within half a label of the label's centre
        assert "+" in axis[max(0, centre - len(text)) : centre + len(text)]
    decades = [int(t[2:]) for t in labels]
    steps = set(np.diff(sorted(decades)).tolist())
    assert len(steps) <= 2  # evenly spaced (the last one may be clipped)


def test_ascii_by_default_and_unicode_on_request() -> None:
    series = [chart.Series("x", magnitudes([-5.3, -2.1, 0.0]))]
    plain = chart.render(["1", "2", "3"], series, width=80)
    assert all(line.isascii() for line in plain)
    fine = chart.render(["1", "2", "3"], series, width=80, unicode=True)
    text = "\n".join(fine)
    assert "█" in text
    assert any(ch in text for ch in chart.UNICODE.eighths)


def test_lines_fit_the_width() -> None:
    series = [chart.Series(name, magnitudes([-3.0, -1.0])) for name in ("plain", "post", "pre")]
    for width in (60, 80, 100, 150):
        lines = chart.render(["1-2", "3-4"], series, width=width)
        assert max(len(line) for line in lines) <= width


@pytest.mark.parametrize(
    ("log10", "status", "mark"),
    [
        (-math.inf, Status.ZERO, "0"),
        (math.nan, Status.NAN, "nan"),
        (math.inf, Status.INF, "inf"),
    ],
)
def test_special_values_are_marked_not_blank(log10: float, status: Status, mark: str) -> None:
    values = magnitudes([-3.0, log10, 0.0])
    assert values.status()[1] is status
    lines = chart.render(["1", "2", "3"], [chart.Series("x", values)], width=60)
    cell = bars(lines, ["2"])["2"][0]
    assert cell.strip() == mark
    assert chart.MEANING[status] in legend(lines)


def test_beyond_float_range_is_drawn_from_the_exact_log10() -> None:
    values = magnitudes([-2000.0, -400.0, 0.0, 400.0])
    assert values.status() == [Status.UNDERFLOW, Status.UNDERFLOW, Status.OK, Status.OVERFLOW]
    lines = chart.render(["1", "2", "3", "4"], [chart.Series("x", values)], width=WIDTH)
    rows = bars(lines, ["1", "2", "3", "4"])
    assert set(rows["1"][0].strip()) == {"."}
    assert set(rows["4"][0].strip()) == {"="}
    assert bar_length(rows["1"][0]) < bar_length(rows["2"][0]) < bar_length(rows["3"][0])
    text = legend(lines)
    assert chart.MEANING[Status.UNDERFLOW] in text
    assert chart.MEANING[Status.OVERFLOW] in text
    assert any("1e-2000" in line for line in lines)


def test_legend_lists_only_what_is_drawn() -> None:
    lines = chart.render(["1"], [chart.Series("x", magnitudes([-1.0]))], width=60)
    assert all(meaning not in legend(lines) for meaning in chart.MEANING.values())
    assert MARK not in "".join(lines)


# ---- rows and numbers ---------------------------------------------------------------------


@pytest.mark.parametrize(("count", "max_rows"), [(50, 25), (51, 25), (7, 3), (3, 10), (100, 1)])
def test_groups_cover_every_item_once_within_max_rows(count: int, max_rows: int) -> None:
    runs = view.groups(count, max_rows)
    assert len(runs) <= max_rows
    assert [i for run in runs for i in run] == list(range(count))
    assert len({len(run) for run in runs[:-1]}) <= 1


def test_no_max_rows_means_one_row_each() -> None:
    assert view.groups(5, None) == [range(i, i + 1) for i in range(5)]


def test_bucket_is_the_geometric_mean() -> None:
    m = magnitudes([-30.0, -10.0, -2.0, -4.0])
    rows = [view.Row("1-2", "a", range(0, 2)), view.Row("3-4", "b", range(2, 4))]
    np.testing.assert_allclose(view.per_row(m, rows).values.log10, [-20.0, -3.0])


def test_from_log10_round_trips_beyond_float_range() -> None:
    log10s = [-2500.25, -320.0, -1.5, 0.0, 12.75, 900.5]
    np.testing.assert_allclose(magnitudes(log10s).log10, log10s, rtol=0, atol=1e-9)
    m = magnitudes([-1.5])
    assert m.mantissa[0] * 2.0 ** float(m.exponent[0]) == pytest.approx(10**-1.5)


@pytest.mark.parametrize(
    ("log10", "text"),
    [(-30.5, "3.2e-31"), (0.0, "1.0e+00"), (-2000.0, "1.0e-2000"), (2.99999, "1.0e+03")],
)
def test_magnitude_text_is_exact_beyond_float_range(log10: float, text: str) -> None:
    assert view.magnitude_text(log10, Status.OK) == text


def test_span_names() -> None:
    assert view.span_name("block1.fc1", "block1.fc2") == "block1.fc1-fc2"
    assert view.span_name("block1.fc2", "block2.fc1") == "block1.fc2-block2.fc1"
    assert view.span_name("fc3", "fc4") == "fc3-fc4"
    assert view.span_name("fc3", "fc3") == "fc3"


# ---- exact zeros, narrow and wide screens, nothing finite ---------------------------------


def test_a_bucket_with_some_zero_layers_draws_the_others_mean_marked() -> None:
    """zero-init residual: each bucket holds a branch's first layer (exactly 0) and its last."""
    m = magnitudes([-math.inf, 1.0, -math.inf, 1.2, -math.inf, -math.inf])
    rows = [view.Row(f"{i + 1}", "x", range(i, i + 2)) for i in (0, 2, 4)]
    means = view.per_row(m, rows)
    np.testing.assert_allclose(means.values.log10[:2], [1.0, 1.2])
    assert means.values.status()[2] is Status.ZERO  # only an all-zero bucket is 0
    assert means.partial.tolist() == [True, True, False]
    series = chart.Series("post", means.values, means.partial)
    lines = chart.render(["1", "3", "5"], [series], width=60)
    cells = bars(lines, ["1", "3", "5"])
    assert cells["1"][0].endswith("#" + MARK) and cells["3"][0].endswith("#" + MARK)
    assert cells["5"][0].strip() == "0"
    assert MARK_NOTE.split(": ", 1)[1] in legend(lines)


def test_panels_stack_on_one_scale_when_they_do_not_fit_side_by_side() -> None:
    series = [chart.Series(name, magnitudes([-30.0, 0.0])) for name in ("plain", "post", "pre")]
    lines = chart.render(["1-2", "3-4"], series, width=30)
    assert max(len(line) for line in lines) <= 30
    assert [line.split() for line in lines if "plain" in line or "pre" in line] == [
        ["plain", "post"], ["pre"]
    ]  # fmt: skip
    assert len([line for line in lines if line.strip().startswith("+")]) == 2  # two axes
    rows = [line for line in lines if line.strip().startswith("1-2 ")]
    assert [row.count("|") for row in rows] == [2, 1]
    # the same value draws the same bar in every panel of every stack
    assert len({cell.rstrip() for row in rows for cell in row.split("|")[1:]}) == 1


@pytest.mark.parametrize("width", [1, 5, 12, 23])
def test_any_width_draws_every_row(width: int) -> None:
    series = [chart.Series("plain", magnitudes([-3.0, 0.0]))]
    lines = chart.render(["1", "2"], series, width=width)
    assert set(bars(lines, ["1", "2"])) == {"1", "2"}


def test_width_is_capped() -> None:
    series = [chart.Series("plain", magnitudes([-3.0, 0.0]))]
    lines = chart.render(["1", "2"], series, width=400)
    assert chart.MAX_WIDTH - 3 <= max(len(line) for line in lines) <= chart.MAX_WIDTH


def test_nothing_finite_draws_no_axis_and_says_so() -> None:
    values = magnitudes([math.nan, math.nan, -math.inf])
    lines = chart.render(["1", "2", "3"], [chart.Series("x", values)], width=60)
    assert not any(line.strip().startswith("+") for line in lines)
    assert not any(re.search(r"\b1e-?\d", line) for line in lines)
    assert "no axis" in " ".join(lines)
    assert [cell.strip() for cells in bars(lines, ["1", "2", "3"]).values() for cell in cells] == [
        "nan", "nan", "0"
    ]  # fmt: skip
