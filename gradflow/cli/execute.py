"""A Plan carried out: memory guarded, the engine run, every output written, --fail-on judged.

Only the CLI prints: data to stdout; progress, notes and errors to stderr. The commands import
this module when they run, so that ``gradflow --help`` never loads NumPy, rich or the engine.

An output that cannot be written after the run (a full disk, ``> /dev/full``) is one line on
stderr and exit 3; the other outputs are still written. A reader that closes the pipe early
(``gradflow compare | head -1``) is no error: the rest of the page is dropped silently.
"""

from __future__ import annotations

import errno
import io
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.console import Group as Stack

from gradflow.analysis import analyze as analysis
from gradflow.analysis.analyze import ProgressCallback, estimate_bytes, variant_spec
from gradflow.analysis.results import Report
from gradflow.analysis.verdict import Verdict
from gradflow.cli.errors import BadInput, ExitCode, WriteFailed, note, silence
from gradflow.cli.options import Format
from gradflow.cli.plan import Plan
from gradflow.engine import memory
from gradflow.engine.heap import keep_freed_memory
from gradflow.engine.network import Network, build, redraws_weights
from gradflow.engine.spec import DType, NetworkSpec
from gradflow.engine.threads import available
from gradflow.render import table, view

if TYPE_CHECKING:
    from rich.progress import Progress

    from gradflow.analysis.theory import Prediction
    from gradflow.cli.files import OutputTarget

Theory = Sequence["Prediction | str"] | None  # --theory: one per report, else None
PAGE_WIDTH = (40, 200)  # the page's columns, whatever the terminal or COLUMNS says
FILE_WIDTH = 100  # columns of a table or markdown report written to a file
PROGRESS_FROM = 5e9  # multiply-adds (depth · batch · width² · variants) worth a progress bar
BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def execute(plan: Plan) -> ExitCode:
    """Guard memory, run the engine, write every output, judge --fail-on."""
    keep_freed_memory()  # compare's variants, train's evaluations: each pass reuses the last's
    if plan.paths is not None:
        from gradflow.cli.execute_paths import execute_paths

        return execute_paths(plan)
    if plan.train is not None:
        from gradflow.cli.execute_train import execute_train

        return execute_train(plan)
    guard_memory(plan, need_bytes(plan, _pass_bytes(plan), 1))
    try:
        reports, network = _run(plan, runs_at_once(plan, _pass_bytes(plan)))
    except MemoryError:  # the estimate is an estimate: still one line, not a traceback
        raise BadInput("memory", f"ran out of memory; {_shrink_hint(plan)}") from None
    failures = _save_arrays(plan, network)
    for report in reports:  # numerical trouble met on the way: diagnostics, so stderr
        for warning in report.summary.warnings:
            note(f"gradflow: warning: {report.label}: {warning}")
    theory = _theory(plan, reports)
    failures += _show(plan, reports, theory)
    if plan.plot is not None:  # the figure's code (and matplotlib) loads only for --plot
        from gradflow.cli.figure_files import write_report_figure

        failures += write_report_figure(plan.plot, plan.command, reports, theory)
    for failure in failures:
        note(f"gradflow: error: {failure}")
    failed = [(r, caught) for r in reports if (caught := _caught(r, plan.fail_on))]
    for r, caught in failed:
        note(f"gradflow: check failed: {_reason(r, caught)}")
    if failures:
        return ExitCode.WRITE_FAILED
    return ExitCode.CHECK_FAILED if failed else ExitCode.OK


# ---- before the run: memory -------------------------------------------------------------------


def guard_memory(plan: Plan, need: int) -> None:
    """Refuse, before allocating, a run that needs more memory than is free (or allowed)."""
    limit = plan.max_memory if plan.max_memory is not None else memory.available_bytes()
    if need <= limit:
        return
    where = "--max-memory allows" if plan.max_memory is not None else "the machine has free"
    needs = f"this run needs about {bytes_text(need)} but {where} {bytes_text(limit)}"
    raise BadInput("memory", f"{needs}; {_shrink_hint(plan)}")


# bytes_of(spec, k): what a run of one variant ``spec`` needs with k variants side by side
BytesOf = Callable[[NetworkSpec, int], int]


def need_bytes(plan: Plan, bytes_of: BytesOf, at_once: int) -> int:
    """Bytes the run needs with ``at_once`` variants side by side (the largest ones)."""
    return max(bytes_of(variant_spec(plan.spec, v), at_once) for v in plan.variants)


