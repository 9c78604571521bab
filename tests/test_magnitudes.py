"""Exact scaling by powers of two, the primitive behind every out-of-range magnitude."""

from __future__ import annotations

import numpy as np
import pytest

from gradflow.engine.magnitudes import exact_norm, times_pow2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shift", [-3000, -1100, -300, -149, -127, -5, 0, 7, 127, 200, 1100, 3000])
def test_times_pow2_agrees_with_ldexp(dtype: type, shift: int) -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(4000) * np.exp(rng.uniform(-80, 80, 4000))).astype(dtype)
    x[:4] = [0.0, -np.inf, np.nan, -0.0]
    with np.errstate(all="ignore"):
        want, got = np.ldexp(x, shift), times_pow2(x, shift)
    assert got.dtype == dtype
    tiny = np.finfo(dtype).tiny
    normal = np.abs(want) >= tiny
    np.testing.assert_array_equal(got[normal], want[normal])  # exact, bit for bit
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    # below the normal range both round; they may differ in the last subnormal bit
    assert np.all(np.abs(got[~normal & np.isfinite(want)]) <= tiny)


def test_times_pow2_writes_in_place() -> None:
    x = np.array([1.0, 3.0, -0.5])
    out = times_pow2(x, -2, out=x)
    assert out is x
    np.testing.assert_array_equal(x, [0.25, 0.75, -0.125])


@pytest.mark.parametrize("scale", [1e-300, 1.0, 1e300])
def test_exact_norm_far_outside_the_square_range(scale: float) -> None:
    v = np.array([3.0, 4.0]) * scale
    mantissa, exponent = exact_norm(v, 10)
    assert mantissa * 2.0 ** (exponent - 10) == pytest.approx(5.0 * scale, rel=1e-15)


def test_exact_norm_of_zeros_and_non_finite_values() -> None:
    assert exact_norm(np.zeros(5), 7) == (0.0, 7)
    assert exact_norm(np.zeros(0), 7) == (0.0, 7)
    mantissa, _ = exact_norm(np.array([0.0, np.inf]), 0)
    assert mantissa == np.inf
    mantissa, _ = exact_norm(np.array([1.0, np.nan]), 0)
    assert np.isnan(mantissa)
