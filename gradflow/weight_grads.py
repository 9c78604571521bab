"""‖∂L/∂W_i‖ and ‖∂L/∂b_i‖ of every layer, without forming ∂L/∂W_i unless it is kept.

∂L/∂W_i = A_iᵀ G_i, with A_i (B, n) the input of layer i and G_i (B, n) its ∂L/∂z. The report
needs only the norm, and when the batch is smaller than the width the B×B Gram matrices give it
for less work than the n×n product:

    ‖A_iᵀ G_i‖_F² = ⟨A_i A_iᵀ, G_i G_iᵀ⟩_F     two symmetric products, ~B²·n/2 multiply-adds
                                               each (BLAS syrk), instead of one of B·n²

The Frobenius sum can cancel (off-diagonal Gram entries have either sign), so each layer checks
it: where ⟨|A Aᵀ|, |G Gᵀ|⟩ exceeds ⟨A Aᵀ, G Gᵀ⟩ by more than 2^12, or either leaves the float
range, that layer's norm is taken from the explicit product instead.

The explicit product is used throughout when the gradients are kept, when the batch is not
smaller than the width, and in float32: there a float32 Gram sum would keep too few digits, and
Grams formed in float64 cost as much as the float32 product they replace.

Layers are processed in chunks: one batched matmul per chunk amortizes NumPy's per-call cost,
which dominates at small width.
"""

from __future__ import annotations

import numpy as np

from gradflow.scaling import checked_norm, sum_sq, times_pow2
from gradflow.spec import NetworkSpec

_CHUNK_BYTES = 2 << 20  # batch a chunk of layers while its buffers fit in cache
_MAX_CANCEL = 2.0**12  # ⟨|P|, |Q|⟩ / ⟨P, Q⟩ above this: the Gram sum lost digits, redo explicitly
_GRAM_RANGE = (2.0**-900, 2.0**900)  # the Gram sum and its bound must lie well inside float64


def uses_gram(spec: NetworkSpec, keep: bool) -> bool:
    return not keep and spec.batch < spec.width and spec.dtype.value == "float64"


def _layer_bytes(spec: NetworkSpec, itemsize: int, gram: bool) -> int:
    batch, n = spec.batch, spec.width
    if gram:  # ∂L/∂z and two B×B Grams
        return (batch * n + 2 * batch * batch) * itemsize
    return (batch * n + n * n) * itemsize  # ∂L/∂z and ∂L/∂W


def chunk_layers(spec: NetworkSpec, itemsize: int, gram: bool) -> int:
    """How many layers one batched product handles."""
    return max(1, min(spec.depth, _CHUNK_BYTES // _layer_bytes(spec, itemsize, gram)))


def buffer_bytes(spec: NetworkSpec, itemsize: int, keep: bool) -> int:
    """Working memory of the weight-gradient norms (kept gradients not included)."""
    gram = uses_gram(spec, keep)
    explicit = 0 if not gram else spec.width * spec.width * itemsize  # one redone layer
    return chunk_layers(spec, itemsize, gram) * _layer_bytes(spec, itemsize, gram) + explicit


class WeightGradients:
    """Collects each layer's ∂L/∂z (scaled by 2**-exponent[i]) and turns chunks of layers into
    (mantissa, exponent) rows of ‖∂L/∂W‖ and ‖∂L/∂b‖."""

    def __init__(self, spec: NetworkSpec, dense_in: np.ndarray, keep: bool) -> None:
        depth, batch, n, dtype = spec.depth, spec.batch, spec.width, dense_in.dtype
        self.gram = uses_gram(spec, keep)
        self.chunk = chunk_layers(spec, dtype.itemsize, self.gram)
        self.dense_in = dense_in
        self.dz = np.empty((self.chunk, batch, n), dtype=dtype)
        self.slots: list[np.ndarray] = list(self.dz)  # views made once, not per layer
        self.exponent = [0] * depth
        self.ones = np.ones((1, batch), dtype=dtype)
        self.weight = np.zeros((depth, 2))  # columns: mantissa, exponent
        self.bias = np.zeros((depth, 2))
        if self.gram:
            self.grams = np.empty((2, self.chunk, batch, batch), dtype=dtype)  # A Aᵀ and G Gᵀ
            self.dw = np.empty((1, n, n), dtype=dtype)  # for a layer that must be redone
        else:
            self.dw = np.empty((self.chunk, n, n), dtype=dtype)
        self.kept_w: list[np.ndarray] | None = [] if keep else None
        self.kept_b: list[np.ndarray] | None = [] if keep else None

    def flush(self, layer: int) -> None:
        """Norms for the chunk that starts at ``layer``, whose ∂L/∂z are all in their slots."""
        stop = min(layer + self.chunk, len(self.exponent))
        count = stop - layer
        a, dz = self.dense_in[layer:stop], self.dz[:count]
        exponents = self.exponent[layer:stop]
        db = np.matmul(self.ones, dz)[:, 0, :]  # (K, n): the batch sum, as one BLAS call
        _fill(self.bias[layer:stop], np.vecdot(db, db), exponents, db)
        if self.gram:
            rows = self.weight[layer:stop]
            sq, redo = self._gram_sq(a, dz)
            rows[:, 0] = np.sqrt(sq)
            rows[:, 1] = exponents
            if redo.any():
                for j in np.flatnonzero(redo):
                    dw = np.matmul(a[j].T, dz[j], out=self.dw[0])
                    rows[j] = checked_norm(sum_sq(dw), dw, exponents[j])
            return
        dw = self.dw[:count]
        np.matmul(a.transpose(0, 2, 1), dz, out=dw)  # (K, n, n)
        flat = dw.reshape(count, -1)
        _fill(self.weight[layer:stop], np.vecdot(flat, flat), exponents, dw)
        if self.kept_w is not None and self.kept_b is not None:
            # Layers arrive in reverse; kept lists are reversed once at the end.
            for k in reversed(range(count)):
                e = exponents[k]
                self.kept_w.append(times_pow2(dw[k], e))
                self.kept_b.append(times_pow2(db[k], e))

    def _gram_sq(self, a: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """⟨A Aᵀ, G Gᵀ⟩ for each layer of the chunk, and which layers must be redone."""
        count = len(a)
        p, q = self.grams[0, :count], self.grams[1, :count]
        np.matmul(a, a.transpose(0, 2, 1), out=p)  # one operand twice: NumPy calls syrk
        np.matmul(dz, dz.transpose(0, 2, 1), out=q)
        p, q = p.reshape(count, -1), q.reshape(count, -1)
        sq = np.vecdot(p, q)
        np.abs(p, out=p)
        np.abs(q, out=q)
        bound = np.vecdot(p, q)
        low, high = _GRAM_RANGE
        kept_digits = (bound <= _MAX_CANCEL * sq) & (sq > low) & (bound < high)
        return sq, ~kept_digits


def _fill(rows: np.ndarray, sq: np.ndarray, exponents: list[int], values: np.ndarray) -> None:
    """rows ← (√sq, exponent); where a sum of squares left the float range, the exact path."""
    rows[:, 0] = np.sqrt(sq)
    rows[:, 1] = exponents
    in_range = (sq > 0) & (sq < np.inf)
    if not in_range.all():
        for k in np.flatnonzero(~in_range):
            rows[k] = checked_norm(float(sq[k]), values[k], exponents[k])
