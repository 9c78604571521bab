"""Assemble a pass's raw records into a Report: per-layer statistics, the split at each addition,
and a summary with a verdict."""

from __future__ import annotations

import math

import numpy as np

from gradflow.analysis.results import (
    Blocks,
    Gradients,
    Layers,
    Report,
    Summary,
)
from gradflow.analysis.statistics import ActivationStats
from gradflow.analysis.verdict import Quantity, Thresholds, judge
from gradflow.engine.gradient import Records
from gradflow.engine.losses import LossResult
from gradflow.engine.magnitudes import SUM_SQ_LOW, Magnitudes, exact_norm, sum_sq
from gradflow.engine.network import Network
from gradflow.engine.spec import Activation, NetworkSpec, Skip

# Bytes per layer and per block of the records a pass ends with and the report built from them
# while the tape is still held: a name (~65 bytes as tracemalloc counts a short str), the
# magnitudes (mantissa and exponent: 16 bytes each) and the arrays derived from them.
REPORT_LAYER_BYTES = 160
REPORT_BLOCK_BYTES = 160


def report_bytes(spec: NetworkSpec) -> int:
    """Bytes of a pass's records and of its report, held at the pass's peak."""
    return spec.depth * REPORT_LAYER_BYTES + (
        spec.blocks * REPORT_BLOCK_BYTES if spec.residual else 0
    )


def layer_names(spec: NetworkSpec) -> tuple[str, ...]:
    if not spec.residual:
        return tuple(f"fc{i}" for i in range(1, spec.depth + 1))
    k = spec.block_size
    return tuple(f"block{i // k + 1}.fc{i % k + 1}" for i in range(spec.depth))


def _norm(v: np.ndarray | None) -> tuple[float, int]:
    """‖v‖ as (mantissa, exponent), summed in float64; exact also where v·v leaves its range
    (a loss of 1e400 has a gradient of 1e200). nan for None."""
    if v is None:
        return math.nan, 0
    wide = v.astype(np.float64, copy=False)
    sq = sum_sq(wide)
    if SUM_SQ_LOW <= sq < math.inf:
        return math.sqrt(sq), 0
    return exact_norm(wide, 0)


def _magnitude(norm: tuple[float, int]) -> Magnitudes:
    return Magnitudes(np.array([norm[0]]), np.array([norm[1]], dtype=np.int64))


def _append(m: Magnitudes, norm: tuple[float, int]) -> Magnitudes:
    return Magnitudes(np.append(m.mantissa, norm[0]), np.append(m.exponent, np.int64(norm[1])))


def _first(mask: np.ndarray) -> int | None:
    """1-based index of the first True, or None."""
    return int(np.argmax(mask)) + 1 if mask.any() else None


def _ratio(log10: np.ndarray, first: int, last: int) -> float:
    with np.errstate(invalid="ignore"):
        return float(log10[first] - log10[last])


def _zero_from(spec: NetworkSpec, stats: ActivationStats, log10_signal: float) -> int | None:
    """The first layer (1-based) whose output, the forward signal, is exactly zero. In a
    residual network a branch's own zero (dead ReLUs) does not stop the stream: only a block's
    output counts (post and Post-LN: its last layer's; pre: the network's output, the only
    point of its stream the report holds)."""
    zero = (stats.mean == 0) & (stats.std == 0)
    if not spec.residual:
        return _first(zero)
    if spec.skip is Skip.PRE:
        return spec.depth if log10_signal == -math.inf else None
    return _first(zero & (np.arange(1, spec.depth + 1) % spec.block_size == 0))


