"""``gradflow train`` carried out: memory guarded, the variants trained, every output written,
--fail-on judged."""

from __future__ import annotations

import io
import sys

import numpy as np
from rich.console import Console, RenderableType
from rich.console import Group as Stack

from gradflow.analysis.analyze import variant_spec
from gradflow.analysis.teacher import TeacherData, teacher_data
from gradflow.analysis.train import TrainRun, initial_parameters, train, train_bytes
from gradflow.cli.errors import BadInput, ExitCode, WriteFailed, note
from gradflow.cli.execute import (
    FILE_WIDTH,
    guard_memory,
    need_bytes,
    page_console,
    runs_at_once,
    save_arrays,
    summary_after,
    to_stdout,
    write_text,
)
from gradflow.cli.figure_files import write_train_figure
from gradflow.cli.options import Format
from gradflow.cli.plan import Plan
from gradflow.engine.network import Network, build
from gradflow.engine.spec import Loss, NetworkSpec
from gradflow.render import table, train_view
from gradflow.render.grid import Grid


def execute_train(plan: Plan) -> ExitCode:
    assert plan.train is not None
    training = plan.train.training

    def bytes_of(spec: NetworkSpec, at_once: int) -> int:
        return train_bytes(spec, training, at_once)

    guard_memory(plan, need_bytes(plan, bytes_of, 1))
    try:
        network = build(variant_spec(plan.spec, plan.variants[0]))
        data = teacher_data(plan.spec, training.samples, training.steps)
        runs = train(
            plan.spec,
            plan.variants,
            training,
            network=network,
            data=data,
            workers=runs_at_once(plan, bytes_of),
            threads=plan.threads,
        )
    except MemoryError:
        raise BadInput(
            "memory", "ran out of memory; try a smaller --depth, --width or --samples"
        ) from None
    failures = _save_arrays(plan, network, data)
    for run in runs:
        stop = run.summary.stopped
        if stop is not None:  # numerical trouble: a diagnostic, so stderr too
            note(f"gradflow: warning: {run.label}: {run.summary.reason}")
        for warning in run.summary.warnings:
            note(f"gradflow: warning: {run.label}: {warning}")
    failures += _show(plan, runs)
    title = train_view.header_line(plan.spec, runs, training)
    failures += write_train_figure(plan.plot, runs, title)
    for failure in failures:
        note(f"gradflow: error: {failure}")
    # a check fails whenever its verdict holds, also behind an earlier one (frozen and no-progress)
    failed = [(r, [v for v in r.summary.holds if v in plan.train.fail_on]) for r in runs]
    failed = [(run, hit) for run, hit in failed if hit]
    for run, hit in failed:
        named = ",".join(str(v) for v in hit)
        note(
            f"gradflow: check failed: {run.label} is {named} (--fail-on {named}): "
            f"{run.summary.reason}"
        )
    if failures:
        return ExitCode.WRITE_FAILED
    return ExitCode.CHECK_FAILED if failed else ExitCode.OK


def saved_arrays(plan: Plan, network: Network, data: TeacherData) -> dict[str, np.ndarray]:
    """What a replay needs: x, target or labels, order, and the first variant's initial W1…WL,
    b1…bL (and W_head, b_head)."""
    spec = variant_spec(plan.spec, plan.variants[0])
    params = initial_parameters(spec, network)
    out = data.arrays()
    for i in range(spec.depth):
        out[f"W{i + 1}"] = params[0][i]
        out[f"b{i + 1}"] = params[1][i]
    if spec.loss is Loss.XENT:
        out["W_head"], out["b_head"] = params[2], params[3]
    return out


def _save_arrays(plan: Plan, network: Network, data: TeacherData) -> list[WriteFailed]:
    if plan.arrays is None:
        return []
    return save_arrays(plan.arrays, saved_arrays(plan, network, data))


def _show(plan: Plan, runs: list[TrainRun]) -> list[WriteFailed]:
    console = page_console()
    if plan.report is None:
        if plan.format is Format.TABLE:
            return to_stdout(lambda: _print_page(console, plan, runs))
        return to_stdout(lambda: sys.stdout.write(_text(plan, runs, FILE_WIDTH)))
    failures = write_text(plan.report, _text(plan, runs, FILE_WIDTH))
    return failures + summary_after(plan.report, lambda: _print_summary(console, runs))


def _print_summary(console: Console, runs: list[TrainRun]) -> None:
    for line in train_view.summary_lines(runs):
        console.print(line, markup=False, soft_wrap=True)


def _print_page(console: Console, plan: Plan, runs: list[TrainRun]) -> None:
    if plan.quiet:
        _print_summary(console, runs)
        return
    assert plan.train is not None
    width = console.width
    parts: list[RenderableType] = [
        table.prose(train_view.header_line(plan.spec, runs, plan.train.training), width, "bold")
    ]
    for section in train_view.sections(runs, max_rows=plan.max_rows, width=width):
        parts.append(table.Lines([""]))
        if isinstance(section, Grid):
            parts += table.render(section, width, plan.unicode)
        else:
            parts += [table.prose(section.title, width, "bold"), table.Lines(section.lines)]
    parts.append(table.Lines([""]))
    parts += [table.prose(line, width) for line in train_view.summary_lines(runs)]
    console.print(Stack(*parts))


def _text(plan: Plan, runs: list[TrainRun], width: int) -> str:
    assert plan.train is not None
    training = plan.train.training
    if plan.format is Format.JSON:
        return train_view.to_json(plan.spec, runs, training)
    if plan.format is Format.CSV:
        return train_view.to_csv(runs)
    if plan.format is Format.MARKDOWN:
        return train_view.to_markdown(
            plan.spec, runs, training, max_rows=plan.max_rows, width=width
        )
    buffer = io.StringIO()
    _print_page(Console(file=buffer, width=width, color_system=None, emoji=False), plan, runs)
    return buffer.getvalue()
