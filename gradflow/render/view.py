"""What is shown: rows (single layers or buckets of layers), their values, grids, the words, and
the page's sections in their order.

Shared by the table, the chart and the markdown export, so all three show the same rows with the
same numbers in the same order. A bucket shows the geometric mean of its layers' magnitudes (the
mean of their log10, the natural average on a log scale) and the arithmetic mean of activation
statistics. Exact zeros are left out of a bucket's geometric mean and the row is marked, so that a
``0`` on screen always means that every layer of its row is exactly zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from gradflow.analysis.results import Report
from gradflow.analysis.verdict import Finding, Quantity, Verdict
from gradflow.engine.magnitudes import Magnitudes, Status, from_log10
from gradflow.engine.spec import Activation, Init, NetworkSpec, Norm
from gradflow.render import theory_view  # builds on this module: each uses the other's names
from gradflow.render.grid import (
    DASH,
    MARK,
    Cell,
    Column,
    Grid,
    Tone,
)

if TYPE_CHECKING:  # the theory loads only with --theory
    from gradflow.analysis.theory import Prediction


# View models are named tuples: immutable, and created at import for a quarter of a frozen
# dataclass's cost (its generated methods are compiled as each class is made).
class Row(NamedTuple):
    """One displayed row: a single layer (or block) or a bucket of consecutive ones."""

    number: str  # "7", or "7-8" for a bucket
    name: str  # "block4.fc1", or "block4.fc1-fc2" for a bucket
    members: range  # 0-based positions in the report's Layers (or Blocks)


def groups(count: int, max_rows: int | None) -> list[range]:
    """Split ``count`` consecutive items into at most ``max_rows`` equal runs (None: one each)."""
    size = 1 if max_rows is None or count <= max_rows else math.ceil(count / max_rows)
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def span_name(first: str, last: str) -> str:
    """``block1.fc1``, ``block1.fc2`` → ``block1.fc1-fc2``; ``fc1``, ``fc3`` → ``fc1-fc3``."""
    if first == last:
        return first
    prefix = first.rpartition(".")[0]
    if prefix and last.startswith(prefix + "."):
        return f"{first}{DASH}{last[len(prefix) + 1 :]}"
    return f"{first}{DASH}{last}"


def _rows(names: Sequence[str], positions: list[range]) -> list[Row]:
    rows = []
    for members in positions:
        first, last = members[0], members[-1]
        number = str(first + 1) if first == last else f"{first + 1}{DASH}{last + 1}"
        rows.append(Row(number, span_name(names[first], names[last]), members))
    return rows


def layer_rows(report: Report, max_rows: int | None) -> list[Row]:
    """Rows for the per-layer views; the xent head always keeps a row of its own."""
    names = report.layers.name
    dense = report.spec.depth
    positions = groups(dense, max_rows)
    if len(names) > dense:  # the head
        positions.append(range(dense, len(names)))
    rows = _rows(names, positions)
    if len(names) > dense:
        rows[-1] = Row("head", "head", rows[-1].members)
    return rows


def block_rows(report: Report, max_rows: int | None) -> list[Row]:
    """Rows for the per-block split at the addition (empty for a plain network)."""
    return _rows(report.blocks.name, groups(len(report.blocks), max_rows))


def naming_report(reports: Sequence[Report]) -> Report:
    """The report whose layer names label the rows: a residual one names blocks too."""
    return next((r for r in reports if len(r.blocks)), reports[0])


class Means(NamedTuple):
    """One magnitude per row, and how each was formed."""

    values: Magnitudes  # the layer's own, or a bucket's geometric mean over its nonzero layers
    partial: np.ndarray  # bool: some of the row's layers are exactly 0, left out of the mean
    missing: np.ndarray  # bool: no layer of the row has a value to show (e.g. ‖W‖ = 0)


def per_row(m: Magnitudes, rows: Sequence[Row], defined: np.ndarray | None = None) -> Means:
    """One magnitude per row: the layer's own, or the geometric mean over a bucket's nonzero
    layers (exact zeros left out and the row marked partial; 0 only when all are 0). Layers
    where ``defined`` is False are left out altogether. A nan in a bucket makes it nan; an inf,
    inf."""
    count = len(rows)
    if all(len(row.members) == 1 for row in rows):
        index = np.array([row.members[0] for row in rows], dtype=np.int64)
        missing = np.zeros(count, bool) if defined is None else ~defined[index]
        values = Magnitudes(m.mantissa[index], m.exponent[index])
        return Means(values, np.zeros(count, bool), missing)
    log10 = m.log10
    used = np.ones(len(log10), bool) if defined is None else defined
    nonzero = used & (log10 != -math.inf)
    finite = used & np.isfinite(log10)
    bounds = _bounds(rows)
    counts = [_sums(x, bounds) for x in (used, nonzero, finite, used & np.isnan(log10))]
    used_n, nonzero_n, finite_n, nan_n = counts
    with np.errstate(invalid="ignore", divide="ignore"):
        means = _sums(np.where(finite, log10, 0.0), bounds) / finite_n
    means[nonzero_n > finite_n] = math.inf  # an inf in the bucket
    means[nonzero_n == 0] = -math.inf  # all exactly zero
    means[(nan_n > 0) | (used_n == 0)] = math.nan
    partial = (nonzero_n > 0) & (nonzero_n < used_n) & (nan_n == 0)
    return Means(from_log10(means), partial, used_n == 0)


def _bounds(rows: Sequence[Row]) -> np.ndarray:
    """Each row's members as (start, stop), flattened: where ``_sums`` adds up. (2·rows,)"""
    return np.array([[row.members.start, row.members.stop] for row in rows]).ravel()


