"""Weight initializers, keyed by ``Init``. Each draws a stack of (n_in, n_out) matrices.

    he          W ~ N(0, gain²/fan_in), gain from the activation (PyTorch's calculate_gain)
    xavier      W ~ N(0, 2/(fan_in + fan_out))
    lecun       W ~ N(0, 1/fan_in)
    orthogonal  W = gain · Q, Q Haar-random orthogonal (QR of a Gaussian, signs fixed)

A raw weight variance σ_w² overrides the scale in the mean-field convention, Var W = σ_w²/fan_in
(for orthogonal: gain = σ_w, which has the same per-entry variance).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from gradflow.engine.activations import ACTIVATIONS
from gradflow.engine.magnitudes import SUM_SQ_LOW, exact_norm
from gradflow.engine.spec import Init, NetworkSpec

# draw(rng, out, scale): fill out, a float64 (count, n, n) stack
Draw = Callable[[np.random.Generator, np.ndarray, float], None]


def _gaussian(rng: np.random.Generator, out: np.ndarray, std: float) -> None:
    rng.standard_normal(out=out)
    out *= std


def _orthogonal(rng: np.random.Generator, out: np.ndarray, gain: float) -> None:
    q, r = np.linalg.qr(rng.standard_normal(out.shape))  # batched QR
    # Fix the signs so Q is Haar-distributed rather than biased by the QR convention.
    q *= np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    np.multiply(q, gain, out=out)


def init_scale(spec: NetworkSpec) -> float:
    """The std (Gaussian inits) or gain (orthogonal) used for every hidden weight matrix."""
    fan_in = fan_out = spec.width
    if spec.weight_var is not None:
        if spec.init is Init.ORTHOGONAL:
            return math.sqrt(spec.weight_var)
        return math.sqrt(spec.weight_var / fan_in)
    gain = ACTIVATIONS[spec.activation].gain
    scales = {
        Init.HE: gain / math.sqrt(fan_in),
        Init.XAVIER: math.sqrt(2.0 / (fan_in + fan_out)),
        Init.LECUN: 1.0 / math.sqrt(fan_in),
        Init.ORTHOGONAL: gain,
    }
    return scales[spec.init]


INITIALIZERS: dict[Init, Draw] = {
    Init.HE: _gaussian,
    Init.XAVIER: _gaussian,
    Init.LECUN: _gaussian,
    Init.ORTHOGONAL: _orthogonal,
}


def draw_chunk(spec: NetworkSpec) -> int:
    """Layers drawn per call: a float32 stack goes through a float64 temporary of ~2 MiB."""
    return max(1, min(spec.depth, (2 << 20) // (8 * spec.width * spec.width)))


def draw_weights(spec: NetworkSpec, rng: np.random.Generator, out: np.ndarray) -> None:
    """Fill out (K, n, n), the next K layers of the weight stream, a few layers at a time.
    The values do not depend on how the layers are split: the generator's stream is consumed
    in order. float32 layers are drawn in float64 and rounded, so they see the same numbers."""
    draw, scale = INITIALIZERS[spec.init], init_scale(spec)
    n, chunk = spec.width, draw_chunk(spec)
    for start in range(0, len(out), chunk):
        stop = min(start + chunk, len(out))
        if out.dtype == np.float64:
            draw(rng, out[start:stop], scale)
        else:
            wide = np.empty((stop - start, n, n))
            draw(rng, wide, scale)
            out[start:stop] = wide


def layer_norms(stack: np.ndarray) -> np.ndarray:
    """‖W_i‖_F of each (n, n) layer of ``stack``, (K,) float64, a few layers at a time; where a
    layer's sum of squares leaves float64's range (weights beyond ~1e150 or below ~1e-150), that
    layer is measured scaled by a power of two (``magnitudes.exact_norm``)."""
    norms = np.empty(len(stack))
    chunk = max(1, (2 << 20) // (8 * stack[0].size)) if len(stack) else 1  # ~2 MiB widened
    for start in range(0, len(stack), chunk):
        part = stack[start : start + chunk]
        wide = part.reshape(len(part), -1).astype(np.float64, copy=False)
        with np.errstate(over="ignore", under="ignore"):
            sq = np.vecdot(wide, wide)
        norms[start : start + len(part)] = np.sqrt(sq)
        for k in np.flatnonzero(~((sq >= SUM_SQ_LOW) & (sq < np.inf))):
            mantissa, exponent = exact_norm(wide[k], 0)  # 0 for a zero layer, nan with a nan
            norms[start + k] = np.ldexp(mantissa, exponent)
    return norms
