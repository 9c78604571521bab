"""Normalization without learnable scale or shift (γ = 1, β = 0 at init), biased variance.

    x̂ = (z − mean(z)) / sqrt(var(z) + eps)

over the batch axis (batch norm, training-mode statistics) or the feature axis (layer norm).
"""

from __future__ import annotations

import numpy as np

from gradflow.engine.spec import Norm

EPS = 1e-5

# Which axis of a (B, n) activation the statistics run over; None: no normalization. Counted
# from the end, so that backward also applies to a stack of gradients (M, B, n).
NORM_AXIS: dict[Norm, int | None] = {Norm.NONE: None, Norm.BATCH: -2, Norm.LAYER: -1}


def inv_std_shape(axis: int, batch: int, width: int) -> tuple[int, int]:
    """Shape of the saved 1/sqrt(var + eps): (1, n) for batch norm, (B, 1) for layer norm."""
    return (1, width) if axis == -2 else (batch, 1)


def normalize(z: np.ndarray, axis: int, xhat: np.ndarray, inv_std: np.ndarray) -> None:
    """xhat ← (z − μ)·inv_std, inv_std ← 1/sqrt(σ² + eps). z: (B, n); z itself is kept."""
    np.subtract(z, z.mean(axis=axis, keepdims=True), out=xhat)
    var = np.multiply(xhat, xhat).mean(axis=axis, keepdims=True)
    var += EPS
    np.sqrt(var, out=var)
    np.reciprocal(var, out=inv_std)
    xhat *= inv_std


def normalize_backward(
    dxhat: np.ndarray, xhat: np.ndarray, inv_std: np.ndarray, axis: int, out: np.ndarray
) -> None:
    """out ← ∂L/∂z = inv_std · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂)); out may alias dxhat."""
    mean_dx = dxhat.mean(axis=axis, keepdims=True)
    mean_dx_xhat = np.multiply(dxhat, xhat).mean(axis=axis, keepdims=True)
    proj = np.multiply(xhat, mean_dx_xhat)
    np.subtract(dxhat, mean_dx, out=out)
    out -= proj
    out *= inv_std
