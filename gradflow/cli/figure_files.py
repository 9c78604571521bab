"""``--plot FILE``: the figure's file checked before the run (its suffix, matplotlib, the path)
and written after it, as every other output file is (``files.OutputTarget``).

matplotlib is imported (by ``check_plot``) only when ``--plot`` is given, and the figure
modules only when the figure is drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gradflow.cli.errors import BadInput, WriteFailed, note, quoted
from gradflow.cli.files import OutputTarget
from gradflow.render.figures import INSTALL, require_matplotlib
from gradflow.render.figures.file_format import FigureFormat, format_for

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gradflow.analysis.paths import Decomposition
    from gradflow.analysis.results import Report
    from gradflow.analysis.theory import Prediction
    from gradflow.analysis.train import TrainRun

FLAG = "--plot"


@dataclass(frozen=True)
class FigureTarget:
    """Where the figure goes and in which format (from the file's suffix)."""

    target: OutputTarget
    format: FigureFormat


def check_plot(path: Path, others: Sequence[OutputTarget | None]) -> FigureTarget:
    """The figure's target, or BadInput (exit 2): a suffix that names no figure format, no
    matplotlib, a path no output may take, or the file of another output flag."""
    if str(path) == "-":
        raise BadInput(FLAG, "stdout carries the report; give a file name")
    kind = format_for(path.suffix)
    if kind is None:
        known = ", ".join(f".{f.value}" for f in FigureFormat)
        raise BadInput(FLAG, f"no figure format for suffix {quoted(path.suffix)} ({known})")
    try:
        require_matplotlib()
    except ImportError:
        raise BadInput(
            FLAG, f"figures need matplotlib, which is not installed: {INSTALL}"
        ) from None
    target = OutputTarget.check(path, FLAG)
    if target.is_stream:
        raise BadInput(FLAG, "stdout carries the report; give a file name")
    for other in others:
        if other is not None and target.same_as(other):
            raise BadInput(FLAG, f"{quoted(path)} is also {other.flag}")
    return FigureTarget(target, kind)


def write_figure(plot: FigureTarget | None, draw: Callable[[], Figure]) -> list[WriteFailed]:
    """Draw the figure and write it; a failure is returned (exit 3), the other outputs stand."""
    if plot is None:
        return []
    import numpy as np

    from gradflow.render.figures import style

    # a log axis over values near the float limits (a sweep from 1e-300 to 1e300): matplotlib's
    # margins overflow on the way, and the figure is still right
    with np.errstate(over="ignore", under="ignore"):
        figure = draw()
    try:
        with np.errstate(over="ignore", under="ignore"):
            plot.target.write(lambda file: style.save(figure, file, plot.format))
    except WriteFailed as failure:
        return [failure]
    except BrokenPipeError as error:  # a FIFO whose reader has gone: the figure is not whole
        return [WriteFailed(FLAG, plot.target.path, error)]
    note(f"gradflow: wrote {plot.target.path}")
    return []


def write_report_figure(
    plot: FigureTarget | None,
    command: str,
    reports: Sequence[Report],
    theory: Sequence[Prediction | str] | None = None,
) -> list[WriteFailed]:
    """analyze and compare: the gradient figure (with --theory, the predictions on it)."""

    def draw() -> Figure:
        from gradflow.render.figures.gradients import gradient_figure

        return gradient_figure(reports, command, theory)

    return write_figure(plot, draw)


def write_paths_figure(
    plot: FigureTarget | None, runs: Sequence[Decomposition]
) -> list[WriteFailed]:
    """paths: the path-length figure."""

    def draw() -> Figure:
        from gradflow.render.figures.path_lengths import path_figure

        return path_figure(runs)

    return write_figure(plot, draw)


def write_train_figure(
    plot: FigureTarget | None, runs: Sequence[TrainRun], title: str
) -> list[WriteFailed]:
    """train: the loss curves and the heatmaps of ‖∂L/∂W‖."""

    def draw() -> Figure:
        from gradflow.render.figures.training import runs_figure

        return runs_figure(runs, title)

    return write_figure(plot, draw)
