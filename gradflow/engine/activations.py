"""Activation functions: each forward writes φ(z) and, beside it, the local derivative φ'(z).

Backward is then one multiply, ``dz = dh * d``; it never recomputes the forward. The ReLUs give
value and slope apart: their φ' follows exactly from φ(z), so it is not saved at all but computed
by backward from the saved φ. Sigmoid's and tanh's φ' are functions of φ(z) too, σ(1 − σ) and
1 − tanh², but not accurate ones: once σ(z) or |tanh z| is within rounding of 1, the difference
has lost its digits (σ' = 0 from z ≈ 37 in float64, where it is 1e-16; tanh' off by 10% at
|z| ≈ 18). They are computed from z instead: σ' to a few ULP for every z, tanh' to 2^-40
relative (float32: 2^-17). Functions write into caller-owned buffers (``out=``) so the hot loop
allocates nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradflow.engine.spec import Activation

LEAKY_SLOPE = 0.01  # PyTorch's default negative slope
ELU_ALPHA = 1.0
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# 1 as a 0-d array of each float dtype: NumPy 2 converts a Python float operand on every call
# (~0.6 µs, a cost at width 16). Of the operand's own dtype, or float32 would add in float64.
_ONE = {np.dtype(t): np.ones((), dtype=t) for t in (np.float32, np.float64)}

# forward(z, h, d): h ← φ(z), d ← φ'(z); z is scratch and may be overwritten afterwards.
Forward = Callable[[np.ndarray, np.ndarray, np.ndarray], None]
# value(z, h): h ← φ(z); slope(h, d): d ← φ' from h = φ(z) alone, for arrays of any shape
Value = Callable[[np.ndarray, np.ndarray], None]
Slope = Callable[[np.ndarray, np.ndarray], None]


def _sigmoid_into(z: np.ndarray, out: np.ndarray) -> None:
    """out ← 1 / (1 + e^{-z}); e^{-z} overflowing to inf correctly gives 0."""
    np.negative(z, out=out)
    np.exp(out, out=out)
    out += _ONE.get(out.dtype, 1.0)
    np.reciprocal(out, out=out)


def _relu_value(z: np.ndarray, h: np.ndarray) -> None:
    np.maximum(z, 0, out=h)


def _relu_slope(h: np.ndarray, d: np.ndarray) -> None:
    np.greater(h, 0, out=d, casting="unsafe")  # 1 where active (h > 0 ⇔ z > 0), 0 elsewhere


def _leaky_relu_value(z: np.ndarray, h: np.ndarray) -> None:
    np.multiply(z, LEAKY_SLOPE, out=h)
    np.maximum(z, h, out=h)  # max(z, s·z) = leaky_relu(z) for 0 < s < 1


def _leaky_relu_slope(h: np.ndarray, d: np.ndarray) -> None:
    np.greater(h, 0, out=d, casting="unsafe")  # h > 0 ⇔ z > 0
    d *= 1 - LEAKY_SLOPE
    d += LEAKY_SLOPE


def _sigmoid(z: np.ndarray, h: np.ndarray, d: np.ndarray) -> None:
    """h ← σ(z) (the bits of ``_sigmoid_into``), d ← σ'(z) = σ(z)·σ(−z) with σ(−z) = e^{−z}·σ(z):
    a few ULP for every z, where σ(1 − σ) is 0 once σ(z) rounds to 1."""
    one = _ONE.get(d.dtype, 1.0)
    np.negative(z, out=d)
    np.exp(d, out=d)  # e^{−z}
    np.add(d, one, out=h)
    np.reciprocal(h, out=h)  # σ(z); e^{−z} = inf gives 0
    d *= h  # σ(−z), nan where inf·0 ...
    np.fmin(d, one, out=d)  # ... there σ(−z) is 1 (fmin passes over nan); nan from z stays in h
    d *= h


# 1 − tanh² from the rounded tanh is off by up to ~2 ULP(1)/(1 − tanh²) relative: where it is
# below these values (float64: 2^-12, error ≤ 2^-40; float32: 2^-6, ≤ 2^-17), the layer's φ' is
# taken from z instead.
_TANH_SLOPE_FROM_Z = {np.dtype(np.float64): 2.0**-12, np.dtype(np.float32): 2.0**-6}


def _tanh(z: np.ndarray, h: np.ndarray, d: np.ndarray) -> None:
    """h ← tanh z, d ← 1 − tanh² z, or sech² z from z where a unit saturates (one min to see)."""
    np.tanh(z, out=h)
    np.multiply(h, h, out=d)
    np.subtract(_ONE.get(d.dtype, 1.0), d, out=d)
    if d.size and not d.min() >= _TANH_SLOPE_FROM_Z.get(d.dtype, 2.0**-12):  # (or a nan)
        _sech_squared(z, d)


def _sech_squared(z: np.ndarray, d: np.ndarray) -> None:
    """d ← sech² z = 4e/(1 + e)² with e = e^{−2|z|}: a few ULP for every z, nothing cancels.
    (Masking the saturated units instead costs more once more than a few are.)"""
    e = np.abs(z)
    e *= -2.0
    np.exp(e, out=e)
    np.add(e, _ONE.get(d.dtype, 1.0), out=d)
    np.multiply(d, d, out=d)
    np.divide(e, d, out=d)
    d *= 4.0


def _composed(value: Value, slope: Slope) -> Forward:
    def forward(z: np.ndarray, h: np.ndarray, d: np.ndarray) -> None:
        value(z, h)
        slope(h, d)

    return forward


# Φ in float32 without erf (docs/engine.md has its measured accuracy): for z ≤ 0,
# Φ(z) = ½·erfc(|z|/√2) = t·P(v)·e^{−z²/2} with t = k/(k + |z|) and v = 1 − t ∈ [0, 1], and
# Φ(z) = 1 − Φ(−|z|) for z > 0. P(v) = ½·erfcx(|z|/√2)/t is smooth and between 0.13 and 0.5 on
# the whole line, so a polynomial holds it to float32 precision, and e^{−z²/2} is the exponential
# φ' needs for the density anyway: one exp a value, where scipy's erf computes in double.
# Derivation: P was sampled in float64 (scipy.special.erfcx) at 6000 Chebyshev points of v, and
# fitted by least squares in relative error, one coefficient at a time from c_0: each rounded to
# float32 and the rest refitted around it (tests/test_gelu32.py re-derives them this way and holds
# P to its target). Degree 10 with k = 3 leaves a fit error of 0.27 float32 ULP; a smaller k needs
# a higher degree for the same error, a larger one loses accuracy near z = 0. c_0 = P(0) = ½.
_PHI_TAIL_K = 3.0
_PHI_TAIL_POLY = (  # c_0 … c_10 of P(v) = Σ c_i v^i
    0.5,
    -0.6968256831169128,
    0.3563004732131958,
    0.06966260075569153,
    -0.09080938994884491,
    -0.0249005313962698,
    -0.013974757865071297,
    0.04224192351102829,
    0.013870869763195515,
    -0.033033017069101334,
    0.010448276065289974,
)


def _gelu_float32(z: np.ndarray, h: np.ndarray, d: np.ndarray) -> None:
    """GELU and its slope for float32 z (B, n), in float32 ufuncs with h and d as the only
    scratch; z is left as it is (it may be a normalised x̂ that backward needs)."""
    infinite = np.isinf(z)
    if not infinite.any():
        _gelu_float32_finite(z, h, d)
        return
    with np.errstate(invalid="ignore"):  # ∞·0 where e^{−z²/2} = 0: set right below
        _gelu_float32_finite(z, h, d)
    _at_infinity(z, h, d)


def normal_cdf_float32(z: np.ndarray, phi: np.ndarray, e: np.ndarray) -> None:
    """phi ← Φ(z) and e ← e^{−z²/2} for float32 z (any shape), phi and e its shape and dtype;
    phi(±∞) = 1, 0 and e(±∞) = 0, nan stays nan."""
    np.abs(z, out=e)
    e += _PHI_TAIL_K
    np.divide(_PHI_TAIL_K, e, out=e)  # t = k/(k + |z|): 0 at |z| = ∞
    np.subtract(1.0, e, out=e)  # v
    np.multiply(e, _PHI_TAIL_POLY[-1], out=phi)
    for c in _PHI_TAIL_POLY[-2:0:-1]:
        phi += c
        phi *= e
    phi += _PHI_TAIL_POLY[0]  # P(v)
    np.subtract(1.0, e, out=e)  # t again: exact where t ≥ ½, within ½ ULP of 1 below
    phi *= e
    np.multiply(z, -0.5, out=e)
    e *= z
    np.exp(e, out=e)
    phi *= e  # Φ(−|z|), accurate in the tail: no 1 + erf to cancel
    # Φ = |H − Φ(−|z|)| with H = 1 for z > 0: 1 − Φ(−z) there, Φ(z) itself elsewhere
    np.subtract(np.greater(z, 0), phi, out=phi)
    np.abs(phi, out=phi)


def _gelu_float32_finite(z: np.ndarray, h: np.ndarray, d: np.ndarray) -> None:
    """The float32 GELU kernel (B, n); ∞·0 gives nan at z = ±∞."""
    normal_cdf_float32(z, h, d)  # h = Φ(z), d = e^{−z²/2}
    d *= z
    d *= _INV_SQRT_2PI
    d += h  # φ' = Φ(z) + z·pdf(z)
    h *= z  # φ = z·Φ(z)


def _gelu(z: np.ndarray, h: np.ndarray, d: np.ndarray) -> None:
    if z.dtype == np.float32:
        _gelu_float32(z, h, d)
        return
    from scipy.special import ndtr  # exact GELU needs Φ; NumPy has none

    # Φ(z) itself, accurate in the tail: ½(1 + erf(z/√2)) is 0 below z ≈ −8.3, where Φ is 1e-16
    ndtr(z, out=d)
    np.multiply(z, d, out=h)  # h = z·Φ(z)
    pdf = np.multiply(z, z)
    pdf *= -0.5
    np.exp(pdf, out=pdf)
    pdf *= _INV_SQRT_2PI
    pdf *= z
    d += pdf  # φ' = Φ(z) + z·pdf(z)
    if not np.isfinite(pdf).all():  # z = ±∞ (∞·0), or nan
        _at_infinity(z, h, d)


def _at_infinity(z: np.ndarray, h: np.ndarray, d: np.ndarray) -> None:
    """GELU's limits where z = ±∞ (the formulas give ∞·0): φ(∞) = ∞, φ(−∞) = 0, φ' = 1, 0."""
    infinite = np.isinf(z)
    np.copyto(h, np.maximum(z, 0.0), where=infinite)
    np.copyto(d, np.greater(z, 0), where=infinite)


def _silu(z: np.ndarray, h: np.ndarray, d: np.ndarray) -> None:
    _sigmoid_into(z, d)  # d = σ(z)
    np.multiply(z, d, out=h)  # h = z·σ(z)
    # φ' = σ + z·σ(1 − σ) = σ + h·(1 − σ)
    one_minus = np.subtract(1.0, d)
    one_minus *= h
    d += one_minus


def _elu_into(z: np.ndarray, h: np.ndarray, d: np.ndarray, alpha: float, scale: float) -> None:
    positive = z > 0
    np.minimum(z, 0, out=d)
    np.exp(d, out=d)  # e^{min(z,0)}
    np.expm1(np.minimum(z, 0), out=h)
    h *= alpha
    np.copyto(h, z, where=positive)  # h = z (z>0) | α(e^z − 1)
    d *= alpha
    np.copyto(d, 1.0, where=positive)  # d = 1 (z>0) | α e^z
    if scale != 1.0:
        h *= scale
        d *= scale


def _elu(z: np.ndarray, h: np.ndarray, d: np.ndarray) -> None:
    _elu_into(z, h, d, ELU_ALPHA, 1.0)


def _selu(z: np.ndarray, h: np.ndarray, d: np.ndarray) -> None:
    _elu_into(z, h, d, SELU_ALPHA, SELU_SCALE)


def _softplus(z: np.ndarray, h: np.ndarray, d: np.ndarray) -> None:
    # log(1 + e^z) = max(z, 0) + log1p(e^{−|z|}): never overflows
    np.abs(z, out=h)
    np.negative(h, out=h)
    np.exp(h, out=h)
    np.log1p(h, out=h)
    h += np.maximum(z, 0)
    _sigmoid_into(z, d)  # softplus' = σ


def _linear(z: np.ndarray, h: np.ndarray, d: np.ndarray) -> None:
    np.copyto(h, z)
    d.fill(1)


# Gains where PyTorch's calculate_gain has no entry: the gain that keeps the second moment of
# the pre-activation at 1 through the layer, g = 1/sqrt(E[φ(z)²]), z ~ N(0, 1). For ReLU this
# rule gives exactly PyTorch's sqrt(2); the constants are re-derived by quadrature in the tests.
_MOMENT_GAINS = {
    "gelu": 1.5335304411955353,
    "silu": 1.6765324703310909,
    "elu": 1.2451983007007064,
    "softplus": 1.0418668355353016,
}


@dataclass(frozen=True, eq=False, repr=False)  # a table row of functions, never compared
class ActivationOps:
    forward: Forward
    gain: float  # He/orthogonal init gain
    identity: bool = False  # φ' ≡ 1: backward skips the multiply, no derivative is stored
    relu_like: bool = False  # report the share of dead units
    saturated_below: float | None = None  # φ' (saved by forward) below this is saturated
    split: tuple[Value, Slope] | None = None  # φ and φ' (from φ) apart, where exact

    def __post_init__(self) -> None:
        if self.saturated_below is not None and self.split is not None:
            raise ValueError("saturation is counted on the φ' forward saves: give no split")

    @property
    def slope_in_backward(self) -> bool:
        """φ' follows from φ and the forward pass has no use for it: backward computes it from
        the saved φ, and φ' is never saved."""
        return self.split is not None

    @classmethod
    def of_output(cls, value: Value, slope: Slope, gain: float, **flags: Any) -> ActivationOps:
        """An activation whose derivative is a function of its output."""
        return cls(_composed(value, slope), gain, split=(value, slope), **flags)


