"""The view model's numbers: one format for every magnitude, no rounding that changes what a
number says; buckets that leave exact zeros out."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from gradflow.engine.magnitudes import Status, from_log10
from gradflow.render import view

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