def _sums(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The sum of ``values`` over each row's members (``bounds`` from ``_bounds``), as float64."""
    padded = np.append(values.astype(np.float64), 0.0)  # reduceat needs stop < len
    return np.add.reduceat(padded, bounds)[::2]


def mean_per_row(values: np.ndarray, rows: Sequence[Row]) -> np.ndarray:
    """Arithmetic mean per row, ignoring nan (nan when a row has no value)."""
    present, bounds = ~np.isnan(values), _bounds(rows)
    with np.errstate(invalid="ignore"):
        means: np.ndarray = _sums(np.where(present, values, 0.0), bounds) / _sums(present, bounds)
    return means


# ---- numbers as text ----------------------------------------------------------------------

SPECIAL_TEXT = {Status.ZERO: "0", Status.NAN: "nan", Status.INF: "inf"}
STATUS_TONE = {
    Status.OK: Tone.PLAIN,
    Status.ZERO: Tone.BAD,
    Status.UNDERFLOW: Tone.ODD,
    Status.OVERFLOW: Tone.ODD,
    Status.NAN: Tone.BROKEN,
    Status.INF: Tone.BROKEN,
}
VERDICT_TONE = {
    Verdict.HEALTHY: Tone.GOOD,
    Verdict.VANISHING: Tone.BAD,
    Verdict.EXPLODING: Tone.BAD,
    Verdict.NONFINITE: Tone.BROKEN,
}


def magnitude_text(log10: float, status: Status) -> str:
    """``3.2e-31`` from an exact log10, also beyond float64's range (``1.5e-2000``): always one
    mantissa digit after the point and a signed exponent of at least two digits."""
    if status in SPECIAL_TEXT:
        return SPECIAL_TEXT[status]
    exponent = math.floor(log10)
    mantissa = 10 ** (log10 - exponent)
    if round(mantissa, 1) >= 10.0:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.1f}e{exponent:+03d}"


def _nonfinite_text(log10: float) -> str:
    """An infinite log10 is a ratio with an exact zero at one end; say which."""
    if math.isnan(log10):
        return "nan"
    return "inf" if log10 > 0 else "0"


