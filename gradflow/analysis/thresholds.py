"""The verdict's thresholds: one (below, above) pair per judged ratio, validated.

No NumPy here, nor the rest of the verdict: the CLI validates thresholds before the engine is
loaded, and ``gradflow --help`` shows their defaults with no more than this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    """Verdict thresholds, one (below, above) pair per judged ratio."""

    vanish_below: float = 1e-3  # first/last weight gradient: three orders lost is vanishing
    explode_above: float = 1e3  # three orders gained: exploding
    gain_below: float = 1e-3  # ‖∂L/∂x‖/‖∂L/∂y‖: the gradient lost three orders on its way back
    gain_above: float = 1e3
    signal_below: float = 1e-3  # rms(y)/rms(x): the forward signal lost three orders
    signal_above: float = 1e3

    def __post_init__(self) -> None:
        for low, high in PAIRS:
            for name in (low, high):
                value = getattr(self, name)
                if isinstance(value, bool) or not (
                    isinstance(value, (int, float)) and math.isfinite(value) and value > 0
                ):
                    raise ValueError(f"{name}: must be a positive finite number, got {value!r}")
            if getattr(self, low) >= getattr(self, high):
                raise ValueError(
                    f"{low} ({getattr(self, low):g}) must be below {high} ({getattr(self, high):g})"
                )


# (below, above) field pairs, in the order the verdict reads them
PAIRS = (("vanish_below", "explode_above"), ("gain_below", "gain_above"),
         ("signal_below", "signal_above"))  # fmt: skip
