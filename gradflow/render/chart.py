"""A horizontal bar chart of magnitudes on a log10 scale, as lines of text.

One panel per series (variant), side by side (stacked when the screen is too narrow), all on one
scale so that bars compare by eye. A bar's length is proportional to log10 of the magnitude above
the scale's floor; every nonzero magnitude gets at least one cell. Exact zeros, NaN and inf have
no length and are drawn as marks; a bucket's mean that leaves exact zeros out ends in ``*``;
magnitudes beyond float64's range are drawn from their exact log10 with their own fill. Without
a finite nonzero magnitude there is no scale, and no axis. Pure ASCII unless ``unicode`` is asked
for (then eighth-cell blocks give finer bars).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from gradflow.engine.magnitudes import Magnitudes, Status
from gradflow.render import grid, view

MIN_FIELD = 10  # narrowest bar field that still shows a scale
MAX_WIDTH = 160  # wider bars add nothing but eye travel
TICK_STEPS = (1, 2, 5)  # decades between labels: 1, 2, 5, 10, 20, 50, ...


# Named tuples, as the view models (render/view.py): immutable and cheap to create at import.
class Glyphs(NamedTuple):
    fill: dict[Status, str]  # one cell of a bar, by status
    marks: dict[Status, str]  # drawn instead of a bar
    eighths: str  # partial cells, 1/8 … 7/8 (empty: whole cells only)
    expected: str = ":"  # where a prediction ends, drawn over the bar or beyond it


ASCII = Glyphs(
    fill={Status.OK: "#", Status.UNDERFLOW: ".", Status.OVERFLOW: "="},
    marks={Status.ZERO: "0", Status.INF: "inf", Status.NAN: "nan"},
    eighths="",
)
UNICODE = Glyphs(
    fill={Status.OK: "█", Status.UNDERFLOW: "░", Status.OVERFLOW: "▓"},
    marks={Status.ZERO: "0", Status.INF: "∞", Status.NAN: "nan"},
    eighths="▏▎▍▌▋▊▉",
    expected="┊",
)
MEANING = {
    Status.UNDERFLOW: "below float64's range (length from the exact log10)",
    Status.OVERFLOW: "above float64's range (length from the exact log10)",
    Status.ZERO: "exactly zero",
    Status.INF: "infinite",
    Status.NAN: "not a number",
}


class Series(NamedTuple):
    title: str
    values: Magnitudes  # one per row
    partial: np.ndarray | None = None  # bool per row: a mean that leaves exact zeros out
    expected: np.ndarray | None = None  # log10 of a prediction per row, nan where none

    def marked(self, row: int) -> bool:
        return self.partial is not None and bool(self.partial[row])


class Scale(NamedTuple):
    """Decades lo..hi mapped onto ``field`` cells."""

    lo: int
    hi: int
    field: int

    @classmethod
    def covering(cls, log10s: Sequence[float], field: int) -> Scale | None:
        """The decades around every finite value; None when there is none (no axis)."""
        finite = [x for x in log10s if math.isfinite(x)]
        if not finite:
            return None
        lo, hi = math.floor(min(finite)), math.ceil(max(finite))
        return cls(lo, max(hi, lo + 1), field)

    def cells(self, log10: float, steps: int = 1) -> int:
        """Bar length in cells (or eighths of a cell): at least 1 for any nonzero magnitude."""
        return max(1, round((log10 - self.lo) / (self.hi - self.lo) * self.field * steps))

    def position(self, decade: float) -> int:
        """Cell boundary of a decade: 0 at the panel's left edge, ``field`` at its right."""
        return round((decade - self.lo) / (self.hi - self.lo) * self.field)

    def ticks(self, label_width: int) -> list[int]:
        """Decades to label: the smallest 1-2-5 step whose labels do not collide."""
        span = self.hi - self.lo
        steps = (s * 10**p for p in range(20) for s in TICK_STEPS)
        step = next((s for s in steps if s * self.field >= (label_width + 1) * span), span)
        first = math.ceil(self.lo / step) * step
        return list(range(first, self.hi + 1, step))


def decade_label(decade: int) -> str:
    return f"1e{decade}"