def _tenths(x: float, sign: str = "") -> str:
    """One decimal, never ``-0.0``."""
    text = f"{x:{sign}.1f}"
    return "0.0" if float(text) == 0 else text


def power_text(log10: float) -> str:
    """A ratio as a power of ten: ``10^-31.1``; ``0`` or ``inf`` where one end is exactly 0."""
    return _nonfinite_text(log10) if not math.isfinite(log10) else f"10^{_tenths(log10)}"


def decades_text(log10: float) -> str:
    """A difference of log10 values with its sign: ``+14.5``; ``0.0`` when it rounds to nothing;
    ``-inf``/``+inf`` when one side is exactly 0."""
    if math.isnan(log10):
        return "nan"
    return f"{log10:+}" if math.isinf(log10) else _tenths(log10, "+")


def number_text(x: float, digits: int = 2) -> str:
    """``digits`` significant digits, in plain notation between 1e-3 and 1e4 and otherwise as
    ``magnitude_text`` writes them (``2.0e+118``, never ``2e+118``)."""
    if not math.isfinite(x) or x == 0:
        return "0" if x == 0 else str(x)
    size = abs(x)
    if size < 1e-3 or size >= 1e4:
        return ("-" if x < 0 else "") + magnitude_text(math.log10(size), Status.OK)
    decimals = max(0, digits - 1 - math.floor(math.log10(size)))
    text = f"{x:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def percent_text(share: float) -> str:
    """A share as a percentage: ``99.8%``, never rounding a share that is not 1 up to ``100%``
    nor a nonzero one down to ``0%`` (``<0.01%``, ``>99.99%`` at the ends)."""
    percent = 100 * share
    if percent in (0.0, 100.0):
        return f"{percent:.0f}%"
    for decimals in range(3):
        text = f"{percent:.{decimals}f}"
        if float(text) not in (0.0, 100.0):
            return text + "%"
    return "<0.01%" if percent < 50 else ">99.99%"


def magnitude_cells(means: Means) -> list[Cell]:
    m = means.values
    cells = []
    for x, status, partial, missing in zip(
        m.log10.tolist(), m.status(), means.partial.tolist(), means.missing.tolist(), strict=True
    ):
        text = DASH if missing else magnitude_text(x, status) + (MARK if partial else "")
        cells.append(Cell(text, Tone.PLAIN if missing else STATUS_TONE[status]))
    return cells


def decade_cells(variant: Means, base: Means) -> list[Cell]:
    """log10 of ``variant`` over ``base`` per row; marked where either leaves zeros out."""
    cells = []
    for a, b, partial in zip(
        variant.values.log10.tolist(),
        base.values.log10.tolist(),
        (variant.partial | base.partial).tolist(),
        strict=True,
    ):
        if a == b == -math.inf:
            cells.append(Cell("both 0"))
            continue
        x = a - b  # inf - inf is nan: no ratio
        tone = Tone.GOOD if x > 0 else Tone.BAD if x < 0 else Tone.PLAIN
        cells.append(Cell(decades_text(x) + (MARK if partial else ""), tone))
    return cells


def number_cells(values: np.ndarray, digits: int = 2) -> list[Cell]:
    return [Cell(DASH if math.isnan(x) else number_text(x, digits)) for x in values.tolist()]


def percent_cells(values: np.ndarray) -> list[Cell]:
    return [Cell(DASH if math.isnan(x) else percent_text(x)) for x in values.tolist()]


def cosine_cells(values: np.ndarray) -> list[Cell]:
    """``+0.42``; a dash where there is no cosine (one of the two parts is exactly 0)."""
    return [Cell(DASH if math.isnan(x) else _signed(x)) for x in values.tolist()]


def _signed(x: float) -> str:
    text = f"{x:+.2f}"
    return "+0.00" if float(text) == 0 else text


# ---- grids --------------------------------------------------------------------------------


