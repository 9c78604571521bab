"""The gradient at the network input split by path length (Veit, Wilber & Belongie 2016,
"Residual networks behave like ensembles of relatively shallow networks"), exactly.

Once the forward pass is fixed, a residual block's backward is linear in the gradient g that
arrives at it:

    g_in = s·A(g) + J_Fᵀ(α·A(g))        A: the backward of what follows the add (φ' for post,
                                         N for postnorm, nothing for pre); J_F: the branch

Multiplied out over B blocks, ∂L/∂x is a sum over the 2^B ways of taking the skip or the branch
at each block. Grouped by how many branches a way passes through,

    ∂L/∂x = G_0 + G_1 + … + G_B,        G_k: the sum over the C(B, k) paths through k branches

and the G_k follow by dynamic programming from the top: G_0 = ∂L/∂y, and at each block (in
reverse) A_k = A(G_k), G_k ← s·A_k + J_Fᵀ(α·A_{k−1}). The whole stack of G_k goes through the
block's transposed Jacobian in one call (``after_add_vjp``, ``branch_vjp``); only lengths that
can be nonzero yet are carried, so the full split costs about B/2 ordinary backward passes.

With ``max_length`` K < B, lengths above K are carried as one more slice, the remainder R: it
receives the branch term of G_K and keeps its own skip and branch terms. That costs K + 2
passes instead of ~B/2, and Σ_k G_k + R is still the DP's own ∂L/∂x, so the check against the
ordinary pass (``check``) tests the split whether it is truncated or not (a remainder taken as
∂L/∂x − Σ_k G_k would pass that check by construction).

Scale: a depth-400 post-sigmoid network's paths lie far below 1e-308. Each slice keeps its own
binary exponent (ℓ with its largest |value| in [2^(ℓ−1), 2^ℓ)), as the ordinary pass does for
its one gradient; two terms meeting at a slice are brought to the larger exponent by exact
powers of two (the smaller loses only what lies below rounding), and s and α enter as mantissa
times a power of two, so that a tiny α is carried in the exponent, not in subnormal values. An
exactly-zero slice stays exactly zero (and is reported as zero, not as underflow).

Measured (float64, tests/test_paths.py): Σ_k G_k matches the ordinary pass's ∂L/∂x to 1e-16 to
1e-14 relative, for every wiring, norm and activation, truncated or not, and at depth 400 where
every part lies far below float range. Where the parts cancel (their root energy
sqrt(Σ_k ‖G_k‖²) far above ‖∂L/∂x‖, reported as ``log10_cancellation``), their rounding shows in
the check magnified by that much: 400 one-layer post-sigmoid blocks with s = 2 have parts 10^9.8
times ‖∂L/∂x‖, and a check of 7e-6.

Cost: the DP takes each block's transposed Jacobian on up to K + 2 slices at once; sampled paths
take it on M·(K + 1) single paths, up to about M times the DP's work.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from gradflow.analysis.analyze import variant_spec
from gradflow.analysis.assemble import branch_zeros_may_be_true
from gradflow.analysis.side_by_side import Shares, alone, share, side_by_side
from gradflow.engine import memory
from gradflow.engine.losses import LOSSES
from gradflow.engine.magnitudes import Magnitudes, exact_norm, unit_scale
from gradflow.engine.network import Network, build, network_bytes
from gradflow.engine.passes import (
    after_add_vjp,
    backward,
    blocks,
    branch_vjp,
    forward,
    norm_after_add,
    order,
)
from gradflow.engine.spec import NetworkSpec, Skip
from gradflow.engine.tape import Tape, tape_bytes
from gradflow.engine.threads import one_blas_thread
from gradflow.engine.wirings import Block

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ProgressCallback = Callable[[int, int], None]  # (blocks done, blocks in all)

PLAIN_ERROR = "paths: a plain network has no skip paths; choose --skip post, pre or postnorm"
EFFECTIVE_SHARE = 0.9  # the effective range is the shortest window of lengths holding this share
SAMPLE_STREAM = 2  # sampled paths draw from np.random.default_rng([seed, SAMPLE_STREAM])
# sampled paths go back through the network this much at a time (measured fastest of 256 KiB to
# 8 MiB, at width 16 and 256)
SAMPLE_CHUNK_BYTES = 2 << 20
ZERO_EXP = np.iinfo(np.int64).min // 4  # the exponent of an exactly-zero slice: below all others

# Stacks held at once, in slices of (B, n), at the DP's peak: the stack entering a block, A, the
# branch's output and the stack leaving it, and the normalisation backward's temporaries
# (measured: at most 5.2 at depth 100; tests/test_paths.py holds the total to tracemalloc's peak)
DP_STACKS = 6
# the same for a chunk of sampled paths, of which the branch takes some (measured: at most 6.1)
SAMPLE_STACKS = 7
SMALL_SLABS = 4  # ∂L/∂y, ∂L/∂x and the like: single (B, n) slices beside the stacks


# ---- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Effective:
    """The shortest window of path lengths [low, high] holding at least 90% of the energy."""

    low: int
    high: int
    share: float  # of the energy Σ_k ‖G_k‖², in the window
    includes_remainder: bool  # the window reaches into the lengths above K (high is then B)


@dataclass(frozen=True)
class Remainder:
    """Every path longer than ``max_length``, as one sum."""

    low: int  # K + 1
    high: int  # B
    paths: int  # Σ_{k>K} C(B, k), exact
    log10_paths: float
    grad: Magnitudes  # (1,) ‖Σ_{k>K} G_k‖
    share: float  # of the energy


@dataclass(frozen=True)
class SampledPaths:
    """Per length k ≤ K, ``count`` single paths drawn at random: ‖∂L/∂x along that path alone‖
    (Veit's per-path magnitude), their mean, smallest and largest."""

    count: int  # paths drawn per length (a length with fewer paths repeats some)
    mean: Magnitudes  # (K+1,)
    min: Magnitudes  # (K+1,)
    max: Magnitudes  # (K+1,)


@dataclass(frozen=True)
class Decomposition:
    """∂L/∂x split by path length k = 0..K (and the remainder above K), for one network."""

    spec: NetworkSpec
    blocks: int  # B
    max_length: int  # K: lengths 0..K one by one (K = B: nothing truncated)
    paths: tuple[int, ...]  # (K+1,) C(B, k), exact
    log10_paths: np.ndarray  # (K+1,)
    grad: Magnitudes  # (K+1,) ‖G_k‖ (Frobenius over the batch)
    share: np.ndarray  # (K+1,) ‖G_k‖² over the energy Σ_k ‖G_k‖² (remainder included)
    cumulative: np.ndarray  # (K+1,) Σ_{j≤k} share_j
    remainder: Remainder | None  # None unless K < B
    total: Magnitudes  # (1,) ‖∂L/∂x‖ from the ordinary pass
    check: float  # ‖Σ_k G_k (+ R) − ∂L/∂x‖ / ‖∂L/∂x‖, ∂L/∂x from the ordinary pass
    # log10 of sqrt(Σ_k ‖G_k‖²) / ‖∂L/∂x‖: 0 when the lengths' parts are orthogonal, above 0
    # when they cancel (then rounding in the parts shows in ``check`` magnified by this much)
    log10_cancellation: float
    effective: Effective | None  # None when the energy is zero or not finite
    mean_length: float  # Σ_k k·share_k: the energy-weighted mean path length
    mean_length_exact: bool  # False: the remainder is counted at K + 1, so a lower bound
    samples: SampledPaths | None
    # numerical trouble met on the way, one sentence each (``warnings``)
    warnings: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def lengths(self) -> np.ndarray:
        return np.arange(self.max_length + 1)

    @property
    def remainder_cumulative(self) -> float:
        """The cumulative share through the remainder, the last row: every share, so 1 (nan
        where no share is defined)."""
        return 1.0 if math.isfinite(self.cumulative[-1]) else math.nan

    def plot(self) -> Figure:
        """This decomposition as a matplotlib Figure (needs the ``plot`` extra); for several
        wirings, ``gradflow.render.figures.path_lengths.path_figure(decompositions)``."""
        from gradflow.render.figures.path_lengths import path_figure  # matplotlib loads here

        return path_figure([self])

    @property
    def mean_path_length(self) -> float:
        """The mean length of all 2^B paths, B/2 (what the energy would average to if every
        path carried the same)."""
        return self.blocks / 2


# ---- entry points ---------------------------------------------------------------------------


@one_blas_thread
def decompose(
    spec: NetworkSpec,
    *,
    max_length: int | None = None,
    samples: int = 0,
    network: Network | None = None,
    progress: ProgressCallback | None = None,
    threads: int | None = None,
) -> Decomposition:
    """∂L/∂x of one pass of ``spec`` split by path length 0..K (K = ``max_length``, default B;
    longer paths as one remainder), with ``samples`` random single paths per length.
    ``threads``: how many the ordinary pass's large products may use (None:
    ``threads.available()``); the same bits for any."""
    _check(spec, max_length, samples)
    _, each = share(1, None, threads)
    network = network or build(spec)
    done = None if progress is None else alone(progress, _steps(spec, max_length, samples))
    return _run(spec, network, max_length, samples, done, each)


@one_blas_thread
def compare_paths(
    spec: NetworkSpec,
    variants: Sequence[Skip | str],
    *,
    max_length: int | None = None,
    samples: int = 0,
    network: Network | None = None,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
    threads: int | None = None,
) -> list[Decomposition]:
    """The same weights wired with each residual variant (post, pre, postnorm), one
    decomposition each; side by side, one a thread of ``threads`` (None:
    ``threads.available()``) and at most ``workers`` at once (1: one after another), the same
    bits either way (``paths_bytes(..., at_once=workers)``)."""
    specs = [variant_spec(spec, v) for v in variants]
    for s in specs:
        _check(s, max_length, samples)
    at_once, each_threads = share(len(specs), workers, threads)
    network = network or build(specs[0])
    each = _steps(specs[0], max_length, samples)  # the same for every variant of one network
    shares = None if progress is None else Shares(progress, len(specs), each)

    def run(i: int) -> Decomposition:
        done = None if shares is None else partial(shares.update, i)
        return _run(specs[i], network, max_length, samples, done, each_threads)

    return side_by_side(run, len(specs), at_once)


def paths_bytes(
    spec: NetworkSpec, max_length: int | None = None, samples: int = 0, at_once: int = 1
) -> int:
    """Bytes a decomposition of ``spec`` holds at its peak: the network, and for each of the
    ``at_once`` decompositions side by side the larger of one ordinary pass (as the engine
    declares it) and, after it, its tape with the DP's stacks of K + 1 slices of (B, n) (one
    more for the remainder), then with the split kept while a chunk of sampled paths goes back."""
    k = _length(spec, max_length)
    slab = spec.batch * spec.width * np.dtype(spec.dtype.value).itemsize
    split = _slots(spec, k) * slab
    after = split * DP_STACKS + SMALL_SLABS * slab
    if samples:
        chunk = min(samples * (k + 1), _sample_chunk(spec))
        paths = samples * (k + 1)
        masks = paths * spec.blocks  # which branches each path takes (bool)
        # one after another: drawing a length's paths (M × B random numbers, their argsort, the
        # chosen indices); the chunks going back, beside each path's norm (mantissa, exponent);
        # the norms' log10 at the end
        phases = (
            3 * samples * spec.blocks * 8,
            chunk * slab * SAMPLE_STACKS + 16 * paths,
            24 * paths,
        )
        after = max(after, split + SMALL_SLABS * slab + masks + max(phases))
    network = network_bytes(spec)
    each_pass = memory.estimate_bytes(spec) - network
    each = max(each_pass, tape_bytes(spec, order(spec), norm_after_add(spec)) + after)
    return network + at_once * each


# ---- the run --------------------------------------------------------------------------------


def _check(spec: NetworkSpec, max_length: int | None, samples: int) -> None:
    if not spec.residual:
        raise ValueError(PLAIN_ERROR)
    for name, value in (("max_length", max_length), ("samples", samples)):
        if value is None and name == "max_length":
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}: expected an integer, got {value!r}")
        if value < 0:
            raise ValueError(f"{name}: must be at least 0, got {value}")


def _length(spec: NetworkSpec, max_length: int | None) -> int:
    """K: the longest length kept on its own (B when nothing is truncated)."""
    return spec.blocks if max_length is None else min(max_length, spec.blocks)


def _slots(spec: NetworkSpec, k: int) -> int:
    """Slices the DP carries: lengths 0..K, and the remainder when K < B."""
    return k + 1 + (k < spec.blocks)


def _steps(spec: NetworkSpec, max_length: int | None, samples: int) -> int:
    """Progress steps of one decomposition: a block of the split, a block of each sample chunk."""
    return spec.blocks * (1 + _sample_chunks(spec, _length(spec, max_length), samples))


def _run(
    spec: NetworkSpec,
    network: Network,
    max_length: int | None,
    samples: int,
    progress: Callable[[int], None] | None,  # called with the run's steps done
    threads: int = 1,
) -> Decomposition:
    k = _length(spec, max_length)
    done = [0]

    def step() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0])

    # Overflow, underflow and NaN are results to report, not warnings to print per element.
    with np.errstate(all="ignore"):
        tape, dy = _forward(spec, network, threads)
        ordinary = backward(spec, tape, dy).input_gradient  # ∂L/∂x · 2^-e, e
        split = _split(spec, tape, dy, k, step)
        sampled = _sample(spec, tape, dy, k, samples, step) if samples else None
        return _measure(spec, k, split, ordinary, sampled)


def _forward(spec: NetworkSpec, network: Network, threads: int = 1) -> tuple[Tape, np.ndarray]:
    """The forward pass, as ``analyze`` runs it: the tape and ∂L/∂y (B, n)."""
    weights, biases = network.weights_for(spec), network.pass_biases(spec)
    tape, y = forward(spec, weights, biases, network.x, threads=threads)
    return tape, LOSSES[spec.loss](y, network.loss_data).dy


@one_blas_thread
def split_gradient(
    spec: NetworkSpec, *, max_length: int | None = None, network: Network | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The parts themselves: G_0..G_K (and the remainder when K < B) as a scaled stack
    (S, B, n) and their binary exponents (S,): G_k = values[k] · 2**exponents[k] (an exactly
    zero part has values 0). For checks and for plotting the parts; ``decompose`` measures
    them."""
    _check(spec, max_length, 0)
    network = network or build(spec)
    with np.errstate(all="ignore"):
        tape, dy = _forward(spec, network)
        split = _split(spec, tape, dy, _length(spec, max_length), lambda: None)
    return split.values, np.where(split.exponent == ZERO_EXP, 0, split.exponent)


class Scaled:
    """A stack of slices, slice i being ``values[i] · 2**exponent[i]`` (ZERO_EXP: exactly 0)."""

    def __init__(self, values: np.ndarray, exponent: np.ndarray) -> None:
        self.values, self.exponent = values, exponent  # (S, B, n), (S,) int64


def _start(dy: np.ndarray, copies: int) -> Scaled:
    """``copies`` slices of ∂L/∂y, scaled near 1."""
    scaled, shift = unit_scale(dy)
    zero = not scaled.any()
    values = np.broadcast_to(scaled, (copies, *dy.shape)).copy()
    return Scaled(values, np.full(copies, ZERO_EXP if zero else -shift, dtype=np.int64))


def _split(
    spec: NetworkSpec, tape: Tape, dy: np.ndarray, k: int, step: Callable[[], None]
) -> Scaled:
    """G_0..G_K (and the remainder R when K < B) at the network input."""
    slots = _slots(spec, k)
    s, alpha = math.frexp(spec.skip_scale), math.frexp(spec.residual_scale)  # (mantissa, exp)
    g = _start(dy, 1)
    for block in reversed(blocks(spec)):
        g = _through(spec, tape, block, g, slots, s, alpha)
        step()
    return g


def _through(
    spec: NetworkSpec,
    tape: Tape,
    block: Block,
    g: Scaled,
    slots: int,
    s: tuple[float, int],
    alpha: tuple[float, int],
) -> Scaled:
    """One block of the DP: slice k of the result is s·A_k + J_Fᵀ(α·A_{k−1}); the last slot,
    when it is the remainder, also keeps its own branch term."""
    count = len(g.values)
    arriving = after_add_vjp(spec, tape, block, g.values)  # A_k (c, B, n)
    through = branch_vjp(spec, tape, block, arriving)  # J_Fᵀ A_k (c, B, n)
    new = min(count + 1, slots)
    dest = np.minimum(np.arange(count) + 1, slots - 1)  # where each branch term goes

    # the terms' own exponents (s and α: mantissa times a power of two), then each new slice's
    skip_top = _tops(arriving, g.exponent + s[1], s[0])
    branch_top = _tops(through, g.exponent + alpha[1], alpha[0])
    target = np.full(new, ZERO_EXP, dtype=np.int64)
    target[:count] = skip_top
    np.maximum.at(target, dest, branch_top)

    # bring both terms to their slice's exponent and add them
    out = np.empty((new, *arriving.shape[1:]), dtype=arriving.dtype)
    np.multiply(
        arriving, _factors(g.exponent + s[1] - target[:count], s[0], out.dtype), out=out[:count]
    )
    if new > count:
        out[count] = 0
    through *= _factors(g.exponent + alpha[1] - target[dest], alpha[0], out.dtype)
    plain = new - 1  # branch terms 0..new-2 go to slices 1..new-1
    out[1:new] += through[:plain]
    if count > plain:  # the remainder's own branch term stays in the remainder
        out[new - 1] += through[plain]
    return Scaled(out, target)


def _tops(values: np.ndarray, exponent: np.ndarray, mantissa: float) -> np.ndarray:
    """For each slice, ℓ with its largest |value|·2^exponent in [2^(ℓ−1), 2^ℓ); ZERO_EXP where
    the slice (or ``mantissa``) is exactly zero; the exponent itself for nan or inf."""
    if mantissa == 0.0 or len(values) == 0:
        return np.full(len(values), ZERO_EXP, dtype=np.int64)
    flat = values.reshape(len(values), -1)
    peak = np.maximum(flat.max(axis=1), -flat.min(axis=1))  # no |values| copy
    tops: np.ndarray = exponent + np.frexp(peak)[1]
    tops[peak == 0] = ZERO_EXP
    return tops


def _factors(shift: np.ndarray, mantissa: float, dtype: np.dtype) -> np.ndarray:
    """mantissa · 2^shift per slice, shaped (S, 1, 1): exact wherever it is a normal number, 0
    far below (what it multiplies lies below rounding there)."""
    limit = int(np.finfo(dtype).maxexp) - 2
    shift = np.clip(shift, -4 * limit, limit)
    factors: np.ndarray = np.ldexp(np.full(len(shift), mantissa, dtype=dtype), shift)
    return factors[:, None, None]


# ---- single paths -----------------------------------------------------------------------------


def _sample_chunk(spec: NetworkSpec) -> int:
    """Sampled paths taken back together: about SAMPLE_CHUNK_BYTES of (B, n) slices."""
    slab = spec.batch * spec.width * np.dtype(spec.dtype.value).itemsize
    return max(1, SAMPLE_CHUNK_BYTES // slab)


def _sample_chunks(spec: NetworkSpec, k: int, samples: int) -> int:
    """How many chunks the sampled paths go back in (0 without samples)."""
    return -(-samples * (k + 1) // _sample_chunk(spec))


def draw_paths(spec: NetworkSpec, k: int, samples: int) -> np.ndarray:
    """For each length 0..K, ``samples`` random sets of k of the B blocks, as a (K+1, M, B)
    mask (True: the path goes through the block's branch), from the spec's seed."""
    rng = np.random.default_rng([spec.seed, SAMPLE_STREAM])
    masks = np.zeros((k + 1, samples, spec.blocks), dtype=bool)
    for length in range(k + 1):
        chosen = rng.random((samples, spec.blocks)).argsort(axis=1)[:, :length]
        np.put_along_axis(masks[length], chosen, True, axis=1)
    return masks


def _sample(
    spec: NetworkSpec,
    tape: Tape,
    dy: np.ndarray,
    k: int,
    samples: int,
    step: Callable[[], None],
) -> SampledPaths:
    """Veit's single paths: per block, A = after_add(g); g = α·J_Fᵀ(A) on the path's branches,
    s·A elsewhere. ‖∂L/∂x‖ along each, summarised per length."""
    on = draw_paths(spec, k, samples).reshape(-1, spec.blocks)  # (P, B), P = (K+1)·M
    chunk = _sample_chunk(spec)
    mantissa, exponent = np.empty(len(on)), np.empty(len(on), dtype=np.int64)
    order = list(reversed(blocks(spec)))
    for start in range(0, len(on), chunk):
        part = on[start : start + chunk]
        g = _start(dy, len(part))
        for block in order:
            g = _single_paths(spec, tape, block, g, part[:, block.number])
            step()
        norms = _norms(g)
        mantissa[start : start + len(part)] = norms.mantissa
        exponent[start : start + len(part)] = norms.exponent
    m, e = mantissa.reshape(k + 1, samples), exponent.reshape(k + 1, samples)
    log10 = Magnitudes(m, e).log10  # (K+1, M)
    rows = np.arange(k + 1)
    low, high = np.argmin(log10, axis=1), np.argmax(log10, axis=1)
    return SampledPaths(
        count=samples,
        mean=_mean(m, e),
        min=Magnitudes(m[rows, low], e[rows, low]),
        max=Magnitudes(m[rows, high], e[rows, high]),
    )


def _single_paths(spec: NetworkSpec, tape: Tape, block: Block, g: Scaled, on: np.ndarray) -> Scaled:
    """One block for a stack of single paths; ``on`` (P,) says which take the branch here."""
    s, alpha = math.frexp(spec.skip_scale), math.frexp(spec.residual_scale)
    arriving = after_add_vjp(spec, tape, block, g.values)  # (P, B, n), ours to change
    taken = np.flatnonzero(on)
    if len(taken):
        arriving[taken] = branch_vjp(spec, tape, block, arriving[taken])
    mantissa = np.where(on, alpha[0], s[0])
    exponent = g.exponent + np.where(on, alpha[1], s[1])
    top = _tops(arriving, exponent, 1.0)
    top[mantissa == 0] = ZERO_EXP
    limit = int(np.finfo(arriving.dtype).maxexp) - 2
    shift = np.clip(exponent - top, -4 * limit, limit)
    arriving *= np.ldexp(mantissa.astype(arriving.dtype), shift)[:, None, None]
    return Scaled(arriving, top)


def _mean(m: np.ndarray, e: np.ndarray) -> Magnitudes:
    """Row means of magnitudes m·2^e (K+1, M), taken at each row's largest exponent."""
    nonzero = m != 0
    top = np.where(nonzero, e, ZERO_EXP).max(axis=1)
    top = np.where(top == ZERO_EXP, 0, top)
    shift = np.clip(e - top[:, None], -2200, 0)
    mean = np.where(nonzero, np.ldexp(m, shift), 0.0).mean(axis=1)
    return Magnitudes(mean, top)


# ---- measuring --------------------------------------------------------------------------------


def _norms(g: Scaled) -> Magnitudes:
    """‖slice‖ for each slice, exact beyond float range: each brought near 1 first."""
    tops = _tops(g.values, g.exponent, 1.0)
    zero = tops == ZERO_EXP
    scaled = g.values * _factors(np.where(zero, 0, g.exponent - tops), 1.0, g.values.dtype)
    flat = scaled.reshape(len(scaled), -1).astype(np.float64, copy=False)
    mantissa = np.sqrt(np.vecdot(flat, flat))
    mantissa[zero] = 0.0
    return Magnitudes(mantissa, np.where(zero, 0, tops))


def _at(values: np.ndarray, exponent: np.ndarray, common: int) -> np.ndarray:
    """Σ_i values[i] · 2^(exponent[i] − common) (B, n): slices summed at one exponent."""
    factors = _factors(exponent - common, 1.0, np.dtype(np.float64))[:, 0, 0]
    summed: np.ndarray = np.tensordot(factors, values.astype(np.float64, copy=False), axes=1)
    return summed


def _ratio(top: tuple[float, int], bottom: tuple[float, int]) -> float:
    """(m·2^e) / (m'·2^e') as a float (0 or inf beyond range, nan for 0/0)."""
    if bottom[0] == 0:
        return 0.0 if top[0] == 0 else math.inf
    shift = max(-2200, min(2200, top[1] - bottom[1]))
    return float(np.ldexp(top[0] / bottom[0], shift))  # 0 or inf beyond range, no error


def _reconstruction(g: Scaled, ordinary: tuple[np.ndarray, int]) -> float:
    """‖Σ_k G_k − ∂L/∂x‖ / ‖∂L/∂x‖, all at one exponent (the largest of them)."""
    reference, ref_exponent = ordinary
    ref = Scaled(reference[None], np.array([ref_exponent], dtype=np.int64))
    tops = np.concatenate([_tops(g.values, g.exponent, 1.0), _tops(ref.values, ref.exponent, 1.0)])
    common = int(tops.max())
    if common == ZERO_EXP:  # everything exactly zero
        return 0.0
    difference = _at(g.values, g.exponent, common) - _at(ref.values, ref.exponent, common)
    return _ratio(exact_norm(difference, 0), exact_norm(_at(ref.values, ref.exponent, common), 0))


def _shares(log10_grad: np.ndarray) -> np.ndarray:
    """‖G_k‖² / Σ_j ‖G_j‖² from exact log10 norms (so also beyond float range); nan where the
    energy is not finite, or 0 (every part exactly 0: no share is defined)."""
    energy = 2 * log10_grad
    top = energy.max()
    if np.isnan(energy).any() or top == math.inf or top == -math.inf:
        return np.full(len(energy), math.nan)
    weights = np.power(10.0, energy - top)
    shares: np.ndarray = weights / weights.sum()
    return shares


def _cumulative(shares: np.ndarray, whole: bool) -> np.ndarray:
    """Σ_{j≤k} share_j; where the shares are all of them (no remainder), the last is 1 exactly,
    as by definition, not 1 ± a rounding (which read >99.99%)."""
    cumulative: np.ndarray = np.cumsum(shares)
    if whole and np.isfinite(cumulative[-1]):
        cumulative[-1] = 1.0
    return cumulative


def _log10_root_energy(log10_grad: np.ndarray) -> float:
    """log10 sqrt(Σ_k ‖G_k‖²) from exact log10 norms."""
    top = float(np.max(log10_grad))
    if not math.isfinite(top):
        return top
    return top + 0.5 * math.log10(float(np.sum(np.power(10.0, 2 * (log10_grad - top)))))


def effective_range(
    low: np.ndarray, high: np.ndarray, shares: np.ndarray, needed: float = EFFECTIVE_SHARE
) -> tuple[int, int, float] | None:
    """The shortest window of consecutive bins (bin i covers lengths low[i]..high[i]) whose
    shares add up to at least ``needed``: (first length, last length, share); the larger share
    among windows as short, then the lower one. None when the shares are not finite or zero."""
    if not np.isfinite(shares).all() or shares.sum() == 0:
        return None
    prefix = np.concatenate([[0.0], np.cumsum(shares)])
    needed = min(needed, float(prefix[-1]))  # rounding: the whole may add up to 1 − ε
    best: tuple[int, float, int, int] | None = None
    for i in range(len(shares)):
        j = int(np.searchsorted(prefix, prefix[i] + needed - 1e-12, side="left")) - 1
        if j >= len(shares):
            break
        j = max(j, i)
        span, share = int(high[j] - low[i]), float(prefix[j + 1] - prefix[i])
        if best is None or (span, -share) < (best[0], -best[1]):
            best = (span, share, int(low[i]), int(high[j]))
    assert best is not None
    return best[2], best[3], best[1]


def _measure(
    spec: NetworkSpec,
    k: int,
    split: Scaled,
    ordinary: tuple[np.ndarray, int],
    samples: SampledPaths | None,
) -> Decomposition:
    count = spec.blocks
    paths = tuple(math.comb(count, length) for length in range(k + 1))
    norms = _norms(split)
    shares = _shares(norms.log10)  # lengths 0..K, then the remainder
    truncated = k < count
    remainder = None
    if truncated:
        rest = 2**count - sum(paths)
        remainder = Remainder(
            low=k + 1,
            high=count,
            paths=rest,
            log10_paths=math.log10(rest),
            grad=Magnitudes(norms.mantissa[-1:], norms.exponent[-1:]),
            share=float(shares[-1]),
        )
    lengths = np.arange(k + 1 + truncated)
    high = lengths.copy()
    if truncated:
        high[-1] = count
    window = effective_range(lengths, high, shares)
    effective = None
    if window is not None:
        effective = Effective(window[0], window[1], window[2], truncated and window[1] == count)
    rest_share = float(shares[-1]) if truncated else 0.0
    total = _norms(Scaled(ordinary[0][None], np.array([ordinary[1]], dtype=np.int64)))
    return Decomposition(
        spec=spec,
        blocks=count,
        max_length=k,
        paths=paths,
        log10_paths=np.array([math.log10(p) for p in paths]),
        grad=Magnitudes(norms.mantissa[: k + 1], norms.exponent[: k + 1]),
        share=shares[: k + 1],
        cumulative=_cumulative(shares[: k + 1], whole=not truncated),
        remainder=remainder,
        total=total,
        # relative to ∂L/∂x: none where it is exactly 0
        check=_reconstruction(split, ordinary) if total.mantissa[0] != 0 else math.nan,
        log10_cancellation=_log10_root_energy(norms.log10) - float(total.log10[0]),
        effective=effective,
        mean_length=float(np.dot(lengths, shares)),
        # the remainder's lengths are K+1..B: one length only when K = B − 1
        mean_length_exact=not truncated or rest_share == 0.0 or k + 1 == count,
        samples=samples,
        warnings=_trouble(spec, norms, total),
    )


def _trouble(spec: NetworkSpec, parts: Magnitudes, total: Magnitudes) -> tuple[str, ...]:
    """What keeps a split from meaning what it says: non-finite values, or parts that are 0 in
    floats only because φ′ rounded to 0 where every unit saturated (``branch_zeros_may_be_true``
    says where an exact 0 may be a true one)."""
    if not (np.isfinite(parts.mantissa).all() and np.isfinite(total.mantissa).all()):
        return ("the pass produced non-finite values (overflow or NaN): no split is measured",)
    if branch_zeros_may_be_true(spec):
        return ()
    where = f"0 in {spec.dtype.value}: φ′ rounds to 0 at every unit"
    if total.mantissa[0] == 0 and spec.skip is Skip.POST:  # φ′ after the add stops the skip too
        return (f"∂L/∂x is {where} after an add (saturated), so every part is below the float "
                "range, not zero",)  # fmt: skip
    if parts.mantissa[0] != 0 and (parts.mantissa[1:] == 0).all():
        return (f"every path through a branch is {where} of the branches (saturated), so "
                "those parts are below the float range, not zero",)  # fmt: skip
    return ()