def runs_at_once(plan: Plan, bytes_of: BytesOf) -> int:
    """How many variants run side by side: one a thread, as many as the memory holds."""
    limit = plan.max_memory if plan.max_memory is not None else memory.available_bytes()
    at_once = min(len(plan.variants), available() if plan.threads is None else plan.threads)
    while at_once > 1 and need_bytes(plan, bytes_of, at_once) > limit:
        at_once -= 1
    return at_once


def _redraws(plan: Plan) -> bool:
    """Whether the run draws its weights as each pass reads them: a single pass (analyze) of a
    large stack, unless --save-arrays wants the weights themselves."""
    return plan.command == "analyze" and plan.arrays is None and redraws_weights(plan.spec)


def _pass_bytes(plan: Plan) -> BytesOf:
    redraw = _redraws(plan)
    return lambda spec, at_once: estimate_bytes(spec, at_once=at_once, redraw=redraw)


def _shrink_hint(plan: Plan) -> str:
    """The flags that size the run: the network's, and what a command adds (steps, samples)."""
    flags = ["--depth", "--width", "--batch"]
    if plan.train is not None:
        flags += ["--steps", "--samples"]
    if plan.paths is not None and plan.paths.samples:
        flags.append("--samples")
    hint = f"try a smaller {', '.join(flags[:-1])} or {flags[-1]}"
    return hint + (", or --dtype float32" if plan.spec.dtype is DType.FLOAT64 else "")


def bytes_text(size: int) -> str:
    """``512 B``, ``1.5 GiB`` … ``3.2 EiB``; beyond 1024 EiB, ``7.9e+27 EiB``."""
    if size < 1024:
        return f"{size} B"
    power = min((size.bit_length() - 1) // 10, len(BYTE_UNITS) - 1)
    if size < 1 << 10 * len(BYTE_UNITS):
        return f"{size / (1 << 10 * power):.1f} {BYTE_UNITS[power]}"
    decades = math.log10(size) - power * math.log10(1024)  # exact enough for any int
    exponent = math.floor(decades)
    mantissa = 10 ** (decades - exponent)
    if round(mantissa, 1) >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.1f}e+{exponent:02d} {BYTE_UNITS[power]}"


# ---- the run ----------------------------------------------------------------------------------


def _run(plan: Plan, at_once: int) -> tuple[list[Report], Network]:
    spec = plan.spec
    with _ProgressBar(spec, len(plan.variants)) as progress:
        network = build(spec, redraw=_redraws(plan))  # the same arrays for every variant
        if plan.command == "analyze":
            reports = [
                analysis.analyze(
                    spec,
                    thresholds=plan.thresholds,
                    network=network,
                    progress=progress,
                    threads=plan.threads,
                )
            ]
        else:
            reports = analysis.compare(
                spec,
                plan.variants,
                thresholds=plan.thresholds,
                network=network,
                progress=progress,
                workers=at_once,
                threads=plan.threads,
            )
    return reports, network


class _ProgressBar:
    """A transient progress bar on stderr for large runs on a terminal; otherwise nothing."""

    def __init__(self, spec: NetworkSpec, variants: int) -> None:
        work = spec.depth * spec.batch * spec.width**2 * variants
        self.enabled = work >= PROGRESS_FROM and sys.stderr.isatty()
        self.bar: Progress | None = None

    def __enter__(self) -> ProgressCallback | None:
        if not self.enabled:
            return None
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


# ---- after the run: outputs -------------------------------------------------------------------


def _theory(plan: Plan, reports: Sequence[Report]) -> list[Prediction | str] | None:
    """With --theory, each run's mean-field prediction (or why there is none)."""
    if not plan.theory:
        return None
    from gradflow.analysis.theory import assess  # only --theory needs the theory

    return [assess(r.spec) for r in reports]


def _save_arrays(plan: Plan, network: Network) -> list[WriteFailed]:
    if plan.arrays is None:
        return []
    # compare: the first variant's arrays (with --zero-init-residual, residual variants zero
    # their branch ends; the plain one does not)
    return save_arrays(plan.arrays, network.arrays(variant_spec(plan.spec, plan.variants[0])))


def _show(plan: Plan, reports: list[Report], theory: Theory = None) -> list[WriteFailed]:
    """The report to stdout, or to --output with the summary lines to stdout."""
    console = page_console()
    if plan.report is None:
        if plan.format is Format.TABLE:
            return to_stdout(lambda: _print_page(console, plan, reports, theory))
        text = _text(plan, reports, width=FILE_WIDTH, theory=theory)
        return to_stdout(lambda: sys.stdout.write(text))
    failures = write_text(plan.report, _text(plan, reports, width=FILE_WIDTH, theory=theory))
    return failures + summary_after(plan.report, lambda: _print_summary(console, reports, theory))


