"""‖∂L/∂W_i‖ and ‖∂L/∂b_i‖ of every layer, without forming ∂L/∂W_i unless it is kept.

∂L/∂W_i = A_iᵀ G_i, with A_i (B, n) the input of layer i and G_i (B, n) its ∂L/∂z. The report
needs only the norm, and when the batch is smaller than the width the B×B Gram matrices give it
for less work than the n×n product:

    ‖A_iᵀ G_i‖_F² = ⟨A_i A_iᵀ, G_i G_iᵀ⟩_F     two symmetric products, ~B²·n/2 multiply-adds
                                               each (BLAS syrk), instead of one of B·n²

The Grams are formed in the pass's dtype and their Frobenius sums taken in float64. Each layer
checks its sum:

- cancellation: off-diagonal Gram entries have either sign, so the sum can lose digits. Where
  ⟨|A Aᵀ|, |G Gᵀ|⟩ exceeds ⟨A Aᵀ, G Gᵀ⟩ by more than 2^12 (float64) or 2^8 (float32), the loss
  could exceed a relative 2^-40 or 2^-15. (Measured in float32 on 920 layers of eight networks:
  at most 1e-6, against 1.2e-6 for the explicit float32 product, which sums in float32.)
- range: products of tiny values (vanishing activations) fall below the normal range, each off
  by up to half the smallest subnormal; their total must stay below the sum's rounding. Sums
  and bounds must also lie well inside float64.

Layers whose activations are far from 1 (the largest value of their first row beyond 2^±32 in
float32, 2^±256 in float64) are scaled by a power of two before the products, so vanishing
activations do not underflow there. A layer that still fails is taken again with A_i and G_i
scaled to max |x| in [1/2, 1) by exact powers of two; one whose sum cancelled, or still fails,
takes the explicit product.

The explicit product is used throughout when the gradients are kept and when the batch is not
smaller than the width. Layers are processed in chunks: one batched matmul per chunk amortizes
NumPy's per-call cost, which dominates at small width.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from gradflow.engine.magnitudes import (
    GRAM_SUM_RANGE,
    LIMITS,
    checked_norm,
    scale_slabs,
    slab_shifts,
    sum_sq,
    times_pow2,
    unit_scale,
)
from gradflow.engine.products import (
    both,
    hand_over,
    product,
    side_worker,
    worth_a_thread,
    worth_the_side,
)
from gradflow.engine.spec import Choice, NetworkSpec

if TYPE_CHECKING:
    from concurrent.futures import Future

_CHUNK_BYTES = 2 << 20  # batch a chunk of layers while its buffers fit in cache
# ⟨|P|, |Q|⟩ / ⟨P, Q⟩ above this: the Gram sum may have lost too many digits


class Method(Choice):
    """How ‖∂L/∂W‖ is taken."""

    AUTO = "auto"  # Gram matrices when the batch is smaller than the width, else explicit
    GRAM = "gram"  # ⟨A Aᵀ, G Gᵀ⟩ (falls back to the explicit product per layer if it must)
    EXPLICIT = "explicit"  # form every ∂L/∂W = Aᵀ G (n × n)


def uses_gram(spec: NetworkSpec, keep: bool, method: Method = Method.AUTO) -> bool:
    """Whether norms come from Gram matrices; kept gradients are always formed explicitly."""
    if keep or method is Method.EXPLICIT:
        return False
    return method is Method.GRAM or spec.batch < spec.width


def _layer_bytes(spec: NetworkSpec, itemsize: int, gram: bool) -> int:
    batch, n = spec.batch, spec.width
    if gram:  # ∂L/∂z and two B×B Grams (float32: formed in float32, summed in float64)
        gram_bytes = 8 if itemsize == 8 else itemsize + 8
        return batch * n * itemsize + 2 * batch * batch * gram_bytes
    return (batch * n + n * n) * itemsize  # ∂L/∂z and ∂L/∂W


def chunk_layers(spec: NetworkSpec, itemsize: int, gram: bool) -> int:
    """How many layers one batched product handles."""
    return max(1, min(spec.depth, _CHUNK_BYTES // _layer_bytes(spec, itemsize, gram)))


def buffer_bytes(spec: NetworkSpec, keep: bool, method: Method) -> int:
    """Bytes ``WeightGradients`` holds: its chunk buffers, the per-layer records, and with
    ``keep`` every ∂L/∂W and ∂L/∂b formed."""
    itemsize = np.dtype(spec.dtype.value).itemsize
    gram = uses_gram(spec, keep, method)
    chunk = chunk_layers(spec, itemsize, gram)
    n = spec.width
    total = chunk * _layer_bytes(spec, itemsize, gram)  # ∂L/∂z slots and Grams or ∂L/∂W
    if not keep and takes_norms_aside(spec, gram, chunk):  # a second chunk of slots, and views
        total += chunk * (spec.batch * n * itemsize + SLOT_VIEW_BYTES)
    total += spec.depth * (2 * 2 * 8 + 40)  # weight and bias rows, the exponent list
    if gram:
        # a chunk's A rescaled; a layer taken again: its A and G rescaled, and its product
        total += ((chunk + 2) * spec.batch * n + n * n) * itemsize
    if keep:
        total += spec.depth * (n * n + n) * itemsize
    return total


SLOT_VIEW_BYTES = 136  # a slot's view and its list entry, as tracemalloc counts them


def takes_norms_aside(spec: NetworkSpec, gram: bool, chunk: int) -> bool:
    """Whether a chunk's norms are enough work for the side worker (on two threads)."""
    batch, n = spec.batch, spec.width
    layer = batch * n * (batch if gram else n)  # the Grams' (two syrk) or Aᵀ G's
    return worth_the_side(
        chunk * layer, spec.depth * layer, np.dtype(spec.dtype.value), (batch, n, n)
    )


class GradientBuffers(NamedTuple):
    """Where a pass writes every ∂L/∂W and ∂L/∂b at true scale, and the ∂L/∂z slots it uses
    on the way: a training step's buffers, allocated once (``gradient_buffers``)."""

    weight: np.ndarray  # (L, n, n)
    bias: np.ndarray  # (L, n)
    dz: np.ndarray  # (chunk, B, n), chunk = chunk_layers(spec, itemsize, gram=False)


def gradient_buffers(spec: NetworkSpec, weight: np.ndarray, bias: np.ndarray) -> GradientBuffers:
    """Buffers for passes that write every ∂L/∂W into ``weight`` (L, n, n), ∂L/∂b into
    ``bias`` (L, n)."""
    chunk = chunk_layers(spec, weight.dtype.itemsize, gram=False)
    return GradientBuffers(weight, bias, np.empty((chunk, spec.batch, spec.width), weight.dtype))


class WeightGradients:
    """Collects each layer's ∂L/∂z (scaled by 2**-exponent[i]) and turns chunks of layers into
    (mantissa, exponent) rows of ‖∂L/∂W‖ and ‖∂L/∂b‖."""

    def __init__(
        self,
        spec: NetworkSpec,
        dense_in: np.ndarray,
        keep: bool,
        method: Method = Method.AUTO,
        into: GradientBuffers | None = None,
        threads: int = 1,
    ) -> None:
        depth, batch, n, dtype = spec.depth, spec.batch, spec.width, dense_in.dtype
        self.into = into  # the products go straight into these, so they must be formed
        self.gram = uses_gram(spec, keep or into is not None, method)
        self.chunk = chunk_layers(spec, dtype.itemsize, self.gram)
        self.dense_in = dense_in
        # Norms alone (no gradients kept or written out) are side work: a chunk's are taken on
        # the side worker while the pass goes on to the next chunk (``products.side_worker``).
        sided = not keep and into is None and takes_norms_aside(spec, self.gram, self.chunk)
        self.side = side_worker(threads) if sided else None
        self.pending: list[Future[None]] = []  # the chunks handed to the side worker, in order
        # a chunk's two Grams (or two halves of its layers) side by side, where not on the side
        self.threads = 1 if self.side is not None else threads
        # Aᵀ G (n, B) @ (B, n), where formed: large ones as two halves (``products.py``)
        self.dw_product = product(n, batch, n, dtype, threads)
        if into is None:  # on the side, two chunks' slots: one filled while one is read
            slots = self.chunk * (1 if self.side is None else 2)
            self.dz = np.empty((slots, batch, n), dtype=dtype)
        else:  # the caller's slots, reused pass after pass
            assert into.dz.shape == (self.chunk, batch, n)
            self.dz = into.dz
        # slots[i % period]: where layer i's ∂L/∂z (scaled by 2**-exponent[i]) waits for its
        # chunk. The gradient flow fills both, and layers arrive in reverse, so once the first
        # layer of a chunk is in, it calls ``flush`` for the whole chunk.
        self.slots: list[np.ndarray] = list(self.dz)  # views made once, not per layer
        self.period = len(self.slots)
        self.exponent = [0] * depth
        self.ones = np.ones((1, batch), dtype=dtype)
        self.weight = np.zeros((depth, 2))  # columns: mantissa, exponent
        self.bias = np.zeros((depth, 2))
        if self.gram:
            self.grams = np.empty((2, self.chunk, batch, batch))  # A Aᵀ and G Gᵀ, in float64
            narrow = dtype != np.float64  # formed in the pass's dtype, summed in float64
            self.narrow = np.empty_like(self.grams, dtype=dtype) if narrow else None
            self.max_cancel = LIMITS[dtype].gram_cancel
            info = np.finfo(dtype)
            # a product below the normal range is off by up to half the smallest subnormal
            self.underflow = n * float(info.smallest_subnormal) / 2
            self.eps = float(info.eps)
            # A is brought near 1 where its first row is beyond 2^±window (float32: 32)
            self.window = LIMITS[dtype].gram_window
            self.prescaled: np.ndarray | None = None  # made when a chunk first needs it
            # for a layer that must be taken again: A and G rescaled, and its explicit product
            self.scaled = np.empty((2, batch, n), dtype=dtype)
            self.dw = np.empty((1, n, n), dtype=dtype)
        elif into is None:
            self.dw = np.empty((self.chunk, n, n), dtype=dtype)
        self.kept_w: list[np.ndarray] | None = [] if keep else None
        self.kept_b: list[np.ndarray] | None = [] if keep else None

    def flush(self, layer: int) -> None:
        """Norms for the chunk that starts at ``layer``, whose ∂L/∂z are all in their slots:
        taken here, or handed to the side worker. Then the slots the next chunk fills are free:
        the chunk before this one, which used them, is done."""
        if self.side is None:
            self._flush(layer)
            return
        self.pending.append(hand_over(self.side, self._flush, layer))
        if len(self.pending) > 1:
            self.pending.pop(0).result()

    def finish(self) -> None:
        """Every chunk's norms are in (raising a side worker's error here)."""
        while self.pending:
            self.pending.pop(0).result()

    def _flush(self, layer: int) -> None:
        stop = min(layer + self.chunk, len(self.exponent))
        count = stop - layer
        first = layer % self.period  # the chunk's slots
        a, dz = self.dense_in[layer:stop], self.dz[first : first + count]
        exponents = self.exponent[layer:stop]
        # converted once: NumPy converts a list of Python ints element by element, slowly
        exps = np.fromiter(exponents, np.int64, count)
        db = np.matmul(self.ones, dz)[:, 0, :]  # (K, n): the batch sum, as one BLAS call
        _fill(self.bias[layer:stop], np.vecdot(db, db), exps, db)
        if self.gram:
            rows = self.weight[layer:stop]
            near_one, shifts = self._near_one(a)
            sq, redo, cancels = self._gram_sq(near_one, dz)
            rows[:, 0] = np.sqrt(sq)
            rows[:, 1] = np.subtract(exps, shifts)
            for j in np.flatnonzero(redo):
                rows[j] = self._again(a[j], dz[j], exponents[j], bool(cancels[j]))
            return
        dw = self.dw[:count] if self.into is None else self.into.weight[layer:stop]
        at = a.transpose(0, 2, 1)
        work = count * a.shape[1] * a.shape[2] ** 2
        if self.dw_product is not np.matmul:  # each layer's product in halves
            for k in range(count):
                self.dw_product(at[k], dz[k], out=dw[k])
        elif count > 1 and worth_a_thread(work // 2, a.dtype, self.threads):  # halves of layers
            h = count // 2
            both(lambda: np.matmul(at[:h], dz[:h], out=dw[:h]),
                 lambda: np.matmul(at[h:], dz[h:], out=dw[h:]))  # fmt: skip
        else:
            np.matmul(at, dz, out=dw)  # (K, n, n)
        flat = dw.reshape(count, -1)
        _fill(self.weight[layer:stop], np.vecdot(flat, flat), exps, dw)
        if self.into is not None:
            self.into.bias[layer:stop] = db
            for k, e in enumerate(exponents):
                if e:  # ∂L/∂z was kept at scale 2**-e: bring the products to true scale
                    times_pow2(dw[k], e, out=dw[k])
                    times_pow2(self.into.bias[layer + k], e, out=self.into.bias[layer + k])
        if self.kept_w is not None and self.kept_b is not None:
            # Layers arrive in reverse; kept lists are reversed once at the end.
            for k in reversed(range(count)):
                e = exponents[k]
                self.kept_w.append(times_pow2(dw[k], e))
                self.kept_b.append(times_pow2(db[k], e))

    def _near_one(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A with each layer multiplied by 2**shift, where the first row's largest value is
        beyond 2^±window (vanishing or exploding activations, whose squares would leave the
        float range in the Gram product); and the shifts. A itself where none is that far."""
        shifts = slab_shifts(a)
        shifts[np.abs(shifts) <= self.window] = 0
        if not shifts.any():
            return a, shifts
        if self.prescaled is None:
            self.prescaled = np.empty_like(self.dz[: self.chunk])  # one chunk, as its slots
        return scale_slabs(a, shifts, out=self.prescaled[: len(a)]), shifts

    def _again(
        self, a: np.ndarray, dz: np.ndarray, exponent: int, cancels: bool
    ) -> tuple[float, int]:
        """One layer whose Gram sum failed its check, with A and G scaled to max |x| in [1/2, 1)
        by powers of two: the Gram sum once more if it had left the range, the explicit product
        if it cancelled (scaling cannot cure that) or still fails."""
        if not (a.any() and dz.any()):  # a dead layer: exactly 0
            return 0.0, exponent
        a, a_shift = unit_scale(a, self.scaled[0])
        dz, dz_shift = unit_scale(dz, self.scaled[1])
        exponent -= a_shift + dz_shift
        if not cancels:
            sq, redo, _ = self._gram_sq(a[None], dz[None])
            if not redo[0]:
                return float(np.sqrt(sq[0])), exponent
        dw = np.matmul(a.T, dz, out=self.dw[0])
        return checked_norm(sum_sq(dw), dw, exponent)

    def _gram_sq(self, a: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """⟨A Aᵀ, G Gᵀ⟩ for each layer of a (K, B, n) stack, which layers failed the check, and
        which of those failed it by cancellation alone."""
        count = len(a)
        p, q = self.grams[0, :count], self.grams[1, :count]
        formed = (p, q) if self.narrow is None else (self.narrow[0, :count], self.narrow[1, :count])
        # one operand twice: NumPy calls syrk. Each Gram is the same bits on either thread.
        a_gram = partial(np.matmul, a, a.transpose(0, 2, 1), out=formed[0])
        g_gram = partial(np.matmul, dz, dz.transpose(0, 2, 1), out=formed[1])
        if worth_a_thread(count * a.shape[1] ** 2 * a.shape[2] // 2, a.dtype, self.threads):
            both(a_gram, g_gram)
        else:
            a_gram()
            g_gram()
        if self.narrow is not None:
            np.copyto(p, formed[0])
            np.copyto(q, formed[1])
        p, q = p.reshape(count, -1), q.reshape(count, -1)
        sq = np.vecdot(p, q)
        np.abs(p, out=p)
        np.abs(q, out=q)
        bound = np.vecdot(p, q)
        # products that fell below the normal range add an error of at most this much to sq
        lost = self.underflow * (p.sum(axis=1) + q.sum(axis=1))
        low, high = GRAM_SUM_RANGE
        in_range = (lost <= self.eps * sq) & (sq > low) & (bound < high)
        cancels = bound > self.max_cancel * sq
        return sq, ~in_range | cancels, in_range & cancels


def _fill(rows: np.ndarray, sq: np.ndarray, exponents: np.ndarray, values: np.ndarray) -> None:
    """rows ← (√sq, exponent) for K layers (exponents (K,) int64); where a sum of squares left
    the float range, the exact path."""
    rows[:, 0] = np.sqrt(sq)
    rows[:, 1] = exponents
    in_range = (sq > 0) & (sq < np.inf)
    if not in_range.all():
        # all-zero layers (a dead network) already have their exact norm, 0
        nonzero = values.reshape(len(values), -1).any(axis=1)
        for k in np.flatnonzero(~in_range & nonzero):
            rows[k] = checked_norm(float(sq[k]), values[k], int(exponents[k]))
