"""The train figure: the loss per step for each variant (log y) and, per variant, a layer ×
step heatmap of log10 ‖∂L/∂W‖ on one colour scale with one colorbar.

It takes plain arrays, so that any training loop can draw it: ``train_figure({"pre": (steps,
losses)}, {"pre": log10_grad_weight}, heat_steps, title)`` with ``log10_grad_weight`` of shape
(layers, steps).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec

from gradflow.render.figures import style

if TYPE_CHECKING:
    from gradflow.analysis.train import TrainRun

ZERO_COLOR = "white"  # exact zeros (and nan) left blank: viridis never comes near white
# perceptually uniform and readable by most eyes; no grey in it (cividis' middle is grey,
# which read as the zeros' colour)
HEATMAP_COLORMAP = style.COLORMAP


def train_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    heatmaps: Mapping[str, np.ndarray],
    heat_steps: np.ndarray,
    title: str,
) -> Figure:
    """Loss curves (steps (T,), losses (T,) per variant; gid ``loss:<variant>``) above one
    heatmap per variant of log10 ‖∂L/∂W‖ (layers × steps (L, S), layer 1 at the top, columns at
    ``heat_steps`` (S,); gid ``heatmap:<variant>``), sharing one colour scale."""
    with style.isolated_style():
        figure = style.new_figure(8.0)
        style.title(figure, title)
        columns = max(1, len(heatmaps))
        grid = figure.add_gridspec(2, columns, height_ratios=(1.0, 1.3))
        loss_axes = figure.add_subplot(grid[0, :])
        palette = style.colors(len(curves))
        for i, (label, (steps, losses)) in enumerate(curves.items()):
            loss = np.asarray(losses, dtype=np.float64)
            (drawn,) = loss_axes.plot(
                np.asarray(steps, dtype=np.float64), np.where(loss > 0, loss, np.nan),
                color=palette[i], label=label,
            )  # fmt: skip
            drawn.set_gid(f"loss:{label}")
        loss_axes.set_yscale("log")
        loss_axes.set_xlabel("step")
        style.whole_numbers(loss_axes.xaxis)
        loss_axes.set_ylabel("loss")
        loss_axes.legend(loc="upper right")
        _heatmaps(figure, grid, heatmaps, np.asarray(heat_steps, dtype=np.float64))
    return figure


def runs_figure(runs: Sequence[TrainRun], title: str) -> Figure:
    """``train_figure`` for the runs of ``gradflow train``: each variant's minibatch loss at
    its recorded steps, and its log10 ‖∂L/∂W‖ per layer at them (nan after a run stopped)."""
    curves = {
        run.label: (np.array([s.step for s in run.steps]), np.array([s.loss for s in run.steps]))
        for run in runs
    }
    longest = max(runs, key=lambda run: len(run.steps))
    steps = np.array([s.step for s in longest.steps], dtype=np.float64)  # (S,)
    heatmaps = {}
    for run in runs:
        matrix = np.full((len(run.names), len(steps)), np.nan)  # (layers, S)
        for column, record in enumerate(run.steps):  # every variant records the same steps
            matrix[:, column] = record.grad_weight.log10
        heatmaps[run.label] = matrix
    return train_figure(curves, heatmaps, steps, title)


def _heatmaps(
    figure: Figure, grid: GridSpec, heatmaps: Mapping[str, np.ndarray], steps: np.ndarray
) -> None:
    values = {label: np.asarray(v, dtype=np.float64) for label, v in heatmaps.items()}
    finite = [v[np.isfinite(v)] for v in values.values()]
    pooled = np.concatenate(finite) if finite else np.zeros(0)
    norm = Normalize(*(pooled.min(), pooled.max()) if pooled.size else (0.0, 1.0))
    cmap = matplotlib.colormaps[HEATMAP_COLORMAP].with_extremes(bad=ZERO_COLOR)
    mesh = None
    axes_list = []
    for column, (label, matrix) in enumerate(values.items()):
        axes = figure.add_subplot(grid[1, column])
        axes.set_title(label)
        axes.grid(False)
        if not len(steps):  # every run stopped at its first step: nothing was recorded
            axes.text(0.5, 0.5, "no step recorded", ha="center", va="center",
                      transform=axes.transAxes)  # fmt: skip
            axes.set_xticks([])
            axes.set_yticks([])
            continue
        layers = np.arange(1, matrix.shape[0] + 1, dtype=np.float64)
        mesh = axes.pcolormesh(
            _edges(steps), _edges(layers), np.ma.masked_invalid(matrix), cmap=cmap, norm=norm,
            shading="flat",
        )  # fmt: skip
        mesh.set_gid(f"heatmap:{label}")
        axes.invert_yaxis()  # layer 1 at the top, as in the table
        axes.set_xlabel("step")
        style.whole_numbers(axes.xaxis, most=4)  # a panel a third of the figure wide
        style.whole_numbers(axes.yaxis)
        if column == 0:
            axes.set_ylabel("layer")
        axes_list.append(axes)
    if mesh is not None:
        bar = figure.colorbar(mesh, ax=axes_list, label="‖∂L/∂W‖ (blank: exactly 0 or nan)")
        style.log10_axis(bar.ax)


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges around ``centres`` (N,): halfway between neighbours, (N + 1,)."""
    if len(centres) == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    middle = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - middle[0]], middle, [2 * centres[-1] - middle[-1]]])
