"""What one pass returns: plain data (floats, small arrays, nested frozen dataclasses).

Magnitudes are carried as ``mantissa · 2**exponent`` because a deep network's gradient easily
leaves float64's range (a 3000-layer sigmoid net's first-layer gradient is near 1e-1884); the
``log10`` view is exact where the float ``value`` would underflow to 0 or overflow to inf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from gradflow.analysis.verdict import Finding, Quantity, Thresholds, Verdict
from gradflow.engine.magnitudes import Magnitudes
from gradflow.engine.spec import NetworkSpec, Skip

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "Blocks",
    "Finding",
    "Gradients",
    "Layers",
    "Report",
    "Summary",
    "Thresholds",
    "Verdict",
]


# The records are named tuples: immutable, and created at import for a quarter of a frozen
# dataclass's cost (its generated methods are compiled as each class is made). Summary, plain
# numbers, compares by value (between runs); the others hold arrays and are never compared.
# Layers and Blocks stay frozen dataclasses without == and repr: len() of each counts its rows.
@dataclass(frozen=True, eq=False, repr=False)
class Layers:
    """One entry per dense layer, in forward order (index 0 is layer 1), then ``head`` for xent."""

    name: tuple[str, ...]  # "fc7" in a plain net, "block3.fc2" in a residual one, "head"
    grad_weight: Magnitudes  # ‖∂L/∂W_i‖_F
    grad_bias: Magnitudes  # ‖∂L/∂b_i‖
    grad_input: Magnitudes  # ‖∂L/∂(input of layer i)‖_F, total derivative (skip + branch)
    weight_norm: np.ndarray  # ‖W_i‖_F
    act_mean: np.ndarray  # mean of the activation φ's output in this layer
    act_std: np.ndarray  # its standard deviation over the whole (B, n) batch
    dead_fraction: np.ndarray  # ReLU-like: share of units inactive for every row; else nan
    saturated_fraction: np.ndarray  # tanh/sigmoid: share of outputs in the flat tails; else nan
    finite: np.ndarray  # bool: forward output of this layer is finite

    def __len__(self) -> int:
        return len(self.name)

    @property
    def log10_grad_weight_ratio(self) -> np.ndarray:
        """log10(‖∂L/∂W‖ / ‖W‖): the relative size of one plain SGD step."""
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio: np.ndarray = self.grad_weight.log10 - np.log10(self.weight_norm)
        return ratio


@dataclass(frozen=True, eq=False, repr=False)
class Blocks:
    """The split at each residual addition, one entry per block in forward order."""

    name: tuple[str, ...]  # "block1", ...
    first_layer: np.ndarray  # 1-based index of the block's first dense layer
    last_layer: np.ndarray  # 1-based index of its last dense layer
    grad_add: Magnitudes  # gradient arriving at the add (∂L/∂(h_in + α·branch))
    grad_skip: Magnitudes  # part handed back along the skip: the arriving gradient, unchanged
    grad_branch: Magnitudes  # part that comes back to h_in through the branch
    grad_input: Magnitudes  # their sum: ∂L/∂h_in
    cosine: np.ndarray  # cosine between skip and branch parts (nan if either is zero)

    def __len__(self) -> int:
        return len(self.name)


class Summary(NamedTuple):
    loss: float
    log10_grad_output: float  # log10 ‖∂L/∂y‖
    log10_weight_ratio: float  # log10(‖∂L/∂W_1‖ / ‖∂L/∂W_L‖)
    log10_gain: float  # log10(‖∂L/∂x‖ / ‖∂L/∂y‖): end-to-end backward gain, input against output
    log10_signal: float  # log10(rms(y) / rms(x)): the forward signal's growth (-inf: reached 0)
    verdict: Verdict
    findings: tuple[Finding, ...]  # each judged ratio outside its thresholds, in verdict order
    judged: tuple[Quantity, ...]  # the ratios the verdict looked at (others say nothing here)
    nonfinite_from: int | None  # first layer (1-based) whose forward output is not finite
    zero_from: int | None  # first layer (1-based) whose forward output is exactly zero
    thresholds: Thresholds
    warnings: tuple[str, ...] = ()  # numerical trouble met on the way, one sentence each


class Gradients(NamedTuple):
    """Full gradient tensors, kept on request (small networks, tests, cross-checks)."""

    weights: tuple[np.ndarray, ...]  # ∂L/∂W_i, (n, n) each
    biases: tuple[np.ndarray, ...]  # ∂L/∂b_i, (n,)
    inputs: tuple[np.ndarray, ...]  # ∂L/∂(input of layer i), (B, n)
    output: np.ndarray  # ∂L/∂y, (B, n)
    head_weight: np.ndarray | None = None  # (n, C) for xent
    head_bias: np.ndarray | None = None  # (C,)


class Report(NamedTuple):
    """Everything one forward/backward pass measured."""

    spec: NetworkSpec
    layers: Layers
    blocks: Blocks
    summary: Summary
    gradients: Gradients | None = None

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def zero_at_output(self) -> bool:
        """``summary.zero_from`` is the output itself: in a pre network the report holds the
        residual stream there only (its layers' outputs are the branches')."""
        return self.summary.zero_from is not None and self.spec.skip is Skip.PRE

    def plot(self) -> Figure:
        """This report as a matplotlib Figure (needs the ``plot`` extra); for several variants,
        ``gradflow.render.figures.gradients.gradient_figure(reports)``."""
        from gradflow.render.figures.gradients import gradient_figure  # matplotlib loads here

        return gradient_figure([self])
