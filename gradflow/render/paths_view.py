"""A path-length decomposition shown: a table (Grid), an ASCII histogram beside the binomial path
counts (Veit et al.'s figure in a terminal), a summary line, and JSON, CSV and markdown text.

Plain data and strings only; the CLI prints. Lengths are grouped into at most ``max_rows`` rows
where asked (the histogram always caps them); a group shows the root of its lengths' summed
energy, sqrt(Σ‖G_k‖²), their summed path counts and shares, and says so in a note.
"""

from __future__ import annotations

import csv
import io
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradflow import __version__
from gradflow.analysis.paths import Decomposition, SampledPaths
from gradflow.engine.magnitudes import Status, from_log10
from gradflow.render import chart, view
from gradflow.render.formats import json_number, magnitude_records, markdown_table, pretty_json
from gradflow.render.grid import DASH, Cell, Column, Grid

SCHEMA_VERSION = 1  # of the paths JSON document
HISTOGRAM_ROWS = 40  # without --max-rows, the histogram groups lengths into at most this many
EXACT_BELOW = 10**15  # path counts are written out in full below this, as 1.2e+30 above
JSON_EXACT = 2**53  # JSON path counts above this are null (a double cannot hold them exactly)


# ---- rows: single lengths or groups of them ---------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One shown row: a length, a run of lengths, or the remainder (every length above K)."""

    label: str  # "7", "5-9", ">10"
    low: int
    high: int
    paths: int  # exact
    log10_grad: float  # ‖G_k‖, or the root of a group's summed energy
    share: float
    cumulative: float
    sample_log10: tuple[float, float, float] | None  # mean, min, max of single paths


def rows(d: Decomposition, max_rows: int | None = None) -> list[Row]:
    """Lengths 0..K in at most ``max_rows`` rows (None: one each), then the remainder."""
    log10_grad = d.grad.log10
    samples = _sample_log10(d.samples)
    out = []
    for members in view.groups(d.max_length + 1, max_rows):
        lo, hi = members.start, members.stop - 1
        sampled = None
        if samples is not None:
            means, mins, maxs = (s[lo : hi + 1] for s in samples)
            sampled = (_log10_mean(means), float(mins.min()), float(maxs.max()))
        out.append(
            Row(
                label=str(lo) if lo == hi else f"{lo}{DASH}{hi}",
                low=lo,
                high=hi,
                paths=sum(d.paths[lo : hi + 1]),
                log10_grad=_root_energy(log10_grad[lo : hi + 1]),
                # a group from length 0 holds its cumulative share: one value, one rendering
                share=float(d.cumulative[hi] if lo == 0 else d.share[lo : hi + 1].sum()),
                cumulative=float(d.cumulative[hi]),
                sample_log10=sampled,
            )
        )
    r = d.remainder
    if r is not None:
        out.append(
            Row(f">{d.max_length}", r.low, r.high, r.paths, float(r.grad.log10[0]), r.share,
                d.remainder_cumulative, None)
        )  # fmt: skip
    return out


def _sample_log10(samples: SampledPaths | None) -> tuple[np.ndarray, ...] | None:
    if samples is None:
        return None
    return samples.mean.log10, samples.min.log10, samples.max.log10


def _root_energy(log10s: np.ndarray) -> float:
    """log10 sqrt(Σ 10^(2x)) of exact log10 norms: -inf when all are zero, nan with a nan."""
    if len(log10s) == 1 or np.isnan(log10s).any():
        return float(log10s[0]) if len(log10s) == 1 else math.nan
    top = float(log10s.max())
    if not math.isfinite(top):
        return top
    return top + 0.5 * math.log10(float(np.power(10.0, 2 * (log10s - top)).sum()))


def _log10_mean(log10s: np.ndarray) -> float:
    """log10 of the arithmetic mean of 10^x (every length has the same number of samples)."""
    if np.isnan(log10s).any():
        return math.nan
    top = float(log10s.max())
    if not math.isfinite(top):
        return top
    return top + math.log10(float(np.power(10.0, log10s - top).mean()))


def _status(log10: float) -> Status:
    return from_log10(np.array([log10])).status()[0]


def magnitude_cell(log10: float) -> Cell:
    status = _status(log10)
    return Cell(view.magnitude_text(log10, status), view.STATUS_TONE[status])


def paths_text(paths: int) -> str:
    """A path count: in full below 1e15, ``1.2e+30`` above (from its exact log10)."""
    if paths < EXACT_BELOW:
        return str(paths)
    return view.magnitude_text(math.log10(paths), Status.OK)


def _share_text(share: float, log10_grad: float = math.nan) -> str:
    """A share as a percentage; a length whose ‖G_k‖ is not 0 reads ``<0.01%`` also where its
    share is below float64's range (0.0: ‖G_k‖² 10^-350 of the energy)."""
    if math.isnan(share):
        return DASH
    if share == 0.0 and _status(log10_grad) is not Status.ZERO and not math.isnan(log10_grad):
        return "<0.01%"
    return view.percent_text(min(share, 1.0))


