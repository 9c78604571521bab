"""Flags → a validated Plan: every check that can refuse a run, made before any work.

The commands hand over their flags in three groups (network, thresholds, output) and get back
one frozen Plan, or a BadInput naming the flag. Nothing here imports NumPy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from gradflow.analysis.verdict import PAIRS, Thresholds, Verdict
from gradflow.cli.errors import BadInput, quoted
from gradflow.cli.options import SKIP_NAMES, SPEC, Format
from gradflow.engine.spec import Activation, Choice, DType, Init, Loss, NetworkSpec, Norm, Skip

if TYPE_CHECKING:  # loaded by the checks of --output, --save-arrays and --plot, when given
    from gradflow.cli.figure_files import FigureTarget
    from gradflow.cli.files import OutputTarget
    from gradflow.cli.train_plan import TrainPlan

SUFFIX_FORMAT = {
    ".json": Format.JSON,
    ".csv": Format.CSV,
    ".md": Format.MARKDOWN,
    ".markdown": Format.MARKDOWN,
    ".txt": Format.TABLE,
    "": Format.TABLE,  # no suffix (/dev/null, a pipe): the table
}
F = TypeVar("F", bound=Choice)  # an output format enum
SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


G = TypeVar("G")  # a group of flags


def pick(group: type[G], arguments: dict[str, Any]) -> G:
    """A group of flags (a named tuple) taken by name from a command's arguments (``locals()``):
    the command signatures list every flag (typer reads them there), the groups name them once
    more. A flag a command lacks takes the group's default."""
    names: tuple[str, ...] = group._fields  # type: ignore[attr-defined]
    return group(**{name: arguments[name] for name in names if name in arguments})


# The flag groups and the Plan are named tuples: immutable, and created at import for a quarter
# of a frozen dataclass's cost (its generated methods are compiled as each class is made). The
# groups compare by value, like NetworkSpec; the Plan is only read.


class NetworkFlags(NamedTuple):
    """The network flags as given: every NetworkSpec field but skip, which analyze's --skip
    and compare's --variants choose."""

    depth: int
    width: int
    batch: int
    block_size: int
    residual_scale: float
    skip_scale: float
    branch_weight_scale: float
    activation: Activation
    init: Init
    weight_var: float | None
    bias_var: float
    zero_init_residual: bool
    norm: Norm
    loss: Loss
    classes: int | None  # None: not given; the spec's default
    dtype: DType
    seed: int


class ThresholdFlags(NamedTuple):
    """The verdict's thresholds as given; None: the engine's default."""

    vanish_below: float | None = None
    explode_above: float | None = None
    gain_below: float | None = None
    gain_above: float | None = None
    signal_below: float | None = None
    signal_above: float | None = None


class OutputFlags(NamedTuple):
    format: Format | None
    output: Path | None
    max_rows: int
    all_rows: bool
    quiet: bool
    save_arrays: Path | None = None  # not every command saves arrays
    unicode: bool = False
    plot: Path | None = None  # --plot FILE.png|svg|pdf
    theory: bool = False  # --theory: analyze and compare


class PathsFlags(NamedTuple):
    """What ``gradflow paths`` splits: lengths 0..max_length (None: all), samples per length."""

    max_length: int | None
    samples: int


class Plan(NamedTuple):
    """Everything a run needs, validated."""

    command: str  # analyze | compare
    spec: NetworkSpec  # skip: the analyzed one, or for compare the first residual variant
    variants: tuple[Skip, ...]
    thresholds: Thresholds
    fail_on: frozenset[Verdict]
    max_memory: int | None  # None: the free memory
    threads: int | None  # --threads; None: threads.available()
    format: Format
    report: OutputTarget | None  # --output; None: the page goes to stdout
    arrays: OutputTarget | None  # --save-arrays
    max_rows: int | None  # None: every layer
    unicode: bool
    quiet: bool
    paths: PathsFlags | None = None  # set for ``gradflow paths``
    plot: FigureTarget | None = None  # --plot: the figure's file and format
    theory: bool = False  # --theory: the mean-field prediction beside the measurement
    train: TrainPlan | None = None  # set for ``gradflow train`` (train_plan.py)


