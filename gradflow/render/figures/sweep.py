"""The sweep figure: log10 gain against the varied flag, per variant the median over seeds as a
line in a min–max band, and the theory's prediction as a dashed line of the same colour.

It takes plain arrays, so that any sweep can draw it: ``sweep_figure("depth", depths, True,
{"plain": SweepSeries(median, low, high, theory)}, title)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from gradflow.render.figures import style

MAX_X_TICKS = 12  # up to this many swept values each get a tick


@dataclass(frozen=True)
class SweepSeries:
    """One variant's log10 values along the sweep, each (X,): nan where a run has none."""

    median: np.ndarray
    low: np.ndarray  # the smallest over the seeds
    high: np.ndarray  # the largest
    theory: np.ndarray | None = None  # the prediction, if there is one


def sweep_figure(
    x_label: str,
    x_values: np.ndarray,
    log_x: bool,
    series: Mapping[str, SweepSeries],
    title: str,
    y_label: str = "gain ‖∂L/∂x‖/‖∂L/∂y‖",
) -> Figure:
    """Per variant: the median (line, gid ``median:<variant>``), the min–max band and the
    theory (dashed, gid ``theory:<variant>``) against ``x_values`` (X,); y in log10."""
    x = np.asarray(x_values, dtype=np.float64)
    with style.isolated_style():
        figure = style.new_figure(6.5)
        style.title(figure, title)
        axes = figure.subplots()
        palette = style.colors(len(series))
        for i, (label, s) in enumerate(series.items()):
            color = palette[i]
            band = axes.fill_between(
                x, _finite(s.low), _finite(s.high), color=color, alpha=0.2, linewidth=0,
                label=f"{label} min–max",
            )  # fmt: skip
            band.set_gid(f"band:{label}")
            (median,) = axes.plot(
                x, _finite(s.median), color=color, marker=style.MARKERS[i % len(style.MARKERS)],
                label=f"{label} median",
            )  # fmt: skip
            median.set_gid(f"median:{label}")
            if s.theory is not None:
                (theory,) = axes.plot(
                    x, _finite(s.theory), color=color, linestyle="--", linewidth=1.5,
                    label=f"{label} theory",
                )  # fmt: skip
                theory.set_gid(f"theory:{label}")
        if log_x:
            axes.set_xscale("log")
            axes.xaxis.set_minor_formatter(NullFormatter())
        if len(x) <= MAX_X_TICKS:  # the swept values themselves, as given
            axes.set_xticks(x, [f"{v:g}" for v in x])
        axes.set_xlabel(x_label)
        axes.set_ylabel(y_label)
        style.log10_axis(axes)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return figure


def _finite(log10: np.ndarray) -> np.ndarray:
    """log10 values with ±inf (exact zero, overflow) as gaps: a log axis has no place for them."""
    values = np.asarray(log10, dtype=np.float64)
    return np.where(np.isfinite(values), values, np.nan)
