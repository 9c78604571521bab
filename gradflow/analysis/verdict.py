"""The verdict: vanishing, exploding, healthy or non-finite, and the thresholds it is judged by.

Three quantities are judged, each as log10 of a ratio, each against its own pair of thresholds:

    weight ratio   ‖∂L/∂W_1‖ / ‖∂L/∂W_L‖   does the first layer learn as fast as the last?
    gain           ‖∂L/∂x‖ / ‖∂L/∂y‖       the end-to-end backward gain, network input against
                                           the last dense layer's output (mean-field theory's χ^L)
    signal         rms(y) / rms(x)         the forward signal's growth or decay

A network is healthy only when all three lie inside their thresholds. No NumPy here: the CLI
validates thresholds before the engine is loaded.
"""

from __future__ import annotations

import math
from typing import NamedTuple

# The thresholds have a module of their own (the CLI's help shows their defaults without this
# one), and are still found here
from gradflow.analysis.thresholds import PAIRS as PAIRS
from gradflow.analysis.thresholds import Thresholds as Thresholds
from gradflow.engine.spec import Choice


class Verdict(Choice):
    VANISHING = "vanishing"
    EXPLODING = "exploding"
    HEALTHY = "healthy"
    NONFINITE = "nonfinite"


class Quantity(Choice):
    """What a finding judged; its thresholds are the (below, above) pair of the same index."""

    WEIGHT_RATIO = "weight_ratio"  # ‖∂L/∂W_1‖ / ‖∂L/∂W_L‖
    GAIN = "gain"  # ‖∂L/∂x‖ / ‖∂L/∂y‖
    SIGNAL = "signal"  # rms(y) / rms(x)

    @property
    def bounds(self) -> tuple[str, str]:
        """The Thresholds fields (below, above) this quantity is judged by."""
        return PAIRS[list(Quantity).index(self)]


class Finding(NamedTuple):
    """One judged quantity outside its thresholds."""

    quantity: Quantity
    log10: float  # log10 of the ratio: -inf where it is an exact zero
    verdict: Verdict  # vanishing or exploding
    threshold: str  # the Thresholds field it crossed, e.g. "gain_below"
    limit: float  # that threshold's value


# Named tuples, as the report's records (analysis/results.py): a Finding compares by value
# (Summary == Summary), a Judgement is only read.
class Judgement(NamedTuple):
    verdict: Verdict
    findings: tuple[Finding, ...]  # every judged ratio outside its thresholds
    judged: tuple[Quantity, ...]  # the ratios looked at: given, and not nan


def judge(log10s: dict[Quantity, float | None], finite: bool, thresholds: Thresholds) -> Judgement:
    """The verdict from the log10 ratios (None or nan: not judged, e.g. never reached) and every
    finding behind it. Non-finite beats everything; otherwise the first finding, in the order
    weight ratio, gain, signal, gives the verdict."""
    findings, judged = [], []
    for quantity, log10 in log10s.items():
        if log10 is None or math.isnan(log10):
            continue
        judged.append(quantity)
        low, high = quantity.bounds
        if log10 < math.log10(getattr(thresholds, low)):
            findings.append(
                Finding(quantity, log10, Verdict.VANISHING, low, getattr(thresholds, low))
            )
        elif log10 > math.log10(getattr(thresholds, high)):
            findings.append(
                Finding(quantity, log10, Verdict.EXPLODING, high, getattr(thresholds, high))
            )
    verdict = Verdict.HEALTHY if not findings else findings[0].verdict
    return Judgement(verdict if finite else Verdict.NONFINITE, tuple(findings), tuple(judged))
