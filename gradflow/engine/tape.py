"""The forward cache and the forward steps that fill it.

The tape holds what backward needs and nothing else, in arrays allocated once per pass:

    acts      (L+1, B, n) post order: acts[i] is the input of layer i's matmul, acts[i+1] its
              output; (L, B, n) pre order, where acts[i] = φ(N(u)) is both
    deriv     (L, B, n) φ' where it is saved (all but the ReLUs and linear φ; ``phi_prime``)
    xhat      (S, B, n) normalised values at each of S normalisation sites, and ``inv_std``
              1/sqrt(var + eps) beside them; a Post-LN block's output *is* its x̂, so there
              they are views of ``acts``, not arrays of their own

The forward steps (``linear``, ``norm``, ``phi``, ``add``) write into the tape or into a few
(B, n) scratch buffers with ``out=``, so the hot loop allocates nothing. Finished layers are
handed on in chunks while their values are still in cache (``finish``) to the observer
(statistics, progress).

``phi_prime(i)`` hides where φ' lives: saved by forward (sigmoid, tanh, GELU, ...), computed
from the saved φ a chunk at a time (the ReLUs, whose φ' follows exactly from φ and which
forward has no other use for), or None (linear φ).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum

import numpy as np

from gradflow.engine.activations import ACTIVATIONS, Slope, Value
from gradflow.engine.normalization import NORM_AXIS, inv_std_shape, normalize
from gradflow.engine.products import product
from gradflow.engine.redrawn import RedrawnWeights, Transposed
from gradflow.engine.spec import NetworkSpec

# observe(start, stop, act_out, deriv): layers [start, stop) are done; their (K, B, n) activation
# outputs and φ' are handed over while they are still in cache. φ' is None where it is not
# saved (the ReLUs, linear φ).
Observer = Callable[[int, int, np.ndarray, np.ndarray | None], None]


class Order(Enum):
    """Where a layer's φ sits relative to its matmul, which decides what the tape keeps."""

    POST = "post"  # h = φ(N(a W + b)): keep each layer's output, the next layer's input
    PRE = "pre"  # u = φ(N(u_prev)) W + b: keep φ(N(u_prev)), the matmul's input


def tape_bytes(spec: NetworkSpec, order: Order, norm_after_add: bool) -> int:
    """Bytes the tape allocates for ``spec``: the same sums as ``Tape.__init__``."""
    size = np.dtype(spec.dtype.value).itemsize
    layer = spec.batch * spec.width * size
    act = ACTIVATIONS[spec.activation]
    total = (spec.depth + (order is Order.POST)) * layer  # acts
    total += SCRATCH * layer
    # per layer, array views made once: the weights as the pass sees them, their transposes
    # and the outputs (at depth 100,000 some 40 MB)
    views = 3 * spec.depth
    derive = derives_slope(spec)
    if not (act.identity or derive):
        total += spec.depth * layer  # deriv
        views += spec.depth
    if derive:
        total += _slope_chunk(spec) * layer  # φ' of one chunk, computed from φ
    axis = NORM_AXIS[spec.norm]
    if axis is not None:
        sites = spec.blocks if norm_after_add else spec.depth
        inv = int(np.prod(inv_std_shape(axis, spec.batch, spec.width)))
        total += sites * inv * size
        views += 2 * sites
        if not norm_after_add:  # x̂ arrays of their own (Post-LN's are the block outputs)
            total += sites * layer
    return total + views * VIEW_BYTES


def derives_slope(spec: NetworkSpec) -> bool:
    """Whether φ' is computed by backward from the saved φ a chunk at a time instead of saved
    for every layer: where it follows exactly from φ and forward has no use for it (the
    ReLUs)."""
    return ACTIVATIONS[spec.activation].slope_in_backward


VIEW_BYTES = 136  # an ndarray view and its list slot, as tracemalloc counts them
SCRATCH = 4  # (B, n) scratch buffers: z, the add's result, and two for the pre-order stream


