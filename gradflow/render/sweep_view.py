"""A sweep as people and scripts read it: the table, the line chart, the one-line reading, and
the JSON, jsonl, CSV and markdown texts. Plain data and text; only the CLI prints.

The same runs give the same bytes: nothing here depends on the time, the machine or the order
in which the runs finished.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gradflow import __version__
from gradflow.analysis.sweep import (
    Axis,
    Outcome,
    PointResult,
    Run,
    Spread,
    Value,
    Values,
    flag_name,
    slope,
    value_text,
    values_text,
)
from gradflow.analysis.verdict import PAIRS, Thresholds, Verdict
from gradflow.engine.magnitudes import Status
from gradflow.engine.spec import NetworkSpec, Skip
from gradflow.render.formats import SCHEMA_VERSION, json_number, markdown_table, pretty_json
from gradflow.render.grid import DASH, Cell, Column, Grid, Tone, packed

MARKS = {Skip.NONE: "o", Skip.POST: "+", Skip.PRE: "x", Skip.POSTNORM: "#"}  # one per variant
THEORY_MARK, BAR_MARK = ".", "|"
CHART_HEIGHT = 15  # rows of the plotting area
CHART_WIDTH = (30, 90)  # columns of the plotting area: at least, at most
STATUS_LOG10 = {"zero": -math.inf, "inf": math.inf, "nan": math.nan}  # null log10 by status


# ---- records: one run as the files hold it ----------------------------------------------------


def run_record(run: Run, spec: NetworkSpec, summary: dict[str, Any]) -> dict[str, Any]:
    """One run: where it sits in the grid, the spec it ran (to check a resumed file against)
    and analyze's summary of it."""
    return {
        "values": dict(run.values),
        "variant": str(run.variant),
        "seed": run.seed,
        "spec": spec.to_dict(),
        "summary": summary,
    }


def jsonl_line(record: dict[str, Any]) -> str:
    return json.dumps(record, allow_nan=False) + "\n"


def record_key(record: dict[str, Any]) -> tuple[Values, str, int]:
    """The run a record holds, as ``Run.key`` names it."""
    values = tuple((str(f), v) for f, v in record["values"].items())
    return values, str(record["variant"]), int(record["seed"])


def log10_of(summary: dict[str, Any], name: str) -> float:
    """A summary's log10 ratio back from its JSON: null stands for -inf, inf or nan by status."""
    log10 = summary[f"log10_{name}"]
    return float(log10) if log10 is not None else STATUS_LOG10[summary[f"{name}_status"]]


def outcome(summary: dict[str, Any]) -> Outcome:
    return Outcome(
        log10_of(summary, "weight_ratio"), log10_of(summary, "gain"), Verdict(summary["verdict"])
    )


# ---- the table --------------------------------------------------------------------------------


def signed(x: float, digits: int) -> str:
    """``+1.25``, ``-0.50``; a value that rounds to zero is ``+0.00``, never ``-0.00``."""
    text = f"{x:+.{digits}f}"
    return "+" + text[1:] if float(text) == 0 else text


def decades(x: float | None) -> str:
    if x is None:
        return DASH
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "-inf" if x < 0 else "+inf"
    return signed(x, 2)


def span(s: Spread) -> str:
    return DASH if math.isnan(s.low) else f"{decades(s.low)}..{decades(s.high)}"


def verdicts_text(counts: dict[Verdict, int]) -> str:
    return " ".join(f"{n} {v}" for v, n in counts.items() if n)


def tone(s: Spread, low: float, high: float) -> Tone:
    if not math.isfinite(s.median):
        return Tone.BROKEN
    return Tone.GOOD if math.log10(low) <= s.median <= math.log10(high) else Tone.BAD


