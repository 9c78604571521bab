"""``gradflow train`` shown: the loss curves, two heatmaps over the steps, a summary table, and
the same data as JSON, CSV and markdown.

    loss chart   every variant's minibatch loss at each record on one ASCII line chart, log y
    heatmaps     log10 ‖∂L/∂W‖ and log10 of the update ratio ‖ΔW‖/‖W‖, layers (rows, bucketed
                 like the tables) against recorded steps (columns, bucketed), one panel per
                 variant, one shade scale for all panels with its legend; the update ratio's
                 legend marks the shade holding Karpathy's ~1e-3 rule of thumb
    summary      initial and final loss on all samples, the best constant output's loss, the
                 step the loss first halved, the median update ratio of the first and last
                 layer, and the verdict

Plain text lines and grids only; the CLI prints them.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradflow import __version__
from gradflow.analysis.train import RULE_OF_THUMB, TrainRun, ratio_text
from gradflow.analysis.training import Training, TrainVerdict
from gradflow.engine.magnitudes import Magnitudes
from gradflow.engine.spec import NetworkSpec
from gradflow.render import formats
from gradflow.render.grid import DASH, Cell, Column, Grid, Tone, packed
from gradflow.render.view import groups, number_text, span_name

SCHEMA_VERSION = 1
MARKERS = "ox+*#%@&"  # one per variant on the loss chart
SHADES = ".:-=+*#%@"  # low to high, one scale for every panel of a heatmap
CHART_HEIGHT = 12
MAX_COLUMNS = 60  # heatmap columns (bucketed steps) at most
LABEL = 9  # the chart's y labels: "1.2e+02 |"

TONES = {
    TrainVerdict.LEARNS: Tone.GOOD,
    TrainVerdict.FROZEN: Tone.BAD,
    TrainVerdict.NO_PROGRESS: Tone.BAD,
    TrainVerdict.NONFINITE: Tone.BROKEN,
}


@dataclass(frozen=True)
class Heatmap:
    """What a heatmap shows: a per-layer magnitude of each record."""

    title: str
    field: str  # "grad_weight" or "update_ratio"
    mark: float | None = None  # a log10 to point out in the legend


HEATMAPS = (
    Heatmap("log10 ‖∂L/∂W‖ per layer over the steps", "grad_weight"),
    Heatmap(
        "log10 update ratio ‖ΔW‖/‖W‖ per layer over the steps",
        "update_ratio",
        math.log10(RULE_OF_THUMB),
    ),
)


# ---- the loss chart ---------------------------------------------------------------------------


def loss_chart(runs: Sequence[TrainRun], width: int = 100) -> list[str]:
    """Every run's recorded minibatch losses against the step, on one log-scale chart."""
    series = [
        [(s.step, math.log10(s.loss)) for s in run.steps if math.isfinite(s.loss) and s.loss > 0]
        for run in runs
    ]
    points = [p for line in series for p in line]
    if not points:
        return ["(no finite loss to draw)"]
    cols = max(10, min(width - LABEL - 2, 100))
    last_step = max(1, max(p[0] for p in points))
    low, high = min(p[1] for p in points), max(p[1] for p in points)
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    canvas = [[" "] * cols for _ in range(CHART_HEIGHT)]

    def row(log10: float) -> int:
        return CHART_HEIGHT - 1 - round((log10 - low) / (high - low) * (CHART_HEIGHT - 1))

    placed = [
        [(round(step / last_step * (cols - 1)), row(value)) for step, value in line]
        for line in series
    ]
    markers = MARKERS * len(runs)
    for marker, cells in zip(markers, placed, strict=False):  # steep stretches: gaps filled
        for (c0, r0), (c, r) in itertools.pairwise(cells):
            if c0 != c:
                for between in range(min(r0, r) + 1, max(r0, r)):
                    canvas[between][c] = marker
    for marker, cells in zip(markers, placed, strict=False):  # then every point, over fills
        for c, r in cells:
            canvas[r][c] = marker
    # each label is the value its own row stands for
    labels = {
        r: f"{10 ** (low + (CHART_HEIGHT - 1 - r) / (CHART_HEIGHT - 1) * (high - low)):.2g}"
        for r in (0, CHART_HEIGHT // 2, CHART_HEIGHT - 1)
    }
    label_w = max(LABEL - 2, *(len(text) for text in labels.values()))
    lines = [
        f"{labels.get(r, ''):>{label_w}} |" + "".join(cells).rstrip()
        for r, cells in enumerate(canvas)
    ]
    lines.append(" " * (label_w + 1) + "+" + "-" * cols)
    lines.append(" " * (label_w + 2) + f"step 0{last_step:>{cols - 6}}")
    legend = "  ".join(f"{m} {run.label}" for m, run in zip(MARKERS, runs, strict=False))
    lines.append(" " * (label_w + 2) + legend)
    return lines


# ---- the heatmaps -----------------------------------------------------------------------------


def _log10(run: TrainRun, field: str) -> np.ndarray:
    """(records, layers) exact log10 of ``field`` at each record."""
    if not run.steps:
        return np.empty((0, len(run.names)))
    magnitudes: list[Magnitudes] = [getattr(s, field) for s in run.steps]
    return np.array([m.log10 for m in magnitudes])


def _bucket_mean(values: np.ndarray) -> float:
    """The mean of a bucket's finite log10s; -inf if all are exact zeros, nan if any is nan."""
    if np.isnan(values).any() or np.isposinf(values).any():
        return math.nan
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else -math.inf


def _blocks_label(blocks: range) -> str:
    first, last = blocks[0] + 1, blocks[-1] + 1
    return f"block{first}" if first == last else f"block{first}{DASH}{last}"


def layer_rows(run: TrainRun, max_rows: int | None) -> list[tuple[str, range]]:
    """(label, layers) per heatmap row: runs of layers, whole blocks in a residual network when
    grouped, and the xent head on a row of its own."""
    spec, names = run.spec, run.names
    if spec.residual and max_rows is not None and spec.depth > max_rows:
        k = spec.block_size
        rows = [
            (_blocks_label(g), range(g[0] * k, (g[-1] + 1) * k))
            for g in groups(spec.blocks, max_rows)
        ]
    else:
        rows = [(span_name(names[g[0]], names[g[-1]]), g) for g in groups(spec.depth, max_rows)]
    if len(names) > spec.depth:
        rows.append(("head", range(spec.depth, spec.depth + 1)))
    return rows


def heatmap(
    runs: Sequence[TrainRun], which: Heatmap, *, max_rows: int | None, width: int = 100
) -> list[str]:
    """One panel per run: layers down, recorded steps across, shaded by log10 ``which``."""
    tables = [_log10(run, which.field) for run in runs]
    finite = np.concatenate([t[np.isfinite(t)] for t in tables]) if tables else np.empty(0)
    if finite.size == 0:
        return [f"(no finite {which.field} to draw)"]
    low, high = float(finite.min()), float(finite.max())
    span = max(high - low, 1e-12)

    def shade(value: float) -> str:
        if math.isnan(value):
            return "!"
        if value == -math.inf:
            return "0"
        level = int((value - low) / span * len(SHADES))
        return SHADES[min(max(level, 0), len(SHADES) - 1)]

    lines: list[str] = []
    for run, table in zip(runs, tables, strict=True):
        labels, layer_groups = zip(*layer_rows(run, max_rows), strict=True)
        label_w = max(len(label) for label in labels)
        cols = max(1, min(len(table), MAX_COLUMNS, width - label_w - 3))
        step_groups = groups(len(table), cols) if len(table) else []
        lines.append(f"{run.label}:")
        for label, members in zip(labels, layer_groups, strict=True):
            cells = "".join(
                shade(_bucket_mean(table[s.start : s.stop, members.start : members.stop]))
                for s in step_groups
            )
            lines.append(f"{label:>{label_w}} |{cells}")
        if run.steps:
            first, last = run.steps[0].step, run.steps[-1].step
            axis = f"step {first}"
            room = max(len(str(last)) + 1, len(step_groups) - len(axis))  # never "step 05"
            lines.append(" " * (label_w + 2) + axis + f"{last:>{room}}")
    lines += _legend(low, high, which.mark, width)
    return lines


def _legend(low: float, high: float, mark: float | None, width: int) -> list[str]:
    """Each shade with the log10 range it starts at, the shade holding ``mark`` pointed out;
    wrapped to ``width``."""
    step = (high - low) / len(SHADES)
    # enough decimals that the shades' starts differ (a range of 1e-5 decades read 0.0 ... 0.0)
    places = min(12, max(1, -math.floor(math.log10(step)))) if step > 0 else 1
    parts = []
    for k, glyph in enumerate(SHADES):
        start = low + k * step
        text = f"{glyph} {start:.{places}f}"
        top = k == len(SHADES) - 1
        if mark is not None and start <= mark and (mark < start + step or (top and mark <= high)):
            text += " (~1e-3: rule of thumb)"
        parts.append(text)
    parts.append(f"(to {high:.{places}f})")
    parts += ["0: exactly zero", "!: nan or inf"]
    if mark is not None and not low <= mark <= high:
        parts.append("the ~1e-3 rule of thumb is off this scale")
    return packed(["log10 from: " + parts[0], *parts[1:]], "", width)


# ---- the summary ------------------------------------------------------------------------------


def summary_grid(runs: Sequence[TrainRun]) -> Grid:
    """One row per variant: the losses, when it halved, the update ratios, the verdict."""

    def text_column(
        header: str, texts: list[str], numeric: bool = True, key: bool = False
    ) -> Column:
        return Column(header, [Cell(t) for t in texts], numeric=numeric, key=key)

    s = [run.summary for run in runs]
    last_names = [run.names[len(run.names) - 1 - (run.names[-1] == "head")] for run in runs]
    columns = [
        text_column("variant", [run.label for run in runs], numeric=False, key=True),
        text_column("initial", [number_text(x.initial_loss, 4) for x in s]),
        text_column("final", [number_text(x.final_loss, 4) for x in s]),
        text_column("halved", [DASH if x.halved_at is None else str(x.halved_at) for x in s]),
        text_column("ratio 1st", [ratio_text(x.log10_ratio_first) for x in s]),
        text_column("ratio last", [ratio_text(x.log10_ratio_last) for x in s]),
        Column("verdict", [Cell(str(x.verdict), TONES[x.verdict]) for x in s], numeric=False),
    ]
    last = _last_layers([run.label for run in runs], last_names)
    notes = (
        "initial, final: loss on all samples before the first and after the last step; "
        f"a constant output reaches {number_text(s[0].constant_loss, 4)}",
        f"halved: the first evaluated step with at most half the initial loss ({DASH}: never)",
        f"ratio 1st, last: median ‖ΔW‖/‖W‖ of layer 1 and of the last layer ({last}) "
        f"over the records; ~{RULE_OF_THUMB:g} trains well",
    )
    return Grid("Summary", columns, notes=notes)


def _last_layers(labels: Sequence[str], names: Sequence[str]) -> str:
    """Each variant's last dense layer, once a name: "fc10", or "block5.fc2 for pre and post;
    fc10 for plain" where the wirings name it differently."""
    by_name: dict[str, list[str]] = {}
    for label, name in zip(labels, names, strict=True):
        by_name.setdefault(name, []).append(label)
    if len(by_name) == 1:
        return names[0]
    return "; ".join(f"{name} for {' and '.join(owners)}" for name, owners in by_name.items())


def summary_lines(runs: Sequence[TrainRun]) -> list[str]:
    """One line per variant: its verdict and why."""
    return [f"{run.label}: {run.summary.reason}" for run in runs]


def header_line(spec: NetworkSpec, runs: Sequence[TrainRun], training: Training) -> str:
    variants = ", ".join(run.label for run in runs)
    return (
        f"gradflow train: depth {spec.depth}, width {spec.width}, {spec.activation}, "
        f"{spec.loss}, norm {spec.norm}; {variants}; {training.optimizer} lr "
        f"{training.learning_rate:g}, {training.steps} steps of batch {spec.batch} from "
        f"{training.samples} samples"
    )


# ---- JSON and CSV -----------------------------------------------------------------------------


def config_record(
    spec: NetworkSpec, runs: Sequence[TrainRun], training: Training
) -> dict[str, Any]:
    config = spec.to_dict()
    del config["skip"]
    config["variants"] = [str(run.spec.skip) for run in runs]
    config.update(
        optimizer=str(training.optimizer),
        lr=training.learning_rate,
        steps=training.steps,
        samples=training.samples,
        every=training.record_every,
        eval_every=training.evaluate_every,
    )
    return config


def layer_records(run: TrainRun, k: int) -> list[dict[str, Any]]:
    record = run.steps[k]
    columns = zip(
        formats.magnitude_records("grad_weight", record.grad_weight),
        formats.magnitude_records("update_ratio", record.update_ratio),
        strict=True,
    )
    out = []
    for i, (grad, ratio) in enumerate(columns):
        out.append({"index": i + 1, "name": run.names[i], **grad, **ratio})
    return out


def summary_record(run: TrainRun) -> dict[str, Any]:
    s = run.summary
    stop = s.stopped
    return {
        "verdict": str(s.verdict),
        "reason": s.reason,
        "initial_loss": formats.json_number(s.initial_loss),
        "final_loss": formats.json_number(s.final_loss),
        "constant_loss": formats.json_number(s.constant_loss),
        "halved_at": s.halved_at,
        # with a status each: an exact 0 (no update at all) is -inf, which JSON holds as null
        **formats.log10_fields("update_ratio_first", s.log10_ratio_first),
        **formats.log10_fields("update_ratio_last", s.log10_ratio_last),
        "stopped": None
        if stop is None
        else {"step": stop.step, "layer": stop.layer, "stage": stop.stage},
        "warnings": list(s.warnings),
    }


def to_json(spec: NetworkSpec, runs: Sequence[TrainRun], training: Training) -> str:
    """The whole training run as strict JSON (schema in docs/reference.md)."""
    document = {
        "schema_version": SCHEMA_VERSION,
        "gradflow_version": __version__,
        "command": "train",
        "config": config_record(spec, runs, training),
        "runs": [
            {
                "label": run.label,
                "spec": run.spec.to_dict(),
                "summary": summary_record(run),
                "eval": [{"step": e.step, "loss": formats.json_number(e.loss)} for e in run.evals],
                "steps": [
                    {
                        "step": s.step,
                        "loss": formats.json_number(s.loss),
                        "layers": layer_records(run, k),
                    }
                    for k, s in enumerate(run.steps)
                ],
            }
            for run in runs
        ],
    }
    return formats.pretty_json(document) + "\n"


def to_csv(runs: Sequence[TrainRun]) -> str:
    """One row per recorded step per layer per variant; eval_loss where the loss on all samples
    was taken before that step (a row without a layer for an evaluation without a record)."""
    buffer = io.StringIO()
    fields = ["label", "step", "loss", "eval_loss", "index", "name"]
    for name in ("grad_weight", "update_ratio"):
        fields += [name, f"log10_{name}", f"{name}_status"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for run in runs:
        evals = {e.step: e.loss for e in run.evals}
        recorded = {s.step: k for k, s in enumerate(run.steps)}
        for step in sorted(set(evals) | set(recorded)):
            base = {"label": run.label, "step": step, "eval_loss": evals.get(step)}
            if step not in recorded:
                writer.writerow({k: _cell(v) for k, v in base.items()})
                continue
            k = recorded[step]
            base["loss"] = run.steps[k].loss
            for layer in layer_records(run, k):
                writer.writerow({key: _cell(v) for key, v in {**base, **layer}.items()})
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return str(value)


# ---- the page ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """A titled block of preformatted lines."""

    title: str
    lines: list[str]


Section = Figure | Grid


def sections(runs: Sequence[TrainRun], *, max_rows: int | None, width: int) -> list[Section]:
    """The page's parts, top to bottom: loss chart, the two heatmaps, the summary."""
    parts: list[Section] = [
        Figure("Loss (minibatch, before each recorded step; log scale)", loss_chart(runs, width))
    ]
    parts += [Figure(h.title, heatmap(runs, h, max_rows=max_rows, width=width)) for h in HEATMAPS]
    parts.append(summary_grid(runs))
    return parts


def to_markdown(
    spec: NetworkSpec,
    runs: Sequence[TrainRun],
    training: Training,
    *,
    max_rows: int | None,
    width: int,
) -> str:
    lines = [f"### {header_line(spec, runs, training)}", ""]
    for part in sections(runs, max_rows=max_rows, width=width):
        if isinstance(part, Figure):
            lines += [f"**{part.title}**", "", "```text", *part.lines, "```", ""]
        else:
            lines += [*formats.markdown_table(part), ""]
    lines += [f"- {line}" for line in summary_lines(runs)]
    return "\n".join(lines) + "\n"
