"""The per-layer loop of a pass: chunks handed to the observer, progress, saturation counts and
sigmoid in float32, each against a computation of its own."""

from __future__ import annotations

import numpy as np
import pytest

from gradflow.analysis.statistics import StatsCollector
from gradflow.engine.activations import ACTIVATIONS
from gradflow.engine.losses import LOSSES
from gradflow.engine.network import build
from gradflow.engine.passes import backward, forward
from gradflow.engine.spec import Activation, NetworkSpec


@pytest.mark.parametrize("skip", ["none", "post", "pre"])
@pytest.mark.parametrize(("depth", "chunk"), [(10, 3), (10, 1), (10, 10), (10, 50), (12, 4)])
def test_the_observer_gets_every_chunk_once_in_order(skip: str, depth: int, chunk: int) -> None:
    spec = NetworkSpec(depth=depth, width=6, batch=4, skip=skip, block_size=2)  # type: ignore[arg-type]
    network = build(spec)
    seen: list[tuple[int, int]] = []
    outputs: list[np.ndarray] = []

    def observe(start: int, stop: int, out: np.ndarray, deriv: np.ndarray | None) -> None:
        seen.append((start, stop))
        outputs.append(out.copy())

    weights = network.weights_for(spec)
    tape, _ = forward(spec, weights, network.pass_biases(spec), network.x, observe, chunk)
    assert seen == [(s, min(s + chunk, depth)) for s in range(0, depth, chunk)]
    assert np.array_equal(np.concatenate(outputs), tape.act_out)
    if skip == "none":  # h = σ(h W), layer by layer, in plain NumPy
        h = network.x
        for i, w in enumerate(weights):
            h = 1.0 / (1.0 + np.exp(-(h @ w)))
            np.testing.assert_allclose(tape.act_out[i], h, rtol=1e-14, atol=0)


@pytest.mark.parametrize("skip", ["none", "post"])
@pytest.mark.parametrize("depth", [1000, 150, 7])
def test_backward_reports_progress_every_hundredth_of_the_layers(skip: str, depth: int) -> None:
    spec = NetworkSpec(depth=depth, width=4, batch=2, skip=skip, block_size=1)  # type: ignore[arg-type]
    network = build(spec)
    with np.errstate(all="ignore"):
        tape, y = forward(spec, network.weights_for(spec), network.pass_biases(spec), network.x)
        dy = LOSSES[spec.loss](y, network.loss_data).dy
        reported: list[int] = []
        backward(spec, tape, dy, progress=reported.append)
    every = max(1, depth // 100)
    assert reported == list(range(every, depth + 1, every))


@pytest.mark.parametrize(
    ("batch", "width"),
    [(3, 5), (4, 4), (16, 16), (8, 12), (32, 32), (64, 32)],  # rows of 15 … 2048 values
)
def test_saturated_shares_are_counts_of_small_slopes(batch: int, width: int) -> None:
    spec = NetworkSpec(depth=9, width=width, batch=batch, activation="sigmoid")
    rng = np.random.default_rng(batch * width)
    z = rng.standard_normal((9, batch, width)) * rng.choice([0.5, 8.0], size=(9, 1, 1))
    out, deriv = np.empty_like(z), np.empty_like(z)
    ACTIVATIONS[Activation.SIGMOID].forward(z, out, deriv)
    stats = StatsCollector(spec)
    stats(0, 4, out[:4], deriv[:4])
    stats(4, 9, out[4:], deriv[4:])
    threshold = 0.99 * 0.01
    expected = [sum(v < threshold for v in layer.ravel()) / (batch * width) for layer in deriv]
    assert stats.result().saturated.tolist() == expected
    assert 0 < sum(expected) < 9  # some layers saturate, not all of them fully


def test_sigmoid_in_float32_adds_in_float32() -> None:
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((64, 64)) * 6).astype(np.float32)
    out, deriv = np.empty_like(z), np.empty_like(z)
    ACTIVATIONS[Activation.SIGMOID].forward(z, out, deriv)
    one = np.float32(1.0)
    assert out.dtype == np.float32
    assert np.array_equal(out, one / (one + np.exp(-z)))  # every step in float32
    exact = 1.0 / (1.0 + np.exp(-z.astype(np.float64)))
    np.testing.assert_allclose(out, exact, rtol=4 * np.finfo(np.float32).eps)