def sweep_grid(
    axes: Sequence[Axis], results: Sequence[PointResult], thresholds: Thresholds, theory: bool
) -> Grid:
    """One row per grid point and variant: medians over seeds, their spread, the verdicts."""
    columns = [
        Column(flag_name(a.field), [Cell(value_text(dict(r.values)[a.field])) for r in results],
               numeric=a.numeric, key=True)
        for a in axes
    ]  # fmt: skip
    columns += [
        Column("variant", [Cell(r.variant.label) for r in results], numeric=False, key=True),
        *_spread_columns(
            "first/last",
            [r.weight_ratio for r in results],
            (thresholds.vanish_below, thresholds.explode_above),
            "first/last: log10 ‖∂L/∂W₁‖/‖∂L/∂W_L‖",
            drop=2,
        ),
        *_spread_columns(
            "gain",
            [r.gain for r in results],
            (thresholds.gain_below, thresholds.gain_above),
            "gain: log10 ‖∂L/∂x‖/‖∂L/∂y‖",
            drop=1,
        ),
    ]
    if theory:
        columns += [
            Column("gain\ntheory", [Cell(decades(r.theory)) for r in results],
                   note="theory: the mean-field prediction (- where none applies)"),
            Column("measured\n-theory", [Cell(decades(r.residual)) for r in results]),
        ]  # fmt: skip
    columns.append(
        Column("verdicts", [Cell(verdicts_text(r.verdicts)) for r in results], numeric=False)
    )
    return Grid(
        "Per grid point and variant, over seeds (decades, log10)",
        columns,
        notes=("median and min..max over the seeds",),
    )


def _spread_columns(
    title: str, spreads: Sequence[Spread], bounds: tuple[float, float], note: str, drop: int
) -> tuple[Column, Column]:
    """A quantity over seeds: its median, toned by the verdict's bounds, then its min..max
    (the first column a narrow page drops, at priority ``drop``)."""
    low, high = bounds
    median = Column(
        f"{title}\nmedian",
        [Cell(decades(s.median), tone(s, low, high)) for s in spreads],
        note=note,
    )
    return median, Column(f"{title}\nmin..max", [Cell(span(s)) for s in spreads], drop=drop)


# ---- the chart --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chart:
    title: str
    lines: list[str]


def charts(axes: Sequence[Axis], results: Sequence[PointResult], width: int) -> list[Chart]:
    """Median log10 gain against the first varied flag: one chart per value of the others."""
    first, rest = axes[0], axes[1:]
    groups: dict[Values, list[PointResult]] = {}
    for r in results:
        groups.setdefault(r.values[1:], []).append(r)
    shown = []
    for others, members in groups.items():
        title = f"median log10 gain against {flag_name(first.field)}"
        if rest:
            title += f" ({values_text(others)})"
        shown.append(Chart(title, line_chart(first, members, width)))
    return shown


def _x_positions(axis: Axis, field: int) -> list[int]:
    """Column of each value: by value (log10 when geometric), or evenly for names."""
    if not axis.numeric or len(axis.values) == 1:
        n = len(axis.values)
        return [round(i * (field - 1) / max(n - 1, 1)) for i in range(n)]
    xs = [float(v) for v in axis.values]
    xs = [math.log10(x) for x in xs] if axis.geometric else xs
    lo, hi = min(xs), max(xs)
    if math.isinf(hi - lo):  # values near the float limits (-1e308, 1e308): halved, it is not
        xs, lo, hi = [x / 2 for x in xs], lo / 2, hi / 2
    return [round((x - lo) / (hi - lo) * (field - 1)) for x in xs]


