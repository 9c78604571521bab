"""What one pass returns: plain data (floats, small arrays, nested frozen dataclasses).

Magnitudes are carried as ``mantissa · 2**exponent`` because a deep network's gradient easily
leaves float64's range (a 3000-layer sigmoid net's first-layer gradient is near 1e-1884); the
``log10`` view is exact where the float ``value`` would underflow to 0 or overflow to inf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gradflow.spec import Choice, NetworkSpec, Thresholds, Verdict

__all__ = [
    "Blocks",
    "Gradients",
    "Layers",
    "Magnitudes",
    "Report",
    "Status",
    "Summary",
    "Thresholds",
    "Verdict",
]

LOG10_2 = math.log10(2.0)


class Status(Choice):
    """How a magnitude relates to float64's range."""

    OK = "ok"
    ZERO = "zero"  # exactly zero, not merely small
    UNDERFLOW = "underflow"  # nonzero, below float64's smallest subnormal; see log10
    OVERFLOW = "overflow"  # finite, above float64's largest value; see log10
    NAN = "nan"
    INF = "inf"


@dataclass(frozen=True)
class Magnitudes:
    """Non-negative magnitudes, each ``mantissa[i] · 2**exponent[i]``, exact beyond float range."""

    mantissa: np.ndarray  # float64; 0 for an exact zero, nan/inf when the pass produced them
    exponent: np.ndarray  # int64 binary exponent carried alongside

    @classmethod
    def from_values(cls, values: np.ndarray | list[float]) -> Magnitudes:
        """Wrap ordinary float magnitudes (exponent 0)."""
        mantissa = np.asarray(values, dtype=np.float64)
        return cls(mantissa, np.zeros(mantissa.shape, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.mantissa.shape[0])

    @property
    def value(self) -> np.ndarray:
        """As float64: 0 where the true value underflows, inf where it overflows."""
        with np.errstate(over="ignore", under="ignore"):
            value: np.ndarray = np.ldexp(self.mantissa, self.exponent)
        return value

    @property
    def log10(self) -> np.ndarray:
        """Exact log10 of the magnitude: -inf for zero, nan for nan, +inf for inf."""
        with np.errstate(divide="ignore", invalid="ignore"):
            log10: np.ndarray = np.log10(self.mantissa) + self.exponent * LOG10_2
        return log10

    def status(self) -> list[Status]:
        """How each magnitude relates to float64's range."""
        m, value = self.mantissa, self.value
        codes = np.select(
            [np.isnan(m), np.isinf(m), m == 0, value == 0, np.isinf(value)],
            [1, 2, 3, 4, 5],
            default=0,
        )
        order = (Status.OK, Status.NAN, Status.INF, Status.ZERO, Status.UNDERFLOW, Status.OVERFLOW)
        return [order[c] for c in codes.tolist()]


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Summary:
    loss: float
    log10_grad_output: float  # log10 ‖∂L/∂y‖
    log10_weight_ratio: float  # log10(‖∂L/∂W_1‖ / ‖∂L/∂W_L‖)
    log10_input_ratio: float  # log10(‖∂L/∂(input of layer 1)‖ / ‖∂L/∂(input of layer L)‖)
    verdict: Verdict
    nonfinite_from: int | None  # first layer (1-based) whose forward output is not finite
    zero_from: int | None  # first layer (1-based) whose forward output is exactly zero
    thresholds: Thresholds
    warnings: tuple[str, ...] = ()  # numerical trouble met on the way, one sentence each


@dataclass(frozen=True)
class Gradients:
    """Full gradient tensors, kept on request (small networks, tests, cross-checks)."""

    weights: tuple[np.ndarray, ...]  # ∂L/∂W_i, (n, n) each
    biases: tuple[np.ndarray, ...]  # ∂L/∂b_i, (n,)
    inputs: tuple[np.ndarray, ...]  # ∂L/∂(input of layer i), (B, n)
    output: np.ndarray  # ∂L/∂y, (B, n)
    head_weight: np.ndarray | None = None  # (n, C) for xent
    head_bias: np.ndarray | None = None  # (C,)


@dataclass(frozen=True)
class Report:
    """Everything one forward/backward pass measured."""

    spec: NetworkSpec
    layers: Layers
    blocks: Blocks
    summary: Summary
    gradients: Gradients | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return self.spec.label
