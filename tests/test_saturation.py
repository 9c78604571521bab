"""Saturated units: φ and φ' of sigmoid, tanh and GELU against 50-digit arithmetic (mpmath), and
whole saturated networks against a 50-digit backward pass written here from the formulas.

σ(1 − σ) and 1 − tanh² from the rounded φ are what PyTorch computes too, so its autograd cannot
catch their loss of digits: once σ(z) or |tanh z| rounds to 1 they give 0 or a slope off by
tens of percent, and ½(1 + erf(z/√2)) gives Φ = 0 below z ≈ −8.3. The true values are far
inside the float range.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from gradflow.analysis.analyze import analyze
from gradflow.engine.activations import ACTIVATIONS
from gradflow.engine.network import build
from gradflow.engine.spec import Activation, NetworkSpec

mpmath.mp.dps = 50


def _exact(activation: Activation, z: float) -> tuple[mpmath.mpf, mpmath.mpf]:
    """φ(z) and φ'(z), written so that nothing cancels (z is the float's exact value)."""
    x = mpmath.mpf(z)
    if activation is Activation.SIGMOID:
        e = mpmath.exp(-abs(x))  # σ'(z) = e^{−|z|}/(1 + e^{−|z|})²
        value = 1 / (1 + e) if x >= 0 else e / (1 + e)
        return value, e / (1 + e) ** 2
    if activation is Activation.TANH:
        e = mpmath.exp(-2 * abs(x))  # tanh' = sech² = 4e/(1 + e)², e = e^{−2|z|}
        return mpmath.sign(x) * (1 - e) / (1 + e), 4 * e / (1 + e) ** 2
    cdf = mpmath.ncdf(x)  # GELU: z·Φ(z), Φ(z) + z·pdf(z)
    return x * cdf, cdf + x * mpmath.npdf(x)


def _grid(dtype: type[np.floating]) -> np.ndarray:
    """Both tails densely (to where the values leave the normal range) and the middle."""
    edge = 700.0 if dtype is np.float64 else 85.0
    return np.unique(
        np.concatenate([np.linspace(-edge, edge, 1401), np.linspace(-40, 40, 801)]).astype(dtype)
    )


@pytest.mark.parametrize("activation", [Activation.SIGMOID, Activation.TANH, Activation.GELU])
@pytest.mark.parametrize(
    ("dtype", "rtol"), [(np.float64, 1e-12), (np.float32, 2e-5)], ids=["float64", "float32"]
)
def test_phi_and_its_slope_hold_their_digits_in_the_tails(
    activation: Activation, dtype: type[np.floating], rtol: float
) -> None:
    z = _grid(dtype)
    h, d = np.empty_like(z), np.empty_like(z)
    with np.errstate(all="ignore"):
        ACTIVATIONS[activation].forward(z, h, d)
    # judged from 2^12 above the normal range: GELU's φ' there is a sum with a term (Φ) up to z²
    # (~1400) times smaller, which NumPy and scipy flush to 0 once it is subnormal
    tiny = float(np.finfo(dtype).tiny) * 2.0**12
    for values, column in ((h, 0), (d, 1)):
        exact = np.array([float(_exact(activation, float(v))[column]) for v in z])
        judged = np.abs(exact) >= tiny
        if activation is Activation.GELU and column == 1:
            judged &= np.abs(z + 0.7518) > 0.05  # φ' = 0 at z ≈ −0.7518: judged absolutely below
            near_root = ~judged & (np.abs(exact) >= tiny)
            np.testing.assert_allclose(values[near_root], exact[near_root], atol=8 * rtol, rtol=0)
        error = np.abs(values[judged] - exact[judged]) / np.abs(exact[judged])
        worst = int(np.argmax(error))
        assert error[worst] <= rtol, (column, float(z[judged][worst]), float(error[worst]))
    assert np.isfinite(h).all() and np.isfinite(d).all()


def _exact_gradients(spec: NetworkSpec) -> list[tuple[mpmath.mpf, mpmath.mpf]]:
    """‖∂L/∂W_i‖ and ‖∂L/∂b_i‖ of a plain network with the mse loss, in 50 digits."""
    arrays = build(spec).arrays(spec)
    x, target = mpmath.matrix(arrays["x"].tolist()), mpmath.matrix(arrays["target"].tolist())
    weights = [mpmath.matrix(arrays[f"W{i}"].tolist()) for i in range(1, spec.depth + 1)]
    biases = [arrays[f"b{i}"].tolist() for i in range(1, spec.depth + 1)]
    batch, width = spec.batch, spec.width
    inputs, slopes, a = [], [], x
    for w, b in zip(weights, biases, strict=True):
        z = a * w
        inputs.append(a)
        a, slope = mpmath.matrix(batch, width), mpmath.matrix(batch, width)
        for r in range(batch):
            for c in range(width):
                a[r, c], slope[r, c] = _exact(spec.activation, z[r, c] + b[c])
        slopes.append(slope)
    g = (a - target) / batch  # ∂L/∂y of L = (1/2B) Σ ‖y − t‖²
    norms = []
    for w, slope, a_in in zip(weights[::-1], slopes[::-1], inputs[::-1], strict=True):
        dz = mpmath.matrix(batch, width)
        for r in range(batch):
            for c in range(width):
                dz[r, c] = g[r, c] * slope[r, c]
        dw = a_in.T * dz
        db = [mpmath.fsum(dz[r, c] for r in range(batch)) for c in range(width)]
        norms.append((mpmath.mnorm(dw, "f"), mpmath.sqrt(mpmath.fsum(v * v for v in db))))
        g = dz * w.T
    return norms[::-1]


@pytest.mark.parametrize(
    "case",
    [
        # one unit at z ≈ 40: σ(1 − σ) made its slope 0, and fc1's gradient 20 decades too small
        {"activation": "sigmoid", "width": 2, "batch": 2, "bias_var": 1500.0, "seed": 1},
        {"activation": "sigmoid", "width": 2, "batch": 2, "bias_var": 3000.0},
        # z = −18.8: 1 − tanh² 16% off; z = −38.7: 0, reported as below the float range
        {"activation": "tanh", "width": 1, "batch": 1, "bias_var": 300.0, "seed": 23},
        {"activation": "tanh", "width": 1, "batch": 1, "bias_var": 300.0, "seed": 1},
        # z ≈ −10: ½(1 + erf) gave φ = 0, so fc2's ‖∂L/∂W‖ was 0 where it is 2.5e-22
        {"activation": "gelu", "width": 2, "batch": 2, "bias_var": 120.0, "seed": 7},
        # no unit saturated: 1 − tanh² and σ(z)·σ(−z) in every layer, as most networks take them
        {"activation": "tanh", "width": 5, "batch": 3, "weight_var": 1.0, "depth": 4},
        {"activation": "sigmoid", "width": 5, "batch": 3, "weight_var": 1.0, "depth": 4},
    ],
)
def test_saturated_networks_match_fifty_digit_backprop(case: dict[str, object]) -> None:
    settings: dict[str, object] = {"depth": 2, "weight_var": 0.01, **case}
    spec = NetworkSpec(**settings)  # type: ignore[arg-type]
    layers = analyze(spec).layers
    for i, (weight, bias) in enumerate(_exact_gradients(spec)):
        assert weight > 0 and bias > 0
        assert layers.grad_weight.log10[i] == pytest.approx(float(mpmath.log10(weight)), abs=1e-12)
        assert layers.grad_bias.log10[i] == pytest.approx(float(mpmath.log10(bias)), abs=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gelu_at_infinity_is_its_limits_in_both_dtypes(dtype: type[np.floating]) -> None:
    """φ(∞) = ∞, φ(−∞) = 0, φ'(±∞) = 1, 0; nan stays nan (float64 gave nan at ±∞: ∞·0)."""
    z = np.array([np.inf, -np.inf, np.nan, 1.0], dtype=dtype)
    h, d = np.empty_like(z), np.empty_like(z)
    with np.errstate(all="ignore"):
        ACTIVATIONS[Activation.GELU].forward(z, h, d)
    assert h[:2].tolist() == [np.inf, 0.0] and d[:2].tolist() == [1.0, 0.0]
    assert np.isnan(h[2]) and np.isnan(d[2]) and np.isfinite(h[3]) and np.isfinite(d[3])
