"""A sweep: the grid of flag values, its runs, and what the runs add up to.

A sweep runs ``analyze`` at every grid point, for every variant and seed; a run is exactly
``gradflow analyze`` with those flags (``run_spec``), so it gives the same numbers. Here are the
grid (points in grid order, the first varied flag changing slowest), the runs (point × variant ×
seed, in that order), the aggregation over seeds (median, min, max, verdict counts) and the
slopes the one-line reading quotes. Running and rendering are elsewhere; nothing here imports
NumPy.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gradflow.analysis.verdict import Verdict
from gradflow.engine.spec import NetworkSpec, Skip

Value = int | float | str  # one flag's value at a grid point (an enum flag: its name)
Values = tuple[tuple[str, Value], ...]  # (spec field, value) per varied flag, in --vary order


def flag_name(field: str) -> str:
    """A spec field as its flag is spelled, without the dashes: ``block-size``."""
    return field.replace("_", "-")


def value_text(value: Value) -> str:
    """A grid value as the user would type it: ``4``, ``0.5``, ``tanh``."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def values_text(values: Values) -> str:
    """A grid point: ``depth=10 width=64``."""
    return " ".join(f"{flag_name(f)}={value_text(v)}" for f, v in values)


@dataclass(frozen=True)
class Axis:
    """One ``--vary``: a spec field and its values, in the order given."""

    field: str  # the NetworkSpec field, e.g. "block_size"
    values: tuple[Value, ...]
    geometric: bool = False  # values evenly spaced on a log scale: the chart's x is log10

    @property
    def numeric(self) -> bool:
        return all(not isinstance(v, str) for v in self.values)


@dataclass(frozen=True)
class Run:
    """One pass of the sweep: a grid point, a variant and a seed."""

    point: int  # index of the grid point
    values: Values
    variant: Skip
    seed: int

    @property
    def key(self) -> tuple[Values, str, int]:
        """What identifies the run in a results file."""
        return self.values, str(self.variant), self.seed


def points(axes: Sequence[Axis]) -> list[Values]:
    """Every combination of the axes' values, the first axis changing slowest."""
    fields = [a.field for a in axes]
    return [tuple(zip(fields, combo, strict=True)) for combo in itertools.product(
        *(a.values for a in axes)
    )]  # fmt: skip


def count_runs(axes: Sequence[Axis], variants: int, seeds: int) -> int:
    """How many runs the grid holds, without listing them."""
    return math.prod(len(a.values) for a in axes) * variants * seeds


def runs(axes: Sequence[Axis], variants: Sequence[Skip], seed: int, seeds: int) -> list[Run]:
    """Every run in grid order: point, then variant, then seed ``seed … seed+seeds-1``."""
    return [
        Run(i, values, variant, seed + s)
        for i, values in enumerate(points(axes))
        for variant in variants
        for s in range(seeds)
    ]


def point_spec(base: NetworkSpec, values: Values, variant: Skip | str) -> NetworkSpec:
    """The spec ``analyze`` would run at this point with ``--skip variant`` (seed of ``base``).

    Raises ValueError naming the field when the combination cannot run."""
    changes: dict[str, Any] = dict(values)
    zero_init = base.zero_init_residual and Skip.parse(variant, "variants") is not Skip.NONE
    return base.replace(**changes, skip=variant, zero_init_residual=zero_init)


def run_spec(base: NetworkSpec, run: Run) -> NetworkSpec:
    """The spec of one run: its point, its variant, its seed."""
    return point_spec(base, run.values, run.variant).replace(seed=run.seed)


# ---- aggregation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What the aggregation reads from one run's summary."""

    log10_weight_ratio: float  # -inf: the first layer's gradient is exactly zero; nan: none
    log10_gain: float
    verdict: Verdict


@dataclass(frozen=True)
class Spread:
    """Median, min and max over seeds of one log10 ratio (nan where no seed gave a number)."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, xs: Sequence[float]) -> Spread:
        numbers = sorted(x for x in xs if not math.isnan(x))
        if not numbers:
            return cls(math.nan, math.nan, math.nan)
        return cls(_median(numbers), numbers[0], numbers[-1])


def _median(numbers: list[float]) -> float:
    """The median; of two infinities of the same sign, that infinity (not inf - inf)."""
    middle = len(numbers) // 2
    if len(numbers) % 2 or numbers[middle - 1] == numbers[middle]:
        return numbers[middle]
    return statistics.median(numbers)


@dataclass(frozen=True)
class PointResult:
    """One grid point and variant, over its seeds."""

    point: int
    values: Values
    variant: Skip
    weight_ratio: Spread
    gain: Spread
    verdicts: dict[Verdict, int]  # every verdict, in Verdict order, with its count
    theory: float | None  # predicted log10_gain; None where no prediction applies (or not asked)

    @property
    def residual(self) -> float | None:
        """Measured median minus predicted log10_gain, decades."""
        if self.theory is None or not math.isfinite(self.gain.median):
            return None
        return self.gain.median - self.theory


def aggregate(
    grid: Sequence[Run],
    outcomes: Sequence[Outcome],
    theory: Callable[[Run], float | None] | None = None,
) -> list[PointResult]:
    """One result per (point, variant), in grid order; ``outcomes`` match ``grid`` one to one."""
    groups: dict[tuple[int, Skip], list[tuple[Run, Outcome]]] = {}
    for run, outcome in zip(grid, outcomes, strict=True):
        groups.setdefault((run.point, run.variant), []).append((run, outcome))
    results = []
    for (point, variant), members in groups.items():
        first = members[0][0]
        found = [o for _, o in members]
        counts = {v: sum(o.verdict is v for o in found) for v in Verdict}
        results.append(
            PointResult(
                point=point,
                values=first.values,
                variant=variant,
                weight_ratio=Spread.of([o.log10_weight_ratio for o in found]),
                gain=Spread.of([o.log10_gain for o in found]),
                verdicts=counts,
                theory=None if theory is None else theory(first),
            )
        )
    return results


# ---- the reading ------------------------------------------------------------------------------


def slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of ys against xs over the finite pairs; None with fewer than two
    distinct xs."""
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(x) and math.isfinite(y)]
    if len({x for x, _ in pairs}) < 2:
        return None
    mx = sum(x for x, _ in pairs) / len(pairs)
    my = sum(y for _, y in pairs) / len(pairs)
    sxx = sum((x - mx) ** 2 for x, _ in pairs)
    return sum((x - mx) * (y - my) for x, y in pairs) / sxx