def _health_columns(report: Report, rows: Sequence[Row], prefix: str) -> list[Column]:
    """grad:weight, activation std, and the dead or saturated share, for one variant.

    On a narrow screen these go first (``drop=3``): the gradient columns are the point.
    """
    layers, group = report.layers, report.label
    # ‖∂L/∂W‖/‖W‖ means nothing where ‖W‖ = 0 (a zero-initialised branch end): left out
    ratio = per_row(from_log10(layers.log10_grad_weight_ratio), rows, layers.weight_norm != 0)
    note = "grad:weight: ‖∂L/∂W‖/‖W‖, the relative size of one plain SGD step"
    if ratio.missing.any():
        note += f" ({DASH}: the weights are all 0)"
    std = mean_per_row(layers.act_std, rows)
    columns = [
        Column(prefix + "grad:weight", magnitude_cells(ratio), drop=3, note=note, group=group),
        Column(prefix + "act std", number_cells(std), drop=3, group=group,
               note="act std: standard deviation of the activation's output"),
    ]  # fmt: skip
    for title, values, note in (
        ("dead", layers.dead_fraction, "dead: share of units inactive for every example"),
        ("saturated", layers.saturated_fraction, "saturated: share of outputs in flat tails"),
    ):
        shares = mean_per_row(values, rows)
        if not np.isnan(shares).all():
            cells = percent_cells(shares)
            columns.append(Column(prefix + title, cells, drop=3, note=note, group=group))
    return columns


def _bucket_notes(rows: Sequence[Row], what: str) -> tuple[tuple[str, ...], str]:
    """The grouping note and the meaning of a ``0`` cell, for rows of ``what`` (layers/blocks)."""
    size = max((len(row.members) for row in rows), default=1)
    if size == 1:
        return (), "0: exactly zero"
    note = f"rows group up to {size} {what} (geometric mean); --all-rows shows each one"
    return (note,), f"0: exactly zero in every one of the row's {what}"


def layer_grid(
    reports: Sequence[Report],
    rows: Sequence[Row],
    theory: Sequence[Prediction | str] | None = None,
) -> Grid:
    """Per layer (or bucket): gradient norms and health per variant, then each variant against
    the first, in decades (log10 of the ratio of their ‖∂L/∂W‖); with ``theory`` (one per
    report), the predicted ‖∂L/∂in‖ beside the measured one."""
    single = len(reports) == 1
    notes, zero_note = _bucket_notes(rows, "layers")
    columns = [
        Column("#", [Cell(row.number) for row in rows], key=True),
        Column("layer", [Cell(row.name) for row in rows], numeric=False, drop=2, key=True),
    ]
    weights = []
    for i, r in enumerate(reports):
        prefix = "" if single else f"{r.label}\n"
        grad_w = per_row(r.layers.grad_weight, rows)
        weights.append(grad_w)
        columns.append(Column(prefix + "‖∂L/∂W‖", magnitude_cells(grad_w), group=r.label))
        grad_in = magnitude_cells(per_row(r.layers.grad_input, rows))
        note = "‖∂L/∂in‖: gradient at the layer's input"
        columns.append(Column(prefix + "‖∂L/∂in‖", grad_in, drop=1, note=note, group=r.label))
        if theory is not None:
            columns.append(theory_view.grad_input_column(r, theory[i], rows, prefix))
        columns += _health_columns(r, rows, prefix)
    base = reports[0].label
    decades = [decade_cells(grad_w, weights[0]) for grad_w in weights[1:]]
    # one note for every ÷base column, so that the caption says it once
    note = f"÷{base}: decades (log10) of the variant's ‖∂L/∂W‖ over {base}'s"
    if any(c.text.endswith("inf") for cells in decades for c in cells):
        note += f" ({DASH}inf, +inf: exactly 0 in the variant, in {base})"
    for r, cells in zip(reports[1:], decades, strict=True):
        header = f"{r.label}\n÷{base}\ndecades"
        columns.append(Column(header, cells, note=note, group=r.label))
    return Grid("Gradient per layer, layer 1 at the input end", columns, notes, zero_note)


