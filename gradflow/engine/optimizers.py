"""Optimisers with PyTorch's exact semantics (torch.optim, single-tensor code paths), in place.

    sgd       w ← w − lr·g
    momentum  buf ← g at the first step, then buf ← 0.9·buf + g;   w ← w − lr·buf
    adam      m ← m + (1 − β₁)(g − m),  v ← β₂·v + (1 − β₂)·g²     (β = (0.9, 0.999))
              w ← w − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)   ε = 1e-8, after the √

Each optimiser first writes its step Δ (what is subtracted from w) into a buffer of w's shape,
so that the update ratio ‖Δ‖/‖w‖ is measured from the update itself, then subtracts it. State
buffers are allocated once, when the optimiser is made: a step allocates no arrays of w's size.
The operations follow torch's order (adam's m is torch's ``lerp``), so the rounding matches
torch's to within an ulp per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from gradflow.engine.optim_spec import BETAS, EPS, MOMENTUM, Optimizer


@dataclass
class OptimizerState:
    """One optimiser over a list of parameter arrays: its buffers, one set per parameter."""

    kind: Optimizer
    lr: float
    steps: Sequence[np.ndarray]  # Δ of the current step, one per parameter
    first: Sequence[np.ndarray] = field(default_factory=list)  # momentum's buf, adam's m
    second: Sequence[np.ndarray] = field(default_factory=list)  # adam's v
    scratch: Sequence[np.ndarray] = field(default_factory=list)  # adam's denominator
    count: int = 0  # steps taken


def make_optimizer(kind: Optimizer, lr: float, params: Sequence[np.ndarray]) -> OptimizerState:
    """Buffers for ``kind`` over ``params``, allocated once."""

    def zeros(wanted: bool = True) -> list[np.ndarray]:
        return [np.zeros_like(p) for p in params] if wanted else []

    return OptimizerState(
        kind,
        lr,
        steps=zeros(),
        first=zeros(kind is not Optimizer.SGD),
        second=zeros(kind is Optimizer.ADAM),
        scratch=zeros(kind is Optimizer.ADAM),
    )


def _sgd(state: OptimizerState, grads: Sequence[np.ndarray]) -> None:
    for g, delta in zip(grads, state.steps, strict=True):
        np.multiply(g, state.lr, out=delta)


def _momentum(state: OptimizerState, grads: Sequence[np.ndarray]) -> None:
    for g, buf, delta in zip(grads, state.first, state.steps, strict=True):
        if state.count == 0:
            np.copyto(buf, g)  # torch: buf = clone(g) at the first step
        else:
            buf *= MOMENTUM
            buf += g
        np.multiply(buf, state.lr, out=delta)


def _adam(state: OptimizerState, grads: Sequence[np.ndarray]) -> None:
    beta1, beta2 = BETAS
    t = state.count + 1
    step_size = state.lr / (1 - beta1**t)
    root_correction = math.sqrt(1 - beta2**t)
    for g, m, v, denom, delta in zip(
        grads, state.first, state.second, state.scratch, state.steps, strict=True
    ):
        np.subtract(g, m, out=delta)  # m.lerp_(g, 1 − β₁): m + (1 − β₁)(g − m)
        delta *= 1 - beta1
        m += delta
        v *= beta2  # v.mul_(β₂).addcmul_(g, g, value=1 − β₂)
        np.multiply(g, g, out=delta)
        delta *= 1 - beta2
        v += delta
        np.sqrt(v, out=denom)  # (√v / √(1 − β₂ᵗ)) + ε
        denom /= root_correction
        denom += EPS
        np.divide(m, denom, out=delta)
        delta *= step_size


STEPS: dict[Optimizer, Callable[[OptimizerState, Sequence[np.ndarray]], None]] = {
    Optimizer.SGD: _sgd,
    Optimizer.MOMENTUM: _momentum,
    Optimizer.ADAM: _adam,
}


def compute_step(state: OptimizerState, grads: Sequence[np.ndarray]) -> Sequence[np.ndarray]:
    """Δ of this step for each parameter, into ``state.steps``; the parameters are not touched."""
    STEPS[state.kind](state, grads)
    state.count += 1
    return state.steps


def apply_step(state: OptimizerState, params: Sequence[np.ndarray]) -> None:
    """w ← w − Δ for each parameter, in place."""
    for p, delta in zip(params, state.steps, strict=True):
        p -= delta
