"""``gradflow train``'s flags → a validated Plan: the network as for the other commands, the
training (optimiser, steps, data, records) and its --fail-on checks, refused before any work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from gradflow.analysis.training import Training, TrainVerdict
from gradflow.analysis.verdict import Thresholds
from gradflow.cli.errors import BadInput
from gradflow.cli.plan import (
    NetworkFlags,
    OutputFlags,
    Plan,
    _choices,
    _spec,
    _variants,
    flag,
    outputs,
)
from gradflow.engine.optim_spec import Optimizer
from gradflow.engine.spec import NORMAL_RANGE, Loss


class TrainFlags(NamedTuple):
    """What ``gradflow train`` adds to the network flags, as given."""

    optimizer: Optimizer
    lr: float | None
    steps: int
    samples: int
    every: int | None
    eval_every: int | None


@dataclass(frozen=True)
class TrainPlan:
    """The training, validated, and the verdicts that make it exit 1."""

    training: Training
    fail_on: frozenset[TrainVerdict]


TRAIN_FAIL_ON = {
    v.value: v for v in (TrainVerdict.NONFINITE, TrainVerdict.NO_PROGRESS, TrainVerdict.FROZEN)
}


def make_train_plan(
    *,
    variants: str,
    fail_on: str | None,
    network: NetworkFlags,
    train: TrainFlags,
    output: OutputFlags,
    max_memory: str | None,
    threads: int | None = None,
) -> Plan:
    """``make_plan`` for ``gradflow train``: the network, the training, the outputs."""
    if network.loss is Loss.LINEAR:
        raise BadInput("--loss", "linear has no minimum to train towards; choose mse or xent")
    chosen = _variants(variants)
    spec = _spec(network, chosen)
    try:
        training = Training(**train._asdict())
    except ValueError as error:
        name, _, message = str(error).partition(": ")
        raise BadInput(flag(name), message) from None
    tiny, huge = NORMAL_RANGE[spec.dtype]
    if not tiny <= training.learning_rate <= huge:  # each step multiplies by it in the dtype
        raise BadInput(
            "--lr",
            f"{training.learning_rate:g} is outside {spec.dtype}'s normal range "
            f"({tiny:.3g} to {huge:.3g}): the updates would be inf, or subnormal and 0",
        )
    if training.samples % spec.batch:
        below, above = _nearest_multiples(training.samples, spec.batch)
        raise BadInput(
            "--samples",
            f"{training.samples} is not a multiple of --batch {spec.batch} (the minibatch); "
            f"nearest: {below or above}" + (f" or {above}" if below else ""),
        )
    if spec.loss is Loss.MSE and training.samples * spec.width == 1:
        raise BadInput(
            "--samples",
            "1 sample of width 1 gives the teacher one target value, with no spread to scale "
            "the targets by; use --samples 2 or more",
        )
    checks = (
        frozenset() if fail_on is None else frozenset(_choices(fail_on, "--fail-on", TRAIN_FAIL_ON))
    )
    return Plan(
        command="train",
        spec=spec,
        variants=chosen,
        thresholds=Thresholds(),
        fail_on=frozenset(),
        train=TrainPlan(training, checks),
        **outputs(output, max_memory, threads),
    )


def _nearest_multiples(value: int, k: int) -> tuple[int, int]:
    return (value // k) * k, (value // k + 1) * k