def summary_after(target: OutputTarget, show: Callable[[], object]) -> list[WriteFailed]:
    """The summary lines on stdout once the report is in --output's file; none where that file
    is stdout itself (``/dev/stdout``): they would end its JSON or CSV, as ``-`` never does."""
    return [] if target.fd == 1 else to_stdout(show)


def write_text(target: OutputTarget, text: str) -> list[WriteFailed]:
    """``text`` into --output's file, with a note on stderr once it is there."""
    try:
        target.write(text.encode("utf-8"))
    except WriteFailed as failure:
        return [failure]
    except BrokenPipeError:  # --output is stdout or stderr, and its reader has gone
        silence(sys.stdout if target.fd == 1 else sys.stderr)
    else:
        if target.fd != 1:  # (stdout itself: as with -, the report is all it says)
            note(f"gradflow: wrote {target.path}")
    return []


def save_arrays(target: OutputTarget, arrays: dict[str, np.ndarray]) -> list[WriteFailed]:
    """``arrays`` into --save-arrays's .npz file, with a note on stderr once it is there."""
    try:
        target.write(lambda file: np.savez(file, **arrays))  # type: ignore[arg-type]
    except WriteFailed as failure:
        return [failure]
    note(f"gradflow: saved arrays to {target.path}")
    return []


class PageConsole(Console):
    """rich's Console, but a reader that has gone is left to ``to_stdout`` (rich exits 1)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True  # nothing more to print
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


def page_console() -> Console:
    """A console for stdout as wide as the terminal (or COLUMNS), within PAGE_WIDTH."""
    detected = Console().width
    width = min(max(detected, PAGE_WIDTH[0]), PAGE_WIDTH[1])
    return PageConsole(highlight=False, emoji=False, width=width)  # no :codes: in our text


def to_stdout(show: Callable[[], object]) -> list[WriteFailed]:
    """Print to stdout; a reader that has gone (``| head``) is no error, a full disk is."""
    try:
        show()
        sys.stdout.flush()
    except BrokenPipeError:
        silence(sys.stdout)
    except OSError as error:
        silence(sys.stdout)
        return [WriteFailed("stdout", None, error)]
    return []


def _print_summary(console: Console, reports: Sequence[Report], theory: Theory = None) -> None:
    """One line per variant and the comparison sentence, unwrapped so that logs can grep them."""
    for line in view.summary_lines(reports, theory):
        console.print(line, markup=False, soft_wrap=True)


def _print_page(
    console: Console, plan: Plan, reports: Sequence[Report], theory: Theory = None
) -> None:
    if plan.quiet:
        _print_summary(console, reports, theory)
        return
    parts = table.page(
        plan.command,
        reports,
        max_rows=plan.max_rows,
        width=console.width,
        unicode=plan.unicode,
        theory=theory,
    )
    console.print(Stack(*parts))  # one print call: rich's per-call setup once


def _text(plan: Plan, reports: Sequence[Report], *, width: int, theory: Theory = None) -> str:
    """The report in the chosen format as text (a table is rendered without colour)."""
    from gradflow.render import formats  # (and json, csv) only when a report is written as text

    if plan.format is Format.JSON:
        return formats.to_json(plan.command, plan.spec, reports, theory)
    if plan.format is Format.CSV:
        return formats.to_csv(reports, theory)
    if plan.format is Format.MARKDOWN:
        return formats.to_markdown(
            plan.command,
            reports,
            max_rows=plan.max_rows,
            width=width,
            unicode=plan.unicode,
            theory=theory,
        )
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, emoji=False)
    _print_page(console, plan, reports, theory)
    return buffer.getvalue()


def _caught(report: Report, checks: frozenset[Verdict]) -> list[Verdict]:
    """The checks a report fails: its verdict's, and a finding's where the verdict is another
    (--fail-on exploding catches an exploding gain behind a vanishing weight ratio)."""
    s = report.summary
    found = [s.verdict, *(f.verdict for f in s.findings)]
    return [v for v in dict.fromkeys(found) if v in checks]


def _reason(report: Report, caught: list[Verdict]) -> str:
    s = report.summary
    if s.verdict in caught:
        return (
            f"{report.label} is {s.verdict} (--fail-on {s.verdict}): {view.verdict_reason(report)}"
        )
    verdict = caught[0]
    behind = "; ".join(view.finding_text(f) for f in s.findings if f.verdict is verdict)
    return f"{report.label} is {s.verdict}, and {verdict} too (--fail-on {verdict}): {behind}"
