"""Reports as JSON, CSV and markdown text (files are written by the CLI).

JSON is strict: a number that is not a finite float64 becomes null, next to its exact log10 (also
null when there is none: zero, nan, inf) and a status saying which case it is. Same reports, same
bytes: keys keep a fixed order and nothing depends on the time or the machine.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any

import numpy as np

from gradflow import __version__
from gradflow.analysis.results import Report
from gradflow.analysis.verdict import PAIRS
from gradflow.engine.magnitudes import STATUS_ORDER, Magnitudes, Status, from_log10
from gradflow.engine.spec import NetworkSpec
from gradflow.render import chart, grid, view
from gradflow.render.theory_view import predicted_log10

if TYPE_CHECKING:  # the theory loads only with --theory
    from gradflow.analysis.theory import Prediction

SCHEMA_VERSION = 2


def json_number(x: float) -> float | None:
    return x if math.isfinite(x) else None


def magnitude_records(name: str, m: Magnitudes) -> list[dict[str, Any]]:
    """``name``, ``log10_name`` and ``name_status`` for every entry of ``m``."""
    keys = (name, f"log10_{name}", f"{name}_status")
    return [dict(zip(keys, row, strict=True)) for row in zip(*_magnitude_columns(m), strict=True)]


def _magnitude_columns(m: Magnitudes) -> tuple[list[Any], list[Any], list[str]]:
    """The value (null beyond float64's range), its log10 (null where not finite) and the
    status of every entry of ``m``, as columns: built by NumPy, not value by value."""
    codes = m.status_codes()
    in_range = (codes == STATUS_ORDER.index(Status.OK)) | (codes == STATUS_ORDER.index(Status.ZERO))
    return _nulled(m.value, in_range), _finite_or_null(m.log10), _STATUS_TEXTS[codes].tolist()


_STATUS_TEXTS = np.array([s.value for s in STATUS_ORDER], dtype=object)


def _finite_or_null(x: np.ndarray) -> list[Any]:
    """``x`` (N,) as Python floats, None where not finite (JSON has no nan or inf)."""
    return _nulled(x, np.isfinite(x))


def _nulled(x: np.ndarray, keep: np.ndarray) -> list[Any]:
    column = np.asarray(x, dtype=np.float64).astype(object)  # Python floats
    column[~keep] = None
    return list(column.tolist())


class Table:
    """Records held as columns: their keys, and one list of values per key. ``pretty_json``
    writes a table as it writes the list of its records, a column per encoder call. (Not a
    tuple, which the encoder would write as a list of its fields.)"""

    __slots__ = ("columns", "keys")

    def __init__(self, keys: list[str], columns: list[list[Any]]) -> None:
        self.keys, self.columns = keys, columns

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.keys, row, strict=True)) for row in zip(*self.columns, strict=True)]


def layer_records(report: Report) -> list[dict[str, Any]]:
    """One flat record per layer (the xent head last): what JSON and CSV both hold."""
    return layer_table(report).records()


def layer_table(report: Report) -> Table:
    """``layer_records`` as columns."""
    layers = report.layers
    grad_to_weight = from_log10(layers.log10_grad_weight_ratio)
    keys: list[str] = ["index", "name"]
    columns: list[list[Any]] = [list(range(1, len(layers.name) + 1)), list(layers.name)]
    for name, m in (
        ("grad_weight", layers.grad_weight),
        ("grad_bias", layers.grad_bias),
        ("grad_input", layers.grad_input),
        ("grad_to_weight", grad_to_weight),
    ):
        keys += [name, f"log10_{name}", f"{name}_status"]
        columns += _magnitude_columns(m)
    # "zero" at a zero-initialised branch end: its grad_to_weight, ‖∂L/∂W‖/0, is then no ratio
    keys += ["weight_norm", "weight_norm_status"]
    weight_status = Magnitudes.from_values(layers.weight_norm).status()
    columns += [_finite_or_null(layers.weight_norm), [s.value for s in weight_status]]
    for name in ("act_mean", "act_std", "dead_fraction", "saturated_fraction"):
        keys.append(name)
        columns.append(_finite_or_null(getattr(layers, name)))
    keys.append("finite")
    columns.append([bool(f) for f in layers.finite.tolist()])
    return Table(keys, columns)


def block_records(report: Report) -> list[dict[str, Any]]:
    blocks = report.blocks
    columns = zip(
        magnitude_records("grad_add", blocks.grad_add),
        magnitude_records("grad_skip", blocks.grad_skip),
        magnitude_records("grad_branch", blocks.grad_branch),
        magnitude_records("grad_input", blocks.grad_input),
        strict=True,
    )
    records = []
    for i, parts in enumerate(columns):
        record: dict[str, Any] = {
            "index": i + 1,
            "name": blocks.name[i],
            "first_layer": int(blocks.first_layer[i]),
            "last_layer": int(blocks.last_layer[i]),
        }
        for part in parts:
            record.update(part)
        record["cosine"] = json_number(float(blocks.cosine[i]))
        records.append(record)
    return records


def log10_fields(name: str, log10: float) -> dict[str, Any]:
    """``log10_name`` (null unless finite) and ``name_status``: ``zero`` for -inf (an exact zero
    at the top of a ratio), ``inf`` for +inf (at the bottom), ``nan``, ``ok``, or ``underflow`` /
    ``overflow`` beyond float64's range, as for every magnitude."""
    return {f"log10_{name}": json_number(log10), f"{name}_status": str(_status(log10))}


def _status(log10: float) -> Status:
    return from_log10(np.array([log10])).status()[0]


# the fields of ``summary_record``, in order (a resumed sweep's records are held to them)
SUMMARY_KEYS = (
    "loss",
    "log10_grad_output",
    "grad_output_status",
    "log10_weight_ratio",
    "weight_ratio_status",
    "log10_gain",
    "gain_status",
    "log10_signal",
    "signal_status",
    "verdict",
    "judged",
    "findings",
    "nonfinite_from",
    "zero_from",
    "warnings",
)


def summary_record(report: Report) -> dict[str, Any]:
    s = report.summary
    return {
        "loss": json_number(s.loss),
        **log10_fields("grad_output", s.log10_grad_output),
        **log10_fields("weight_ratio", s.log10_weight_ratio),
        **log10_fields("gain", s.log10_gain),
        **log10_fields("signal", s.log10_signal),
        "verdict": str(s.verdict),
        "judged": [str(q) for q in s.judged],  # the ratios the verdict looked at
        "findings": [
            {
                "quantity": str(f.quantity),
                "log10": json_number(f.log10),
                "status": str(_status(f.log10)),
                "verdict": str(f.verdict),
                "threshold": f.threshold,
                "limit": f.limit,
            }
            for f in s.findings
        ],
        "nonfinite_from": s.nonfinite_from,
        "zero_from": s.zero_from,
        "warnings": list(s.warnings),
    }


def config_record(command: str, spec: NetworkSpec, reports: Sequence[Report]) -> dict[str, Any]:
    """The flags of the run: every spec field, the variants (compare) and the thresholds."""
    config = spec.to_dict()
    if command == "compare":
        del config["skip"]
        config["variants"] = [str(r.spec.skip) for r in reports]
    thresholds = reports[0].summary.thresholds
    for name in (name for pair in PAIRS for name in pair):
        config[name] = getattr(thresholds, name)
    return config


def theory_record(outcome: Prediction | str) -> dict[str, Any] | None:
    """A run's ``theory``: the predicted gain and per-layer log10 ‖∂L/∂in‖/‖∂L/∂y‖, with the
    carried variances q and the factors χ; null where no prediction applies."""
    if isinstance(outcome, str):  # no prediction: the reason, shown on the page
        return None
    return {
        "log10_gain": json_number(outcome.log10_gain),
        "log10_grad_input": [json_number(x) for x in outcome.log10_grad_input.tolist()],
        "q": [json_number(x) for x in outcome.q.tolist()],
        "chi": [json_number(x) for x in outcome.chi.tolist()],
    }


def to_json(
    command: str,
    spec: NetworkSpec,
    reports: Sequence[Report],
    theory: Sequence[Prediction | str] | None = None,
) -> str:
    """The whole run as strict, versioned JSON (schema in docs/reference.md); ``theory`` (one
    per report) adds each run's ``theory`` record."""
    base = reports[0].summary.log10_weight_ratio
    runs: list[dict[str, Any]] = [
        {
            "label": r.label,
            "spec": r.spec.to_dict(),
            "summary": summary_record(r),
            # log10(this run's first/last ratio ÷ the first run's): orders of magnitude gained
            **_decades(r.summary.log10_weight_ratio, base),
            "layers": layer_table(r),
            "blocks": block_records(r),
        }
        for r in reports
    ]
    if theory is not None:
        for run, outcome in zip(runs, theory, strict=True):
            run["theory"] = theory_record(outcome)
    document = {
        "schema_version": SCHEMA_VERSION,
        "gradflow_version": __version__,
        "command": command,
        "config": config_record(command, spec, reports),
        "runs": runs,
    }
    return pretty_json(document) + "\n"


def _decades(log10: float, base: float) -> dict[str, Any]:
    """``decades_vs_first`` and its status (``zero``: -inf, ``inf``: +inf, ``nan``, ``ok``)."""
    diff = float(log10) - float(base)  # Python floats: inf - inf is nan, no warning
    return {"decades_vs_first": json_number(diff), "decades_vs_first_status": str(_status(diff))}


def _records(value: object) -> list[dict[str, Any]]:
    """What the encoder writes for a value it does not know: a table's records, else nothing."""
    if isinstance(value, Table):
        return value.records()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# one encoder: json.dumps builds one a call
_ENCODER = json.JSONEncoder(allow_nan=False, default=_records)


def pretty_json(value: Any, level: int = 0, expand: int = 4) -> str:
    """JSON indented down to ``expand`` levels, each deeper value (a layer or block record) on
    one line: readable, and written by the C encoder, so 100,000 layers take seconds, not
    minutes. A ``Table`` is written as the list of its records. The text is gathered in parts
    and joined once (a 100,000-layer document is 60 MB)."""
    parts: list[str] = []
    _pretty(value, level, expand, parts)
    return "".join(parts)


def _pretty(value: Any, level: int, expand: int, out: list[str]) -> None:
    if isinstance(value, Table):
        if level + 1 == expand and value.columns[0]:
            out.append(_lines(value, "  " * level))
            return
        value = value.records()
    if level >= expand or not isinstance(value, dict | list) or not value:
        out.append(_ENCODER.encode(value))
        return
    pad, inner = "  " * level, "  " * (level + 1)
    keyed = isinstance(value, dict)
    out.append("{\n" if keyed else "[\n")
    pairs = value.items() if isinstance(value, dict) else enumerate(value)
    for i, (key, item) in enumerate(pairs):
        out.append(inner if i == 0 else ",\n" + inner)
        if keyed:
            out.append(_ENCODER.encode(key) + ": ")
        _pretty(item, level + 1, expand, out)
    out.append("\n" + pad + ("}" if keyed else "]"))


def _lines(table: Table, pad: str) -> str:
    """The table's records, one a line, as ``_pretty`` writes a list of them whose items go on
    one line each: a line is a template filled with its values' texts."""
    fields = ", ".join(_ENCODER.encode(key).replace("%", "%%") + ": %s" for key in table.keys)
    template = pad + "  {" + fields + "}"
    rows = zip(*map(_json_texts, table.columns), strict=True)
    return "[\n" + ",\n".join([template % row for row in rows]) + "\n" + pad + "]"


def _json_texts(column: list[Any]) -> list[str]:
    """Each value of a column as the encoder writes it: strings one by one, and numbers, nulls
    and booleans from one encoder call over the column (none of their texts holds ", ")."""
    kinds = set(map(type, column))
    if kinds == {str}:
        return list(map(encode_basestring_ascii, column))
    if not kinds <= {float, int, bool, type(None)}:
        return [_ENCODER.encode(v) for v in column]
    return _ENCODER.encode(column)[1:-1].split(", ")


def to_csv(reports: Sequence[Report], theory: Sequence[Prediction | str] | None = None) -> str:
    """One row per layer per variant; empty cells where JSON has null. ``theory`` adds the
    column ``theory_log10_grad_input``: log10 of the predicted ‖∂L/∂in‖ (empty: none)."""
    buffer = io.StringIO()
    writer: csv.DictWriter[str] | None = None
    for i, r in enumerate(reports):
        predicted = predicted_log10(r, theory[i]).tolist() if theory is not None else None
        for j, record in enumerate(layer_records(r)):
            row = {"label": r.label, "skip": str(r.spec.skip), **record}
            if predicted is not None:
                row["theory_log10_grad_input"] = json_number(predicted[j])
            if writer is None:
                writer = csv.DictWriter(buffer, fieldnames=list(row), lineterminator="\n")
                writer.writeheader()
            writer.writerow({k: _csv_cell(v) for k, v in row.items()})
    return buffer.getvalue()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def markdown_table(grid: grid.Grid) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    lines = [f"**{grid.title}**", ""]
    # "post\n÷plain\ndecades" → "post÷plain decades"
    headers = [c.header.replace("\n÷", "÷").replace("\n", " ") for c in grid.columns]
    lines.append(line(headers))
    lines.append("|" + "|".join("---:" if c.numeric else ":---" for c in grid.columns) + "|")
    lines += [line([cell.text for cell in cells]) for cells in grid.rows]
    if grid.caption:
        lines += ["", f"_{grid.caption}_"]
    return lines


def _markdown(section: view.Section, width: int, unicode: bool) -> list[str]:
    """One section of the page as markdown lines."""
    if isinstance(section, view.Heading):
        return [f"### {section.text}"]
    if isinstance(section, view.Paragraph):
        return [f"**{section.text}**" if section.strong else section.text]
    if isinstance(section, view.Items):
        return [f"- {line}" for line in section.lines]
    if isinstance(section, view.ChartData):
        lines = chart.draw(section, width=width, unicode=unicode)
        return [f"**{section.title}**", "", "```text", *lines, "```"]
    return markdown_table(section.fit(width))


def to_markdown(
    command: str,
    reports: Sequence[Report],
    *,
    max_rows: int | None,
    width: int,
    unicode: bool,
    theory: Sequence[Prediction | str] | None = None,
) -> str:
    """The page as markdown, for a pull-request comment: the same sections in the same order as
    the terminal's, tables fitted to ``width`` by dropping columns (never stacked)."""
    lines: list[str] = []
    sections = view.sections(command, reports, max_rows=max_rows, unicode=unicode, theory=theory)
    for section in sections:
        lines += [*_markdown(section, width, unicode), ""]
    return "\n".join(lines)
