"""What a pass must hold in memory, estimated before anything is allocated.

The estimate counts the arrays the engine keeps: the weights and biases (shared by every variant
of a comparison), and per variant the forward cache (activations, derivatives, normalization
state) plus bounded working buffers. Variants run one after another, so only the largest cache
counts. The CLI's memory guard and ``make bench`` use this same function.
"""

from __future__ import annotations

import os

from gradflow.analysis.statistics import stats_chunk_layers
from gradflow.engine.activations import ACTIVATIONS
from gradflow.engine.spec import Loss, NetworkSpec, Norm, Skip
from gradflow.engine.weight_grads import buffer_bytes, chunk_layers, uses_gram


def _itemsize(spec: NetworkSpec) -> int:
    return 8 if spec.dtype.value == "float64" else 4


def weights_bytes(spec: NetworkSpec) -> int:
    """Weights and biases: L·(n² + n), plus the xent head n·C + C."""
    n, size = spec.width, _itemsize(spec)
    total = spec.depth * (n * n + n)
    total += 2 * spec.batch * n  # input and targets
    if spec.loss is Loss.XENT:
        total += n * spec.classes + spec.classes
    return total * size


def cache_bytes(spec: NetworkSpec) -> int:
    """One variant's forward cache: the (L, B, n) arrays backward reads."""
    depth, batch, n, size = spec.depth, spec.batch, spec.width, _itemsize(spec)
    layer = batch * n
    saved = depth + (1 if spec.skip is not Skip.PRE else 0)  # activations (post keeps x too)
    act = ACTIVATIONS[spec.activation]
    if not (act.identity or act.slope_in_backward):
        saved += depth  # φ' at every point
    extra = 0
    if spec.norm is not Norm.NONE:
        saved += depth  # normalized values x̂
        extra = depth * (n if spec.norm is Norm.BATCH else batch)  # 1/sqrt(var + eps)
    return (saved * layer + extra + 8 * layer) * size + 200 * depth  # + per-layer records


def work_bytes(spec: NetworkSpec, keep_gradients: bool = False) -> int:
    """Chunked working buffers: the weight-gradient norms' and the statistics'."""
    n, batch, size = spec.width, spec.batch, _itemsize(spec)
    grads = buffer_bytes(spec, size, keep_gradients)
    stats = 2 * stats_chunk_layers(spec) * batch * n * 8  # float64 temporaries of std and masks
    if ACTIVATIONS[spec.activation].slope_in_backward:  # φ' of a chunk, computed by backward
        grads += chunk_layers(spec, size, uses_gram(spec, keep_gradients)) * batch * n * size
    return grads + stats


def estimate_bytes(spec: NetworkSpec, keep_gradients: bool = False) -> int:
    """Bytes a run holds at its peak: weights once, one variant's cache, working buffers.

    Variants of a comparison share the weights and run one after another: take the largest
    estimate over their specs (post keeps one more activation than pre).
    """
    total = weights_bytes(spec) + cache_bytes(spec) + work_bytes(spec, keep_gradients)
    if keep_gradients:
        n = spec.width
        total += spec.depth * (n * n + n + spec.batch * n) * _itemsize(spec)
    return total


def available_bytes() -> int:
    """Memory the machine can give now (MemAvailable on Linux)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse
