"""Norms of values kept at a scale of their own: ``‖v‖ = mantissa · 2**exponent``.

Backward keeps its gradient near norm 1 by exact powers of two and carries the exponent, so a
magnitude far outside float64's range is still recorded exactly. These helpers take such norms
without letting a sum of squares under- or overflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from gradflow.engine.spec import Choice

# ---- range thresholds: every one the engine and the statistics use, in one place ----------

# Rescale when ‖g‖ leaves [2^-32, 2^32]: far from both ends of float32's and float64's range.
LOW_SQ, HIGH_SQ = 2.0**-64, 2.0**64
# A float64 sum of squares from this is good to float64 precision: what its tiniest squares
# lost to underflow is below 2^-82 of it, for up to 2^40 terms.
SUM_SQ_LOW = 2.0**-900
# A Gram sum ⟨A Aᵀ, G Gᵀ⟩ and its bound must lie well inside float64 (they are summed there).
GRAM_SUM_RANGE = (SUM_SQ_LOW, 2.0**900)


# Limits, a table row, is a named tuple: immutable, and created at import for a quarter of a
# frozen dataclass's cost. Magnitudes stays a frozen dataclass (len() counts its values) without
# the generated == and repr: it holds arrays, whose == is ambiguous.
class Limits(NamedTuple):
    """When a fast path's sums of squares can be trusted, per dtype."""

    gram_cancel: float  # ⟨|P|, |Q|⟩ / ⟨P, Q⟩ above this: the Gram sum may have lost too much
    gram_window: int  # scale a layer's A first where its first row lies beyond 2^±window
    moments_range: tuple[float, float]  # mean of squares outside this: measure scaled
    variance_cancel: float  # var ≤ this·mean²: the one-pass variance cancelled; centre first


LIMITS: dict[np.dtype, Limits] = {
    # worst-case relative losses: 2^-40 (Gram), ~1e-11 (variance: the sum of squares' few
    # ulps of mean², over var ≥ 1e-4·mean²; at 1e-8, a std was 2.7e-8 off)
    np.dtype(np.float64): Limits(2.0**12, 1024 // 4, (1e-250, 1e250), 1e-4),
    # 2^-15 (Gram; measured at most 1e-6, like the explicit float32 product), 1e-1 (variance)
    np.dtype(np.float32): Limits(2.0**8, 128 // 4, (1e-30, 1e30), 1e-1),
}


def sum_sq(v: np.ndarray) -> float:
    return float(np.vdot(v, v))  # BLAS dot over the flattened (contiguous) array


def rescale(g: np.ndarray, exponent: int) -> tuple[float, int]:
    """Keep ‖g‖ near 1 by an exact power of two, in place. Returns (‖g‖, new exponent)."""
    sq = sum_sq(g)
    if LOW_SQ <= sq <= HIGH_SQ:
        return math.sqrt(sq), exponent
    return exact_norm(g, exponent, inplace=True)


def times_pow2(x: np.ndarray, shift: int, out: np.ndarray | None = None) -> np.ndarray:
    """x · 2**shift, exact wherever the result is a normal number, as np.ldexp is; but as plain
    multiplies, which NumPy runs ~30x faster. Each factor is a normal number of x's dtype, so a
    large shift takes up to three steps (beyond that every finite nonzero value is 0 or inf)."""
    step = int(np.finfo(x.dtype).maxexp) - 2
    shift = max(-3 * step, min(3 * step, shift))
    part = max(-step, min(step, shift))
    result: np.ndarray = np.multiply(x, 2.0**part, out=out)
    shift -= part
    while shift:
        part = max(-step, min(step, shift))
        np.multiply(result, 2.0**part, out=result)
        shift -= part
    return result


def slab_shifts(stack: np.ndarray) -> np.ndarray:
    """For each (B, n) slab of a (K, B, n) stack, the power of two that brings the largest
    |value| of its first row into [1/2, 1), clipped so that 2**shift is a normal number of the
    dtype; 0 where that value is 0, inf or NaN. A cheap probe (one row per slab) for values
    whose squares would leave the float range."""
    peak = np.max(np.abs(stack[:, 0, :]), axis=1)
    limit = int(np.finfo(stack.dtype).maxexp) - 2
    shifts: np.ndarray = np.negative(np.frexp(peak)[1], dtype=np.int64)
    np.minimum(shifts, limit, out=shifts)  # np.clip costs ~10x these two calls
    np.maximum(shifts, -limit, out=shifts)
    return shifts


def scale_slabs(stack: np.ndarray, shifts: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """stack[k] · 2**shifts[k] for each slab, exact where the result is a normal number."""
    factors = np.ldexp(np.ones(len(stack), dtype=stack.dtype), shifts)  # exact powers of two
    result: np.ndarray = np.multiply(stack, factors[:, None, None], out=out)
    return result


def unit_scale(x: np.ndarray, out: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """x · 2**shift with max |x · 2**shift| in [1/2, 1) (exact), and shift; x itself (shift 0)
    where its largest value is 0, inf or nan."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak == 0.0 or not math.isfinite(peak):
        return x, 0
    shift = -math.frexp(peak)[1]
    return times_pow2(x, shift, out=out), shift


def exact_norm(v: np.ndarray, exponent: int, inplace: bool = False) -> tuple[float, int]:
    """‖v‖ as (mantissa, exponent), safe where v·v over- or underflows; nan/inf pass through."""
    if not v.any():  # all zero (a dead network): one cheap pass
        return 0.0, exponent
    scaled, shift = unit_scale(v, out=v if inplace else None)
    return math.sqrt(sum_sq(scaled)), exponent - shift


def checked_norm(sq: float, v: np.ndarray, exponent: int) -> tuple[float, int]:
    """Norm from a sum of squares, falling back to the exact path if the squares left range."""
    if 0.0 < sq < math.inf:
        return math.sqrt(sq), exponent
    if v.dtype != np.float64:  # float32 squares leave range early (|x| < 1e-19): sum in float64
        flat = v.reshape(-1)
        sq = float(np.einsum("i,i->", flat, flat, dtype=np.float64))
        if 0.0 < sq < math.inf:
            return math.sqrt(sq), exponent
    return exact_norm(v, exponent)


# ---- magnitudes beyond float range ----

LOG10_2 = math.log10(2.0)


class Status(Choice):
    """How a magnitude relates to float64's range."""

    OK = "ok"
    ZERO = "zero"  # exactly zero, not merely small
    UNDERFLOW = "underflow"  # nonzero, below float64's smallest subnormal; see log10
    OVERFLOW = "overflow"  # finite, above float64's largest value; see log10
    NAN = "nan"
    INF = "inf"


STATUS_ORDER = (Status.OK, Status.NAN, Status.INF, Status.ZERO, Status.UNDERFLOW, Status.OVERFLOW)


@dataclass(frozen=True, eq=False, repr=False)
class Magnitudes:
    """Non-negative magnitudes, each ``mantissa[i] · 2**exponent[i]``, exact beyond float range."""

    mantissa: np.ndarray  # float64; 0 for an exact zero, nan/inf when the pass produced them
    exponent: np.ndarray  # int64 binary exponent carried alongside

    @classmethod
    def from_values(cls, values: np.ndarray | list[float]) -> Magnitudes:
        """Wrap ordinary float magnitudes (exponent 0)."""
        mantissa = np.asarray(values, dtype=np.float64)
        return cls(mantissa, np.zeros(mantissa.shape, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.mantissa.shape[0])

    @property
    def value(self) -> np.ndarray:
        """As float64: 0 where the true value underflows, inf where it overflows."""
        with np.errstate(over="ignore", under="ignore"):
            value: np.ndarray = np.ldexp(self.mantissa, self.exponent)
        return value

    @property
    def log10(self) -> np.ndarray:
        """Exact log10 of the magnitude: -inf for zero, nan for nan, +inf for inf."""
        with np.errstate(divide="ignore", invalid="ignore"):
            log10: np.ndarray = np.log10(self.mantissa) + self.exponent * LOG10_2
        return log10

    def status(self) -> list[Status]:
        """How each magnitude relates to float64's range."""
        return [STATUS_ORDER[c] for c in self.status_codes().tolist()]

    def status_codes(self) -> np.ndarray:
        """Each magnitude's status as its index in STATUS_ORDER (int64)."""
        m, value = self.mantissa, self.value
        codes: np.ndarray = np.select(
            [np.isnan(m), np.isinf(m), m == 0, value == 0, np.isinf(value)],
            [1, 2, 3, 4, 5],
            default=0,
        )
        return codes


def from_log10(log10: np.ndarray) -> Magnitudes:
    """Magnitudes from exact log10 values (-inf: zero, +inf: inf, nan: nan)."""
    log2 = np.asarray(log10, dtype=np.float64) / LOG10_2
    finite = np.isfinite(log2)
    exponent = np.where(finite, np.floor(np.where(finite, log2, 0.0)), 0.0).astype(np.int64)
    with np.errstate(invalid="ignore"):
        mantissa = np.where(finite, np.exp2(log2 - exponent), np.where(log2 > 0, np.inf, 0.0))
    mantissa = np.where(np.isnan(log2), np.nan, mantissa)
    return Magnitudes(mantissa, exponent)
