"""``gradflow sweep``'s flags → a validated SweepPlan, every refusal before any run.

``--vary FLAG=VALUES`` takes a comma list (``10,20,50``), an even range ``start:stop:count``
or a geometric one ``start:stop:count:log``; integer flags round to distinct integers, enum
flags take names. Each value, and each grid point with each variant, is checked by building
its NetworkSpec, the engine's own validation, so ranges are stated in one place only.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradflow.analysis import sweep
from gradflow.analysis.sweep import Axis, Value, flag_name, value_text
from gradflow.analysis.verdict import Thresholds
from gradflow.cli.errors import BadInput, quoted, shorten
from gradflow.cli.figure_files import FigureTarget, check_plot
from gradflow.cli.files import Kind, OutputTarget
from gradflow.cli.options import SweepFormat
from gradflow.cli.plan import (
    SUFFIX_FORMAT,
    NetworkFlags,
    ThresholdFlags,
    _flags_in,
    _from_value_error,
    _positive,
    _size,
    _spec,
    _thresholds,
    _variants,
    flag,
    format_for,
)
from gradflow.engine.spec import Activation, Choice, DType, Init, Loss, NetworkSpec, Norm, Skip
from gradflow.engine.threads import available, cores

MAX_RUNS = 100_000  # more needs --yes
# the most with --yes: every point is checked and every run listed before any runs (some 30 µs
# and 300 bytes each: 3,000,000 took 94 s and 1 GB to plan); split a larger grid
MAX_RUNS_EVER = 1_000_000
MAX_RANGE = 1_000_000  # values in one start:stop:count range, --yes or not
INSTALL_DASK = "pip install 'gradflow-cli[dask]'"


SWEEP_SUFFIX = {**{k: SweepFormat(v.value) for k, v in SUFFIX_FORMAT.items()},
                ".jsonl": SweepFormat.JSONL}  # fmt: skip

# The flags --vary takes, by flag name: the spec field and how a value is read.
NUMBER_FIELDS: dict[str, type] = {
    "depth": int,
    "width": int,
    "batch": int,
    "block_size": int,
    "residual_scale": float,
    "skip_scale": float,
    "branch_weight_scale": float,
    "weight_var": float,
    "bias_var": float,
}
CHOICE_FIELDS: dict[str, type[Choice]] = {
    "activation": Activation,
    "init": Init,
    "norm": Norm,
    "loss": Loss,
    "dtype": DType,
}
VARIABLE = [*NUMBER_FIELDS, *CHOICE_FIELDS]
GEOMETRIC_SPREAD = 1.3  # a comma list is geometric when its step ratios differ by less (1-2-5)


@dataclass(frozen=True)
class SweepFlags:
    vary: tuple[str, ...]
    variants: str
    seeds: int
    theory: bool
    jobs: int | None  # None: one per core
    scheduler: str | None
    resume: bool
    yes: bool


@dataclass(frozen=True)
class SweepPlan:
    """Everything a sweep needs, validated."""

    base: NetworkSpec  # the flags not varied; a run replaces its point's values, skip and seed
    axes: tuple[Axis, ...]
    variants: tuple[Skip, ...]
    seeds: int
    runs: tuple[sweep.Run, ...]
    thresholds: Thresholds
    theory: bool
    jobs: int
    scheduler: str | None
    max_memory: int | None
    threads: int  # --threads, or threads.available(): shared among the jobs
    format: SweepFormat
    output: OutputTarget | None  # None: stdout
    resume: bool
    quiet: bool
    plot: FigureTarget | None = None  # --plot: the figure's file and format


def make_sweep_plan(
    *,
    sweep_flags: SweepFlags,
    network: NetworkFlags,
    thresholds: ThresholdFlags,
    format: SweepFormat | None,
    output: Path | None,
    max_memory: str | None,
    quiet: bool,
    plot: Path | None = None,
    threads: int | None = None,
    given: frozenset[str] = frozenset(),
) -> SweepPlan:
    """Check every flag and every grid point; BadInput (exit 2, one line) for the first that
    cannot run. The output file comes last: checking it touches the file system."""
    axes = parse_axes(sweep_flags.vary)
    for axis in axes:  # the grid would silently override the flag
        if axis.field in given:
            name = flag_name(axis.field)
            raise BadInput("--vary", f"{name} is also given as --{name}; vary it or set it")
    variants = _variants(sweep_flags.variants)
    if sweep_flags.seeds < 1:
        raise BadInput("--seeds", f"must be at least 1, got {sweep_flags.seeds}")
    total = sweep.count_runs(axes, len(variants), sweep_flags.seeds)
    if total > MAX_RUNS_EVER:
        raise BadInput("--vary", f"the grid holds {total:,} runs, over {MAX_RUNS_EVER:,}; split it")
    if total > MAX_RUNS and not sweep_flags.yes:
        raise BadInput("--vary", f"the grid holds {total:,} runs (over {MAX_RUNS:,}); add --yes")
    _check_values(axes)
    _check_points(network, axes, variants)
    first: dict[str, Any] = {a.field: a.values[0] for a in axes}
    base = _spec(network._replace(**first), variants)
    judged = _thresholds(thresholds)
    if threads is not None:
        _positive(threads, "--threads")
    jobs = _jobs(sweep_flags, threads)
    memory = None if max_memory is None else _size(max_memory, "--max-memory")
    target = None
    if output is not None and str(output) != "-":
        target = OutputTarget.check(output, "--output")
    chosen = _format(format, target)
    if sweep_flags.resume:
        _check_resume(target, chosen)
    figure = None
    if plot is not None:
        if not axes[0].numeric:
            flag_shown = flag_name(axes[0].field)
            raise BadInput("--plot", f"draws against a number; the first --vary is {flag_shown}")
        figure = check_plot(plot, (target,))
    if quiet and chosen is not SweepFormat.TABLE and target is None:
        raise BadInput("--quiet", f"shortens the table; --format {chosen} is already for scripts")
    return SweepPlan(
        base=base,
        axes=axes,
        variants=variants,
        seeds=sweep_flags.seeds,
        runs=tuple(sweep.runs(axes, variants, base.seed, sweep_flags.seeds)),
        thresholds=judged,
        theory=sweep_flags.theory,
        jobs=jobs,
        scheduler=sweep_flags.scheduler,
        max_memory=memory,
        threads=available() if threads is None else threads,
        format=chosen,
        output=target,
        resume=sweep_flags.resume,
        quiet=quiet,
        plot=figure,
    )


# ---- --vary -----------------------------------------------------------------------------------


def parse_axes(texts: tuple[str, ...]) -> tuple[Axis, ...]:
    """Each ``--vary FLAG=VALUES`` as an Axis, in the order given."""
    if not texts:
        raise BadInput("--vary", "give at least one, e.g. --vary depth=10,20,50")
    axes: list[Axis] = []
    for text in texts:
        axis = parse_axis(text)
        if any(a.field == axis.field for a in axes):
            raise BadInput("--vary", f"{flag_name(axis.field)} is varied twice")
        axes.append(axis)
    return tuple(axes)


def parse_axis(text: str) -> Axis:
    name, equals, values = text.partition("=")
    field = name.strip().lower().removeprefix("--").replace("-", "_")
    if not equals:
        raise BadInput("--vary", f"expected FLAG=VALUES, got {quoted(text)}")
    if field not in VARIABLE:
        accepted = ", ".join(flag_name(f) for f in VARIABLE)
        raise BadInput("--vary", f"unknown flag {quoted(name.strip())} (accepted: {accepted})")
    values = values.strip()
    if not values:
        raise BadInput("--vary", f"{flag_name(field)}: no values given")
    if ":" in values:
        return _range(field, values)
    return _listed(field, values)


def _listed(field: str, text: str) -> Axis:
    parts = [part.strip() for part in text.split(",")]
    if any(not part for part in parts):
        raise BadInput("--vary", f"{flag_name(field)}: empty value in {quoted(text)}")
    chosen: list[Value] = [_value(field, part) for part in parts]
    for i, value in enumerate(chosen):
        if value in chosen[:i]:
            raise BadInput("--vary", f"{flag_name(field)}: {parts[i]} is listed twice")
    return Axis(field, tuple(chosen), _looks_geometric(chosen))


def _value(field: str, text: str) -> Value:
    if field in CHOICE_FIELDS:
        try:
            return str(CHOICE_FIELDS[field].parse(text, field).value)
        except ValueError as error:
            raise BadInput("--vary", _flags_in(str(error))) from None
    number = _number(field, text)
    if NUMBER_FIELDS[field] is int:
        if number != int(number):
            raise BadInput("--vary", f"{flag_name(field)}: expected an integer, got {text!r}")
        return int(number)
    return number


def _number(field: str, text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise BadInput(
            "--vary", f"{flag_name(field)}: expected a number, got {quoted(shorten(text))}"
        ) from None
    if not math.isfinite(number):
        raise BadInput("--vary", f"{flag_name(field)}: must be finite, got {text!r}")
    return number


RANGE = re.compile(r"([^:]+):([^:]+):([^:]+)(:log)?", re.IGNORECASE)


def _range(field: str, text: str) -> Axis:
    """``start:stop:count`` evenly spaced, ``:log`` geometrically; integer flags rounded."""
    match = RANGE.fullmatch(text.replace(" ", ""))
    if match is None or field in CHOICE_FIELDS:
        expected = "a comma list" if field in CHOICE_FIELDS else "start:stop:count[:log]"
        raise BadInput("--vary", f"{flag_name(field)}: expected {expected}, got {quoted(text)}")
    start, stop = _number(field, match.group(1)), _number(field, match.group(2))
    count_text, geometric = match.group(3), match.group(4) is not None
    if not (count_text.isascii() and count_text.isdigit()) or int(count_text[:12]) < 2:
        raise BadInput(
            "--vary", f"{flag_name(field)}: count must be at least 2, got {shorten(count_text)}"
        )
    if len(count_text) > 12 or int(count_text) > MAX_RANGE:  # refused before any is listed
        raise BadInput(
            "--vary",
            f"{flag_name(field)}: count must be at most {MAX_RANGE:,}, got {shorten(count_text)}",
        )
    count = int(count_text)
    if geometric and (start <= 0 or stop <= 0):
        raise BadInput("--vary", f"{flag_name(field)}: a :log range needs start and stop above 0")
    # Where stop - start or stop / start leaves the float range (-1e308:1e308, 1e-300:1e300:log),
    # each point from the ends' own terms; elsewhere from the step, which hits 0 exactly where a
    # range crosses it (-1:2:4 is -1, 0, 1, 2).
    span = stop / start if geometric else stop - start
    if geometric and not 0 < span < math.inf:
        low, high = math.log(start), math.log(stop)
        raw = [math.exp(low + (high - low) * i / (count - 1)) for i in range(count)]
        raw[0] = start
    elif geometric:
        raw = [start * math.exp(math.log(span) * i / (count - 1)) for i in range(count)]
    elif not math.isfinite(span):
        raw = [start * (1 - i / (count - 1)) + stop * (i / (count - 1)) for i in range(count)]
    else:
        raw = [start + span * i / (count - 1) for i in range(count)]
    raw[-1] = stop  # exactly the end the user gave
    values: list[Value]
    if NUMBER_FIELDS[field] is int:
        values = list(dict.fromkeys(round(x) for x in raw))  # distinct, in order
    else:
        values = list(dict.fromkeys(float(f"{x:.12g}") for x in raw))  # 0.1 + 0.2 shown as 0.3
    if len(values) < 2:  # as a list that names one value twice is refused
        raise BadInput(
            "--vary", f"{flag_name(field)}: {quoted(text)} gives one value only, {values[0]}"
        )
    return Axis(field, tuple(values), geometric)


def _looks_geometric(values: list[Value]) -> bool:
    """Three or more positive numbers whose step ratios are (nearly) one ratio, not 1."""
    numbers = [float(v) for v in values if not isinstance(v, str)]
    if len(numbers) < 3 or len(numbers) != len(values) or min(numbers) <= 0:
        return False
    ratios = [b / a for a, b in itertools.pairwise(numbers)]
    if min(ratios) <= 1 < max(ratios):
        return False
    logs = [abs(math.log(r)) for r in ratios]
    return min(logs) > math.log(1.2) and max(logs) - min(logs) < math.log(GEOMETRIC_SPREAD)


def _check_values(axes: tuple[Axis, ...]) -> None:
    """Each value alone, in a plain network of default flags: its own range."""
    for axis in axes:
        for value in axis.values:
            try:
                NetworkSpec().replace(**{axis.field: value})
            except ValueError as error:
                where = f"{flag_name(axis.field)}={value_text(value)}"
                raise BadInput("--vary", f"{where}: {_message(error)}") from None


def _check_points(
    network: NetworkFlags, axes: tuple[Axis, ...], variants: tuple[Skip, ...]
) -> None:
    """Every grid point with every variant, built from the flags as ``analyze`` would build
    it; a refusal that names a varied flag says at which point."""
    varied = {flag(a.field) for a in axes}
    for values in sweep.points(axes):
        for variant in variants:
            zero_init = network.zero_init_residual and variant is not Skip.NONE
            changes: dict[str, Any] = {**dict(values), "zero_init_residual": zero_init}
            try:
                _spec(network._replace(**changes), (variant,))
            except BadInput as bad:
                # the flag refused, and flags or fields its message names ("needs batch ≥ 2")
                named = {
                    bad.param_hint,
                    *("--" + w for w in re.findall(r"[a-z][a-z-]*", bad.message)),
                }
                if not named & varied:
                    raise
                where = sweep.values_text(values)
                raise BadInput(
                    "--vary", f"{where} with {variant.label}: {bad.param_hint}: {bad.message}"
                ) from None


def _message(error: ValueError) -> str:
    """The engine's ``field: message``, with field names spelled as flags."""
    bad = _from_value_error(error)
    return f"{bad.param_hint}: {bad.message}"