# ---- the table ---------------------------------------------------------------------------------


def paths_grid(d: Decomposition, max_rows: int | None = None) -> Grid:
    """One row per length k (or group of lengths): k, the number of paths C(B, k), ‖G_k‖, its
    share of the energy and the cumulative share; with samples, single paths' mean, min, max."""
    shown = rows(d, max_rows)
    columns = [
        Column("k", [Cell(r.label) for r in shown], key=True),
        Column("paths", [Cell(paths_text(r.paths)) for r in shown],
               note=f"paths: how many of the 2^{d.blocks} paths have this length, C(B, k)"),
        Column("‖G_k‖", [magnitude_cell(r.log10_grad) for r in shown],
               note="G_k: the part of ∂L/∂x that comes along paths through exactly k branches"),
        Column("share", [Cell(_share_text(r.share, r.log10_grad)) for r in shown],
               note="share: ‖G_k‖² over the energy Σ_k ‖G_k‖²"),
        Column("cumulative", [Cell(_share_text(r.cumulative)) for r in shown], drop=2),
    ]  # fmt: skip
    if d.samples is not None:
        note = (
            f"path mean, min, max: ‖∂L/∂x‖ along one path alone, {d.samples.count} paths drawn "
            "at random per length"
        )
        for i, name in enumerate(("path mean", "path min", "path max")):
            cells = [
                Cell(DASH) if r.sample_log10 is None else magnitude_cell(r.sample_log10[i])
                for r in shown
            ]
            columns.append(Column(name, cells, drop=1, note=note))
    notes = []
    if any(r.low != r.high and r.label[0] != ">" for r in shown):
        notes.append(GROUP_NOTE)
    if d.remainder is not None:
        notes.append(f">{d.max_length}: every path longer than {d.max_length}, as one sum")
    title = f"{d.label}: ∂L/∂x by path length through {d.blocks} residual blocks"
    return Grid(title, columns, tuple(notes), zero_note="0: exactly zero")


GROUP_NOTE = "rows group lengths: ‖G‖ is the root of their summed energy; paths, shares: sums"


# ---- the histogram -----------------------------------------------------------------------------


def drawn_grads(d: Decomposition, max_rows: int | None = HISTOGRAM_ROWS) -> list[float]:
    """The log10 ‖G_k‖ that ``histogram`` draws as bars: what its scale must cover."""
    return [r.log10_grad for r in rows(d, max_rows) if _status(r.log10_grad) in ASCII_FILL]


