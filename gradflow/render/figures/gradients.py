"""The analyze and compare figure: ‖∂L/∂W‖ and ‖∂L/∂in‖ per layer for each variant on a log10
axis, and below it the split at each addition (skip, branch and their sum).

Values are plotted as their exact log10 (``Magnitudes.log10``), so that a gradient of 1e-1884
has its place like any other. What a log axis cannot place is marked at its edge: exact zeros
(▼ at the bottom), nan and inf (✕ at the top); values beyond float64's range get a hollow marker
on their line and the range's limits are drawn when the data cross them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory, offset_copy

from gradflow.analysis.results import Report
from gradflow.analysis.theory import Prediction
from gradflow.engine.magnitudes import Magnitudes, Status
from gradflow.render import view
from gradflow.render.figures import style

FLOAT64_LOG10 = (math.log10(5e-324), math.log10(np.finfo(np.float64).max))  # subnormal..max
MARKED_POINTS = 50  # a line gets about this many markers, however deep the network
# (gid tag, marker, y in axes coordinates, legend text) per status a log axis cannot place
EDGE_MARKS = {
    Status.ZERO: ("zero", "v", 0.0, "exactly 0"),
    Status.NAN: ("nonfinite", "X", 1.0, "nan or inf"),
    Status.INF: ("nonfinite", "X", 1.0, "nan or inf"),
}
BEYOND = (Status.UNDERFLOW, Status.OVERFLOW)
BEYOND_TEXT = "beyond float64"
MARK_TEXTS = {text for _, _, _, text in EDGE_MARKS.values()} | {BEYOND_TEXT}
# (what, label, line style, marker face): the three parts at an addition, told apart by style
SPLIT = (
    ("skip", "skip", "-", "full"),
    ("branch", "branch", ":", "none"),
    ("sum", "sum", "--", "full"),
)


def gradient_figure(
    reports: Sequence[Report],
    command: str | None = None,
    theory: Sequence[Prediction | str] | None = None,
) -> Figure:
    """One figure for ``reports`` (one per variant, on the same weights): the per-layer panel
    and, when a variant has residual blocks, the per-block split under it. ``theory`` (one per
    report, as ``--theory`` gives) adds each prediction of ‖∂L/∂in‖ as a dotted line."""
    command = command or ("analyze" if len(reports) == 1 else "compare")
    residual = [(i, r) for i, r in enumerate(reports) if len(r.blocks)]
    with style.isolated_style():
        figure = style.new_figure(9.0 if residual else 5.5)
        style.title(figure, view.header_line(command, reports))
        axes = figure.subplots(2 if residual else 1, 1, sharex=True, squeeze=False)[:, 0]
        palette = style.colors(len(reports))
        _layers_panel(axes[0], reports, palette, theory)
        if residual:
            _blocks_panel(axes[1], residual, palette)
        axes[-1].set_xlabel(_x_label(reports[0]))
        style.whole_numbers(axes[-1].xaxis)
    return figure


def _x_label(report: Report) -> str:
    label = "layer (1 at the input end)"
    if len(report.layers) > report.spec.depth:
        label += f"; {len(report.layers)}: the xent head"
    return label


def _layers_panel(
    axes: Axes,
    reports: Sequence[Report],
    palette: np.ndarray,
    theory: Sequence[Prediction | str] | None,
) -> None:
    x = np.arange(1, len(reports[0].layers) + 1)
    for i, report in enumerate(reports):
        color, marker = palette[i], style.MARKERS[i % len(style.MARKERS)]
        for what, name, linestyle, face in (
            ("weight", "‖∂L/∂W‖", "-", "full"),
            ("input", "‖∂L/∂in‖", "--", "none"),
        ):
            magnitudes = getattr(report.layers, f"grad_{what}")
            _line(
                axes, x, magnitudes, f"{report.label}:{what}", f"{report.label} {name}",
                color=color, linestyle=linestyle, marker=marker, fillstyle=face,
            )  # fmt: skip
    predicted = False
    for i, (report, prediction) in enumerate(zip(reports, theory or (), strict=False)):
        if isinstance(prediction, Prediction):  # else the reason there is none: no line
            # anchored at the measured ‖∂L/∂y‖, as the table's theory column is
            y = report.summary.log10_grad_output + prediction.log10_grad_input  # (depth,)
            (line,) = axes.plot(
                x[: len(y)], y, color=palette[i], linestyle=":", linewidth=2.5,
                label=f"{report.label} theory ‖∂L/∂in‖",
            )  # fmt: skip
            line.set_gid(f"{report.label}:theory")
            predicted = True
    if len(reports) > 1:
        _decades(axes, reports, palette)
    title = "Gradient per layer: ‖∂L/∂W‖ (solid) and ‖∂L/∂in‖ (dashed)"
    axes.set_title(title + (", theory (dotted)" if predicted else ""), loc="left")
    axes.set_ylabel("gradient norm")
    _finish(axes)


def _blocks_panel(axes: Axes, residual: Sequence[tuple[int, Report]], palette: np.ndarray) -> None:
    for i, report in residual:
        blocks = report.blocks
        x = blocks.first_layer.astype(np.float64)
        for what, name, linestyle, face in SPLIT:
            magnitudes = blocks.grad_input if what == "sum" else getattr(blocks, f"grad_{what}")
            _line(
                axes, x, magnitudes, f"{report.label}:{what}", f"{report.label} {name}",
                color=palette[i], linestyle=linestyle,
                marker=style.MARKERS[i % len(style.MARKERS)], fillstyle=face,
            )  # fmt: skip
    axes.set_title(
        "Split at each addition, drawn at the block's first layer: "
        "skip (solid), branch (dotted), sum (dashed)",
        loc="left",
    )
    axes.set_ylabel("gradient norm at the block input")
    _finish(axes)


def _line(
    axes: Axes,
    x: np.ndarray,
    magnitudes: Magnitudes,
    gid: str,
    label: str,
    **kwargs: object,
) -> None:
    """``magnitudes`` against ``x`` as log10 (gid ``gid``), with edge marks (gid
    ``zero:<gid>``, ``nonfinite:<gid>``) and hollow rings on values beyond float64's range
    (``beyond:<gid>``)."""
    log10 = magnitudes.log10
    y = np.where(np.isfinite(log10), log10, np.nan)
    every = max(1, len(x) // MARKED_POINTS)
    (drawn,) = axes.plot(x, y, label=label, markevery=every, **kwargs)  # type: ignore[arg-type]
    drawn.set_gid(gid)
    status = np.array([str(s) for s in magnitudes.status()])
    color = drawn.get_color()
    edge = blended_transform_factory(axes.transData, axes.transAxes)
    for kind, (tag, marker, height, text) in EDGE_MARKS.items():
        at = x[status == kind.value]
        if len(at):
            (mark,) = axes.plot(
                at, np.full(len(at), height), marker=marker, linestyle="none", color=color,
                markersize=9, transform=edge, clip_on=False, label=f"_{text}",
            )  # fmt: skip
            mark.set_gid(f"{tag}:{gid}:{kind.value}")
    beyond = np.isin(status, [s.value for s in BEYOND])
    if beyond.any():
        (ring,) = axes.plot(
            x[beyond], y[beyond], marker="o", linestyle="none", markersize=10,
            markerfacecolor="none", markeredgecolor=color, label=f"_{BEYOND_TEXT}",
            markevery=max(1, int(beyond.sum()) // MARKED_POINTS),
        )  # fmt: skip
        ring.set_gid(f"beyond:{gid}")


def _decades(axes: Axes, reports: Sequence[Report], palette: np.ndarray) -> None:
    """Arrows at layer 1 from the baseline's ‖∂L/∂W‖ to each variant's, labelled with the
    decades between them (log10 of the variant's over the baseline's, as the table's
    ÷baseline column at layer 1)."""
    base = reports[0]
    base_log10 = float(base.layers.grad_weight.log10[0])
    figure = axes.get_figure()
    assert figure is not None
    drawn = False
    for i, report in enumerate(reports[1:], start=1):
        variant = float(report.layers.grad_weight.log10[0])
        decades = variant - base_log10
        if not math.isfinite(decades):  # an exact zero (or nan) at either end: no distance
            continue
        drawn = True
        shifted = offset_copy(axes.transData, fig=figure, x=12.0 * i, units="points")  # type: ignore[arg-type]
        arrow = axes.annotate(
            "", xy=(1, variant), xytext=(1, base_log10), xycoords=shifted, textcoords=shifted,
            arrowprops={"arrowstyle": "<|-|>", "color": palette[i], "linewidth": 1.5},
        )  # fmt: skip
        arrow.set_gid(f"decades:{report.label}")
        note = axes.annotate(
            f"{decades:+.1f}", xy=(1, (variant + base_log10) / 2), xycoords=shifted,
            xytext=(4, 0), textcoords="offset points", va="center", color=palette[i],
            fontsize=11, fontweight="bold",
            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none"},
        )  # fmt: skip
        note.set_gid(f"decades-text:{report.label}")
    if drawn:  # under the legend, outside the data
        axes.annotate(
            f"arrows: decades of ‖∂L/∂W₁‖\nover {base.label}'s", xy=(1.01, 0.0),
            xycoords="axes fraction", ha="left", va="bottom", fontsize=11, color="0.3",
        )  # fmt: skip


def _finish(axes: Axes) -> None:
    """Powers of ten on y, float64's limits where the data cross them, the legend outside."""
    style.log10_axis(axes)
    low, high = axes.get_ylim()
    for limit in FLOAT64_LOG10:
        if low < limit < high:
            axes.axhline(limit, color="0.4", linestyle=(0, (1, 3)), linewidth=1.2)
            axes.annotate(
                "float64 range ends", xy=(1.0, limit), xycoords=("axes fraction", "data"),
                xytext=(-4, 3), textcoords="offset points", ha="right", fontsize=10,
                color="0.3",
            )  # fmt: skip
    handles = axes.get_legend_handles_labels()[0]
    handles += _mark_handles(axes)
    axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _mark_handles(axes: Axes) -> list[Artist]:
    """One legend entry per kind of mark drawn (exactly 0, nan or inf, beyond float64)."""
    shown: dict[str, Artist] = {}
    for drawn in axes.get_lines():
        text = str(drawn.get_label()).removeprefix("_")
        if text in MARK_TEXTS and text not in shown:
            shown[text] = Line2D(
                [], [], marker=drawn.get_marker(), linestyle="none", color="0.3",
                markerfacecolor="none" if text == BEYOND_TEXT else "0.3", markersize=9,
                label=text,
            )  # fmt: skip
    return list(shown.values())
