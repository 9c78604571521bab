"""What ``--theory`` adds to a page: the predicted ‖∂L/∂in‖ per layer beside the measured one,
the predicted gain beside the measured gain, a chart of ‖∂L/∂in‖ with the prediction marked, and
one line naming the variants the theory makes no prediction for.

A prediction is relative to ‖∂L/∂y‖; it is shown anchored at the run's measured ‖∂L/∂y‖.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from gradflow.analysis.results import Report
from gradflow.engine.magnitudes import from_log10
from gradflow.render import view
from gradflow.render.grid import DASH, Cell, Column

if TYPE_CHECKING:  # the theory itself loads only with --theory; a page without it needs none
    from gradflow.analysis.theory import Prediction

# Per report, in the reports' order: its prediction, or why there is none ("batch norm").
Theory = Sequence["Prediction | str"]

COLUMN_NOTE = "theory: the mean-field prediction of ‖∂L/∂in‖ (README: Theory)"
GAIN_HEADER = "theory\n‖∂L/∂x‖\n÷‖∂L/∂y‖"
GAIN_NOTE = "theory: the gain the mean-field theory predicts"
CHART_TITLE = "‖∂L/∂in‖ per layer and the theory, log scale, layer 1 at the top"
ASCII_TITLE = "|dL/din| per layer and the theory, log scale, layer 1 at the top"


def predicted_log10(report: Report, outcome: Prediction | str) -> np.ndarray:
    """log10 of the predicted ‖∂L/∂in‖ per layer row of ``report`` (the xent head and a run
    without prediction: nan), (len(report.layers),)."""
    values = np.full(len(report.layers), math.nan)
    if not isinstance(outcome, str):  # a prediction, not the reason there is none
        values[: report.spec.depth] = report.summary.log10_grad_output + outcome.log10_grad_input
    return values


def grad_input_column(
    report: Report, outcome: Prediction | str, rows: Sequence[view.Row], prefix: str
) -> Column:
    """The predicted ‖∂L/∂in‖ per row (a dash where there is none)."""
    log10 = predicted_log10(report, outcome)
    means = _per_row(log10, rows)
    return Column(
        prefix + "theory\n‖∂L/∂in‖",
        view.magnitude_cells(means),
        drop=1,
        note=COLUMN_NOTE,
        group=report.label,
    )


def gain_text(outcome: Prediction | str) -> str:
    """``10^-31.4``, or a dash where there is no prediction."""
    return DASH if isinstance(outcome, str) else view.power_text(outcome.log10_gain)


def gain_column(theory: Theory) -> Column:
    return Column(GAIN_HEADER, [Cell(gain_text(o)) for o in theory], note=GAIN_NOTE)


def missing_line(reports: Sequence[Report], theory: Theory) -> str | None:
    """``theory: no prediction for pre (batch norm)``, once for all such variants; None when
    every variant has one."""
    reasons: dict[str, list[str]] = {}
    for r, outcome in zip(reports, theory, strict=True):
        if isinstance(outcome, str):
            reasons.setdefault(outcome, []).append(r.label)
    if not reasons:
        return None
    parts = [f"{_listing(labels)} ({reason})" for reason, labels in reasons.items()]
    return "theory: no prediction for " + "; ".join(parts)


def _listing(labels: Sequence[str]) -> str:
    """``plain``, ``plain and pre``, ``plain, pre and postnorm``."""
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def gain_texts(outcomes: Sequence[Prediction | str]) -> list[str]:
    """What each variant's one-line summary adds: ``  theory gain 10^-31.4``, aligned as wide
    as the widest, or ``  theory: no prediction (...)``."""
    gains = [None if isinstance(o, str) else gain_text(o) for o in outcomes]
    width = max([9, *(len(g) for g in gains if g is not None)])
    return [
        f"  theory: no prediction ({o})" if g is None else f"  theory gain {g:>{width}}"
        for o, g in zip(outcomes, gains, strict=True)
    ]


def chart(
    reports: Sequence[Report], theory: Theory, rows: Sequence[view.Row], unicode: bool
) -> view.ChartData:
    """‖∂L/∂in‖ per row for every variant, the prediction marked on each bar."""
    panels, expected = [], []
    for r, outcome in zip(reports, theory, strict=True):
        panels.append((r.label, view.per_row(r.layers.grad_input, rows)))
        log10 = predicted_log10(r, outcome)
        means = _per_row(log10, rows)
        shown = means.values.log10.copy()
        shown[means.missing] = math.nan
        expected.append(shown)
    title = CHART_TITLE if unicode else ASCII_TITLE
    return view.ChartData(title, [row.number for row in rows], panels, expected)


def _per_row(log10: np.ndarray, rows: Sequence[view.Row]) -> view.Means:
    """Predicted log10 values per row: nan (no prediction) left out, −inf (exactly 0) kept as
    it is (made finite, it overflowed on the way to a power of two, with a RuntimeWarning)."""
    known = ~np.isnan(log10)
    return view.per_row(from_log10(np.where(known, log10, 0.0)), rows, known)