def line_chart(axis: Axis, results: Sequence[PointResult], width: int) -> list[str]:
    """The lines of one chart: y axis labels, the plot, the x axis, its labels, a legend."""
    ys = [y for r in results for y in (r.gain.median, r.gain.low, r.gain.high, r.theory)
          if y is not None and math.isfinite(y)]  # fmt: skip
    if not ys:
        return ["no finite gain to draw"]
    lo, hi = min(ys), max(ys)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    label_width = max(len(signed(lo, 1)), len(signed(hi, 1)))
    field = max(CHART_WIDTH[0], min(CHART_WIDTH[1], width - label_width - 2))
    columns = _x_positions(axis, field)
    canvas = [[" "] * field for _ in range(CHART_HEIGHT)]

    def row(y: float) -> int:
        return round((hi - y) / (hi - lo) * (CHART_HEIGHT - 1))

    index = {v: i for i, v in enumerate(axis.values)}
    variants = list(dict.fromkeys(r.variant for r in results))
    for variant in variants:  # theory first: the measurements are drawn over it
        points = [
            (columns[index[dict(r.values)[axis.field]]], r.theory)
            for r in results
            if r.variant is variant and r.theory is not None and math.isfinite(r.theory)
        ]
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            for x in range(x0, x1 + 1):
                y = y0 + (y1 - y0) * (x - x0) / max(x1 - x0, 1)
                canvas[row(y)][x] = THEORY_MARK
        for x, y in points[:1] + points[-1:]:
            canvas[row(y)][x] = THEORY_MARK
    for r in results:  # min..max as an error bar, then the median's mark
        x = columns[index[dict(r.values)[axis.field]]]
        if math.isfinite(r.gain.low) and math.isfinite(r.gain.high):
            for y_row in range(row(r.gain.high), row(r.gain.low) + 1):
                if canvas[y_row][x] == " ":
                    canvas[y_row][x] = BAR_MARK
    for r in results:
        x = columns[index[dict(r.values)[axis.field]]]
        if math.isfinite(r.gain.median):
            canvas[row(r.gain.median)][x] = MARKS[r.variant]
    ticks = {0: hi, CHART_HEIGHT // 2: (hi + lo) / 2, CHART_HEIGHT - 1: lo}
    lines = [
        f"{(signed(ticks[i], 1) if i in ticks else ''):>{label_width}} |" + "".join(cells)
        for i, cells in enumerate(canvas)
    ]
    lines.append(" " * label_width + " +" + "-" * field)
    lines.append(" " * (label_width + 2) + _x_labels(axis, columns, field))
    scale = "log scale" if axis.geometric else "names" if not axis.numeric else "linear scale"
    legend = [f"{MARKS[v]} {v.label}" for v in variants]
    if any(r.theory is not None for r in results):
        legend.append(f"{THEORY_MARK} theory")
    legend += [f"{BAR_MARK} min..max over seeds", f"across: {flag_name(axis.field)} ({scale})"]
    lines += packed(legend, " " * (label_width + 2), label_width + 2 + field)
    return [line.rstrip() for line in lines]


def _x_labels(axis: Axis, columns: Sequence[int], field: int) -> str:
    """The values under their columns, each kept whole; one that would collide is left out."""
    cells = [" "] * field
    free_from = 0
    for value, at in zip(axis.values, columns, strict=True):
        text = value_text(value)[:field]
        start = min(max(at - len(text) // 2, 0), field - len(text))  # within the plot's width
        if start < free_from:
            continue
        cells[start : start + len(text)] = text
        free_from = start + len(text) + 1
    return "".join(cells).rstrip()


# ---- the figure ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curve:
    """One line of the figure: a variant (and the values of the other varied flags)."""

    label: str
    median: list[float]  # one per value of the first varied flag
    low: list[float]
    high: list[float]
    theory: list[float] | None  # None unless every point has a prediction


def curves(results: Sequence[PointResult]) -> list[Curve]:
    """Median, min, max and theory of the gain along the first varied flag, per variant and
    per combination of the other flags' values: what ``--plot`` draws."""
    groups: dict[tuple[Skip, Values], list[PointResult]] = {}
    for r in results:
        groups.setdefault((r.variant, r.values[1:]), []).append(r)
    drawn = []
    for (variant, others), members in groups.items():
        label = f"{variant.label} {values_text(others)}".strip()
        predicted = [r.theory for r in members]
        drawn.append(
            Curve(
                label,
                [r.gain.median for r in members],
                [r.gain.low for r in members],
                [r.gain.high for r in members],
                [p for p in predicted if p is not None] if None not in predicted else None,
            )
        )
    return drawn


# ---- the reading ------------------------------------------------------------------------------


def reading(axes: Sequence[Axis], results: Sequence[PointResult], base: NetworkSpec) -> list[str]:
    """One line per chart: how each variant's median gain changes along the first flag."""
    first = axes[0]
    groups: dict[Values, list[PointResult]] = {}
    for r in results:
        groups.setdefault(r.values[1:], []).append(r)
    lines = []
    for others, members in groups.items():
        clauses = []
        for variant in dict.fromkeys(r.variant for r in members):
            mine = [r for r in members if r.variant is variant]
            clauses.append(_clause(first, mine, variant, dict(others), base))
        prefix = f"{values_text(others)}: " if others else ""
        lines.append(prefix + "; ".join(clauses))
    return lines


def _verb(slope: float) -> str:
    return "loses" if slope < 0 else "gains"


def _clause(
    axis: Axis, mine: Sequence[PointResult], variant: Skip, others: dict[str, Value],
    base: NetworkSpec,
) -> str:  # fmt: skip
    measured = [r.gain.median for r in mine]
    predicted = [r.theory for r in mine]
    has_theory = all(p is not None for p in predicted)
    if axis.field == "depth" and len(mine) > 1:  # one depth has no slope: its gain, below
        xs = [float(dict(r.values)["depth"]) for r in mine]
        per = slope(xs, measured)
        theory_per = (
            slope(xs, [float(p) for p in predicted if p is not None]) if has_theory else None
        )
        if per is None:
            return f"{variant.label}: no finite slope"
        unit, scale = "layer", 1.0
        if variant is not Skip.NONE:
            unit, scale = "block", float(others.get("block_size", base.block_size))
        verb = _verb(per)
        text = f"{variant.label} {verb} {abs(per * scale):.2f} decades per {unit}"
        if theory_per is not None:  # the verb again where the theory goes the other way
            theory = "theory" if _verb(theory_per) == verb else f"theory {_verb(theory_per)}"
            text += f" ({theory} {abs(theory_per * scale):.2f})"
        return text
    first, last = (value_text(r.values[0][1]) for r in (mine[0], mine[-1]))
    text = f"{variant.label}: gain {decades(measured[0])} at {flag_name(axis.field)} {first}"
    if len(mine) > 1:
        text += f" → {decades(measured[-1])} at {last}"
    if has_theory:
        ends = [decades(p) for p in (predicted[0], predicted[-1])[: len(mine)]]
        text += f" (theory {' → '.join(ends)})"
    return text


# ---- the header -------------------------------------------------------------------------------


def header_line(
    axes: Sequence[Axis], variants: Sequence[Skip], seeds: int, base: NetworkSpec
) -> str:
    varied = {a.field for a in axes}
    grid = " × ".join(f"{flag_name(a.field)} {_values_range(a)}" for a in axes)
    fixed = {k: v for k, v in base.to_dict().items() if k not in varied | {"skip", "seed"}}
    shown = " · ".join(f"{flag_name(k)} {v}" for k, v in fixed.items() if v is not None
                       and k in ("depth", "width", "batch", "block_size", "activation", "init",
                                 "weight_var", "norm", "loss", "dtype"))  # fmt: skip
    runs = ", ".join(v.label for v in variants)
    seed_text = f"seed {base.seed}" if seeds == 1 else f"seeds {base.seed}-{base.seed + seeds - 1}"
    return f"gradflow sweep · {grid} · {runs} · {seed_text} · {shown}"


def _values_range(axis: Axis) -> str:
    texts = [value_text(v) for v in axis.values]
    return ",".join(texts) if len(texts) <= 6 else f"{texts[0]}…{texts[-1]} ({len(texts)} values)"


# ---- files ------------------------------------------------------------------------------------


def config_record(
    base: NetworkSpec,
    axes: Sequence[Axis],
    variants: Sequence[Skip],
    seeds: int,
    thresholds: Thresholds,
    theory: bool,
) -> dict[str, Any]:
    """The sweep's flags: the network flags not varied, the grid, the variants, the seeds."""
    varied = {a.field for a in axes}
    config = {k: v for k, v in base.to_dict().items() if k not in varied and k != "skip"}
    config["vary"] = [
        {"flag": a.field, "values": list(a.values), "geometric": a.geometric} for a in axes
    ]
    config["variants"] = [str(v) for v in variants]
    config["seeds"] = seeds
    config["theory"] = theory
    for name in (name for pair in PAIRS for name in pair):
        config[name] = getattr(thresholds, name)
    return config


def spread_status(log10: float) -> str:
    """What a null log10 in a point record stands for: zero (−inf: the ratio is exactly 0),
    inf, or nan (no seed gave a number); ok where it is a number."""
    if math.isfinite(log10):
        return str(Status.OK)
    if math.isnan(log10):
        return str(Status.NAN)
    return str(Status.ZERO if log10 < 0 else Status.INF)


def point_record(r: PointResult) -> dict[str, Any]:
    def pair(choose: str) -> dict[str, float | str | None]:
        ratio, gain = getattr(r.weight_ratio, choose), getattr(r.gain, choose)
        return {
            "log10_weight_ratio": json_number(ratio),
            "weight_ratio_status": spread_status(ratio),
            "log10_gain": json_number(gain),
            "gain_status": spread_status(gain),
        }

    theory = None
    if r.theory is not None:
        theory = {"log10_gain": json_number(r.theory), "measured_minus_theory":
                  None if r.residual is None else json_number(r.residual)}  # fmt: skip
    return {
        "values": dict(r.values),
        "variant": str(r.variant),
        "median": pair("median"),
        "min": pair("low"),
        "max": pair("high"),
        "theory": theory,
        "verdicts": {str(v): n for v, n in r.verdicts.items()},
    }


def to_json(
    config: dict[str, Any], results: Sequence[PointResult], records: Sequence[dict[str, Any]]
) -> str:
    document = {
        "schema_version": SCHEMA_VERSION,
        "gradflow_version": __version__,
        "command": "sweep",
        "config": config,
        "points": [point_record(r) for r in results],
        "runs": list(records),
    }
    return pretty_json(document) + "\n"


def to_csv(axes: Sequence[Axis], results: Sequence[PointResult]) -> str:
    """One row per grid point and variant; empty cells where JSON has null."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    quantities = ("log10_weight_ratio", "log10_gain", "weight_ratio_status", "gain_status")
    writer.writerow(
        [*(a.field for a in axes), "variant",
         *(f"{stat}_{q}" for q in quantities for stat in ("median", "min", "max")),
         "theory_log10_gain", *(str(v) for v in Verdict)]
    )  # fmt: skip
    for r in results:
        record = point_record(r)
        stats = [record[stat][q] for q in quantities for stat in ("median", "min", "max")]
        theory = record["theory"]["log10_gain"] if record["theory"] else None
        cells = [*dict(r.values).values(), str(r.variant), *stats, theory, *r.verdicts.values()]
        writer.writerow(["" if c is None else c for c in cells])
    return buffer.getvalue()


def to_markdown(
    header: str, grid: Grid, drawn: Sequence[Chart], read: Sequence[str], width: int
) -> str:
    lines = [f"### {header}", "", *markdown_table(grid.fit(width)), ""]
    for chart in drawn:
        lines += [f"**{chart.title}**", "", "```text", *chart.lines, "```", ""]
    lines += [*(f"**{line}**" for line in read), ""]
    return "\n".join(lines)
