"""The view model's numbers: one format for every magnitude, no rounding that changes what a
number says."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from gradflow.engine.magnitudes import Status
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


def test_a_missing_cosine_is_a_dash() -> None:
    assert [c.text for c in view.cosine_cells(np.array([math.nan, -0.001, 0.4]))] == [
        "-", "+0.00", "+0.40"
    ]  # fmt: skip
