"""The command line: flags → validated specs → the engine → a page, a file or both.

The two commands are thin: they hand their flags to ``run``, which validates every flag before any
work, guards memory, runs the engine and writes the output. Only this module prints: data to
stdout; progress, notes and errors to stderr. NumPy, rich and the engine are imported inside
``run`` so that ``gradflow --help`` and ``--version`` stay fast.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from gradflow import __version__
from gradflow.analysis.verdict import PAIRS
from gradflow.cli import options as o
from gradflow.cli.options import Format
from gradflow.engine.spec import DType, NetworkSpec, Skip

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from gradflow.analysis.analyze import ProgressCallback
    from gradflow.analysis.results import Report
    from gradflow.analysis.verdict import Thresholds, Verdict

SPEC = NetworkSpec()  # every network default, from one place
THRESHOLD_FIELDS = tuple(name for pair in PAIRS for name in pair)
VERSION_LINE = f"gradflow {__version__}"
MAX_ROWS = 25  # rows per table/chart before layers are grouped; depth 50 gives pairs
PROGRESS_FROM = 5e9  # multiply-adds (depth · batch · width² · variants) worth a progress bar
SUFFIX_FORMAT = {".json": Format.JSON, ".csv": Format.CSV, ".md": Format.MARKDOWN}
SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
EXIT_CODES = "Exit codes: 0 success; 1 a --fail-on check failed; 2 bad input (nothing was run)."


class BadInput(typer.BadParameter):
    """A flag's value (or a combination of flags) that cannot run: exit 2 with one line."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(message, param_hint=flag)


