"""How to train, without NumPy: the optimiser, its learning rate, the steps, the data and the
records' cadence, validated (the CLI builds this before NumPy loads)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from gradflow.engine.optim_spec import Optimizer

RECORDS = 100  # default --every: about this many records per run
# Default --eval-every: about this many losses on all samples. Each costs samples/batch forward
# passes: at every one of ~100 records it would cost several times the training itself.
EVALS = 20
# Defaults chosen on the default network (depth 50, width 128, sigmoid): see the README.
DEFAULT_LR: dict[Optimizer, float] = {
    Optimizer.SGD: 0.01,
    Optimizer.MOMENTUM: 0.01,
    Optimizer.ADAM: 1e-3,  # torch.optim.Adam's default
}


@dataclass(frozen=True)
class Training:
    """How to train: the optimiser, its learning rate, the steps, the data, the records."""

    optimizer: Optimizer = Optimizer.ADAM
    lr: float | None = None  # None: DEFAULT_LR of the optimiser
    steps: int = 200
    samples: int = 1024
    every: int | None = None  # None: about RECORDS records in all
    eval_every: int | None = None  # None: about EVALS losses on all samples

    def __post_init__(self) -> None:
        object.__setattr__(self, "optimizer", Optimizer.parse(self.optimizer, "optimizer"))
        for name in ("steps", "samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be a whole number at least 1, got {value!r}")
        for name in ("every", "eval_every"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 1):
                raise ValueError(f"{name}: must be at least 1, got {value!r}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr: must be a positive finite number, got {self.lr!r}")

    @property
    def learning_rate(self) -> float:
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr

    @property
    def record_every(self) -> int:
        return self.every if self.every is not None else max(1, -(-self.steps // RECORDS))

    @property
    def evaluate_every(self) -> int:
        return self.eval_every if self.eval_every is not None else max(1, -(-self.steps // EVALS))

    def recorded(self, step: int) -> bool:
        """Whether step (0-based) is recorded: every ``record_every``-th, and the last."""
        return step % self.record_every == 0 or step == self.steps - 1

    def evaluated(self, step: int) -> bool:
        """Whether the loss on all samples is taken before step's update (and after the last)."""
        return step % self.evaluate_every == 0


class TrainVerdict(str, Enum):
    LEARNS = "learns"
    FROZEN = "frozen"  # the first layer's median update ratio is below FROZEN_BELOW
    NO_PROGRESS = "no-progress"  # final loss above NO_PROGRESS_ABOVE of the initial
    NONFINITE = "nonfinite"  # stopped: a non-finite loss or gradient

    def __str__(self) -> str:
        return str(self.value)