def block_grid(reports: Sequence[Report], max_rows: int | None) -> Grid | None:
    """The split at each residual addition: skip part, branch part and their sum, per variant."""
    residual = [r for r in reports if len(r.blocks)]
    if not residual:
        return None
    rows = block_rows(residual[0], max_rows)
    notes, zero_note = _bucket_notes(rows, "blocks")
    first, last = residual[0].blocks.first_layer, residual[0].blocks.last_layer
    spans = [f"{first[row.members[0]]}{DASH}{last[row.members[-1]]}" for row in rows]
    columns = [
        Column("block", [Cell(row.number) for row in rows], key=True),
        Column("layers", [Cell(span) for span in spans], drop=2, key=True),
    ]
    words = {
        "skip": "skip: the gradient arriving at the add, handed back unchanged",
        "branch": "branch: the part that comes back through the block's layers",
        "sum": "sum: the gradient at the block input",
    }
    for r in residual:
        prefix = "" if len(residual) == 1 else f"{r.label}\n"
        blocks = r.blocks
        for name, m in (
            ("skip", blocks.grad_skip),
            ("branch", blocks.grad_branch),
            ("sum", blocks.grad_input),
        ):
            cells = magnitude_cells(per_row(m, rows))
            columns.append(Column(prefix + name, cells, note=words[name], group=r.label))
        cosine = cosine_cells(mean_per_row(blocks.cosine, rows))
        note = "cos: cosine between skip and branch parts"
        if any(c.text == DASH for c in cosine):
            note += f" ({DASH}: one of them is exactly 0)"
        columns.append(Column(prefix + "cos", cosine, drop=1, note=note, group=r.label))
    return Grid("Split at the addition, per block", columns, notes, zero_note)


RATIO_HEADERS = {  # three lines each, so that the summary fits 60 columns
    Quantity.WEIGHT_RATIO: "first/last\n‖∂L/∂W₁‖\n÷‖∂L/∂W_L‖",
    Quantity.GAIN: "gain\n‖∂L/∂x‖\n÷‖∂L/∂y‖",
    Quantity.SIGNAL: "signal\nrms(y)\n÷rms(x)",
}
RATIO_NOTES = {
    Quantity.WEIGHT_RATIO: "first/last: the first layer's weight gradient over the last layer's",
    Quantity.GAIN: "gain: the gradient at the network input over the one at its output",
    Quantity.SIGNAL: "signal: the forward signal's size at the output over the input's",
}


def ratio_log10(report: Report, quantity: Quantity) -> float:
    s = report.summary
    return {
        Quantity.WEIGHT_RATIO: s.log10_weight_ratio,
        Quantity.GAIN: s.log10_gain,
        Quantity.SIGNAL: s.log10_signal,
    }[quantity]


def ratio_text(report: Report, quantity: Quantity) -> str:
    """The judged ratio as shown: ``10^-30.9``, ``0``, ``inf``; the weight ratio is ``n/a``
    where it is not measurable: the forward signal is exactly zero before the last layer, or
    both ends are exactly 0 (0/0; ``nan`` stays for NaN gradients)."""
    if quantity is Quantity.WEIGHT_RATIO and _not_measurable(report):
        return "n/a"
    return power_text(ratio_log10(report, quantity))


def _not_measurable(report: Report) -> bool:
    if report.summary.zero_from is not None:
        return True
    log10_w = report.layers.grad_weight.log10
    return bool(log10_w[0] == -math.inf and log10_w[report.spec.depth - 1] == -math.inf)


def summary_grid(
    reports: Sequence[Report], theory: Sequence[Prediction | str] | None = None
) -> Grid:
    """Per variant: the three judged ratios, the loss and the verdict (its reasons follow the
    grid, one line per variant: ``verdict_lines``); with ``theory``, the predicted gain after
    the measured one."""
    columns = [Column("variant", [Cell(r.label) for r in reports], numeric=False, key=True)]
    for quantity in Quantity:
        cells = []
        for r in reports:
            judged = {f.quantity for f in r.summary.findings}
            cells.append(
                Cell(ratio_text(r, quantity), Tone.BAD if quantity in judged else Tone.PLAIN)
            )
        note = RATIO_NOTES[quantity]
        if quantity is Quantity.WEIGHT_RATIO and any(c.text == "n/a" for c in cells):
            note += " (n/a: not measurable; its reason line says why)"
        columns.append(Column(RATIO_HEADERS[quantity], cells, note=note))
        if quantity is Quantity.GAIN and theory is not None:
            columns.append(theory_view.gain_column(theory))
    losses = [Cell(number_text(r.summary.loss, 4)) for r in reports]  # nan: a broken pass
    columns.append(Column("loss", losses, drop=1))
    verdicts = [Cell(str(r.summary.verdict), VERDICT_TONE[r.summary.verdict]) for r in reports]
    columns.append(Column("verdict", verdicts, numeric=False))
    return Grid("Summary: the judged ratios and the verdict", columns, zero_note="0: exactly zero")


QUANTITY_TEXT = {
    Quantity.WEIGHT_RATIO: "first/last ‖∂L/∂W‖",
    Quantity.GAIN: "gain ‖∂L/∂x‖/‖∂L/∂y‖",
    Quantity.SIGNAL: "signal rms(y)/rms(x)",
}


def finding_text(finding: Finding) -> str:
    """``gain ‖∂L/∂x‖/‖∂L/∂y‖ = 10^-17.3 is below --gain-below 0.001``."""
    side = "below" if finding.verdict is Verdict.VANISHING else "above"
    flag = "--" + finding.threshold.replace("_", "-")
    return (
        f"{QUANTITY_TEXT[finding.quantity]} = {power_text(finding.log10)} is {side} "
        f"{flag} {finding.limit:g}"
    )


def verdict_reason(report: Report) -> str:
    """Why the verdict is what it is: every finding (the one that decided it first) and what
    could not be judged."""
    s = report.summary
    reasons = []
    if s.verdict is Verdict.NONFINITE:
        where = f" from layer {s.nonfinite_from}" if s.nonfinite_from is not None else ""
        reasons.append(f"the pass produced non-finite values{where}")
    reasons += [finding_text(f) for f in s.findings]
    weight_ratio = QUANTITY_TEXT[Quantity.WEIGHT_RATIO]
    if report.zero_at_output:
        reasons.append(f"{weight_ratio} is n/a: the forward signal is exactly 0 at the output")
    elif s.zero_from is not None:
        reasons.append(
            f"{weight_ratio} is n/a: the forward signal is exactly 0 from layer {s.zero_from}, "
            f"so it never reached layer {report.spec.depth}"
        )
    elif Quantity.WEIGHT_RATIO not in s.judged:
        reasons.append(f"{weight_ratio} is not judged: the {_why_not_finite(report)}")
    return "; ".join(reasons) or "every judged ratio is within its thresholds"


def verdict_lines(reports: Sequence[Report]) -> list[str]:
    """One line per variant: ``plain is vanishing: <reasons>``."""
    return [f"{r.label} is {r.summary.verdict}: {verdict_reason(r)}" for r in reports]


# ---- words ----------------------------------------------------------------------------------

VARIANT_WORDS = {
    "plain": "plain (no shortcuts)",
    "post": "post (original ResNet: activation after the add)",
    "pre": "pre (pre-activation: nothing after the add)",
    "postnorm": "postnorm (Post-LN: normalization after the add)",
}


