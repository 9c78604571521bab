"""``gradflow paths`` carried out: memory guarded, the decomposition run, the output written."""

from __future__ import annotations

import io
import sys

from rich.console import Console
from rich.console import Group as Stack

from gradflow.analysis.paths import Decomposition, compare_paths, paths_bytes
from gradflow.cli.errors import ExitCode, WriteFailed, note
from gradflow.cli.execute import (
    FILE_WIDTH,
    guard_memory,
    need_bytes,
    page_console,
    runs_at_once,
    summary_after,
    to_stdout,
    write_text,
)
from gradflow.cli.figure_files import write_paths_figure
from gradflow.cli.options import Format
from gradflow.cli.plan import Plan
from gradflow.engine.spec import NetworkSpec
from gradflow.render import paths_view, table


def execute_paths(plan: Plan) -> ExitCode:
    assert plan.paths is not None
    max_length, samples = plan.paths.max_length, plan.paths.samples

    def bytes_of(spec: NetworkSpec, at_once: int) -> int:
        return paths_bytes(spec, max_length, samples, at_once)

    guard_memory(plan, need_bytes(plan, bytes_of, 1))
    runs = compare_paths(
        plan.spec,
        plan.variants,
        max_length=max_length,
        samples=samples,
        workers=runs_at_once(plan, bytes_of),
        threads=plan.threads,
    )
    for run in runs:  # numerical trouble met on the way: diagnostics, so stderr
        for warning in run.warnings:
            note(f"gradflow: warning: {run.label}: {warning}")
    console = page_console()
    figure = write_paths_figure(plan.plot, runs)
    if plan.report is None:
        if plan.format is Format.TABLE:
            return _exit(figure + to_stdout(lambda: _print_page(console, plan, runs)))
        return _exit(figure + to_stdout(lambda: sys.stdout.write(_text(plan, runs, FILE_WIDTH))))
    failures = figure + write_text(plan.report, _text(plan, runs, FILE_WIDTH))
    return _exit(failures + summary_after(plan.report, lambda: _print_summary(console, runs)))


def _exit(failures: list[WriteFailed]) -> ExitCode:
    for failure in failures:
        note(f"gradflow: error: {failure}")
    return ExitCode.WRITE_FAILED if failures else ExitCode.OK


def _print_summary(console: Console, runs: list[Decomposition]) -> None:
    for run in runs:
        console.print(paths_view.summary_line(run), markup=False, soft_wrap=True)


def _print_page(console: Console, plan: Plan, runs: list[Decomposition]) -> None:
    if plan.quiet:
        _print_summary(console, runs)
        return
    console.print(Stack(*table.paths_page(runs, max_rows=plan.max_rows, width=console.width)))


def _text(plan: Plan, runs: list[Decomposition], width: int) -> str:
    if plan.format is Format.JSON:
        return paths_view.to_json(runs)
    if plan.format is Format.CSV:
        return paths_view.to_csv(runs)
    if plan.format is Format.MARKDOWN:
        return paths_view.to_markdown(runs, width=width, max_rows=plan.max_rows)
    buffer = io.StringIO()
    _print_page(Console(file=buffer, width=width, color_system=None, emoji=False), plan, runs)
    return buffer.getvalue()