# ---- execution and output ---------------------------------------------------------------------


def _jobs(flags: SweepFlags, threads: int | None) -> int:
    if flags.scheduler is not None:
        if flags.jobs is not None:
            raise BadInput("--jobs", "runs a local pool; --scheduler sends the runs to a cluster")
        if not flags.scheduler.strip():
            raise BadInput("--scheduler", "give an address such as tcp://host:8786")
        if importlib.util.find_spec("distributed") is None:
            raise BadInput("--scheduler", f"needs Dask distributed: {INSTALL_DASK}")
        return 1
    if flags.jobs is None:  # one a core (the runs share the threads: executors.run_threads)
        return cores() if threads is None else threads
    if flags.jobs < 1:
        raise BadInput("--jobs", f"must be at least 1, got {flags.jobs}")
    return flags.jobs


def _format(chosen: SweepFormat | None, target: OutputTarget | None) -> SweepFormat:
    return format_for(chosen, target, SWEEP_SUFFIX, SweepFormat.TABLE)


def _check_resume(target: OutputTarget | None, chosen: SweepFormat) -> None:
    """--resume completes a jsonl file (one that does not exist yet is started)."""
    if chosen is not SweepFormat.JSONL:
        raise BadInput("--resume", "completes a jsonl file; give --output FILE.jsonl")
    if target is None or target.kind not in (Kind.REPLACE, Kind.IN_PLACE):
        raise BadInput("--resume", "needs --output naming a regular file")