def header_line(command: str, reports: Sequence[Report]) -> str:
    """The configuration, so that a screenshot explains itself."""
    spec = reports[0].spec
    depth = f"depth {spec.depth}"
    if any(r.spec.residual for r in reports):
        depth += f" (blocks of {spec.block_size}, α={spec.residual_scale:g}"
        if spec.skip_scale != 1:
            depth += f", s={spec.skip_scale:g}"
        if spec.branch_weight_scale != 1:
            depth += f", β={spec.branch_weight_scale:g}"
        depth += ")"
    parts = [f"gradflow {command}", depth, f"width {spec.width}", f"batch {spec.batch}"]
    parts += [str(spec.activation), str(spec.init)]
    if spec.weight_var is not None:
        parts.append(f"σ_w²={spec.weight_var:g}")
    if spec.bias_var:
        parts.append(f"σ_b²={spec.bias_var:g}")
    if any(r.spec.zero_init_residual for r in reports):
        parts.append("zero-init residual")
    parts += [f"norm {spec.norm}", f"loss {spec.loss}", str(spec.dtype), f"seed {spec.seed}"]
    return " · ".join(parts)


def shown_line(reports: Sequence[Report]) -> str:
    """What the page shows, and for the default network why it is the one shown."""
    words = [VARIANT_WORDS.get(r.label, r.label) for r in reports]
    line = "Showing " + ", ".join(words) + "."
    if is_classic(reports[0].spec):
        line += (
            " Sigmoid + Xavier is the classic vanishing-gradient case;"
            " try --activation relu --init he for the next lesson."
        )
    return line


def is_classic(spec: NetworkSpec) -> bool:
    """The default picture: sigmoid + Xavier (its own scale: no --weight-var) without
    normalization, the classic vanishing case."""
    return spec.weight_var is None and (spec.activation, spec.init, spec.norm) == (
        Activation.SIGMOID,
        Init.XAVIER,
        Norm.NONE,
    )


def _why_not_finite(report: Report) -> str:
    """Why a report's first/last weight ratio is not a finite number, without its subject
    (``first-layer weight gradient is exactly 0``): the caller says whose."""
    s, log10_w = report.summary, report.layers.grad_weight.log10
    if report.zero_at_output:
        return "forward signal is exactly 0 at the output"
    if s.zero_from is not None:
        return f"forward signal is exactly 0 from layer {s.zero_from}"
    first, last = float(log10_w[0]), float(log10_w[report.spec.depth - 1])
    for value, word in ((-math.inf, "exactly 0"), (math.inf, "inf"), (math.nan, "nan")):
        ends = [name for name, x in (("first", first), ("last", last)) if _same(x, value)]
        if ends:
            text = f"{' and '.join(ends)}-layer weight gradient"
            text += f" is {word}" if len(ends) == 1 else f"s are {word}"
            if first == -math.inf and report.spec.zero_init_residual:
                text += ", by construction with --zero-init-residual"
            return text
    return f"first/last ratio is {power_text(s.log10_weight_ratio)}"


def _same(x: float, value: float) -> bool:
    return math.isnan(x) if math.isnan(value) else x == value


def comparison_sentence(reports: Sequence[Report]) -> str:
    """One sentence: by how many orders of magnitude each variant's first/last ratio differs,
    or which variant's ratio has an exact zero at one end."""
    base = reports[0]
    subject = "the first layer's weight gradient (relative to the last layer's)"
    if not math.isfinite(base.summary.log10_weight_ratio) or base.summary.zero_from is not None:
        others = _join([r.label for r in reports[1:]])
        return (
            f"With {base.label}, {subject} cannot be compared with {others}: "
            f"{base.label}'s {_why_not_finite(base)}."
        )
    clauses = []
    for r in reports[1:]:
        diff = r.summary.log10_weight_ratio - base.summary.log10_weight_ratio
        if r.summary.zero_from is not None or math.isnan(diff):
            clauses.append(f"not measurable with {r.label} (its {_why_not_finite(r)})")
        elif math.isinf(diff):
            size = "exactly zero" if diff < 0 else "infinite"
            clauses.append(f"{size} with {r.label} (its {_why_not_finite(r)})")
        elif round(abs(diff), 1) == 0:
            clauses.append(f"about the same with {r.label}")
        else:
            direction = "larger" if diff > 0 else "smaller"
            clauses.append(f"{abs(diff):.1f} orders of magnitude {direction} with {r.label}")
    return f"Compared with {base.label}, {subject} is {_join(clauses)}."