class Group(TyperGroup):
    """Turns every usage error into one line on stderr and exit code 2, never a traceback."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(
                args, prog_name or "gradflow", complete_var, standalone_mode=False, **extra
            )
        except typer.TyperException as error:  # usage errors, including BadInput
            if type(error).__name__ == "NoArgsIsHelpError":  # bare `gradflow`: show the help
                super().main(["--help"], prog_name or "gradflow", standalone_mode=False)
            else:
                typer.echo(f"gradflow: error: {one_line(error)}", err=True)
            code = error.exit_code
        except typer.Abort:
            typer.echo("gradflow: aborted", err=True)
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


PYDANTIC_WORDS = {  # typer reports conversion errors in pydantic's words; these read better
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_parsing": "expected a number",
    "bool_parsing": "expected true or false",
}


def one_line(error: typer.TyperException) -> str:
    """``--flag: what is wrong (accepted values)`` on a single line."""
    hint = getattr(error, "param_hint", None)
    param = getattr(error, "param", None)
    if hint is None and param is not None:
        hint = max(param.opts, key=len) if param.opts else param.name
    message = error.message.removeprefix("Value error, ")
    details = getattr(error.__cause__, "errors", None)
    if callable(details) and details() and details()[0].get("type") in PYDANTIC_WORDS:
        first = details()[0]
        message = f"{PYDANTIC_WORDS[first['type']]}, got {first.get('input')!r}"
    if not hint:
        text = error.format_message()
    elif message.startswith(hint):
        text = message
    else:
        text = f"{hint}: {message}"
    return " ".join(text.split())


app = typer.Typer(
    cls=Group,
    epilog=EXIT_CODES,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # plain help: rich's help formatter imports markdown-it and triples the time of --help
    rich_markup_mode=None,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(VERSION_LINE)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """See, layer by layer, how gradients flow back through deep networks with and without
    skip connections."""


@app.command(epilog=EXIT_CODES)
def analyze(
    depth: o.Depth = SPEC.depth,
    width: o.Width = SPEC.width,
    batch: o.Batch = SPEC.batch,
    skip: o.SkipOpt = SPEC.skip,
    block_size: o.BlockSize = SPEC.block_size,
    residual_scale: o.ResidualScale = SPEC.residual_scale,
    skip_scale: o.SkipScale = SPEC.skip_scale,
    branch_weight_scale: o.BranchWeightScale = SPEC.branch_weight_scale,
    activation: o.ActivationOpt = SPEC.activation,
    init: o.InitOpt = SPEC.init,
    weight_var: o.WeightVar = SPEC.weight_var,
    bias_var: o.BiasVar = SPEC.bias_var,
    zero_init_residual: o.ZeroInitResidual = SPEC.zero_init_residual,
    norm: o.NormOpt = SPEC.norm,
    loss: o.LossOpt = SPEC.loss,
    classes: o.Classes = SPEC.classes,
    dtype: o.DTypeOpt = SPEC.dtype,
    seed: o.Seed = SPEC.seed,
    vanish_below: o.VanishBelow = None,
    explode_above: o.ExplodeAbove = None,
    gain_below: o.GainBelow = None,
    gain_above: o.GainAbove = None,
    signal_below: o.SignalBelow = None,
    signal_above: o.SignalAbove = None,
    fail_on: o.FailOn = "",
    format: o.FormatOpt = None,
    output: o.Output = None,
    save_arrays: o.SaveArrays = None,
    max_rows: o.MaxRows = MAX_ROWS,
    all_rows: o.AllRows = False,
    unicode: o.Unicode = False,
    quiet: o.Quiet = False,
    max_memory: o.MaxMemory = None,
) -> None:
    """One network: gradient per layer, the split at each addition, a chart and a verdict."""
    run(command="analyze", variants=None, **locals())


@app.command(epilog=EXIT_CODES)
def compare(
    depth: o.Depth = SPEC.depth,
    width: o.Width = SPEC.width,
    batch: o.Batch = SPEC.batch,
    variants: o.Variants = "none,post,pre",
    block_size: o.BlockSize = SPEC.block_size,
    residual_scale: o.ResidualScale = SPEC.residual_scale,
    skip_scale: o.SkipScale = SPEC.skip_scale,
    branch_weight_scale: o.BranchWeightScale = SPEC.branch_weight_scale,
    activation: o.ActivationOpt = SPEC.activation,
    init: o.InitOpt = SPEC.init,
    weight_var: o.WeightVar = SPEC.weight_var,
    bias_var: o.BiasVar = SPEC.bias_var,
    zero_init_residual: o.ZeroInitResidual = SPEC.zero_init_residual,
    norm: o.NormOpt = SPEC.norm,
    loss: o.LossOpt = SPEC.loss,
    classes: o.Classes = SPEC.classes,
    dtype: o.DTypeOpt = SPEC.dtype,
    seed: o.Seed = SPEC.seed,
    vanish_below: o.VanishBelow = None,
    explode_above: o.ExplodeAbove = None,
    gain_below: o.GainBelow = None,
    gain_above: o.GainAbove = None,
    signal_below: o.SignalBelow = None,
    signal_above: o.SignalAbove = None,
    format: o.FormatOpt = None,
    output: o.Output = None,
    save_arrays: o.SaveArrays = None,
    max_rows: o.MaxRows = MAX_ROWS,
    all_rows: o.AllRows = False,
    unicode: o.Unicode = False,
    quiet: o.Quiet = False,
    max_memory: o.MaxMemory = None,
) -> None:
    """The same weights with and without shortcuts, side by side (default: plain, post, pre)."""
    run(command="compare", skip=None, fail_on="", **locals())


# ---- the core --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Everything a run needs, validated."""

    command: str
    spec: NetworkSpec  # skip: the analyzed one, or for compare the first residual variant
    variants: tuple[Skip, ...]
    thresholds: Thresholds
    fail_on: frozenset[Verdict]
    format: Format
    output: Path | None
    save_arrays: Path | None
    max_rows: int | None  # None: every layer
    unicode: bool
    quiet: bool
    max_memory: int | None


