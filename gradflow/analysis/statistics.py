"""Statistics of each layer's activations, gathered during the forward pass while the values
are still in cache: mean, standard deviation, dead and saturated shares."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from gradflow.engine.activations import ACTIVATIONS
from gradflow.engine.magnitudes import LIMITS, scale_slabs, slab_shifts, times_pow2
from gradflow.engine.passes import norm_after_add
from gradflow.engine.spec import NetworkSpec

_STATS_CHUNK_BYTES = 1 << 20  # measure activations in chunks that are still in cache


# A named tuple, as the report's records (analysis/results.py).
class ActivationStats(NamedTuple):
    mean: np.ndarray  # (L,)
    std: np.ndarray
    dead: np.ndarray  # nan where the activation is not ReLU-like
    saturated: np.ndarray  # nan where the activation does not saturate
    finite: np.ndarray  # bool


def stats_chunk_layers(spec: NetworkSpec) -> int:
    """Layers measured per call: many at small width (amortizing NumPy's per-call cost), few
    at large width (so the values are still in cache from the forward pass)."""
    return max(1, min(spec.depth, _STATS_CHUNK_BYTES // (spec.batch * spec.width * 8)))


def statistics_bytes(spec: NetworkSpec) -> int:
    """Bytes ``StatsCollector`` holds: five per-layer arrays, and for one chunk of layers a
    boolean mask and, where a variance cancelled, the centred values."""
    itemsize = 8 if spec.dtype.value == "float64" else 4
    chunk = stats_chunk_layers(spec) * spec.batch * spec.width
    return spec.depth * 5 * 8 + chunk * (1 + itemsize)


class StatsCollector:
    """Statistics of each layer's activation output, fed chunk by chunk during forward."""

    def __init__(self, spec: NetworkSpec) -> None:
        depth, self.spec = spec.depth, spec
        self.act = ACTIVATIONS[spec.activation]
        self.mean, self.std = np.empty(depth), np.empty(depth)
        self.dead, self.saturated = np.full(depth, np.nan), np.full(depth, np.nan)

    def __call__(self, start: int, stop: int, out: np.ndarray, deriv: np.ndarray | None) -> None:
        """Measure layers [start, stop): out and deriv are their (K, B, n) outputs and φ' (None
        where it is not saved)."""
        rows = slice(start, stop)
        self.mean[rows], self.std[rows] = mean_std(out)
        if self.act.relu_like:
            # a unit is dead when it is inactive (φ(z) > 0 ⇔ z > 0) for every row of the batch
            alive = np.count_nonzero((out > 0).any(axis=1), axis=1)
            self.dead[rows] = 1.0 - alive / out.shape[2]
        if self.act.saturated_below is not None:
            assert deriv is not None  # saved where saturation is counted
            flat = deriv.reshape(len(deriv), -1)
            below = flat < self.act.saturated_below
            self.saturated[rows] = _count_rows(below) / flat.shape[1]

    def result(self) -> ActivationStats:
        if norm_after_add(self.spec):  # a Post-LN block's output is N(...), not φ(...)
            self.dead[self.spec.block_size - 1 :: self.spec.block_size] = np.nan
            self.saturated[self.spec.block_size - 1 :: self.spec.block_size] = np.nan
        finite = np.isfinite(self.mean) & np.isfinite(self.std)
        return ActivationStats(self.mean, self.std, self.dead, self.saturated, finite)


def mean_std(out: np.ndarray, rescale: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each (B, n) slab of out (K, B, n), as float64."""
    count = out.shape[1] * out.shape[2]
    flat = out.reshape(len(out), count)
    # One BLAS pass each for Σx and Σx², in the run's dtype. Where the mean dwarfs the spread
    # that loses digits: those layers are redone from the centered values. Where the squares
    # leave the float range (vanishing or exploding values) the layers are measured again
    # scaled by a power of two, and where that fails too (inf, NaN) exactly, one by one.
    mean = flat @ np.full(count, 1.0 / count, dtype=flat.dtype)
    mean_sq = np.vecdot(flat, flat).astype(np.float64) / count
    mean64 = mean.astype(np.float64)
    var = mean_sq - mean64 * mean64
    limits = LIMITS[flat.dtype]
    tolerance, (lo, hi) = limits.variance_cancel, limits.moments_range
    in_range = (mean_sq > lo) & (mean_sq < hi)
    cancelled = in_range & ~(var > tolerance * mean64 * mean64)
    if cancelled.any():
        rows = np.flatnonzero(cancelled)
        centered = _take(flat, rows) - mean[rows, None]
        var[rows] = np.vecdot(centered, centered).astype(np.float64) / count
    std = np.sqrt(np.maximum(var, 0.0))
    if not in_range.all():
        bad = np.flatnonzero(~in_range)
        if rescale:
            slabs = _take(out, bad)
            shifts = slab_shifts(slabs)
            scaled = scale_slabs(slabs, shifts)
            mean64[bad], std[bad] = (np.ldexp(v, -shifts) for v in mean_std(scaled, False))
        else:  # all-zero layers (a dead network) have mean and std 0 already
            for k in bad[flat[bad].any(axis=1)]:
                mean64[k], std[k] = _exactmean_std(flat[k])
    return mean64, std


def _count_rows(mask: np.ndarray) -> np.ndarray:
    """True values in each row of mask (K, m), as int64 (K,)."""
    if mask.shape[1] >= _LONG_ROW:  # one call a row: count_nonzero's own loop is the fastest
        return np.array([np.count_nonzero(row) for row in mask], dtype=np.int64)
    rows, width = mask.shape
    if width % 8 or not mask.flags.c_contiguous:
        counts: np.ndarray = mask.sum(axis=1, dtype=np.int64)  # one call for all rows
        return counts
    # Eight 0/1 bytes a word: a sum of words sums each byte lane apart (at most width/8 < 256
    # in a lane), in an eighth of the additions and with no cast; then the lanes are summed.
    lanes = mask.view(np.uint64).sum(axis=1)  # (K,)
    counts = lanes.view(np.uint8).reshape(rows, 8).sum(axis=1, dtype=np.int64)
    return counts


# From this many values a row, counting row by row beats one summing call (~1.2 ns a value
# against ~0.2 ns and ~1.2 µs a call)
_LONG_ROW = 1024


def _take(stack: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """stack[rows]: a view where the rows are one run (the usual case), else a copy."""
    run = rows[-1] - rows[0] + 1 == len(rows)
    taken: np.ndarray = stack[rows[0] : rows[-1] + 1] if run else stack[rows]
    return taken


def _exactmean_std(values: np.ndarray) -> tuple[float, float]:
    """Two passes over the values scaled by a power of two near their largest magnitude, so
    no square under- or overflows; inf and NaN come out as they are."""
    peak = float(np.max(np.abs(values)))
    if peak == 0.0 or not math.isfinite(peak):
        return float(values.mean(dtype=np.float64)), (0.0 if peak == 0.0 else math.nan)
    shift = math.frexp(peak)[1]
    wide = values.astype(np.float64)
    scaled = times_pow2(wide, -shift, out=wide)
    return math.ldexp(float(scaled.mean()), shift), math.ldexp(float(scaled.std()), shift)
