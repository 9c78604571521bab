"""The paths figure (Veit, Wilber & Belongie 2016, exactly): per path length k, the share of the
energy Σ_k ‖G_k‖² as bars (one colour per wiring), and on a second axis the number of paths
C(B, k) as log10, so that where the paths are and where the gradient is can be read together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from gradflow.analysis.paths import Decomposition
from gradflow.render import paths_view
from gradflow.render.figures import style

BAR_SPAN = 0.8  # of one length's slot, shared by the wirings' bars


def path_figure(decompositions: Sequence[Decomposition]) -> Figure:
    """Energy share per path length for each wiring (bars), the binomial path count (line, right
    axis); lengths above ``max_length`` as one bar at K + 1."""
    first = decompositions[0]
    with style.isolated_style():
        figure = style.new_figure(6.0)
        style.title(figure, paths_view.header_line(decompositions))
        axes = figure.subplots()
        palette = style.colors(len(decompositions))
        width = BAR_SPAN / len(decompositions)
        x = _positions(first)
        for i, d in enumerate(decompositions):
            offset = (i - (len(decompositions) - 1) / 2) * width
            shares = energy_shares(d)
            axes.bar(
                x + offset, np.nan_to_num(shares, nan=0.0), width, color=palette[i],
                label=f"{d.label}: share of the energy",
                hatch=style.HATCHES[i % len(style.HATCHES)], edgecolor="white", linewidth=0.5,
            )  # fmt: skip
            if not np.isfinite(shares).all():
                axes.text(
                    0.01, 0.97 - 0.06 * i, f"{d.label}: the energy is not finite (nan or inf)",
                    transform=axes.transAxes, va="top", color=palette[i],
                )  # fmt: skip
        axes.set_xlabel("path length k: residual branches a path passes through")
        axes.set_ylabel("share of the energy")
        axes.set_ylim(0, 1.05)
        counts = axes.twinx()
        (line,) = counts.plot(
            x, path_counts_log10(first), color="0.25", linestyle="--", marker="o", markersize=4,
            label="paths C(B, k) (right axis)",
        )  # fmt: skip
        line.set_gid("paths")
        counts.set_ylabel("number of paths")
        counts.grid(False)
        style.log10_axis(counts)
        _length_ticks(axes, first)
        handles, labels = axes.get_legend_handles_labels()
        more, more_labels = counts.get_legend_handles_labels()
        figure.legend(handles + more, labels + more_labels, loc="outside lower center", ncols=3)
    return figure


def _length_ticks(axes: Axes, d: Decomposition) -> None:
    """Whole lengths on x, and ``>K`` under the remainder's bar."""
    locator = MaxNLocator(nbins=10, integer=True)
    axes.xaxis.set_major_locator(locator)
    if d.remainder is None:
        return
    k = d.max_length
    ticks = [int(t) for t in locator.tick_values(0, k) if 0 <= t <= k]
    axes.set_xticks([*ticks, k + 1], [*map(str, ticks), f">{k}"])


def _positions(d: Decomposition) -> np.ndarray:
    """x of each bar: lengths 0..K, then K + 1 for the remainder."""
    return np.arange(d.max_length + 1 + (d.remainder is not None), dtype=np.float64)


def energy_shares(d: Decomposition) -> np.ndarray:
    """The bars' heights: share per length 0..K, then the remainder's."""
    shares = [*d.share.tolist(), *([d.remainder.share] if d.remainder is not None else [])]
    return np.asarray(shares, dtype=np.float64)


def path_counts_log10(d: Decomposition) -> np.ndarray:
    """The line's heights: log10 C(B, k) per length 0..K, then log10 of the remainder's paths."""
    counts = [*d.log10_paths.tolist()]
    if d.remainder is not None:
        counts.append(d.remainder.log10_paths)
    return np.asarray(counts, dtype=np.float64)