def run(
    *,
    command: str,
    skip: Skip | None,
    variants: str | None,
    fail_on: str,
    vanish_below: float | None,
    explode_above: float | None,
    gain_below: float | None,
    gain_above: float | None,
    signal_below: float | None,
    signal_above: float | None,
    format: Format | None,
    output: Path | None,
    save_arrays: Path | None,
    max_rows: int,
    all_rows: bool,
    unicode: bool,
    quiet: bool,
    max_memory: str | None,
    **network: Any,
) -> None:
    """Validate every flag, guard memory, run the engine, write the output; exit 1 on --fail-on."""
    chosen = (skip,) if skip is not None else _variants(variants or "")
    plan = Plan(
        command=command,
        spec=_spec(network, chosen),
        variants=chosen,
        thresholds=_thresholds(
            vanish_below=vanish_below,
            explode_above=explode_above,
            gain_below=gain_below,
            gain_above=gain_above,
            signal_below=signal_below,
            signal_above=signal_above,
        ),
        fail_on=_fail_on(fail_on),
        format=_format(format, output, quiet),
        output=_writable(output, "--output"),
        save_arrays=_writable(save_arrays, "--save-arrays"),
        max_rows=None if all_rows else _positive(max_rows, "--max-rows"),
        unicode=unicode,
        quiet=quiet,
        max_memory=None if max_memory is None else _size(max_memory, "--max-memory"),
    )
    if plan.output is not None and plan.output == plan.save_arrays:
        raise BadInput("--save-arrays", "must differ from --output")
    _guard_memory(plan)
    try:
        reports = _execute(plan)
    except MemoryError:  # the estimate is an estimate: still one line, not a traceback
        raise BadInput("memory", f"ran out of memory; {_shrink_hint(plan.spec)}") from None
    _emit(plan, reports)
    failed = [r for r in reports if r.summary.verdict in plan.fail_on]
    for r in failed:
        typer.echo(f"gradflow: check failed: {_reason(r)}", err=True)
    if failed:
        raise typer.Exit(1)


# ---- validation: every flag, before any work --------------------------------------------------


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


FIELDS = (*SPEC.to_dict(), *THRESHOLD_FIELDS, "variants")
FIELD = re.compile(r"\b(" + "|".join(FIELDS) + r")\b")


def _from_value_error(error: ValueError) -> BadInput:
    """The engine's ``field: message`` errors, with field names spelled as flags."""
    message = str(error)
    name, colon, rest = message.partition(": ")
    if colon and FIELD.fullmatch(name):
        return BadInput(flag(name), _flags_in(rest))
    match = FIELD.search(message)
    return BadInput(flag(match.group(1)) if match else "flags", _flags_in(message))


def _flags_in(text: str) -> str:
    """Spell multi-word field names (``block_size``) as their flags (``--block-size``)."""
    return FIELD.sub(lambda m: flag(m.group(1)) if "_" in m.group(1) else m.group(1), text)


def _spec(network: dict[str, Any], variants: Sequence[Skip]) -> NetworkSpec:
    """The spec to run: for compare, wired as its first residual variant (so that depth and
    --zero-init-residual are checked against a residual network when there is one)."""
    skip = next((v for v in variants if v is not Skip.NONE), Skip.NONE)
    if network["zero_init_residual"] and skip is Skip.NONE:
        raise BadInput(
            "--zero-init-residual", "needs residual branches: --skip post or pre (or --variants)"
        )
    try:
        return NetworkSpec(skip=skip, **network)
    except ValueError as error:
        raise _from_value_error(error) from None


def _choices(text: str, flag_name: str, accepted: dict[str, Any]) -> list[Any]:
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    listing = ", ".join(accepted)
    if not names:
        raise BadInput(flag_name, f"give a comma-separated list of {listing}")
    chosen = []
    for name in names:
        if name not in accepted:
            raise BadInput(flag_name, f"unknown value {name!r} (accepted: {listing})")
        if accepted[name] in chosen:
            raise BadInput(flag_name, f"{name!r} is listed twice")
        chosen.append(accepted[name])
    return chosen


def _variants(text: str) -> tuple[Skip, ...]:
    accepted: dict[str, Any] = {s.value: s for s in Skip}
    accepted["plain"] = Skip.NONE
    return tuple(_choices(text, "--variants", accepted))


