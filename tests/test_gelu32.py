"""The float32 GELU (Φ from a fitted erfcx polynomial and one exp) against float64 scipy and the
closed forms: its coefficients re-derived, Φ, φ and φ' on a dense grid, special values, a pass."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import erfcx, ndtr

from gradflow.analysis.analyze import analyze
from gradflow.engine.activations import (
    _PHI_TAIL_K,
    _PHI_TAIL_POLY,
    ACTIVATIONS,
    normal_cdf_float32,
)
from gradflow.engine.spec import Activation, NetworkSpec

TINY = float(np.finfo(np.float32).smallest_subnormal)
NORMAL_MIN = float(np.finfo(np.float32).tiny)


def _tail_target(v: np.ndarray, k: float) -> np.ndarray:
    """P(v) = ½·erfcx(|z|/√2)/t at |z| = k·v/(1 − v), t = 1 − v, in float64."""
    return 0.5 * erfcx(k * v / (1 - v) / math.sqrt(2)) / (1 - v)


def _fit_tail(degree: int, k: float, points: int = 6000) -> list[float]:
    """The module's derivation: relative least squares at Chebyshev points of v ∈ [0, 1), one
    coefficient at a time from c_0, each rounded to float32 and the rest refitted around it."""
    v = (np.cos(np.pi * (np.arange(points) + 0.5) / points) + 1) / 2
    target = _tail_target(v, k)
    basis = np.vander(v, degree + 1, increasing=True) / target[:, None]
    fixed: list[float] = []
    for i in range(degree + 1):
        rest = np.ones_like(v) - basis[:, :i] @ np.array(fixed) if fixed else np.ones_like(v)
        c, *_ = np.linalg.lstsq(basis[:, i:], rest, rcond=None)
        fixed.append(float(np.float32(c[0])))
    return fixed


def _ulp(x: np.ndarray) -> np.ndarray:
    """float32's unit in the last place at |x| (x float64), as float64."""
    return np.spacing(np.abs(x).astype(np.float32)).astype(np.float64)


def _gelu32(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, d = np.empty_like(z), np.empty_like(z)
    ACTIVATIONS[Activation.GELU].forward(z, h, d)
    return h, d


# Every float32 from −14 (Φ < float32's smallest normal below −13.1) to 12, dense near 0.
GRID = np.unique(np.concatenate([np.linspace(-14.0, 12.0, 400_001), np.linspace(-1, 1, 100_001)]))
Z32 = GRID.astype(np.float32)
Z64 = Z32.astype(np.float64)  # the float32 inputs exactly


def test_coefficients_rederived_and_fit_the_target() -> None:
    assert all(float(np.float32(c)) == c for c in _PHI_TAIL_POLY)  # held exactly in float32
    refit = _fit_tail(len(_PHI_TAIL_POLY) - 1, _PHI_TAIL_K)
    v = np.linspace(0.0, 1.0 - 1e-9, 200_001)
    target = _tail_target(v, _PHI_TAIL_K)
    ours = np.polynomial.polynomial.polyval(v, _PHI_TAIL_POLY)
    assert np.abs(ours / target - 1).max() < 4e-8  # a third of float32's 2^-23
    # a LAPACK that rounds differently may move the refit by a float32 step, not more
    again = np.polynomial.polynomial.polyval(v, refit)
    assert np.abs(again / ours - 1).max() < 2**-24
    # c_0 = P(0) = ½·erfcx(0) = ½: Φ(0) = ½ exactly
    assert _PHI_TAIL_POLY[0] == 0.5


def test_normal_cdf_against_scipy_ndtr() -> None:
    phi, e = np.empty_like(Z32), np.empty_like(Z32)
    normal_cdf_float32(Z32, phi, e)
    assert phi.dtype == np.float32
    exact = ndtr(Z64)
    below = Z64 <= 0
    # z ≤ 0: relative error in float32 ULPs, down to where Φ leaves the normal range. The
    # exponent −z²/2 is rounded to float32 (relative 2^-24), which costs up to z²/2 ULP of Φ.
    ulps = np.abs(phi - exact) / _ulp(exact)
    normal = below & (exact >= NORMAL_MIN)
    assert Z64[normal].min() < -12.9
    # (bounds from every float32 from −12.95 to 0: 7.5 ULP at most for z > −2, 10.8 by −4)
    assert (ulps[normal] <= 8.0 + 0.5 * Z64[normal] ** 2).all()
    central = normal & (Z64 > -2)
    assert ulps[central].max() <= 8.0
    # and relatively, the whole range: 0.5·(1 + erf) would be 0 (or off by 100%) below −5.5
    assert (np.abs(phi[normal] / exact[normal] - 1) < 1e-5).all()
    # below, where Φ is subnormal, the same count of its (fixed) steps, down to where it is 0
    subnormal = below & (exact < NORMAL_MIN)
    assert Z64[subnormal].min() == -14.0 and phi[Z64 == -14.0] > 0
    error = np.abs(phi[subnormal] - exact[subnormal])
    assert (error <= (8.0 + 0.5 * Z64[subnormal] ** 2) * TINY).all()
    # z > 0: absolute error within 2 ULP of 1
    above = ~below
    assert np.abs(phi[above] - exact[above]).max() <= 2 * 2.0**-23
    # e = e^{−z²/2}, to the same bound
    pdf = np.exp(-0.5 * Z64**2)
    kept = pdf >= NORMAL_MIN
    assert (np.abs(e - pdf)[kept] / _ulp(pdf[kept]) <= 3.0 + 0.5 * Z64[kept] ** 2).all()


def test_gelu_and_slope_against_closed_forms() -> None:
    h, d = _gelu32(Z32)
    cdf, pdf = ndtr(Z64), np.exp(-0.5 * Z64**2) / math.sqrt(2 * math.pi)
    # φ = z·Φ: relative to itself; φ' = Φ + z·pdf: relative to |Φ| + |z·pdf|, the size of the
    # terms it is the sum of (it crosses 0 near z = −0.75)
    for ours, exact, scale in ((h, Z64 * cdf, np.abs(Z64 * cdf)),
                               (d, cdf + Z64 * pdf, cdf + np.abs(Z64 * pdf))):  # fmt: skip
        kept = scale >= NORMAL_MIN
        ulps = np.abs(ours - exact)[kept] / _ulp(scale[kept])
        assert (ulps <= 8.0 + 0.5 * Z64[kept] ** 2).all()
        assert ulps[np.abs(Z64[kept]) < 2].max() <= 8.0


@pytest.mark.parametrize(
    ("z", "value", "slope"),
    [
        (0.0, 0.0, 0.5),
        (-0.0, -0.0, 0.5),
        (TINY, TINY * 0.5, 0.5),
        (-TINY, -0.0, 0.5),  # −TINY·½ rounds to −0
        (NORMAL_MIN, NORMAL_MIN * 0.5, 0.5),
        (np.inf, np.inf, 1.0),
        (-np.inf, 0.0, 0.0),
        (-40.0, -0.0, -0.0),  # Φ and the density underflow to 0 together
        (40.0, 40.0, 1.0),
    ],
)
def test_special_points(z: float, value: float, slope: float) -> None:
    h, d = _gelu32(np.array([[z, 1.0]], dtype=np.float32))
    assert h[0, 0] == value and np.signbit(h[0, 0]) == np.signbit(value)
    assert d[0, 0] == slope
    # a finite neighbour is not disturbed by the special one
    cdf, pdf = ndtr(1.0), math.exp(-0.5) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose([h[0, 1], d[0, 1]], [cdf, cdf + pdf], rtol=5e-7)


def test_nan_gives_nan_and_z_is_left_alone() -> None:
    z = np.array([[np.nan, -np.inf, 2.0, np.inf]], dtype=np.float32)
    before = z.copy()
    h, d = _gelu32(z)
    np.testing.assert_array_equal(z, before)
    assert np.isnan(h[0, 0]) and np.isnan(d[0, 0])
    assert np.isfinite(h[0, 1:3]).all() and np.isfinite(d[0, 1:]).all()


def test_slope_is_the_derivative_of_the_value() -> None:
    """Central differences of the float32 φ itself, step 2^-8: truncation ~1e-6, rounding
    ~2^-24·|φ|/2^-8."""
    z = np.linspace(-9, 9, 2001, dtype=np.float32)
    step = np.float32(2.0**-8)
    _, d = _gelu32(z)
    plus, _ = _gelu32(z + step)
    minus, _ = _gelu32(z - step)
    numeric = (plus.astype(np.float64) - minus) / (2 * float(step))
    assert (np.abs(d - numeric) <= 1e-4 + 2e-5 * np.abs(z)).all()


@pytest.mark.parametrize(("skip", "norm"), [("none", "none"), ("pre", "layer")])
def test_float32_gelu_pass_follows_float64(skip: str, norm: str) -> None:
    spec = NetworkSpec(depth=20, width=16, batch=8, activation="gelu", skip=skip, norm=norm)
    r64, r32 = analyze(spec), analyze(spec.replace(dtype="float32"))
    np.testing.assert_allclose(
        r32.layers.grad_weight.log10, r64.layers.grad_weight.log10, atol=1e-4
    )
    np.testing.assert_allclose(r32.layers.act_mean, r64.layers.act_mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(r32.layers.act_std, r64.layers.act_std, rtol=1e-4)