def _lost_to_rounding(spec: NetworkSpec, records: Records, dy_norm: float) -> int | None:
    """The layer (1-based) below which, itself included, every ∂L/∂W, ∂L/∂b and ∂L/∂(input) is
    exactly 0 though a nonzero gradient arrives from above: φ′ is 0 at every unit there. Except
    for ReLU (inactive units: a true zero, and a zero forward signal, reported as such) and a
    residual network whose skip and branch are both closed by construction (s = 0, and α = 0,
    β = 0 or zeroed branch ends), no φ′ is 0 on more than a point, so that is φ′ rounding to 0
    where the units saturate. (A skip path carries the gradient past a branch; after the add,
    φ′ stops it too.)"""
    if spec.activation is Activation.RELU or not (0 < dy_norm < math.inf):
        return None
    if spec.residual and spec.skip_scale == 0 and branch_zeros_may_be_true(spec):
        return None
    zero = (
        (records.grad_weight.mantissa == 0)
        & (records.grad_bias.mantissa == 0)
        & (records.grad_input.mantissa == 0)
    )
    below = int(np.argmin(zero)) if not zero.all() else spec.depth  # layers 1..below are 0
    return below if below > 0 else None


def branch_zeros_may_be_true(spec: NetworkSpec) -> bool:
    """Whether a residual branch can pass back an exact 0 in exact arithmetic: ReLU's inactive
    units, zeroed branch ends, β = 0 or α = 0. Otherwise no φ′ is 0 on more than a point, and a
    branch's exact 0 is φ′ rounding to 0 where every unit saturates."""
    return (
        spec.activation is Activation.RELU
        or spec.zero_init_residual
        or spec.branch_weight_scale == 0
        or spec.residual_scale == 0
    )


def _branches_lost_to_rounding(spec: NetworkSpec, records: Records) -> list[int]:
    """The blocks (1-based) whose branch passes back exactly 0 of a finite, nonzero gradient
    at their add, though no true zero could (``branch_zeros_may_be_true``)."""
    if not spec.residual or branch_zeros_may_be_true(spec):
        return []
    arriving = records.block_add.mantissa
    shut = (records.block_branch.mantissa == 0) & (arriving != 0) & np.isfinite(arriving)
    return [int(b) + 1 for b in np.flatnonzero(shut)]


def _judged_weight_ratio(spec: NetworkSpec, log10_w: np.ndarray, reached: bool) -> float | None:
    """The first/last weight-gradient ratio as the verdict may judge it, or None where it says
    nothing about gradient flow: the forward signal never reached the last layer, the last
    layer's gradient is an exact zero (dead units there), or the first layer's is zero by
    construction (a zero-initialised branch end blocks the gradient into its branch)."""
    first, last = float(log10_w[0]), float(log10_w[spec.depth - 1])
    if not reached or last == -math.inf:
        return None
    if first == -math.inf and spec.zero_init_residual:
        return None
    return first - last