ACTIVATIONS: dict[Activation, ActivationOps] = {
    Activation.RELU: ActivationOps.of_output(
        _relu_value, _relu_slope, math.sqrt(2.0), relu_like=True
    ),
    Activation.LEAKY_RELU: ActivationOps.of_output(
        _leaky_relu_value,
        _leaky_relu_slope,
        math.sqrt(2.0 / (1.0 + LEAKY_SLOPE**2)),
        relu_like=True,
    ),
    # saturated: |tanh z| > 0.99 ⇔ 1 − tanh² < 1 − 0.99²
    Activation.TANH: ActivationOps(_tanh, 5.0 / 3.0, saturated_below=1 - 0.99**2),
    # saturated: σ(z) < 0.01 or > 0.99 ⇔ σ(1 − σ) < 0.99·0.01
    Activation.SIGMOID: ActivationOps(_sigmoid, 1.0, saturated_below=0.99 * 0.01),
    Activation.GELU: ActivationOps(_gelu, _MOMENT_GAINS["gelu"]),
    Activation.SILU: ActivationOps(_silu, _MOMENT_GAINS["silu"]),
    Activation.SELU: ActivationOps(_selu, 0.75),  # PyTorch's choice for SELU
    Activation.ELU: ActivationOps(_elu, _MOMENT_GAINS["elu"]),
    Activation.SOFTPLUS: ActivationOps(_softplus, _MOMENT_GAINS["softplus"]),
    Activation.LINEAR: ActivationOps(_linear, 1.0, identity=True),
}