def _slope_chunk(spec: NetworkSpec) -> int:
    return max(1, min(spec.depth, SLOPE_CHUNK_BYTES // (spec.batch * spec.width * 8)))


SLOPE_CHUNK_BYTES = 2 << 20  # φ' computed in backward, this much at a time


class Tape:
    """The forward cache of one pass, and the forward steps that write it."""

    def __init__(
        self,
        spec: NetworkSpec,
        order: Order,
        weights: Sequence[np.ndarray],
        biases: Sequence[np.ndarray] | None,
        x: np.ndarray,
        norm_out: Sequence[int] | None = None,
        chunk: int = 1 << 30,
        observe: Observer | None = None,
        threads: int = 1,
    ) -> None:
        """``norm_out``: for wirings whose normalisation is a layer's output (Post-LN), the
        layer whose output each site is; None: one site per layer, before its φ. ``threads``:
        how many the pass's products may use (the bits are the same for any count)."""
        depth, batch, n = spec.depth, spec.batch, spec.width
        dtype = x.dtype
        self.spec, self.order = spec, order
        self.norm_out = norm_out  # a Post-LN site's layer; None: a site is its layer
        self.weights, self.biases = weights, biases
        # Wᵀ for backward: views made once, or as read where the weights are redrawn
        self.weights_t: Sequence[np.ndarray] = (
            Transposed(weights) if isinstance(weights, RedrawnWeights) else [w.T for w in weights]
        )
        # a @ W for forward and backward's g @ Wᵀ: large ones as two halves (``products.py``)
        self.threads = threads
        self.product = product(batch, n, n, dtype, threads)
        self.act = ACTIVATIONS[spec.activation]
        self.alpha, self.skip_scale = spec.residual_scale, spec.skip_scale

        rows = depth + 1 if order is Order.POST else depth
        self.acts = np.empty((rows, batch, n), dtype=dtype)
        if order is Order.POST:
            self.acts[0] = x
            self.dense_in, self.act_out = self.acts[:-1], self.acts[1:]
        else:
            self.dense_in = self.act_out = self.acts
        self._act_out: list[np.ndarray] = list(self.act_out)  # views made once, not per layer

        act = self.act
        derive = derives_slope(spec)
        self.deriv: np.ndarray | None = None
        if not (act.identity or derive):
            self.deriv = np.empty((depth, batch, n), dtype=dtype)
        self._deriv: list[np.ndarray] = [] if self.deriv is None else list(self.deriv)
        self._value: Value | None = act.split[0] if act.split else None
        self._slope: Slope | None = act.split[1] if act.split else None
        # φ' computed from φ in backward, one chunk of layers at a time
        self._slope_chunk = _slope_chunk(spec)
        self._slopes = np.empty((self._slope_chunk, batch, n), dtype=dtype) if derive else None
        self._slope_rows: list[np.ndarray] = [] if self._slopes is None else list(self._slopes)
        self._slopes_from = depth  # first layer whose φ' is in _slopes (none yet)

        self.axis = NORM_AXIS[spec.norm]
        self.xhat: list[np.ndarray] = []
        self.inv_std: list[np.ndarray] = []
        if self.axis is not None:
            sites = depth if norm_out is None else len(norm_out)
            shape = inv_std_shape(self.axis, batch, n)
            self.inv_std = list(np.empty((sites, *shape), dtype=dtype))
            if norm_out is None:
                self.xhat = list(np.empty((sites, batch, n), dtype=dtype))
            else:  # the normalised values are the layer's output
                self.xhat = [self._act_out[i] for i in norm_out]

        # scratch: z (a matmul's result), the add's result, and the pre-order stream pair
        self.z, self.sum = np.empty_like(x), np.empty_like(x)
        self.stream = (np.empty_like(x), np.empty_like(x))
        self.chunk, self.observe, self.finished = chunk, observe, 0
        self.due = self._due()

    # ---- forward steps --------------------------------------------------------------------

    def linear(self, i: int, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """a W_i + b_i into ``out`` (default: the z scratch). a must be layer i's kept input."""
        z = self.z if out is None else out
        self.product(a, self.weights[i], out=z)  # (B, n) @ (n, n)
        if self.biases is not None:
            z += self.biases[i]
        return z

    def norm(self, site: int, z: np.ndarray) -> np.ndarray:
        """N(z) into the site's x̂, keeping 1/σ for backward; z itself without normalisation."""
        if self.axis is None:
            return z
        normalize(z, self.axis, self.xhat[site], self.inv_std[site])
        return self.xhat[site]

    def phi(self, i: int, z: np.ndarray) -> np.ndarray:
        """φ(z) into layer i's kept output, and φ' beside it where it is saved."""
        out = self._act_out[i]
        if self._value is not None:
            self._value(z, out)
        elif self.deriv is None:
            np.copyto(out, z)
        else:
            self.act.forward(z, out, self._deriv[i])
        return out

    def add(self, h_in: np.ndarray, v: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """s·h_in + α·v: the residual addition. Into ``out`` (default: the sum scratch)."""
        total = self.sum if out is None else out  # out may be v itself
        if self.alpha == 1.0 and self.skip_scale == 1.0:
            np.add(v, h_in, out=total)
            return total
        np.multiply(v, self.alpha, out=total)
        total += h_in if self.skip_scale == 1.0 else self.skip_scale * h_in
        return total

    def stream_buffer(self, busy: np.ndarray) -> np.ndarray:
        """The (B, n) stream buffer that is not ``busy`` (pre order keeps its stream there)."""
        return self.stream[1] if busy is self.stream[0] else self.stream[0]

    def finish(self, stop: int) -> None:
        """Layers below ``stop`` are done: hand on every whole chunk (and, at the last layer,
        the rest)."""
        depth = self.spec.depth
        while self.finished < stop and (self.finished + self.chunk <= stop or stop == depth):
            start, end = self.finished, min(self.finished + self.chunk, depth)
            if self.observe is not None:
                deriv = None if self.deriv is None else self.deriv[start:end]
                self.observe(start, end, self.act_out[start:end], deriv)
            self.finished = end
        self.due = self._due()

    def _due(self) -> int:
        """The layer whose end completes the next chunk to hand on (the last layer at most)."""
        return min(self.finished + self.chunk, self.spec.depth) - 1

    def rewind(self, x: np.ndarray) -> None:
        """Ready the tape for another pass of the same network on a new input x (B, n): every
        buffer is reused, and the weights and biases are read again where they are (a training
        step updates them in place)."""
        if self.order is Order.POST:
            self.acts[0] = x
        self.finished = 0
        self.due = self._due()
        self._slopes_from = self.spec.depth  # no φ' derived for the new pass yet

    # ---- what backward reads -------------------------------------------------------------

    def phi_prime(self, i: int) -> np.ndarray | None:
        """φ' at layer i, (B, n); None for a linear φ. Where φ' was not saved, it is derived
        from the saved φ for the chunk of layers ending at i (backward walks layers in reverse,
        so each chunk is derived once)."""
        if self._slopes is None:
            return self._deriv[i] if self._deriv else None
        assert self._slope is not None
        if not self._slopes_from <= i < self._slopes_from + self._slope_chunk:
            start = max(0, i + 1 - self._slope_chunk)
            self._slope(self.act_out[start : i + 1], self._slopes[: i + 1 - start])
            self._slopes_from = start
        return self._slope_rows[i - self._slopes_from]  # views made once, not per layer


class NonFinite(Exception):
    """A forward step gave a value that is not finite (``CheckedTape``)."""

    def __init__(self, layer: int) -> None:
        super().__init__(layer)
        self.layer = layer


class CheckedTape(Tape):
    """A tape whose every forward step checks its result and raises ``NonFinite`` with the
    step's layer at the first value that is not finite: a product (with its bias), a
    normalisation, φ, or the add that ends a block (its last layer's). A bounded φ of inf is
    finite, so a layer's output alone need not show where the trouble began. For locating a
    failure after the fact: a check a step costs a pass over every value."""

    _last = 0  # the layer of the last product: an add ends its block

    def linear(self, i: int, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        self._last = i
        return _finite(super().linear(i, a, out), i)

    def norm(self, site: int, z: np.ndarray) -> np.ndarray:
        layer = site if self.norm_out is None else self.norm_out[site]
        return _finite(super().norm(site, z), layer)

    def phi(self, i: int, z: np.ndarray) -> np.ndarray:
        return _finite(super().phi(i, z), i)

    def add(self, h_in: np.ndarray, v: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return _finite(super().add(h_in, v, out), self._last)


def _finite(values: np.ndarray, layer: int) -> np.ndarray:
    if not np.isfinite(values).all():
        raise NonFinite(layer)
    return values
