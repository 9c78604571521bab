"""Turn a pass's raw records into a Report: per-layer statistics, the split at each addition,
and a summary with a verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gradflow.activations import ACTIVATIONS
from gradflow.backward import Records
from gradflow.build import Network
from gradflow.losses import LossResult
from gradflow.report import (
    Blocks,
    Gradients,
    Layers,
    Magnitudes,
    Report,
    Summary,
    Thresholds,
    Verdict,
)
from gradflow.scaling import scale_slabs, slab_shifts, times_pow2
from gradflow.spec import NetworkSpec

_STATS_CHUNK_BYTES = 1 << 20  # measure activations in chunks that are still in cache


@dataclass(frozen=True)
class ActivationStats:
    mean: np.ndarray  # (L,)
    std: np.ndarray
    dead: np.ndarray  # nan where the activation is not ReLU-like
    saturated: np.ndarray  # nan where the activation does not saturate
    finite: np.ndarray  # bool


def stats_chunk_layers(spec: NetworkSpec) -> int:
    """Layers measured per call: many at small width (amortizing NumPy's per-call cost), few
    at large width (so the values are still in cache from the forward pass)."""
    return max(1, min(spec.depth, _STATS_CHUNK_BYTES // (spec.batch * spec.width * 8)))


class StatsCollector:
    """Statistics of each layer's activation output, fed chunk by chunk during forward."""

    def __init__(self, spec: NetworkSpec) -> None:
        depth = spec.depth
        self.act = ACTIVATIONS[spec.activation]
        self.mean, self.std = np.empty(depth), np.empty(depth)
        self.dead, self.saturated = np.full(depth, np.nan), np.full(depth, np.nan)

    def __call__(self, start: int, stop: int, out: np.ndarray, deriv: np.ndarray | None) -> None:
        """Measure layers [start, stop): out and deriv are their (K, B, n) outputs and φ' (None
        where it is not saved)."""
        rows = slice(start, stop)
        self.mean[rows], self.std[rows] = _mean_std(out)
        if self.act.relu_like:
            # a unit is dead when it is inactive (φ(z) > 0 ⇔ z > 0) for every row of the batch
            alive = np.count_nonzero((out > 0).any(axis=1), axis=1)
            self.dead[rows] = 1.0 - alive / out.shape[2]
        if self.act.saturated_below is not None:
            assert deriv is not None  # saved where saturation is counted
            flat = deriv.reshape(len(deriv), -1)
            below = flat < self.act.saturated_below
            saturated = [np.count_nonzero(layer) for layer in below]  # faster than axis=1
            self.saturated[rows] = np.array(saturated) / flat.shape[1]

    def result(self) -> ActivationStats:
        finite = np.isfinite(self.mean) & np.isfinite(self.std)
        return ActivationStats(self.mean, self.std, self.dead, self.saturated, finite)


def _mean_std(out: np.ndarray, rescale: bool = True) -> tuple[np.ndarray, np.ndarray]:
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
    tolerance, lo, hi = (1e-8, 1e-250, 1e250) if flat.dtype == np.float64 else (1e-1, 1e-30, 1e30)
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
            mean64[bad], std[bad] = (np.ldexp(v, -shifts) for v in _mean_std(scaled, False))
        else:  # all-zero layers (a dead network) have mean and std 0 already
            for k in bad[flat[bad].any(axis=1)]:
                mean64[k], std[k] = _exact_mean_std(flat[k])
    return mean64, std


def _take(stack: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """stack[rows]: a view where the rows are one run (the usual case), else a copy."""
    run = rows[-1] - rows[0] + 1 == len(rows)
    taken: np.ndarray = stack[rows[0] : rows[-1] + 1] if run else stack[rows]
    return taken


def _exact_mean_std(values: np.ndarray) -> tuple[float, float]:
    """Two passes over the values scaled by a power of two near their largest magnitude, so
    no square under- or overflows; inf and NaN come out as they are."""
    peak = float(np.max(np.abs(values)))
    if peak == 0.0 or not math.isfinite(peak):
        return float(values.mean(dtype=np.float64)), (0.0 if peak == 0.0 else math.nan)
    shift = math.frexp(peak)[1]
    wide = values.astype(np.float64)
    scaled = times_pow2(wide, -shift, out=wide)
    return math.ldexp(float(scaled.mean()), shift), math.ldexp(float(scaled.std()), shift)


def layer_names(spec: NetworkSpec) -> tuple[str, ...]:
    if not spec.residual:
        return tuple(f"fc{i}" for i in range(1, spec.depth + 1))
    k = spec.block_size
    return tuple(f"block{i // k + 1}.fc{i % k + 1}" for i in range(spec.depth))


def weight_norms(network: Network, spec: NetworkSpec) -> np.ndarray:
    """‖W_i‖_F as the variant sees the weights (zero-initialised branch ends are 0)."""
    norms = network.weight_norms.copy()  # measured as the weights were drawn
    if spec.zero_init_residual and spec.residual:
        norms[spec.block_size - 1 :: spec.block_size] = 0.0
    return norms


def _norm(v: np.ndarray | None) -> float:
    return math.nan if v is None else float(np.linalg.norm(v.astype(np.float64, copy=False)))


def _append(m: Magnitudes, value: float) -> Magnitudes:
    return Magnitudes(np.append(m.mantissa, value), np.append(m.exponent, 0))


def _first(mask: np.ndarray) -> int | None:
    """1-based index of the first True, or None."""
    return int(np.argmax(mask)) + 1 if mask.any() else None


def _ratio(log10: np.ndarray, first: int, last: int) -> float:
    with np.errstate(invalid="ignore"):
        return float(log10[first] - log10[last])


def decide(
    log10_ratio: float, finite: bool, reaches_both_ends: bool, thresholds: Thresholds
) -> Verdict:
    """Vanishing / exploding / healthy from log10(‖∂L/∂W_1‖ / ‖∂L/∂W_L‖)."""
    if not finite:
        return Verdict.NONFINITE
    if not reaches_both_ends:  # an exactly zero gradient at either end: nothing to learn there
        return Verdict.VANISHING
    if log10_ratio < math.log10(thresholds.vanish_below):
        return Verdict.VANISHING
    if log10_ratio > math.log10(thresholds.explode_above):
        return Verdict.EXPLODING
    return Verdict.HEALTHY


def report(
    spec: NetworkSpec,
    network: Network,
    loss: LossResult,
    records: Records,
    stats: ActivationStats,
    thresholds: Thresholds,
) -> Report:
    names = layer_names(spec)
    grad_w, grad_b, grad_in = records.grad_weight, records.grad_bias, records.grad_input
    w_norm = weight_norms(network, spec)
    mean, std, dead, sat, finite = stats.mean, stats.std, stats.dead, stats.saturated, stats.finite
    if loss.head_weight_grad is not None:  # xent: the head is its own row
        names = (*names, "head")
        grad_w = _append(grad_w, _norm(loss.head_weight_grad))
        grad_b = _append(grad_b, _norm(loss.head_bias_grad))
        grad_in = _append(grad_in, _norm(loss.dy))
        w_norm = np.append(w_norm, _norm(network.loss_data.head_weight))
        mean, std, dead, sat = (np.append(a, np.nan) for a in (mean, std, dead, sat))
        finite = np.append(finite, bool(np.isfinite(loss.dy).all()))
    layers = Layers(names, grad_w, grad_b, grad_in, w_norm, mean, std, dead, sat, finite)

    k = spec.block_size
    starts = np.arange(0, spec.depth, k)[: spec.blocks]
    blocks = Blocks(
        name=tuple(f"block{j + 1}" for j in range(spec.blocks)),
        first_layer=starts + 1,
        last_layer=starts + k,
        grad_add=records.block_add,
        grad_skip=records.block_add,  # the skip hands the arriving gradient back unchanged
        grad_branch=records.block_branch,
        grad_input=records.block_input,
        cosine=records.block_cosine,
    )

    last = spec.depth - 1
    log_w, log_in = records.grad_weight.log10, records.grad_input.log10
    nonfinite_from = _first(~stats.finite)
    zero_from = _first((stats.mean == 0) & (stats.std == 0))
    warnings = []
    if nonfinite_from is not None:
        warnings.append(
            f"forward pass overflows: activations are inf/NaN from layer {nonfinite_from}"
        )
    if zero_from is not None:
        warnings.append(
            f"forward signal is exactly zero from layer {zero_from} (underflow or dead units); "
            "weight gradients after it are zero"
        )
    # activations below the smallest normal number are subnormal: they carry fewer
    # significant digits (and slow the arithmetic down)
    size = np.maximum(np.abs(stats.mean), stats.std)
    subnormal_from = _first((size > 0) & (size < np.finfo(spec.dtype.value).tiny))
    if subnormal_from is not None:
        warnings.append(
            f"activations are subnormal (below {spec.dtype.value}'s normal range, losing "
            f"precision) from layer {subnormal_from}"
        )
    if not math.isfinite(loss.value):
        warnings.append(f"loss is {loss.value}")
    all_finite = (
        nonfinite_from is None
        and math.isfinite(loss.value)
        and bool(np.all(np.isfinite(records.grad_weight.mantissa)))
        and bool(np.all(np.isfinite(records.grad_input.mantissa)))
    )
    weight_ratio = _ratio(log_w, 0, last)
    summary = Summary(
        loss=loss.value,
        log10_grad_output=float(np.log10(_norm(loss.dy))) if _norm(loss.dy) > 0 else -math.inf,
        log10_weight_ratio=weight_ratio,
        log10_input_ratio=_ratio(log_in, 0, last),
        verdict=decide(
            weight_ratio,
            all_finite,
            bool(records.grad_weight.mantissa[[0, last]].all()),
            thresholds,
        ),
        nonfinite_from=nonfinite_from,
        zero_from=zero_from,
        thresholds=thresholds,
        warnings=tuple(warnings),
    )

    gradients = None
    if records.weight_grads is not None:
        assert records.bias_grads is not None and records.input_grads is not None
        gradients = Gradients(
            weights=tuple(records.weight_grads),
            biases=tuple(records.bias_grads),
            inputs=tuple(records.input_grads),
            output=loss.dy,
            head_weight=loss.head_weight_grad,
            head_bias=loss.head_bias_grad,
        )
    return Report(spec, layers, blocks, summary, gradients)
