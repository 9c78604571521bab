"""Train the network on the teacher data and record how the gradient and the updates flow.

Every variant starts from the same initial weights (as ``compare`` wires them) and sees the same
minibatches. A step is: the minibatch's forward pass into a tape allocated once, the loss, the
explicit backward writing every ∂L/∂W and ∂L/∂b into gradient buffers allocated once (the xent
head's from the loss), then the optimiser's step Δ, subtracted in place. Every parameter is
trained: each layer's W and b and the xent head. The normalisations have no learnable γ, β in
the engine (``normalization.py``), so there is nothing to train there.

Every ``every`` steps (and at the last) a record keeps the minibatch loss before that step's
update, each layer's ‖∂L/∂W‖ (exact, as a magnitude) and its update ratio ‖ΔW‖/‖W‖ (Frobenius;
W after the update, as Karpathy's plots take it, so a zero-initialised branch end that moves
has ratio 1, not 1/0). Every ``eval_every`` steps, and after the last, the loss on all samples
is taken (before that step's update), minibatch by minibatch in row order, so that batch norm
sees minibatch statistics as in training. It costs samples/batch forward passes, so it has a
cadence of its own (``--eval-every 1`` takes it at every step).

A non-finite loss or gradient stops that variant: the step and the layer where the first
non-finite value appeared are reported (forward: the first layer whose step gave one, its
product, normalisation, φ or block's add, found by running the pass again with a check a step;
backward: the first layer the gradient reached with a non-finite ‖∂L/∂W‖; update: an update
that left a parameter non-finite, found where the next pass fails or, where a bounded φ hides
it, at the next recorded step), and the records up to there are kept.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from gradflow.analysis.analyze import estimate_bytes, variant_spec
from gradflow.analysis.assemble import branch_zeros_may_be_true, layer_names
from gradflow.analysis.side_by_side import Shares, share, side_by_side
from gradflow.analysis.teacher import TeacherData, constant_loss, teacher_data
from gradflow.analysis.training import Training, TrainVerdict
from gradflow.engine.losses import LOSSES, LossData, LossResult
from gradflow.engine.magnitudes import Magnitudes, checked_norm, sum_sq
from gradflow.engine.network import Network, build
from gradflow.engine.optimizers import buffer_count, make_optimizer, update
from gradflow.engine.passes import backward, first_nonfinite, forward, forward_again
from gradflow.engine.spec import Activation, Loss, NetworkSpec, Skip
from gradflow.engine.tape import Tape
from gradflow.engine.threads import one_blas_thread
from gradflow.engine.weight_grads import Method, gradient_buffers

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RULE_OF_THUMB = 1e-3  # Karpathy: update/weight ratios near 1e-3 train well
FROZEN_BELOW = 1e-6  # a median ratio below this: 1,000 steps change the layer by under 0.1%
NO_PROGRESS_ABOVE = 0.9  # final full-data loss above this share of the initial one

Progress = Callable[[int, int], None]  # (steps done, steps in all)


@dataclass(frozen=True)
class StepRecord:
    step: int  # 0-based; the update of step t is the (t+1)-th
    loss: float  # minibatch loss before this step's update
    grad_weight: Magnitudes  # (layers,) ‖∂L/∂W‖ of the minibatch, head last for xent
    update_ratio: Magnitudes  # (layers,) ‖ΔW‖/‖W‖ of this step's update


@dataclass(frozen=True)
class EvalRecord:
    step: int  # the loss on all samples before step's update (step = steps: after the last)
    loss: float


@dataclass(frozen=True)
class Stop:
    """Where a run met its first non-finite value."""

    step: int
    layer: str  # a layer name, "head", or "loss"
    stage: str  # forward | backward | evaluation (the loss on all samples) | update


@dataclass(frozen=True)
class TrainSummary:
    initial_loss: float  # on all samples, before the first step
    final_loss: float  # on all samples: after the last step, or the last evaluation if stopped
    constant_loss: float  # what the best constant output reaches (teacher.constant_loss)
    halved_at: int | None  # first evaluated step whose full-data loss is at most half the initial
    log10_ratio_first: float  # median log10 update ratio of layer 1 over the records
    log10_ratio_last: float  # and of the last dense layer
    verdict: TrainVerdict  # the first of ``holds``
    reason: str
    stopped: Stop | None
    holds: tuple[TrainVerdict, ...]  # every verdict that holds, in order (what --fail-on checks)
    warnings: tuple[str, ...] = ()  # numerical trouble short of a stop (zeros that are not)


@dataclass(frozen=True)
class TrainRun:
    label: str
    spec: NetworkSpec
    names: tuple[str, ...]  # the layers' names, "head" last for xent
    steps: list[StepRecord]
    evals: list[EvalRecord]
    summary: TrainSummary

    def plot(self) -> Figure:
        """This run's loss curve and heatmap as a matplotlib Figure (needs the ``plot`` extra);
        for several variants, ``gradflow.render.figures.training.runs_figure(runs, title)``."""
        from gradflow.render.figures.training import runs_figure  # matplotlib loads here

        return runs_figure([self], f"gradflow train: {self.label}")


@one_blas_thread
def train(
    spec: NetworkSpec,
    variants: Sequence[Skip | str],
    training: Training,
    *,
    network: Network | None = None,
    data: TeacherData | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    threads: int | None = None,
) -> list[TrainRun]:
    """Train each variant of ``spec`` from the same initial weights on the same minibatches.
    The variants train side by side, one a thread of ``threads`` (None:
    ``threads.available()``) and at most ``workers`` at once (1: one after another), each with
    its own parameters and tape; threads left over go to each step's products. The runs are
    the same bits either way (``train_bytes(..., at_once=workers)``)."""
    specs = [variant_spec(spec, v) for v in variants]
    at_once, each = share(len(specs), workers, threads)
    network = network or build(specs[0])
    data = data or teacher_data(specs[0], training.samples, training.steps)
    floor = constant_loss(data, spec.loss)
    shares = None if progress is None else Shares(progress, len(specs), training.steps)

    def run(i: int) -> TrainRun:
        done = (lambda step: None) if shares is None else partial(shares.update, i)
        with np.errstate(all="ignore"):  # overflow and NaN are results, reported below
            return Trainer(specs[i], network, data, training, each).run(floor, done)

    return side_by_side(run, len(specs), at_once)


def train_bytes(spec: NetworkSpec, training: Training, at_once: int = 1) -> int:
    """Bytes a training run holds at its peak: for each of the ``at_once`` variants training side
    by side, a pass's (the tape), its parameters, gradients and optimiser buffers (each of the
    parameters' size) and its records; once, the network and the teacher data."""
    size = np.dtype(spec.dtype.value).itemsize
    params = spec.depth * (spec.width**2 + spec.width)
    if spec.loss is Loss.XENT:
        params += spec.width * spec.classes + spec.classes
    arrays = (2 + buffer_count(training.optimizer)) * params * size
    data = training.samples * spec.width * size * 2 + training.steps * spec.batch * 8
    records = -(-training.steps // training.record_every) * (spec.depth + 1) * 3 * 16
    return estimate_bytes(spec, keep_gradients=False, at_once=at_once, redraw=False) + (
        at_once * (arrays + records) + data
    )


def initial_parameters(spec: NetworkSpec, network: Network) -> list[np.ndarray]:
    """Fresh copies of every trained array: W (L, n, n), b (L, n), and for xent the head's
    W (n, C) and b (C,), as the variant ``spec`` sees them (β-scaled, zeroed branch ends)."""
    params = [np.stack(network.weights_for(spec)), np.stack(network.biases_for(spec))]
    data = network.loss_data
    if spec.loss is Loss.XENT:
        assert data.head_weight is not None and data.head_bias is not None
        params += [data.head_weight.copy(), data.head_bias.copy()]
    return params


class Trainer:
    """One variant's training: its parameters, gradient and optimiser buffers, and tape, all
    allocated once."""

    def __init__(
        self,
        spec: NetworkSpec,
        network: Network,
        data: TeacherData,
        training: Training,
        threads: int = 1,
    ) -> None:
        self.spec, self.data, self.training = spec, data, training
        self.threads = threads  # for the step's products (the same bits for any count)
        self.params = initial_parameters(spec, network)
        self.grads = [np.zeros_like(p) for p in self.params]
        self.into = gradient_buffers(spec, self.grads[0], self.grads[1])
        self.optimizer = make_optimizer(training.optimizer, training.learning_rate, self.params)
        self.names = layer_names(spec) + (("head",) if spec.loss is Loss.XENT else ())
        self.rows = np.empty((spec.batch, spec.width), dtype=data.x.dtype)  # the minibatch
        self.tape: Tape | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """y (B, n) for x (B, n) with the current weights; the tape is made at the first call."""
        if self.tape is None:
            weights, biases = list(self.params[0]), list(self.params[1])  # views, updated in place
            self.tape, y = forward(self.spec, weights, biases, x, threads=self.threads)
            return y
        return forward_again(self.spec, self.tape, x)

    def loss(self, y: np.ndarray, rows: np.ndarray | slice) -> LossResult:
        data = self.data
        if self.spec.loss is Loss.XENT:
            assert data.labels is not None
            head = LossData(
                labels=data.labels[rows], head_weight=self.params[2], head_bias=self.params[3]
            )
            return LOSSES[Loss.XENT](y, head)
        assert data.target is not None
        return LOSSES[self.spec.loss](y, LossData(target=data.target[rows]))

    def evaluate(self, t: int) -> tuple[float, Stop | None]:
        """The loss on all samples, minibatch by minibatch in row order (mean of the means),
        before step ``t``; and a Stop where a minibatch's loss is not finite."""
        batch, chunks = self.spec.batch, self.data.samples // self.spec.batch
        total = 0.0
        for c in range(chunks):
            rows = slice(c * batch, (c + 1) * batch)
            x = self.data.x[rows]
            y = self.forward(x)
            value = self.loss(y, rows).value
            if not math.isfinite(value):
                return value, self._stop(t, x, "evaluation")
            total += value
        return total / chunks, None

    def run(self, floor: float, progress: Callable[[int], None]) -> TrainRun:
        training = self.training
        steps: list[StepRecord] = []
        evals: list[EvalRecord] = []
        stop: Stop | None = None
        for t in range(training.steps):
            if training.evaluated(t):
                loss, stop = self.evaluate(t)
                evals.append(EvalRecord(t, loss))
                if stop is not None:
                    break
            outcome = self.step(t, training.recorded(t))
            if isinstance(outcome, Stop):
                stop = outcome
                break
            if outcome is not None:
                steps.append(outcome)
                # a bounded φ can hide an inf weight from the loss: checked where recorded
                # (the last step always is), at a pass over the parameters a record
                stop = self._broken_by_update(t + 1)  # by this step's update, or before
                if stop is not None:
                    break
            progress(t + 1)
        if stop is None:  # the loss after the last step: a non-finite one stops the run there
            loss, stop = self.evaluate(training.steps)
            evals.append(EvalRecord(training.steps, loss))
        summary = summarize(steps, evals, stop, floor, self.names, self.spec.dtype.value)
        zero = _rounded_to_zero(self.spec, steps, self.names[0])
        if zero is not None:
            summary = dataclasses.replace(summary, warnings=(zero,))
        return TrainRun(self.spec.label, self.spec, self.names, steps, evals, summary)

    def step(self, t: int, record: bool) -> StepRecord | Stop | None:
        """One training step on minibatch t; its record if ``record``; a Stop if a value was
        not finite (the parameters are then left as they were)."""
        order = self.data.order[t]
        np.take(self.data.x, order, axis=0, out=self.rows)
        y = self.forward(self.rows)
        result = self.loss(y, order)
        if not math.isfinite(result.value):
            return self._stop(t, self.rows, "forward")
        assert self.tape is not None  # made by the forward pass above
        records = backward(self.spec, self.tape, result.dy, method=Method.EXPLICIT, into=self.into)
        grad_weight = records.grad_weight
        if result.head_weight_grad is not None and result.head_bias_grad is not None:
            np.copyto(self.grads[2], result.head_weight_grad)
            np.copyto(self.grads[3], result.head_bias_grad)
            grad_weight = _append(
                grad_weight, checked_norm(sum_sq(self.grads[2]), self.grads[2], 0)
            )
        bad = ~np.isfinite(grad_weight.mantissa)
        if bad.any():  # backward meets the layers last to first: the highest one came first
            return self._broken_by_update(t) or Stop(
                t, self.names[int(np.flatnonzero(bad)[-1])], "backward"
            )
        update(self.optimizer, self.params, self.grads)
        if not record:
            return None
        return StepRecord(t, result.value, grad_weight, self._update_ratios())

    def _update_ratios(self) -> Magnitudes:
        """‖ΔW‖/‖W‖ of each layer (head last), W after the update."""
        steps = self.optimizer.steps
        pairs = [(steps[0], self.params[0])]  # (L, n, n) each
        if len(self.params) > 2:
            pairs.append((steps[2][None], self.params[2][None]))  # the head, (1, n, C)
        mantissa: list[float] = []
        exponent: list[int] = []
        for delta, w in pairs:
            sq, w_sq = _square_sums(delta), _square_sums(w)
            for k in range(len(delta)):
                m, e = checked_norm(float(sq[k]), delta[k], 0)  # exact also when Δ is tiny
                if m != 0.0:  # ‖W‖ too: its squares can leave the range where W has not
                    w_m, w_e = checked_norm(float(w_sq[k]), w[k], 0)
                    m, e = (m / w_m, e - w_e) if w_m else (math.inf, 0)
                mantissa.append(m)  # 0: no update at all, whatever ‖W‖ is
                exponent.append(e)
        return Magnitudes(np.array(mantissa), np.array(exponent, dtype=np.int64))

    def _stop(self, t: int, x: np.ndarray, stage: str) -> Stop:
        """Where the first non-finite value of step ``t``'s ``stage`` (forward, evaluation)
        on x came from: an update before it that left a parameter non-finite, else the first
        layer whose forward step gave one, else the loss (or the xent head)."""
        broken = self._broken_by_update(t)
        if broken is not None:
            return broken
        weights, biases = list(self.params[0]), list(self.params[1])
        layer = first_nonfinite(self.spec, weights, biases, x)
        if layer is not None:
            return Stop(t, self.names[layer], stage)
        return Stop(t, "head" if self.spec.loss is Loss.XENT else "loss", stage)

    def _broken_by_update(self, t: int) -> Stop | None:
        """Where an update before step ``t`` left a parameter non-finite: the stop at that
        update (the initial parameters are finite)."""
        broken = self._nonfinite_parameters()
        return None if broken is None or t == 0 else Stop(t - 1, self.names[broken], "update")

    def _nonfinite_parameters(self) -> int | None:
        """The first layer (the head last) whose weights or biases are not all finite."""
        depth = self.spec.depth
        finite = [
            np.isfinite(self.params[0].reshape(depth, -1)).all(axis=1)
            & np.isfinite(self.params[1]).all(axis=1)
        ]
        if len(self.params) > 2:
            finite.append(
                np.array([np.isfinite(self.params[2]).all() and np.isfinite(self.params[3]).all()])
            )
        bad = np.flatnonzero(~np.concatenate(finite))
        return int(bad[0]) if len(bad) else None


def _share(final: float, initial: float) -> str:
    """final / initial as a percentage: 97%, 3.5e+202% (mse and xent losses are ≥ 0)."""
    ratio = final / initial if initial > 0 else math.nan
    if not math.isfinite(ratio):
        return "n/a"
    return f"{ratio:.0%}" if ratio < 100 else f"{100 * ratio:.2g}%"


def _square_sums(stack: np.ndarray) -> np.ndarray:
    """Σ x² of each (n, m) slab of a (K, n, m) stack, (K,)."""
    flat = stack.reshape(len(stack), -1)
    sums: np.ndarray = np.vecdot(flat, flat)
    return sums


def _append(m: Magnitudes, extra: tuple[float, int]) -> Magnitudes:
    return Magnitudes(np.append(m.mantissa, extra[0]), np.append(m.exponent, np.int64(extra[1])))


def summarize(
    steps: list[StepRecord],
    evals: list[EvalRecord],
    stop: Stop | None,
    floor: float,
    names: tuple[str, ...],
    dtype: str = "float64",
) -> TrainSummary:
    """Initial and final loss, when it halved, the median update ratios, and the verdict.
    Each finding in the reason leads with its verdict (``frozen: fc1 is stuck …``), so
    that a log line can be searched for it. ``dtype``: the run's; an update ratio below its
    relative spacing (2.2e-16 in float64) rounds away in all but the smallest weights."""
    initial, final = evals[0].loss, evals[-1].loss
    halved = (  # an infinite (or nan) initial loss halves to nothing
        next((e.step for e in evals if e.loss <= initial / 2), None)
        if math.isfinite(initial)
        else None
    )
    last = len(names) - 1 - (names[-1] == "head")  # the last dense layer
    if steps:
        ratios = np.array([s.update_ratio.log10 for s in steps])  # (records, layers)
        first_ratio, last_ratio = (float(np.median(ratios[:, i])) for i in (0, last))
    else:
        first_ratio = last_ratio = math.nan
    findings: list[tuple[TrainVerdict, str]] = []
    if stop is not None:
        findings.append(
            (
                TrainVerdict.NONFINITE,
                f"stopped at step {stop.step}: first non-finite value in {stop.stage} "
                f"at {stop.layer}",
            )
        )
    if stop is None and not final <= NO_PROGRESS_ABOVE * initial:
        findings.append(
            (
                TrainVerdict.NO_PROGRESS,
                f"loss {initial:.4g} → {final:.4g} ({_share(final, initial)}); "
                f"a constant output reaches {floor:.4g}",
            )
        )
    if first_ratio < math.log10(FROZEN_BELOW):
        peak = float(ratios[:, 0].max()) if steps else math.nan
        if peak >= math.log10(FROZEN_BELOW):  # one step did move it
            text = (
                f"{names[0]} stopped moving: median update ratio {ratio_text(first_ratio)} "
                f"(largest {ratio_text(peak)})"
            )
        elif peak == -math.inf:  # every update exactly 0: its gradient is 0 (α = 0, say)
            text = f"{names[0]} never moved: every update was exactly 0"
        elif peak < math.log10(np.finfo(dtype).eps):  # no update reached the dtype's spacing
            text = (
                f"{names[0]} is stuck below {dtype}'s resolution: "
                f"update ratio {ratio_text(first_ratio)}"
            )
        else:
            text = f"{names[0]} barely moved: update ratio {ratio_text(first_ratio)}"
        findings.append((TrainVerdict.FROZEN, text))
    if not findings:
        when = f"halved by step {halved}" if halved is not None else "not halved"
        text = f"loss {initial:.4g} → {final:.4g}, {when}"
        if not final < floor:  # the loss of predicting the targets' mean, without x
            text += f"; still not below what a constant output reaches ({floor:.4g})"
        findings.append((TrainVerdict.LEARNS, text))
    verdict = findings[0][0]
    reason = "; ".join(f"{v}: {text}" for v, text in findings)
    holds = tuple(v for v, _ in findings)
    return TrainSummary(
        initial, final, floor, halved, first_ratio, last_ratio, verdict, reason, stop, holds
    )


def _rounded_to_zero(spec: NetworkSpec, steps: list[StepRecord], name: str) -> str | None:
    """A warning where layer 1's ‖∂L/∂W‖ is exactly 0 at a recorded step whose loss is finite
    and not 0, and no exact zero is possible there (ReLU's dead units, a branch zeroed or
    scaled by 0): the gradient rounded to 0 on its way down, saturated φ′ or underflow."""
    if spec.activation is Activation.RELU or (spec.residual and branch_zeros_may_be_true(spec)):
        return None
    for record in steps:
        if record.grad_weight.mantissa[0] == 0 and 0 < record.loss < math.inf:
            return (
                f"‖∂L/∂W‖ of {name} is 0 in {spec.dtype} at step {record.step}, though the "
                "loss is not: the gradient rounded to 0 on its way down (saturated φ′ or "
                "underflow), not a true zero"
            )
    return None


def ratio_text(log10: float) -> str:
    """A ratio from its log10, to one significant digit: ``1e-27``, ``3e-03``, ``0``."""
    if log10 == -math.inf:
        return "0"
    if not math.isfinite(log10):
        return str(log10)
    exponent = math.floor(log10)
    mantissa = round(10 ** (log10 - exponent))
    if mantissa == 10:
        mantissa, exponent = 1, exponent + 1
    return f"{mantissa}e{exponent:+03d}" if exponent < -4 or exponent > 4 else f"{10**log10:.1g}"