def render(
    labels: Sequence[str], series: Sequence[Series], *, width: int, unicode: bool = False
) -> list[str]:
    """The chart as lines no wider than ``width`` (capped at MAX_WIDTH). Panels that do not fit
    side by side with a field of MIN_FIELD cells are stacked, on the same scale; only a screen
    too narrow for a single such panel gets longer lines."""
    width = min(width, MAX_WIDTH)
    glyphs = UNICODE if unicode else ASCII
    label_width = max((len(label) for label in labels), default=0)
    room = width - label_width - 1
    per_line = max(1, min(len(series), room // (MIN_FIELD + 2)))
    panel = max(MIN_FIELD + 2, room // per_line)
    statuses = [s.values.status() for s in series]
    log10s = [s.values.log10.tolist() for s in series]  # once per series, not once per bar
    predicted = [x for s in series if s.expected is not None for x in s.expected.tolist()]
    scale = Scale.covering(
        [
            x
            for log10, st in zip(log10s, statuses, strict=True)
            for x, status in zip(log10, st, strict=True)
            if status in glyphs.fill
        ]
        + predicted,
        panel - 2,  # "|" + bars + " "
    )
    indent = " " * (label_width + 1)
    lines: list[str] = []
    for start in range(0, len(series), per_line):
        shown = range(start, min(start + per_line, len(series)))
        if start:
            lines.append("")
        lines.append(indent + "".join(_fit(" " + series[j].title, panel) for j in shown))
        for i, label in enumerate(labels):
            cells = [
                "|" + _expect(_bar(log10s[j][i], statuses[j][i],
                                   series[j].marked(i), scale, glyphs, panel - 1),
                              series[j], i, scale, glyphs)
                for j in shown
            ]  # fmt: skip
            lines.append(f"{label:>{label_width}} " + "".join(cells))
        if scale is not None:
            axis, names = _axis(scale)
            lines += [indent + axis * len(shown), indent + names * len(shown)]
    marked = any(s.marked(i) for s in series for i in range(len(labels)))
    legend = _legend({x for st in statuses for x in st}, glyphs, scale is not None, marked)
    if any(math.isfinite(x) for x in predicted) and scale is not None:
        legend += f"; {glyphs.expected} the mean-field theory's prediction"
    lines += [indent + line for line in _wrap(legend, width - len(indent))]
    return [line.rstrip() for line in lines]


def _bar(
    log10: float, status: Status, marked: bool, scale: Scale | None, glyphs: Glyphs, width: int
) -> str:
    """One panel's cell: the bar (or a mark instead), then ``*`` if it leaves zeros out."""
    if status in glyphs.marks or scale is None:
        bar = glyphs.marks[status]
    else:
        fill = glyphs.fill[status]
        if status is Status.OK and glyphs.eighths:
            eighths = scale.cells(log10, steps=8)
            whole, part = divmod(eighths, 8)
            bar = fill * whole + (glyphs.eighths[part - 1] if part else "")
        else:
            bar = fill * scale.cells(log10)
    return _fit(bar[: width - 1] + (grid.MARK if marked else ""), width)


def _expect(bar: str, s: Series, row: int, scale: Scale | None, glyphs: Glyphs) -> str:
    """``bar`` with the row's prediction marked at the cell where a bar of that size ends."""
    log10 = math.nan if s.expected is None else float(s.expected[row])
    if scale is None or not math.isfinite(log10):
        return bar
    at = min(scale.cells(log10), len(bar) - 1) - 1  # the bar's last cell; the panel keeps a gap
    drawable = {" ", *glyphs.fill.values(), *glyphs.eighths}
    if bar[at] not in drawable:  # a mark (0, nan, inf, *) stays legible
        return bar
    return bar[:at] + glyphs.expected + bar[at + 1 :]


def _axis(scale: Scale) -> tuple[str, str]:
    """The axis under one panel (``+----+----``) and its decade labels, each a panel wide."""
    width = scale.field + 2
    axis = ["+"] + ["-"] * scale.field + [" "]
    names = [" "] * width
    label_width = max(len(decade_label(scale.lo)), len(decade_label(scale.hi)))
    free_from = 0  # labels keep one space between them
    for decade in scale.ticks(label_width):
        at = scale.position(decade)
        axis[at] = "+"
        text = decade_label(decade)
        start = min(max(at - len(text) // 2, free_from), width - 1 - len(text))
        if start < free_from:
            continue
        names[start : start + len(text)] = text
        free_from = start + len(text) + 1
    return "".join(axis), "".join(names)


def _legend(present: set[Status], glyphs: Glyphs, scaled: bool, marked: bool) -> str:
    if scaled:
        parts = ["log10 scale shared by all panels"]
    else:
        parts = ["no axis: no magnitude here is finite and nonzero"]
    for status, meaning in MEANING.items():
        if status in present:
            mark = glyphs.fill.get(status) or glyphs.marks[status]
            parts.append(f"{mark} {meaning}")
    if marked:
        parts.append(grid.MARK_NOTE.replace(": ", " ", 1))
    return "; ".join(parts)


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, max(width, 1), break_on_hyphens=False)


def _fit(text: str, width: int) -> str:
    return text[:width].ljust(width)


def draw(data: view.ChartData, *, width: int, unicode: bool) -> list[str]:
    """The page's chart (its title is the caller's to show): one panel per variant."""
    expected: list[np.ndarray | None] = (
        list(data.expected) if data.expected is not None else [None] * len(data.panels)
    )
    series = [
        Series(title, m.values, m.partial, e)
        for (title, m), e in zip(data.panels, expected, strict=True)
    ]
    return render(data.labels, series, width=width, unicode=unicode)