def _join(clauses: Sequence[str]) -> str:
    if len(clauses) <= 2:
        return " and ".join(clauses)
    return ", ".join(clauses[:-1]) + ", and " + clauses[-1]


def summary_lines(
    reports: Sequence[Report], theory: Sequence[Prediction | str] | None = None
) -> list[str]:
    """Plain-text summary: one line per variant (the three ratios, with ``theory`` the predicted
    gain, the verdict and its reasons), then the comparison sentence."""
    width = max(len(r.label) for r in reports)
    # each ratio's column as wide as its widest text (10^-1930.6 is wider than the usual 9)
    texts = {q: [ratio_text(r, q) for r in reports] for q in Quantity}
    widths = {q: max(9, *(len(t) for t in texts[q])) for q in Quantity}
    gains = None if theory is None else theory_view.gain_texts(theory)
    lines = []
    for i, r in enumerate(reports):
        ratios = "  ".join(f"{QUANTITY_TEXT[q]} {texts[q][i]:>{widths[q]}}" for q in Quantity)
        if gains is not None:
            ratios += gains[i]
        lines.append(f"{r.label:<{width}}  {ratios}  {r.summary.verdict}: {verdict_reason(r)}")
    if len(reports) > 1:
        lines.append(comparison_sentence(reports))
    return lines


# ---- the page -------------------------------------------------------------------------------


class Heading(NamedTuple):
    text: str


class Paragraph(NamedTuple):
    text: str
    strong: bool = False


class Items(NamedTuple):
    """Short statements, one each (a list in markdown)."""

    lines: tuple[str, ...]


class ChartData(NamedTuple):
    """The per-layer chart: one panel per variant, one bar per row."""

    title: str
    labels: list[str]
    panels: list[tuple[str, Means]]  # (variant, its ‖∂L/∂W‖ per row)
    expected: list[np.ndarray] | None = None  # per panel, log10 of a prediction per row (nan)


Section = Heading | Paragraph | Items | Grid | ChartData


def sections(
    command: str,
    reports: Sequence[Report],
    *,
    max_rows: int | None,
    unicode: bool,
    theory: Sequence[Prediction | str] | None = None,
) -> list[Section]:
    """Everything a page shows, in the one order both the terminal and markdown use: heading,
    what is shown, the layer table, the block table, the chart, the summary with the verdicts'
    reasons, and the comparison sentence. ``theory`` (one per report) adds the predictions:
    a column, a chart of ‖∂L/∂in‖ with the prediction marked, the predicted gain, and a line
    naming the variants without one."""
    rows = layer_rows(naming_report(reports), max_rows)
    parts: list[Section] = [
        Heading(header_line(command, reports)),
        Paragraph(shown_line(reports)),
        layer_grid(reports, rows, theory),
    ]
    blocks = block_grid(reports, max_rows)
    if blocks is not None:
        parts.append(blocks)
    title = "‖∂L/∂W‖ per layer" if unicode else "|dL/dW| per layer"
    panels = [(r.label, per_row(r.layers.grad_weight, rows)) for r in reports]
    parts.append(
        ChartData(f"{title}, log scale, layer 1 at the top", [r.number for r in rows], panels)
    )
    if theory is not None:
        parts.append(theory_view.chart(reports, theory, rows, unicode))
    parts += [summary_grid(reports, theory), Items(tuple(verdict_lines(reports)))]
    missing = theory_view.missing_line(reports, theory) if theory is not None else None
    if missing is not None:
        parts.append(Paragraph(missing))
    if len(reports) > 1:
        parts.append(Paragraph(comparison_sentence(reports), strong=True))
    return parts
