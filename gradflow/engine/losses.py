"""Losses: each returns its value and ∂L/∂y, side by side.

mse     L = (1/2B) Σ_b ‖y_b − t_b‖²            ∂L/∂y = (y − t)/B
linear  L = (1/B)  Σ_b ⟨y_b, u_b⟩               ∂L/∂y = u/B   (independent of the forward pass)
xent    logits = y W_head + b_head (C classes), L = mean_b CE(softmax(logits_b), label_b)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from gradflow.engine.magnitudes import exact_norm, unit_scale
from gradflow.engine.spec import Loss


# Named tuples: immutable, and created at import for a quarter of a frozen dataclass's cost (its
# generated methods are compiled as each class is made). Never compared: they hold arrays.
class LossData(NamedTuple):
    """The fixed arrays a loss compares against."""

    target: np.ndarray | None = None  # (B, n): mse targets, or the linear loss's u
    labels: np.ndarray | None = None  # (B,) int64 class labels for xent
    head_weight: np.ndarray | None = None  # (n, C)
    head_bias: np.ndarray | None = None  # (C,)


class LossResult(NamedTuple):
    value: float
    dy: np.ndarray  # ∂L/∂y, (B, n)
    head_weight_grad: np.ndarray | None = None  # (n, C)
    head_bias_grad: np.ndarray | None = None  # (C,)


def _mse(y: np.ndarray, data: LossData) -> LossResult:
    assert data.target is not None
    batch = y.shape[0]
    diff = y - data.target  # (B, n)
    sq = float(np.vdot(diff, diff))
    if 0 < sq < math.inf:
        value = 0.5 * sq / batch
    else:  # Σ diff² left the float range, the loss need not have (or diff is 0, inf or nan)
        mantissa, exponent = exact_norm(diff.astype(np.float64), 0)
        value = _times_pow2(0.5 * mantissa * mantissa / batch, 2 * exponent)
    diff /= batch
    return LossResult(value, diff)


def _linear(y: np.ndarray, data: LossData) -> LossResult:
    assert data.target is not None
    batch = y.shape[0]
    value = float(np.vdot(y, data.target)) / batch
    if not math.isfinite(value) and np.isfinite(y).all():  # a partial sum left the range
        scaled, shift = unit_scale(y.astype(np.float64))
        value = _times_pow2(float(np.vdot(scaled, data.target)) / batch, -shift)
    return LossResult(value, data.target / batch)


def _times_pow2(value: float, shift: int) -> float:
    """value · 2**shift as a float: inf beyond the range, 0 below it."""
    with np.errstate(over="ignore", under="ignore"):
        return float(np.ldexp(value, shift))


def _xent(y: np.ndarray, data: LossData) -> LossResult:
    assert data.labels is not None and data.head_weight is not None
    assert data.head_bias is not None
    batch = y.shape[0]
    rows = np.arange(batch)
    logits = y @ data.head_weight + data.head_bias  # (B, C)
    shifted = logits - logits.max(axis=1, keepdims=True)  # stable log-sum-exp
    log_z = np.log(np.exp(shifted).sum(axis=1))
    value = float(np.mean(log_z - shifted[rows, data.labels]))
    dlogits = np.exp(shifted - log_z[:, None])  # softmax, (B, C)
    dlogits[rows, data.labels] -= 1
    dlogits /= batch
    return LossResult(
        value,
        dlogits @ data.head_weight.T,  # (B, n)
        head_weight_grad=y.T @ dlogits,  # (n, C)
        head_bias_grad=dlogits.sum(axis=0),  # (C,)
    )


LOSSES: dict[Loss, Callable[[np.ndarray, LossData], LossResult]] = {
    Loss.MSE: _mse,
    Loss.LINEAR: _linear,
    Loss.XENT: _xent,
}
