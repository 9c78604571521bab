"""A horizontal bar chart of magnitudes on a log10 scale, as lines of text.

One panel per series (variant), side by side, all on one scale so that bars compare by eye. A
bar's length is proportional to log10 of the magnitude above the scale's floor; every nonzero
magnitude gets at least one cell. Exact zeros, NaN and inf have no length and are drawn as marks;
magnitudes beyond float64's range are drawn from their exact log10 with their own fill.
Pure ASCII unless ``unicode`` is asked for (then eighth-cell blocks give finer bars).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gradflow.analysis.results import Report
from gradflow.engine.magnitudes import Magnitudes, Status
from gradflow.render import view

MIN_FIELD = 10  # narrowest bar field that still shows a scale
TICK_STEPS = (1, 2, 5)  # decades between labels: 1, 2, 5, 10, 20, 50, ...


@dataclass(frozen=True)
class Glyphs:
    fill: dict[Status, str]  # one cell of a bar, by status
    marks: dict[Status, str]  # drawn instead of a bar
    eighths: str  # partial cells, 1/8 … 7/8 (empty: whole cells only)


ASCII = Glyphs(
    fill={Status.OK: "#", Status.UNDERFLOW: ".", Status.OVERFLOW: "="},
    marks={Status.ZERO: "0", Status.INF: "inf", Status.NAN: "nan"},
    eighths="",
)
UNICODE = Glyphs(
    fill={Status.OK: "█", Status.UNDERFLOW: "░", Status.OVERFLOW: "▓"},
    marks={Status.ZERO: "0", Status.INF: "∞", Status.NAN: "nan"},
    eighths="▏▎▍▌▋▊▉",
)
MEANING = {
    Status.UNDERFLOW: "below float64's range (length from the exact log10)",
    Status.OVERFLOW: "above float64's range (length from the exact log10)",
    Status.ZERO: "exactly zero",
    Status.INF: "infinite",
    Status.NAN: "not a number",
}


@dataclass(frozen=True)
class Series:
    title: str
    values: Magnitudes  # one per row


@dataclass(frozen=True)
class Scale:
    """Decades lo..hi mapped onto ``field`` cells."""

    lo: int
    hi: int
    field: int

    @classmethod
    def covering(cls, log10s: Sequence[float], field: int) -> Scale:
        finite = [x for x in log10s if math.isfinite(x)]
        if not finite:
            return cls(-1, 0, field)
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
    """The chart as lines no wider than ``width`` (unless that leaves bars under MIN_FIELD)."""
    glyphs = UNICODE if unicode else ASCII
    label_width = max((len(label) for label in labels), default=0)
    panel = max(MIN_FIELD + 2, (width - label_width - 1) // len(series))
    field = panel - 2  # "|" + bars + " "
    statuses = [s.values.status() for s in series]
    scale = Scale.covering(
        [
            x
            for s, st in zip(series, statuses, strict=True)
            for x, status in zip(s.values.log10.tolist(), st, strict=True)
            if status in glyphs.fill
        ],
        field,
    )
    indent = " " * (label_width + 1)
    lines = [indent + "".join(_fit(" " + s.title, panel) for s in series)]
    for i, label in enumerate(labels):
        cells = [
            "|" + _bar(float(s.values.log10[i]), st[i], scale, glyphs) + " "
            for s, st in zip(series, statuses, strict=True)
        ]
        lines.append(f"{label:>{label_width}} " + "".join(cells))
    axis, names = _axis(scale)
    lines.append(indent + axis * len(series))
    lines.append(indent + names * len(series))
    lines.append(indent + _legend({x for st in statuses for x in st}, glyphs))
    return [line.rstrip() for line in lines]


def _bar(log10: float, status: Status, scale: Scale, glyphs: Glyphs) -> str:
    if status in glyphs.marks:
        return _fit(glyphs.marks[status], scale.field)
    fill = glyphs.fill[status]
    if status is Status.OK and glyphs.eighths:
        eighths = scale.cells(log10, steps=8)
        whole, part = divmod(eighths, 8)
        bar = fill * whole + (glyphs.eighths[part - 1] if part else "")
    else:
        bar = fill * scale.cells(log10)
    return _fit(bar, scale.field)


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


def _legend(present: set[Status], glyphs: Glyphs) -> str:
    parts = ["log10 scale shared by all panels"]
    for status, meaning in MEANING.items():
        if status in present:
            mark = glyphs.fill.get(status) or glyphs.marks[status]
            parts.append(f"{mark} {meaning}")
    return "; ".join(parts)


def _fit(text: str, width: int) -> str:
    return text[:width].ljust(width)


def layer_chart(
    reports: Sequence[Report], rows: Sequence[view.Row], *, width: int, unicode: bool
) -> list[str]:
    """‖∂L/∂W‖ per layer (or bucket), one panel per variant, on one shared log scale."""
    series = [Series(r.label, view.per_row(r.layers.grad_weight, rows)) for r in reports]
    return render([row.index for row in rows], series, width=width, unicode=unicode)
