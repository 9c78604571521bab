"""The forward pass. It returns a Tape: everything backward needs, so backward never recomputes.

Two layer orders share one loop shape:

    post (plain, original ResNet)  h = φ(N(a @ W + b))        block end: φ(h_in + α·N(a @ W + b))
    pre  (identity mapping)        u = φ(N(u_prev)) @ W + b   block end: h_in + α·(φ(N(u)) @ W + b)

Every saved tensor lives in one preallocated (L, B, n) array written with ``out=``, so the hot
loop allocates (almost) nothing. Layers are finished in chunks while their values are still in
cache: φ' of a chunk in one call where it follows from φ alone (sigmoid, tanh), then the chunk
goes to an observer (statistics, progress). The ReLUs' φ' is not saved: backward computes it
from the saved outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gradflow.engine.activations import ACTIVATIONS, ActivationOps, Slope
from gradflow.engine.normalization import NORM_AXIS, inv_std_shape, normalize
from gradflow.engine.spec import NetworkSpec, Skip

# observe(start, stop, act_out, deriv): layers [start, stop) are done; their (K, B, n) activation
# outputs and φ' (None for a linear φ) are handed over while they are still in cache.
Observer = Callable[[int, int, np.ndarray, np.ndarray | None], None]


@dataclass(frozen=True)
class Tape:
    """The forward cache. Index i is dense layer i + 1."""

    dense_in: np.ndarray  # (L, B, n) input of each matmul: post h_i, pre φ(N(u_i))
    act_out: np.ndarray  # (L, B, n) output of each layer's activation φ
    deriv: np.ndarray | None  # (L, B, n) φ' at the same points; None: linear, or see slope
    slope: Slope | None  # gives φ' from act_out where it is not saved (the ReLUs)
    xhat: np.ndarray | None  # (L, B, n) normalized values; None without normalization
    inv_std: np.ndarray | None  # (L, 1, n) batch norm or (L, B, 1) layer norm
    output: np.ndarray  # (B, n) the network output y


def _allocate(spec: NetworkSpec, dtype: np.dtype, rows: int) -> np.ndarray:
    return np.empty((rows, spec.batch, spec.width), dtype=dtype)


def forward(
    spec: NetworkSpec,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray] | None,
    x: np.ndarray,
    observe: Observer | None = None,
    chunk: int = 1 << 30,
) -> Tape:
    """Run the network on x (B, n) and keep what backward needs; biases None: all zero.

    ``chunk`` layers at a time get their φ' (where it follows from φ) and go to ``observe``."""
    run = _forward_pre if spec.skip is Skip.PRE else _forward_post
    return run(spec, weights, biases, x, observe, chunk)


def _norm_buffers(
    spec: NetworkSpec, dtype: np.dtype
) -> tuple[int | None, np.ndarray | None, np.ndarray | None]:
    axis = NORM_AXIS[spec.norm]
    if axis is None:
        return None, None, None
    xhat = _allocate(spec, dtype, spec.depth)
    inv_std = np.empty((spec.depth, *inv_std_shape(axis, spec.batch, spec.width)), dtype=dtype)
    return axis, xhat, inv_std


def _derivatives(
    spec: NetworkSpec, act: ActivationOps, dtype: np.dtype
) -> tuple[np.ndarray | None, Slope | None]:
    """Where φ' is saved, its (L, B, n) buffer; where backward computes it from φ instead (the
    ReLUs), the function that does. Neither for a linear φ."""
    if act.identity:
        return None, None
    if act.slope_in_backward:
        assert act.split is not None
        return None, act.split[1]
    return _allocate(spec, dtype, spec.depth), None


