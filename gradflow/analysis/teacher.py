"""The data ``gradflow train`` learns: inputs, a fixed random teacher's answers, and the order.

    x       (S, n) ~ N(0, I), S = --samples rows of the network's width
    mse     target = tanh(x A) C / std, A and C (n, n) with entries N(0, 1/n): a smooth
            function the network can fit, rescaled to unit variance over all its entries
    xent    labels = argmax(x D), D (n, C) with entries N(0, 1/n): linearly separable classes
    order   (steps, B): the rows of each step's minibatch; a fresh permutation of the S rows
            every epoch, cut into S/B minibatches (S is a multiple of B)

Everything is drawn from the seed, in streams of its own (spawn keys 4 and 5; the network's
arrays use 0-3), so the data do not change with the depth, the wiring or the optimiser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gradflow.engine.spec import Loss, NetworkSpec
from gradflow.engine.threads import one_blas_thread

DATA_STREAM, ORDER_STREAM = 4, 5  # SeedSequence children after build()'s four


@dataclass(frozen=True)
class TeacherData:
    """A training set and the order in which its rows are visited."""

    x: np.ndarray  # (S, n)
    target: np.ndarray | None  # (S, n) for mse
    labels: np.ndarray | None  # (S,) int64 for xent
    order: np.ndarray  # (steps, B) int64 row indices into x

    @property
    def samples(self) -> int:
        return int(self.x.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """x, target or labels, and order, for ``np.savez``."""
        out = {"x": self.x}
        if self.target is not None:
            out["target"] = self.target
        if self.labels is not None:
            out["labels"] = self.labels
        out["order"] = self.order
        return out


@one_blas_thread  # the teacher's products: the same bits whatever the BLAS thread count
def teacher_data(spec: NetworkSpec, samples: int, steps: int) -> TeacherData:
    """The teacher data for ``spec`` (its width, loss, classes, dtype, seed; its batch is the
    minibatch size)."""
    if spec.loss is Loss.LINEAR:
        raise ValueError("loss: linear has no minimum to train towards; choose mse or xent")
    if samples % spec.batch:
        raise ValueError(f"samples: {samples} is not a multiple of batch {spec.batch}")
    n, dtype = spec.width, np.dtype(spec.dtype.value)
    streams = np.random.default_rng(spec.seed).spawn(ORDER_STREAM + 1)
    data_rng, order_rng = streams[DATA_STREAM], streams[ORDER_STREAM]
    x = data_rng.standard_normal((samples, n))  # float64 draws, cast once at the end
    target = labels = None
    if spec.loss is Loss.XENT:
        d = data_rng.standard_normal((n, spec.classes)) / math.sqrt(n)
        labels = np.argmax(x @ d, axis=1).astype(np.int64)  # (S,)
    else:
        a = data_rng.standard_normal((n, n)) / math.sqrt(n)
        c = data_rng.standard_normal((n, n)) / math.sqrt(n)
        y = np.tanh(x @ a) @ c  # (S, n)
        spread = float(y.std())
        if not spread > 0:  # one value (a sample of width 1): nothing to scale by
            raise ValueError(f"samples: the teacher's {y.size} target value(s) do not vary")
        target = (y / spread).astype(dtype)
    order = minibatch_order(order_rng, samples, spec.batch, steps)
    return TeacherData(x.astype(dtype), target, labels, order)


def minibatch_order(rng: np.random.Generator, samples: int, batch: int, steps: int) -> np.ndarray:
    """(steps, batch) row indices: each epoch a fresh permutation cut into minibatches."""
    per_epoch = samples // batch
    epochs = -(-steps // per_epoch)
    rows = [rng.permutation(samples).reshape(per_epoch, batch) for _ in range(epochs)]
    return np.concatenate(rows)[:steps].astype(np.int64)


def constant_loss(data: TeacherData, loss: Loss) -> float:
    """The loss of the best constant output, the floor a network reaches that learned nothing
    about x: mse ½·mean‖t − t̄‖² (t̄ the mean target), xent the entropy of the label frequencies."""
    if loss is Loss.XENT:
        assert data.labels is not None
        p = np.bincount(data.labels) / data.samples
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())
    assert data.target is not None
    centred = data.target.astype(np.float64) - data.target.mean(axis=0, dtype=np.float64)
    return 0.5 * float(np.vdot(centred, centred)) / data.samples