def histogram(
    d: Decomposition,
    *,
    width: int = 100,
    max_rows: int | None = HISTOGRAM_ROWS,
    together: Sequence[Decomposition] = (),
) -> list[str]:
    """log10 ‖G_k‖ per length as horizontal bars, and beside it log10 of the number of paths
    C(B, k), each on a log scale of its own; pure ASCII, at most ``width`` (≤ 160) columns.
    ``together``: the runs shown on the same page, whose ‖G_k‖ share one scale with d's (so
    that equal bars mean equal norms across the wirings)."""
    width = min(width, chart.MAX_WIDTH)
    shown = rows(d, max_rows)
    grads = [r.log10_grad for r in shown]
    counts = [math.log10(r.paths) for r in shown]
    grad_texts = [magnitude_cell(x).text for x in grads]
    count_texts = [paths_text(r.paths) for r in shown]
    label_w = max(len("k"), *(len(r.label) for r in shown))
    grad_w, count_w = max(len(t) for t in grad_texts), max(len(t) for t in count_texts)
    room = width - label_w - 1 - (grad_w + 2) - 2 - (count_w + 2)
    side_by_side = room // 2 - 1 >= chart.MIN_FIELD
    if side_by_side:
        grad_field = count_field = room // 2 - 1
    else:  # too narrow for both at MIN_FIELD: the count panel goes below, each full width
        grad_field = max(chart.MIN_FIELD, width - label_w - 1 - (grad_w + 2))
        count_field = max(chart.MIN_FIELD, width - label_w - 1 - (count_w + 2))
    covered = [x for run in (d, *together) for x in drawn_grads(run, max_rows)]
    grad_scale = chart.Scale.covering(covered, grad_field)
    count_scale = chart.Scale.covering(counts, count_field)

    def panel(log10: float, text: str, scale: chart.Scale | None, text_w: int, field: int) -> str:
        status = _status(log10)
        if status in ASCII_FILL and scale is not None:
            bar = ASCII_FILL[status] * min(field, scale.cells(log10))
        else:
            bar = chart.ASCII.marks.get(status, "")
        return "|" + bar.ljust(field) + " " + text.rjust(text_w)

    indent = " " * (label_w + 1)
    grad_head = "|G_k|".ljust(grad_field + 2 + grad_w)
    count_head = f"paths C({d.blocks},k)"
    grad_rows = [
        panel(x, t, grad_scale, grad_w, grad_field) for x, t in zip(grads, grad_texts, strict=True)
    ]
    count_rows = [
        panel(c, t, count_scale, count_w, count_field)
        for c, t in zip(counts, count_texts, strict=True)
    ]
    grad_axis = _axis(grad_scale, grad_field, grad_w)
    count_axis = _axis(count_scale, count_field, count_w)
    labels = [f"{r.label:>{label_w}} " for r in shown]
    if side_by_side:
        lines = [f"{'k':>{label_w}} " + grad_head + "  " + count_head]
        lines += [k + g + "  " + c for k, g, c in zip(labels, grad_rows, count_rows, strict=True)]
        lines += [indent + grad_axis[i] + "  " + count_axis[i] for i in range(2)]
    else:
        lines = [f"{'k':>{label_w}} " + grad_head]
        lines += [k + g for k, g in zip(labels, grad_rows, strict=True)]
        lines += [indent + grad_axis[i] for i in range(2)]
        lines += [f"{'k':>{label_w}} " + count_head]
        lines += [k + c for k, c in zip(labels, count_rows, strict=True)]
        lines += [indent + count_axis[i] for i in range(2)]
    notes = ["bars: log10 scales, one for |G_k| and one for the number of paths"]
    if len(together) > 1:
        notes[0] += "; |G_k| on one scale for every wiring shown"
    if any(_status(x) is Status.UNDERFLOW for x in grads):
        notes.append(". below float64's range (length from the exact log10)")
    if any(_status(x) is Status.ZERO for x in grads):
        notes.append("0 exactly zero")
    if any(r.low != r.high and r.label[0] != ">" for r in shown):
        size = max(r.high - r.low + 1 for r in shown if r.label[0] != ">")
        notes.append(
            f"rows group up to {size} lengths (|G|: root of their summed energy; paths: sum)"
        )
    if d.remainder is not None:
        notes.append(f">{d.max_length}: every path longer than {d.max_length}")
    for note in notes:  # wrapped, never cut: a terminal crops what is wider than it
        lines += textwrap.wrap(note, width, initial_indent=indent, subsequent_indent=indent + "  ")
    return [line.rstrip() for line in lines]


ASCII_FILL = chart.ASCII.fill  # OK, underflow, overflow: a bar; zero, nan, inf: a mark


