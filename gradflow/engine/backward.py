"""The backward pass: a loop over the layers in reverse, never recursion.

Once the forward pass is fixed, backward is linear in the incoming gradient. So the gradient is
kept rescaled by exact powers of two as it flows back, and its scale is carried as an integer
binary exponent: every recorded magnitude is ``mantissa · 2**exponent``, exact even where float64
would underflow to 0 or overflow to inf.

At a residual addition ``h_out = h_in + α·branch(h_in)`` the gradient arriving at the add is
handed back to h_in unchanged (the skip part) and, scaled by α, into the branch; the branch's
own gradient at h_in is added to the skip part there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gradflow.engine.forward import Tape
from gradflow.engine.magnitudes import (
    HIGH_SQ,
    LOW_SQ,
    Magnitudes,
    checked_norm,
    exact_norm,
    rescale,
    sum_sq,
    times_pow2,
)
from gradflow.engine.normalization import NORM_AXIS, normalize_backward
from gradflow.engine.spec import NetworkSpec, Skip
from gradflow.engine.weight_grads import WeightGradients

Progress = Callable[[int], None]  # called with the number of layers done so far


@dataclass(frozen=True)
class Records:
    """Magnitudes measured by one backward pass (dense layers in forward order)."""

    grad_weight: Magnitudes  # (L,)
    grad_bias: Magnitudes  # (L,)
    grad_input: Magnitudes  # (L,) total derivative w.r.t. each layer's input
    block_add: Magnitudes  # (blocks,) gradient arriving at each addition (= skip part)
    block_branch: Magnitudes  # (blocks,) part coming back through the branch
    block_input: Magnitudes  # (blocks,) their sum at the block input
    block_cosine: np.ndarray  # (blocks,)
    weight_grads: list[np.ndarray] | None  # kept on request, true scale
    bias_grads: list[np.ndarray] | None
    input_grads: list[np.ndarray] | None


def _magnitudes(rows: np.ndarray) -> Magnitudes:
    return Magnitudes(rows[:, 0].copy(), rows[:, 1].astype(np.int64))


def backward(
    spec: NetworkSpec,
    tape: Tape,
    weights: Sequence[np.ndarray],
    dy: np.ndarray,
    keep_gradients: bool = False,
    progress: Progress | None = None,
    progress_every: int = 1 << 30,
) -> Records:
    """Propagate ∂L/∂y (B, n) back through the network recorded on ``tape``."""
    depth, alpha, pre_order = spec.depth, spec.residual_scale, spec.skip is Skip.PRE
    axis = NORM_AXIS[spec.norm]
    deriv, xhat, inv_std = tape.deriv, tape.xhat, tape.inv_std
    grads = WeightGradients(spec, tape.dense_in, keep_gradients)

    g, g_next = dy.copy(), np.empty_like(dy)  # (B, n): ∂L/∂(output of the current layer)
    skip = np.empty_like(dy)  # the gradient handed back along the current block's skip path
    _, e = rescale(g, 0)
    skip_e = 0
    input_norm, input_exp = [0.0] * depth, [0] * depth  # ‖∂L/∂(input of layer i)‖
    chunk, slots, dz_exp = grads.chunk, grads.slots, grads.exponent
    k = spec.block_size if spec.residual else 0
    layer_deriv: list[np.ndarray | None] = [None] * depth if deriv is None else list(deriv)
    # where φ' follows from φ it was not saved: computed here a chunk of layers at a time
    slope, slopes = tape.slope, None if tape.slope is None else np.empty_like(grads.dz)
    slope_slots = [] if slopes is None else list(slopes)
    layer_w_t = [w.T for w in weights]
    blocks = spec.blocks
    block_add, block_branch = np.zeros((blocks, 2)), np.zeros((blocks, 2))
    cosine = np.full(blocks, np.nan)
    kept_inputs: list[np.ndarray] | None = [] if keep_gradients else None

    for i in reversed(range(depth)):
        dz = slots[i % chunk]
        dz_exp[i] = e
        block_end = k and (i + 1) % k == 0
        d = layer_deriv[i]
        if slope is not None and slopes is not None:
            if i % chunk == chunk - 1 or i == depth - 1:
                start = i - i % chunk
                slope(tape.act_out[start : i + 1], slopes[: i + 1 - start])
            d = slope_slots[i % chunk]
        if pre_order:
            if block_end:
                np.copyto(skip, g)  # skip part: the incoming gradient, unchanged
                skip_e = e
            # u_i = q_i @ W + b, scaled by α at a block end
            if block_end and alpha != 1.0:
                np.multiply(g, alpha, out=dz)
            else:
                np.copyto(dz, g)
            np.matmul(dz, layer_w_t[i], out=g_next)  # ∂L/∂q_i, (B, n) @ (n, n)
            if d is not None:
                g_next *= d  # through φ
            if axis is not None:
                assert xhat is not None and inv_std is not None
                normalize_backward(g_next, xhat[i], inv_std[i], axis, out=g_next)
        else:
            if block_end:
                # gradient at the add, s = h_in + α·v: it goes to h_in unchanged
                if d is None:
                    np.copyto(skip, g)
                else:
                    np.multiply(g, d, out=skip)
                skip_e = e
                if alpha != 1.0:
                    np.multiply(skip, alpha, out=dz)  # into the branch, scaled by α
                else:
                    np.copyto(dz, skip)
            elif d is None:
                np.copyto(dz, g)
            else:
                np.multiply(g, d, out=dz)  # through φ
            if axis is not None:
                assert xhat is not None and inv_std is not None
                normalize_backward(dz, xhat[i], inv_std[i], axis, out=dz)
            np.matmul(dz, layer_w_t[i], out=g_next)  # ∂L/∂h_i, (B, n) @ (n, n)

        if k and i % k == 0:  # block start: the skip part joins the branch part
            b = i // k
            block_add[b], block_branch[b], cosine[b], e = _join(skip, skip_e, g_next, e)
        sq = float(np.vdot(g_next, g_next))
        if LOW_SQ <= sq <= HIGH_SQ:  # rescale() inlined: this runs once per layer
            input_norm[i] = math.sqrt(sq)
        else:
            input_norm[i], e = exact_norm(g_next, e, inplace=True)
        input_exp[i] = e
        if kept_inputs is not None:
            kept_inputs.append(times_pow2(g_next, e))
        g, g_next = g_next, g
        if i % chunk == 0:
            grads.flush(i)
        if progress is not None and (depth - i) % progress_every == 0:
            progress(depth - i)

    grad_input = Magnitudes(np.array(input_norm), np.array(input_exp, dtype=np.int64))

    def reversed_or_none(items: list[np.ndarray] | None) -> list[np.ndarray] | None:
        return None if items is None else items[::-1]

    return Records(
        grad_weight=_magnitudes(grads.weight),
        grad_bias=_magnitudes(grads.bias),
        grad_input=grad_input,
        block_add=_magnitudes(block_add),
        block_branch=_magnitudes(block_branch),
        block_input=Magnitudes(
            grad_input.mantissa[:: spec.block_size][:blocks],
            grad_input.exponent[:: spec.block_size][:blocks],
        ),
        block_cosine=cosine,
        weight_grads=reversed_or_none(grads.kept_w),
        bias_grads=reversed_or_none(grads.kept_b),
        input_grads=reversed_or_none(kept_inputs),
    )


def _join(
    skip: np.ndarray, skip_e: int, branch: np.ndarray, branch_e: int
) -> tuple[tuple[float, int], tuple[float, int], float, int]:
    """branch ← skip + branch at a common scale, in place. Returns the two parts' norms, their
    cosine and the exponent of the sum."""
    sq_skip, sq_branch = sum_sq(skip), sum_sq(branch)
    dot = float(np.vdot(skip, branch))
    skip_norm = checked_norm(sq_skip, skip, skip_e)
    branch_norm = checked_norm(sq_branch, branch, branch_e)
    cosine = dot / math.sqrt(sq_skip * sq_branch) if sq_skip > 0 and sq_branch > 0 else math.nan
    # Bring both to the larger exponent; the smaller part loses only what is below rounding.
    if skip_e > branch_e:
        times_pow2(branch, branch_e - skip_e, out=branch)
        branch += skip
        return skip_norm, branch_norm, cosine, skip_e
    if skip_e < branch_e:
        branch += times_pow2(skip, skip_e - branch_e)
    else:
        branch += skip
    return skip_norm, branch_norm, cosine, branch_e