def _fail_on(text: str) -> frozenset[Verdict]:
    from gradflow.analysis.verdict import Verdict

    if not text.strip():
        return frozenset()
    accepted = {v.value: v for v in Verdict if v is not Verdict.HEALTHY}
    return frozenset(_choices(text, "--fail-on", accepted))


def _thresholds(**given: float | None) -> Thresholds:
    from gradflow.analysis.verdict import Thresholds

    try:
        return Thresholds(**{k: v for k, v in given.items() if v is not None})
    except ValueError as error:
        raise _from_value_error(error) from None


def _format(chosen: Format | None, output: Path | None, quiet: bool) -> Format:
    if chosen is None:
        suffix = output.suffix.lower() if output is not None else ""
        chosen = SUFFIX_FORMAT.get(suffix, Format.TABLE)
    if quiet and chosen is not Format.TABLE and output is None:
        raise BadInput("--quiet", f"shortens the table; --format {chosen} is already for scripts")
    return chosen


def _writable(path: Path | None, flag_name: str) -> Path | None:
    if path is None:
        return None
    parent = path.parent
    if path.is_dir():
        raise BadInput(flag_name, f"{str(path)!r} is a directory; give a file name")
    if not parent.is_dir():
        raise BadInput(flag_name, f"directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise BadInput(flag_name, f"directory {str(parent)!r} is not writable")
    return path


def _positive(value: int, flag_name: str) -> int:
    if value < 1:
        raise BadInput(flag_name, f"must be at least 1, got {value}")
    return value


def _size(text: str, flag_name: str) -> int:
    """``512M``, ``2G``, ``1.5GiB`` or plain bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    size = float(match.group(1)) * SIZE_UNITS[match.group(2).lower()] if match else 0.0
    if not match or not math.isfinite(size) or size < 1:
        raise BadInput(flag_name, f"expected a size such as 512M, 2G or 1.5GiB, got {text!r}")
    return int(size)


def _bytes_text(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.1f} {unit}" if unit != "B" else f"{size:.0f} B"
        size /= 1024
    return f"{size:.1f} TiB"


def _guard_memory(plan: Plan) -> None:
    """Refuse, before allocating, a run that needs more memory than is free (or allowed)."""
    from gradflow.analysis.analyze import estimate_bytes, variant_spec
    from gradflow.engine.memory import available_bytes

    need = max(estimate_bytes(variant_spec(plan.spec, v)) for v in plan.variants)
    limit = plan.max_memory if plan.max_memory is not None else available_bytes()
    if need <= limit:
        return
    where = "--max-memory allows" if plan.max_memory is not None else "the machine has free"
    needs = f"this run needs about {_bytes_text(need)} but {where} {_bytes_text(limit)}"
    raise BadInput("memory", f"{needs}; {_shrink_hint(plan.spec)}")


def _shrink_hint(spec: NetworkSpec) -> str:
    hint = "try a smaller --depth, --width or --batch"
    return hint + (", or --dtype float32" if spec.dtype is DType.FLOAT64 else "")


@contextmanager
def _naming_errors(flag_name: str) -> Iterator[None]:
    """A file that cannot be written (disk full, permissions) is one line naming its flag."""
    try:
        yield
    except OSError as error:
        raise BadInput(flag_name, error.strerror or str(error)) from None


# ---- work and output --------------------------------------------------------------------------


def _execute(plan: Plan) -> list[Report]:
    from gradflow.analysis.analyze import analyze, compare, variant_spec
    from gradflow.engine.network import build

    spec = plan.spec
    with _ProgressBar(spec, len(plan.variants)) as progress:
        network = build(spec)  # the same arrays for every variant
        if plan.command == "analyze":
            report = analyze(spec, thresholds=plan.thresholds, network=network, progress=progress)
            reports = [report]
        else:
            reports = compare(
                spec, plan.variants, thresholds=plan.thresholds, network=network, progress=progress
            )
    if plan.save_arrays is not None:
        from gradflow.render.formats import save_arrays

        # compare: the first variant's arrays (with --zero-init-residual, residual variants
        # zero their branch ends; the plain one does not)
        with _naming_errors("--save-arrays"):
            save_arrays(plan.save_arrays, network.arrays(variant_spec(spec, plan.variants[0])))
        typer.echo(f"gradflow: saved arrays to {plan.save_arrays}", err=True)
    return reports


class _ProgressBar:
    """A transient progress bar on stderr for large runs on a terminal; otherwise nothing."""

    def __init__(self, spec: NetworkSpec, variants: int) -> None:
        work = spec.depth * spec.batch * spec.width**2 * variants
        self.enabled = work >= PROGRESS_FROM and sys.stderr.isatty()
        self.bar: Progress | None = None

    def __enter__(self) -> ProgressCallback | None:
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import Progress

        bar = self.bar = Progress(console=Console(stderr=True), transient=True)
        bar.start()
        task = bar.add_task("forward and backward", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _emit(plan: Plan, reports: list[Report]) -> None:
    from rich.console import Console

    for report in reports:  # numerical trouble met on the way: diagnostics, so stderr
        for warning in report.summary.warnings:
            typer.echo(f"gradflow: warning: {report.label}: {warning}", err=True)
    console = Console(highlight=False, emoji=False)  # no :codes: in our text
    if plan.output is None:
        if plan.format is Format.TABLE:
            _print_page(console, plan, reports)
        else:
            sys.stdout.write(_text(plan, reports, width=100))
        return
    from gradflow.render.formats import write_text

    with _naming_errors("--output"):
        write_text(plan.output, _text(plan, reports, width=100))
    typer.echo(f"gradflow: wrote {plan.output}", err=True)
    _print_summary(console, reports)


def _print_summary(console: Console, reports: Sequence[Report]) -> None:
    """One line per variant and the comparison sentence, unwrapped so that logs can grep them."""
    from gradflow.render import view

    for line in view.summary_lines(reports):
        console.print(line, markup=False, soft_wrap=True)


def _print_page(console: Console, plan: Plan, reports: Sequence[Report]) -> None:
    from gradflow.render import table

    if plan.quiet:
        _print_summary(console, reports)
        return
    from rich.console import Group

    parts = table.page(
        plan.command, reports, max_rows=plan.max_rows, width=console.width, unicode=plan.unicode
    )
    console.print(Group(*parts))  # one print call: rich's per-call setup once


def _text(plan: Plan, reports: Sequence[Report], *, width: int) -> str:
    """The report in the chosen format as text (a table is rendered without colour)."""
    from gradflow.render import formats as export

    if plan.format is Format.JSON:
        return export.to_json(plan.command, plan.spec, reports)
    if plan.format is Format.CSV:
        return export.to_csv(reports)
    if plan.format is Format.MARKDOWN:
        return export.to_markdown(
            plan.command, reports, max_rows=plan.max_rows, width=width, unicode=plan.unicode
        )
    import io

    from rich.console import Console

    buffer = io.StringIO()
    _print_page(Console(file=buffer, width=width, color_system=None, emoji=False), plan, reports)
    return buffer.getvalue()


def _reason(report: Report) -> str:
    from gradflow.analysis.verdict import Verdict
    from gradflow.render import view

    s = report.summary
    if s.verdict is Verdict.NONFINITE:
        where = f" from layer {s.nonfinite_from}" if s.nonfinite_from is not None else ""
        because = f"the pass produced non-finite values{where}"
    else:
        because = "; ".join(view.finding_text(f) for f in s.findings if f.verdict is s.verdict)
    return f"{report.label} is {s.verdict} (--fail-on {s.verdict}): {because}"


def main() -> None:
    """Entry point of the ``gradflow`` command (and ``python -m gradflow``)."""
    if sys.argv[1:] == ["--version"]:  # answered before typer builds the two commands
        typer.echo(VERSION_LINE)
        return
    app(prog_name="gradflow")