def _axis(scale: chart.Scale | None, field: int, text_w: int) -> tuple[str, str]:
    """The axis under one panel (``+----+----``) and its decade labels."""
    span = field + 2 + text_w
    if scale is None:
        return " " * span, " " * span
    axis = ["+"] + ["-"] * field
    names = [" "] * (field + 1 + text_w)
    label_w = max(len(chart.decade_label(scale.lo)), len(chart.decade_label(scale.hi)))
    free_from = 0
    for decade in scale.ticks(label_w):
        at = scale.position(decade)
        axis[min(at, field)] = "+"
        text = chart.decade_label(decade)
        start = max(at - len(text) // 2, free_from)
        if start + len(text) > len(names):
            continue
        names[start : start + len(text)] = text
        free_from = start + len(text) + 1
    return "".join(axis).ljust(span), "".join(names).ljust(span)


# ---- the summary ---------------------------------------------------------------------------


def summary_line(d: Decomposition) -> str:
    """Where the energy lies, against where the paths are, and the reconstruction check."""
    peak = d.blocks // 2
    counts = f"k = {peak}" if d.blocks % 2 == 0 else f"k = {peak} and {peak + 1}"
    parts = [f"{d.label}: path counts peak at {counts} of {d.blocks}"]
    e = d.effective
    if e is None:
        parts.append("the energy has no effective range (it is zero or not finite)")
    else:
        high = f"{e.high} (into the remainder)" if e.includes_remainder else e.high
        where = (
            f"length {e.low}"
            if e.low == e.high and not e.includes_remainder
            else f"lengths {e.low}{DASH}{high}"
        )
        parts.append(f"90% of the energy lies in {where} ({view.percent_text(e.share)})")
    bound = "" if d.mean_length_exact else "at least "
    mean = "n/a" if math.isnan(d.mean_length) else f"{bound}{d.mean_length:.1f}"
    parts.append(
        f"energy-weighted mean length {mean} (mean of all paths B/2 = {d.mean_path_length:g})"
    )
    check = f"check {view.number_text(d.check)}"
    if d.total.mantissa[0] == 0:
        check = "no check: ∂L/∂x is exactly 0"
    elif not math.isfinite(d.check):
        check = "no check: the pass produced non-finite values"
    if d.log10_cancellation > 1:
        check += f" (the lengths' parts cancel: their root energy is 10^{d.log10_cancellation:.1f}"
        check += " times ‖∂L/∂x‖)"
    parts.append(check)
    return "; ".join(parts)


# ---- JSON, CSV, markdown ---------------------------------------------------------------------


def _count(paths: int) -> dict[str, Any]:
    return {"paths": paths if paths <= JSON_EXACT else None, "log10_paths": math.log10(paths)}


def length_records(d: Decomposition) -> list[dict[str, Any]]:
    """One flat record per length 0..K: what JSON and CSV both hold."""
    records = []
    for k in range(d.max_length + 1):
        record: dict[str, Any] = {"length": k, **_count(d.paths[k])}
        record.update(magnitude_records("grad", d.grad)[k])
        record.update(share=json_number(d.share[k]), cumulative=json_number(d.cumulative[k]))
        if d.samples is not None:
            for name in ("mean", "min", "max"):
                record.update(magnitude_records(f"sample_{name}", getattr(d.samples, name))[k])
        records.append(record)
    return records


def run_record(d: Decomposition) -> dict[str, Any]:
    """A decomposition as JSON-ready values (strict: null where a number is not finite)."""
    r, e = d.remainder, d.effective
    remainder = None
    if r is not None:
        remainder = {"low": r.low, "high": r.high, **_count(r.paths)}
        remainder.update(magnitude_records("grad", r.grad)[0])
        remainder.update(share=json_number(r.share))
    return {
        "label": d.label,
        "spec": d.spec.to_dict(),
        "blocks": d.blocks,
        "max_length": d.max_length,
        "samples": 0 if d.samples is None else d.samples.count,
        "lengths": length_records(d),
        "remainder": remainder,
        **magnitude_records("total", d.total)[0],
        "check": json_number(d.check),
        "log10_cancellation": json_number(d.log10_cancellation),
        "effective": None
        if e is None
        else {
            "low": e.low,
            "high": e.high,
            "share": json_number(e.share),
            "includes_remainder": e.includes_remainder,
        },
        "mean_length": json_number(d.mean_length),
        "mean_length_exact": d.mean_length_exact,
        "mean_path_length": d.mean_path_length,
        "warnings": list(d.warnings),
    }


def to_json(decompositions: Sequence[Decomposition]) -> str:
    """Every run as strict JSON (``allow_nan=False``), keys in a fixed order."""
    document = {
        "schema_version": SCHEMA_VERSION,
        "gradflow_version": __version__,
        "command": "paths",
        "runs": [run_record(d) for d in decompositions],
    }
    return pretty_json(document) + "\n"


def to_csv(decompositions: Sequence[Decomposition]) -> str:
    """One row per length per run (the remainder as length ``>K``); empty cells for null."""
    buffer = io.StringIO()
    writer: csv.DictWriter[str] | None = None
    for d in decompositions:
        records = length_records(d)
        if d.remainder is not None:
            r = d.remainder
            rest: dict[str, Any] = {"length": f">{d.max_length}", **_count(r.paths)}
            rest.update(magnitude_records("grad", r.grad)[0])
            rest.update(
                share=json_number(r.share),
                cumulative=json_number(d.remainder_cumulative),
            )
            records.append({key: rest.get(key) for key in records[0]})
        for record in records:
            row = {"label": d.label, "skip": str(d.spec.skip), "blocks": d.blocks, **record}
            if writer is None:
                writer = csv.DictWriter(buffer, fieldnames=list(row), lineterminator="\n")
                writer.writeheader()
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def header_line(decompositions: Sequence[Decomposition]) -> str:
    """The configuration, so that a pasted page explains itself."""
    spec = decompositions[0].spec
    parts = [
        "gradflow paths",
        f"depth {spec.depth} ({spec.blocks} blocks of {spec.block_size}, "
        f"α={spec.residual_scale:g}, s={spec.skip_scale:g})",
        f"width {spec.width}",
        f"batch {spec.batch}",
        str(spec.activation),
        str(spec.init),
        f"norm {spec.norm}",
        f"loss {spec.loss}",
        str(spec.dtype),
        f"seed {spec.seed}",
    ]
    return " · ".join(parts)


def to_markdown(
    decompositions: Sequence[Decomposition], *, width: int = 100, max_rows: int | None = None
) -> str:
    """Per run: the table, the histogram (as a code block) and the summary line."""
    lines = [f"### {header_line(decompositions)}", ""]
    for d in decompositions:
        grid = paths_grid(d, max_rows).fit(width)
        lines += [*markdown_table(grid), ""]
        drawn = histogram(d, width=width, max_rows=max_rows, together=decompositions)
        lines += ["```text", *drawn, "```", ""]
        lines += [summary_line(d), ""]
    return "\n".join(lines)