def _forward_post(
    spec: NetworkSpec,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray] | None,
    x: np.ndarray,
    observe: Observer | None,
    chunk: int,
) -> Tape:
    act = ACTIVATIONS[spec.activation]
    dtype, alpha = x.dtype, spec.residual_scale
    h = _allocate(spec, dtype, spec.depth + 1)  # h[0] = x, h[i + 1] = output of layer i
    h[0] = x
    deriv, unsaved = _derivatives(spec, act, dtype)
    axis, xhat, inv_std = _norm_buffers(spec, dtype)
    z = np.empty_like(x)  # (B, n) scratch, reused by every layer
    s = np.empty_like(x)
    block_in = x

    k = spec.block_size if spec.residual else 0
    outs = list(h)  # (B, n) views made once, not once per layer
    derivs = list(deriv) if deriv is not None else []
    value, slope = act.split or (None, None)
    for i in range(spec.depth):
        if k and i % k == 0:
            block_in = outs[i]
        np.matmul(outs[i], weights[i], out=z)  # (B, n) @ (n, n)
        if biases is not None:
            z += biases[i]
        pre = z
        if axis is not None:
            assert xhat is not None and inv_std is not None
            normalize(z, axis, xhat[i], inv_std[i])
            pre = xhat[i]
        if k and (i + 1) % k == 0:
            # the addition: φ is applied after it, which is what blocks the clean path
            if alpha != 1.0:
                np.multiply(pre, alpha, out=s)
                s += block_in
            else:
                np.add(pre, block_in, out=s)
            pre = s
        if value is not None:
            value(pre, outs[i + 1])  # φ' below, for the whole chunk, if saved
        elif deriv is None:
            np.copyto(outs[i + 1], pre)
        else:
            act.forward(pre, outs[i + 1], derivs[i])
        if (i + 1) % chunk == 0 or i + 1 == spec.depth:
            _finish_chunk(i - i % chunk, i + 1, h[1:], deriv, slope, observe)

    return Tape(h[:-1], h[1:], deriv, unsaved, xhat, inv_std, h[-1])


def _forward_pre(
    spec: NetworkSpec,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray] | None,
    x: np.ndarray,
    observe: Observer | None,
    chunk: int,
) -> Tape:
    act = ACTIVATIONS[spec.activation]
    dtype, alpha = x.dtype, spec.residual_scale
    q = _allocate(spec, dtype, spec.depth)  # q[i] = φ(N(u_i)), the input of matmul i
    deriv, unsaved = _derivatives(spec, act, dtype)
    axis, xhat, inv_std = _norm_buffers(spec, dtype)
    # The residual stream needs only three (B, n) buffers: the block input, the current value
    # and the next one.
    pool = [x.copy(), np.empty_like(x), np.empty_like(x)]
    u, block_in = pool[0], pool[0]

    k = spec.block_size if spec.residual else 0
    acts = list(q)  # (B, n) views made once, not once per layer
    derivs = list(deriv) if deriv is not None else []
    value, slope = act.split or (None, None)
    for i in range(spec.depth):
        if k and i % k == 0:
            block_in = u
        pre = u
        if axis is not None:
            assert xhat is not None and inv_std is not None
            normalize(u, axis, xhat[i], inv_std[i])
            pre = xhat[i]
        if value is not None:
            value(pre, acts[i])  # φ' below, for the whole chunk, if saved
        elif deriv is None:
            np.copyto(acts[i], pre)
        else:
            act.forward(pre, acts[i], derivs[i])
        nxt = next(b for b in pool if b is not u and b is not block_in)
        np.matmul(acts[i], weights[i], out=nxt)  # (B, n) @ (n, n)
        if biases is not None:
            nxt += biases[i]
        if k and (i + 1) % k == 0:
            # the addition: nothing follows it, so the stream stays an identity path
            if alpha != 1.0:
                nxt *= alpha
            nxt += block_in
        u = nxt
        if (i + 1) % chunk == 0 or i + 1 == spec.depth:
            _finish_chunk(i - i % chunk, i + 1, q, deriv, slope, observe)

    return Tape(q, q, deriv, unsaved, xhat, inv_std, u.copy())


def _finish_chunk(
    start: int,
    stop: int,
    act_out: np.ndarray,
    deriv: np.ndarray | None,
    slope: Slope | None,
    observe: Observer | None,
) -> None:
    """Layers [start, stop) are done: φ' where it follows from φ, then the observer."""
    out = act_out[start:stop]
    if slope is not None and deriv is not None:
        slope(out, deriv[start:stop])
    if observe is not None:
        observe(start, stop, out, None if deriv is None else deriv[start:stop])