def make_plan(
    command: str,
    *,
    skip: str | None,
    variants: str | None,
    fail_on: str | None,
    network: NetworkFlags,
    thresholds: ThresholdFlags,
    output: OutputFlags,
    max_memory: str | None,
    threads: int | None = None,
    paths: PathsFlags | None = None,
) -> Plan:
    """Check every flag; BadInput (exit 2, one line) for the first that cannot run. The
    output files come last: checking them touches the file system."""
    chosen = _variants(variants) if variants is not None else (_skip(skip or ""),)
    if paths is not None:
        _paths(paths, chosen, "--skip" if variants is None else "--variants")
    spec = _spec(network, chosen, "--skip" if variants is None else "--variants")
    judged = _thresholds(thresholds)
    checks = _fail_on(fail_on)
    return Plan(
        command=command,
        spec=spec,
        variants=chosen,
        thresholds=judged,
        fail_on=checks,
        paths=paths,
        theory=output.theory,
        **outputs(output, max_memory, threads),
    )


def outputs(output: OutputFlags, max_memory: str | None, threads: int | None) -> dict[str, Any]:
    """The Plan's fields every command fills alike from its output flags: memory, threads,
    rows, format and the files (checked last: checking them touches the file system)."""
    memory = None if max_memory is None else _size(max_memory, "--max-memory")
    if threads is not None:
        _positive(threads, "--threads")
    max_rows = None if output.all_rows else _positive(output.max_rows, "--max-rows")
    report, arrays = _targets(output)
    return {
        "max_memory": memory,
        "threads": threads,
        "max_rows": max_rows,
        "unicode": output.unicode,
        "quiet": output.quiet,
        "format": _format(output, report),
        "report": report,
        "arrays": arrays,
        "plot": _plot(output, (report, arrays)),
    }


def _paths(paths: PathsFlags, variants: tuple[Skip, ...], flag_name: str) -> None:
    if Skip.NONE in variants:
        raise BadInput(flag_name, "a plain network has no skip paths; choose post, pre or postnorm")
    if paths.max_length is not None and paths.max_length < 0:  # 0: the skip-only path alone
        raise BadInput("--max-length", f"must be at least 0, got {paths.max_length}")
    if paths.samples < 0:
        raise BadInput("--samples", f"must be at least 0, got {paths.samples}")


# ---- the network ------------------------------------------------------------------------------


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


FIELDS = (*SPEC.to_dict(), *(name for pair in PAIRS for name in pair), "variants")


@cache
def _field() -> re.Pattern[str]:
    """Any field name as a word; compiled on an error's path, not at every start."""
    return re.compile(r"\b(" + "|".join(FIELDS) + r")\b")


def _from_value_error(error: ValueError) -> BadInput:
    """The engine's ``field: message`` errors, with field names spelled as flags."""
    message = str(error)
    name, colon, rest = message.partition(": ")
    if colon and _field().fullmatch(name):
        return BadInput(flag(name), _flags_in(rest))
    match = _field().search(message)
    return BadInput(flag(match.group(1)) if match else "flags", _flags_in(message))


def _flags_in(text: str) -> str:
    """Spell multi-word field names (``block_size``) as their flags (``--block-size``)."""
    return _field().sub(lambda m: flag(m.group(1)) if "_" in m.group(1) else m.group(1), text)


def _spec(
    network: NetworkFlags, variants: tuple[Skip, ...], wiring: str = "--variants"
) -> NetworkSpec:
    """The spec to run: for compare, wired as its first residual variant (so that depth and
    --zero-init-residual are checked against a residual network when there is one).
    ``wiring``: the flag that chose the variants, named where they have no residual branch."""
    skip = next((v for v in variants if v is not Skip.NONE), Skip.NONE)
    if network.zero_init_residual and skip is Skip.NONE:
        raise BadInput(
            "--zero-init-residual",
            f"needs residual branches: {wiring} post, pre or postnorm"
            + (" (one of them at least)" if wiring == "--variants" else ""),
        )
    if network.classes is not None and network.loss != Loss.XENT:  # may be a --vary string
        raise BadInput("--classes", f"sets the head of --loss xent; --loss {network.loss} has none")
    given = network._asdict()
    if network.classes is None:
        del given["classes"]
    try:
        spec = NetworkSpec(skip=skip, **given)
        for other in dict.fromkeys(variants):  # each variant's own rules (postnorm needs a norm)
            if other is not skip:
                spec.wired(other)
        return spec
    except ValueError as error:
        raise _from_value_error(error) from None


def _choices(text: str, flag_name: str, accepted: dict[str, Any]) -> list[Any]:
    names = [part.strip().lower() for part in text.split(",")]
    listing = ", ".join(accepted)
    if not any(names):
        raise BadInput(flag_name, f"give a comma-separated list of {listing}")
    if not all(names):
        raise BadInput(flag_name, f"empty value in {text!r}")
    chosen = []
    for name in names:
        if name not in accepted:
            raise BadInput(flag_name, f"unknown value {name!r} (accepted: {listing})")
        if accepted[name] in chosen:
            raise BadInput(flag_name, f"{name!r} is listed twice")
        chosen.append(accepted[name])
    return chosen