def build_report(
    spec: NetworkSpec,
    network: Network,
    loss: LossResult,
    records: Records,
    stats: ActivationStats,
    log10_signal: float,
    thresholds: Thresholds,
) -> Report:
    names = layer_names(spec)
    grad_w, grad_b, grad_in = records.grad_weight, records.grad_bias, records.grad_input
    w_norm = network.weight_norms_for(spec)
    dy_norm = _norm(loss.dy)
    mean, std, dead, sat, finite = stats.mean, stats.std, stats.dead, stats.saturated, stats.finite
    if loss.head_weight_grad is not None:  # xent: the head is its own row
        names = (*names, "head")
        grad_w = _append(grad_w, _norm(loss.head_weight_grad))
        grad_b = _append(grad_b, _norm(loss.head_bias_grad))
        grad_in = _append(grad_in, dy_norm)
        w_norm = np.append(w_norm, _magnitude(_norm(network.loss_data.head_weight)).value)
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
        grad_skip=records.block_skip,  # the skip hands the arriving gradient back (times s)
        grad_branch=records.block_branch,
        grad_input=records.block_input,
        cosine=records.block_cosine,
    )

    last = spec.depth - 1
    log_w, log_in = records.grad_weight.log10, records.grad_input.log10
    nonfinite_from = _first(~stats.finite)
    zero_from = _zero_from(spec, stats, log10_signal)
    # numerical trouble, one sentence each, in the order of the layers where it starts
    trouble: list[tuple[int, str]] = []
    if nonfinite_from is not None:
        trouble.append(
            (nonfinite_from, f"forward pass overflows: activations are inf/NaN from layer "
             f"{nonfinite_from}")
        )  # fmt: skip
    if nonfinite_from is None and not (math.isfinite(log10_signal) or log10_signal == -math.inf):
        # the residual stream itself overflowed at an add, where no layer's output shows it
        # (a saturating φ of inf is finite)
        trouble.append(
            (spec.depth, "forward pass overflows: the output is inf/NaN, though no layer's "
             "activations are (the residual stream overflows at an add)")
        )  # fmt: skip
    if zero_from is not None and spec.skip is Skip.PRE:  # the output: its stream's only point
        trouble.append(
            (zero_from, "forward signal is exactly zero at the output (the residual stream is 0 "
             "after an add: a scale of 0, or it cancelled or underflowed): the first/last "
             "weight ratio is not judged")
        )  # fmt: skip
    elif zero_from is not None:
        why = (
            "underflow, dead units or a scale of 0" if spec.residual else "underflow or dead units"
        )
        trouble.append(
            (zero_from, f"forward signal is exactly zero from layer {zero_from} ({why}): the "
             "layers after it get no gradient, and the first/last weight ratio is not judged")
        )  # fmt: skip
    # activations below the smallest normal number are subnormal: they carry fewer
    # significant digits (and slow the arithmetic down)
    size = np.maximum(np.abs(stats.mean), stats.std)
    subnormal_from = _first((size > 0) & (size < np.finfo(spec.dtype.value).tiny))
    if subnormal_from is not None:
        trouble.append(
            (subnormal_from, f"activations are subnormal (below {spec.dtype.value}'s normal "
             f"range, losing precision) from layer {subnormal_from}")
        )  # fmt: skip
    lost_at = _lost_to_rounding(spec, records, dy_norm[0])
    if lost_at is not None and nonfinite_from is None and zero_from is None:
        trouble.append(
            (lost_at, f"gradient is 0 in {spec.dtype.value} from layer {lost_at} down: φ′ "
             f"rounds to 0 at every unit of layer {lost_at} (saturated), so the true gradient "
             "there is below the float range, not zero")
        )  # fmt: skip
    shut = _branches_lost_to_rounding(spec, records)
    if shut:
        named = ", ".join(str(b) for b in shut[:5]) + (", …" if len(shut) > 5 else "")
        many = len(shut) > 1
        which = f"branches of blocks {named} pass" if many else f"branch of block {named} passes"
        them, their = ("them", "their") if many else ("it", "its")
        trouble.append(
            (shut[0] * spec.block_size, f"the {which} 0 in {spec.dtype.value}: φ′ rounds to 0 "
             f"at every unit in {them} (saturated), so {their} share of the gradient is below "
             "the float range, not zero")
        )  # fmt: skip
    if not math.isfinite(loss.value):
        trouble.append((spec.depth + 1, f"loss is {loss.value}"))
    warnings = [text for _, text in sorted(trouble, key=lambda item: item[0])]
    all_finite = (
        nonfinite_from is None
        and math.isfinite(loss.value)
        and bool(np.all(np.isfinite(records.grad_weight.mantissa)))
        and bool(np.all(np.isfinite(records.grad_input.mantissa)))
    )
    weight_ratio = _ratio(log_w, 0, last)
    log10_grad_output = float(_magnitude(dy_norm).log10[0])  # nan where ∂L/∂y is
    with np.errstate(invalid="ignore"):
        log10_gain = float(log_in[0]) - log10_grad_output
    judged = {
        Quantity.WEIGHT_RATIO: _judged_weight_ratio(spec, log_w, zero_from is None),
        Quantity.GAIN: log10_gain,
        Quantity.SIGNAL: log10_signal,
    }
    judgement = judge(judged, all_finite, thresholds)
    summary = Summary(
        loss=loss.value,
        log10_grad_output=log10_grad_output,
        log10_weight_ratio=weight_ratio,
        log10_gain=log10_gain,
        log10_signal=log10_signal,
        verdict=judgement.verdict,
        findings=judgement.findings,
        judged=judgement.judged,
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
