"""Run one forward/backward pass and measure it: the engine's entry points."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from gradflow.analysis.assemble import build_report, report_bytes
from gradflow.analysis.results import Report
from gradflow.analysis.side_by_side import Shares, alone, share, side_by_side
from gradflow.analysis.statistics import StatsCollector, statistics_bytes, stats_chunk_layers
from gradflow.analysis.verdict import Thresholds
from gradflow.engine import memory
from gradflow.engine.losses import LOSSES
from gradflow.engine.magnitudes import exact_norm
from gradflow.engine.network import Network, build, redraws_weights
from gradflow.engine.passes import backward, forward
from gradflow.engine.spec import NetworkSpec, Skip
from gradflow.engine.threads import one_blas_thread
from gradflow.engine.weight_grads import Method

ProgressCallback = Callable[[int, int], None]  # (layers done, layers in all)


@one_blas_thread
def analyze(
    spec: NetworkSpec,
    *,
    thresholds: Thresholds = Thresholds(),  # noqa: B008 (frozen, so a shared default is safe)
    network: Network | None = None,
    keep_gradients: bool = False,
    progress: ProgressCallback | None = None,
    method: Method | str = Method.AUTO,
    threads: int | None = None,
) -> Report:
    """One forward and backward pass of the network ``spec`` describes, measured per layer.

    ``method`` chooses how ‖∂L/∂W‖ is taken (auto, gram, explicit); ``keep_gradients`` also
    returns every ∂L/∂W, ∂L/∂b and ∂L/∂(layer input) formed. Without ``network``, a weight
    stack of 96 MiB or more is drawn as the pass reads it, twice, instead of held
    (``redraws_weights``); the report is the same bits. ``threads``: how many the pass's large
    products may use (None: ``threads.available()``); the report is the same bits for any."""
    _, each = share(1, None, threads)
    network = network or build(spec, redraw=redraws_weights(spec))
    done = None if progress is None else alone(progress, 2 * spec.depth)
    return _run(spec, network, thresholds, keep_gradients, done, method, each)


@one_blas_thread
def compare(
    spec: NetworkSpec,
    variants: Sequence[Skip | str],
    *,
    thresholds: Thresholds = Thresholds(),  # noqa: B008
    network: Network | None = None,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
    threads: int | None = None,
) -> list[Report]:
    """The same weights wired with each skip variant, one report per variant.

    The variants run side by side, one a thread of ``threads`` (None: ``threads.available()``)
    and at most ``workers`` at once (1: one after another), each holding its own tape
    (``estimate_bytes(..., at_once=workers)``); threads left over go to each pass's products.
    The reports are the same bits either way, and ``progress`` is called from the runs'
    threads, one call at a time, with the layers done in all. zero_init_residual zeroes branch
    ends only in the residual variants: a plain network has no branches, and zeroing its layers
    would only cut the gradient off.
    """
    specs = [variant_spec(spec, v) for v in variants]
    at_once, each = share(len(specs), workers, threads)
    network = network or build(specs[0])
    shares = None if progress is None else Shares(progress, len(specs), 2 * spec.depth)

    def run(i: int) -> Report:
        done = None if shares is None else partial(shares.update, i)
        return _run(specs[i], network, thresholds, False, done, threads=each)

    return side_by_side(run, len(specs), at_once)


def estimate_bytes(
    spec: NetworkSpec, keep_gradients: bool = False, at_once: int = 1, redraw: bool | None = None
) -> int:
    """Bytes an analyzed pass of ``spec`` holds at its peak: the engine's, the statistics' and the
    report's; with ``at_once`` passes side by side (compare's variants), each its own.
    ``redraw``: whether the network's weights are redrawn rather than held (None: as
    ``analyze(spec)`` builds its own network)."""
    observers = statistics_bytes(spec) + report_bytes(spec)
    redraw = redraws_weights(spec) if redraw is None else redraw
    return memory.estimate_bytes(
        spec, keep_gradients, observer_bytes=observers, at_once=at_once, redraw=redraw
    )


def variant_spec(spec: NetworkSpec, variant: Skip | str) -> NetworkSpec:
    return spec.wired(Skip.parse(variant, "variants"))


def _run(
    spec: NetworkSpec,
    network: Network,
    thresholds: Thresholds,
    keep_gradients: bool,
    progress: Callable[[int], None] | None,  # called with the run's layers done (of 2·depth)
    method: Method | str = Method.AUTO,
    threads: int = 1,
) -> Report:
    weights, biases = network.weights_for(spec, threads), network.pass_biases(spec)
    stats = StatsCollector(spec)

    def observe(start: int, stop: int, out: np.ndarray, deriv: np.ndarray | None) -> None:
        stats(start, stop, out, deriv)
        if progress is not None:
            progress(stop)

    def backward_progress(done: int) -> None:
        if progress is not None:
            progress(spec.depth + done)

    # Overflow, underflow and NaN are results to report, not warnings to print per element.
    with np.errstate(all="ignore"):
        chunk = stats_chunk_layers(spec)
        tape, y = forward(spec, weights, biases, network.x, observe, chunk, threads)
        loss = LOSSES[spec.loss](y, network.loss_data)
        records = backward(
            spec, tape, loss.dy, method=method, keep=keep_gradients, progress=backward_progress
        )
        signal = _log10_norm(y) - _log10_norm(network.x)
        return build_report(spec, network, loss, records, stats.result(), signal, thresholds)


def _log10_norm(v: np.ndarray) -> float:
    """log10 ‖v‖, exact however small or large v is: -inf for zero, nan for nan."""
    mantissa, exponent = exact_norm(v, 0)
    if not math.isfinite(mantissa):
        return math.inf if mantissa == math.inf else math.nan
    return math.log10(mantissa) + exponent * math.log10(2.0) if mantissa > 0 else -math.inf