def _skip(text: str) -> Skip:
    name = text.strip().lower()
    if name not in SKIP_NAMES:
        accepted = ", ".join(SKIP_NAMES)
        raise BadInput("--skip", f"unknown value {text!r} (accepted: {accepted})")
    return SKIP_NAMES[name]


def _variants(text: str) -> tuple[Skip, ...]:
    return tuple(_choices(text, "--variants", SKIP_NAMES))


# ---- the verdict ------------------------------------------------------------------------------


def _fail_on(text: str | None) -> frozenset[Verdict]:
    if text is None:
        return frozenset()
    accepted = {v.value: v for v in Verdict if v is not Verdict.HEALTHY}
    return frozenset(_choices(text, "--fail-on", accepted))


def _thresholds(given: ThresholdFlags) -> Thresholds:
    chosen = given._asdict()
    try:
        return Thresholds(**{name: value for name, value in chosen.items() if value is not None})
    except ValueError as error:
        raise _from_value_error(error) from None


# ---- output -----------------------------------------------------------------------------------


def _targets(output: OutputFlags) -> tuple[OutputTarget | None, OutputTarget | None]:
    """--output and --save-arrays, checked; ``--output -`` is stdout, as without --output."""
    report = arrays = None
    if output.output is not None and str(output.output) != "-":
        report = _target(output.output, "--output")
    if output.save_arrays is not None:
        arrays = _target(output.save_arrays, "--save-arrays")
        if arrays.is_stream:
            stream = "stdout carries the report" if arrays.fd == 1 else "stderr carries messages"
            raise BadInput("--save-arrays", f"{stream}; give a file name")
        if report is not None and arrays.same_as(report):
            raise BadInput("--save-arrays", f"{quoted(output.save_arrays)} is also --output")
    return report, arrays


def _target(path: Path, flag_name: str) -> OutputTarget:
    """An output file, checked; the file handling loads only when one is given."""
    from gradflow.cli.files import OutputTarget

    return OutputTarget.check(path, flag_name)


def _plot(output: OutputFlags, others: tuple[OutputTarget | None, ...]) -> FigureTarget | None:
    """--plot, checked (matplotlib among it) only when given."""
    if output.plot is None:
        return None
    from gradflow.cli.figure_files import check_plot

    return check_plot(output.plot, others)


def format_for(
    chosen: F | None, target: OutputTarget | None, by_suffix: Mapping[str, F], default: F
) -> F:
    """--format as given, else the one --output's suffix names, else ``default``. A --format
    that another suffix names is refused (r.json with --format csv); .txt and no suffix take
    any format."""
    if chosen is not None and target is not None:
        suffix = target.path.suffix
        named = by_suffix.get(suffix.lower())
        if named is not None and named != chosen and suffix.lower() not in ("", ".txt"):
            raise BadInput(
                "--format",
                f"{chosen} does not match --output {quoted(target.path.name)}, whose suffix "
                f"is for {named}; name the file for {chosen}, or drop --format",
            )
    if chosen is None and target is not None:
        suffix = target.path.suffix
        chosen = by_suffix.get(suffix.lower())
        if chosen is None:
            known = ", ".join(s for s in by_suffix if s)
            raise BadInput(
                "--output", f"no format for suffix {quoted(suffix)} ({known}); or give --format"
            )
    return chosen or default


def _format(output: OutputFlags, report: OutputTarget | None) -> Format:
    chosen = format_for(output.format, report, SUFFIX_FORMAT, Format.TABLE)
    if output.quiet and chosen is not Format.TABLE and report is None:
        raise BadInput("--quiet", f"shortens the table; --format {chosen} is already for scripts")
    return chosen


def _positive(value: int, flag_name: str) -> int:
    if value < 1:
        raise BadInput(flag_name, f"must be at least 1, got {value}")
    return value


def _size(text: str, flag_name: str) -> int:
    """``512M``, ``2G``, ``1.5GiB`` or a whole number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    size = float(match.group(1)) * SIZE_UNITS[match.group(2).lower()] if match else 0.0
    if not match or not math.isfinite(size) or size < 1 or (size != int(size) and not match[2]):
        raise BadInput(
            flag_name, f"expected a size such as 512M, 2G, 1.5GiB or whole bytes, got {text!r}"
        )
    return int(size)
