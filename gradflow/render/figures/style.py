"""One look for every figure, whatever the user's matplotlibrc: fonts, sizes, colours, the
log10 axis and deterministic files.

Figures are drawn on an Agg canvas made here, never through pyplot: no window opens and the
user's backend (a notebook's, say) is left alone. Every rcParam a figure depends on is reset to
matplotlib's own defaults and then set from ``STYLE``, inside ``isolated_style`` only.
"""

from __future__ import annotations

import contextlib
import math
import textwrap
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

from gradflow.render.figures.file_format import DROPPED_METADATA, FigureFormat

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

DPI = 150  # PNG: 11 inches at 150 dpi is 1650 pixels wide
WIDTH = 11.0  # inches
TITLE_CHARACTERS = 110  # the configuration line is wrapped at this many characters
COLORMAP = "viridis"  # perceptually uniform, its lightness rises monotonically: greyscale-safe
COLOR_SPAN = (0.0, 0.82)  # viridis's yellow end is too light on white for a line
# markers and line styles tell the variants apart in greyscale as well as the colour does
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")
HATCHES = ("", "//", "..", "xx", "\\\\", "oo")  # bars: a pattern per variant, for greyscale

FEW_DECADES = 2.0  # a log10 axis spanning less gets ticks at 1, 2 and 5 times each power of ten
SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")  # plain text: no mathtext to lay out

STYLE: dict[RcKeyType, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # ships with matplotlib: the same glyphs everywhere
    "mathtext.fontset": "dejavusans",  # should a label ever use it
    "font.size": 13,  # slide-readable at 1650 pixels
    "axes.titlesize": 14,
    "axes.labelsize": 13,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "legend.fontsize": 11,
    "figure.titlesize": 13,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 2.0,
    "lines.markersize": 5.0,
    "savefig.dpi": DPI,
    "figure.dpi": DPI,
    "svg.hashsalt": "gradflow",  # element ids from a fixed salt, not a random one
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "pdf.compression": 6,
    "path.simplify": False,  # every point is plotted
}


@contextlib.contextmanager
def isolated_style() -> Iterator[None]:
    """matplotlib's defaults plus ``STYLE``, whatever matplotlibrc or the caller set; restored
    afterwards."""
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(STYLE)
        yield


def new_figure(height: float) -> Figure:
    """A figure WIDTH × ``height`` inches on its own Agg canvas, laid out by constrained layout."""
    figure = Figure(figsize=(WIDTH, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def title(figure: Figure, line: str) -> None:
    """The configuration line the table prints, wrapped to the figure's width between its
    " · " parts (a part is never split, unless it is wider than a line on its own)."""
    parts = line.split(" · ")
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + 3 + len(part) <= TITLE_CHARACTERS:
            lines[-1] += " · " + part
        else:
            if lines:
                lines[-1] += " ·"  # the line goes on below
            lines.append(part)
    # a line's closing " ·" may take it two past the width: only a part wider than a line on
    # its own is split (else the "·" was wrapped onto a line of its own)
    wrapped = [textwrap.fill(text, TITLE_CHARACTERS + 2) for text in lines]
    figure.suptitle("\n".join(wrapped), ha="left", x=0.01)


def colors(count: int) -> np.ndarray:
    """``count`` colours from the colormap, evenly spaced: (count, 4) RGBA."""
    cmap = matplotlib.colormaps[COLORMAP]
    if count == 1:
        return np.asarray(cmap([0.35]))
    return np.asarray(cmap(np.linspace(*COLOR_SPAN, count)))


def power_label(value: float, _position: object = None) -> str:
    """A log10 tick as a power of ten: 10⁻²⁰."""
    if not math.isfinite(value) or value != round(value):
        return ""
    return "10" + str(int(value)).translate(SUPERSCRIPT)


def whole_numbers(axis: Axis, most: int = 10) -> None:
    """At most ``most`` ticks, at whole numbers only: layers and steps have no 2.5."""
    axis.set_major_locator(MaxNLocator(nbins=most, integer=True, steps=[1, 2, 5, 10]))


def log10_axis(axes: Axes) -> None:
    """A y axis that carries log10 values (plotted in log10 space, so that magnitudes beyond
    float64's range keep their place), labelled as powers of ten at whole decades; over less
    than FEW_DECADES, at 1, 2 and 5 times them, as plain numbers. Call it after plotting."""
    low, high = axes.get_ylim()
    axis = axes.yaxis
    if high - low >= FEW_DECADES:
        axis.set_major_locator(MaxNLocator(nbins=8, integer=True))
        axis.set_major_formatter(FuncFormatter(power_label))
        return
    decades = range(math.floor(low), math.ceil(high) + 1)
    ticks = [d + math.log10(m) for d in decades for m in (1, 2, 5)]
    axis.set_major_locator(FixedLocator([t for t in ticks if low <= t <= high]))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{10**value:.3g}"))


def save(figure: Figure, file: IO[bytes], kind: FigureFormat) -> None:
    """Write ``figure`` to ``file`` as ``kind``, without dates or versions in it."""
    with isolated_style():
        figure.savefig(file, format=kind.value, dpi=DPI, metadata=DROPPED_METADATA[kind])
