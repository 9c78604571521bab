"""Each operation's backward against finite differences (float64) and an independent forward."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from gradflow.engine.activations import _MOMENT_GAINS, ACTIVATIONS
from gradflow.engine.losses import LOSSES, LossData
from gradflow.engine.normalization import normalize, normalize_backward
from gradflow.engine.spec import Activation, Loss

RNG_SEED = 1234


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


# Independent scalar definitions, written from the textbook formulas with the math module.
SCALAR = {
    Activation.RELU: lambda z: max(z, 0.0),
    Activation.LEAKY_RELU: lambda z: z if z > 0 else 0.01 * z,
    Activation.TANH: math.tanh,
    Activation.SIGMOID: _sigmoid,
    Activation.GELU: lambda z: 0.5 * z * (1.0 + math.erf(z / math.sqrt(2.0))),
    Activation.SILU: lambda z: z * _sigmoid(z),
    Activation.SELU: lambda z: (
        1.0507009873554805 * (z if z > 0 else 1.6732632423543772 * math.expm1(z))
    ),
    Activation.ELU: lambda z: z if z > 0 else math.expm1(z),
    Activation.SOFTPLUS: lambda z: max(z, 0.0) + math.log1p(math.exp(-abs(z))),
    Activation.LINEAR: lambda z: z,
}


def _apply(activation: Activation, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, d = np.empty_like(z), np.empty_like(z)
    ACTIVATIONS[activation].forward(z.copy(), h, d)
    return h, d


@pytest.mark.parametrize("activation", list(Activation))
def test_activation_forward_matches_scalar_formula(activation: Activation) -> None:
    z = np.random.default_rng(RNG_SEED).normal(scale=3.0, size=(7, 9))
    h, _ = _apply(activation, z)
    expected = np.vectorize(SCALAR[activation])(z)
    np.testing.assert_allclose(h, expected, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("activation", list(Activation))
def test_activation_derivative_matches_finite_differences(activation: Activation) -> None:
    z = np.random.default_rng(RNG_SEED).normal(scale=3.0, size=(7, 9))
    z[np.abs(z) < 1e-2] = 0.5  # stay off the kink of ReLU-like functions
    eps = 1e-5
    _, d = _apply(activation, z)
    plus, _ = _apply(activation, z + eps)
    minus, _ = _apply(activation, z - eps)
    np.testing.assert_allclose(d, (plus - minus) / (2 * eps), rtol=1e-7, atol=1e-9)


def test_extreme_inputs_stay_finite() -> None:
    z = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]])
    for activation in Activation:
        with np.errstate(all="ignore"):
            h, d = _apply(activation, z)
        assert np.isfinite(h).all() and np.isfinite(d).all(), activation


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "tanh", "sigmoid", "selu", "linear"])
def test_gains_match_pytorch_calculate_gain(name: str) -> None:
    expected = torch.nn.init.calculate_gain(name, 0.01 if name == "leaky_relu" else None)
    assert ACTIVATIONS[Activation(name)].gain == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", sorted(_MOMENT_GAINS))
def test_second_moment_gains_rederived_by_quadrature(name: str) -> None:
    """Gains PyTorch lacks are 1/sqrt(E[φ(z)²]), z ~ N(0, 1)."""
    phi = SCALAR[Activation(name)]

    def integrand(z: float) -> float:
        return phi(z) ** 2 * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    second_moment = sum(quad(integrand, a, b, epsabs=1e-14)[0] for a, b in [(-40, 0), (0, 40)])
    assert ACTIVATIONS[Activation(name)].gain == pytest.approx(second_moment**-0.5, rel=1e-10)


def _directional_fd(
    f: Callable[[np.ndarray], float], x: np.ndarray, direction: np.ndarray, eps: float = 1e-4
) -> float:
    """Fourth-order central difference of f along direction."""
    return (
        8 * (f(x + eps * direction) - f(x - eps * direction))
        - (f(x + 2 * eps * direction) - f(x - 2 * eps * direction))
    ) / (12 * eps)


@pytest.mark.parametrize("axis", [0, 1])
def test_normalize_backward_matches_finite_differences(axis: int) -> None:
    rng = np.random.default_rng(RNG_SEED)
    z = rng.normal(loc=0.7, scale=2.0, size=(6, 5))
    upstream = rng.normal(size=z.shape)
    direction = rng.normal(size=z.shape)
    shape = (1, 5) if axis == 0 else (6, 1)

    def f(v: np.ndarray) -> float:
        xhat, inv = np.empty_like(v), np.empty(shape)
        normalize(v, axis, xhat, inv)
        return float(np.sum(xhat * upstream))

    xhat, inv = np.empty_like(z), np.empty(shape)
    normalize(z, axis, xhat, inv)
    grad = np.empty_like(z)
    normalize_backward(upstream, xhat, inv, axis, out=grad)
    assert float(np.sum(grad * direction)) == pytest.approx(
        _directional_fd(f, z, direction), rel=1e-8
    )
    # independent forward: statistics over the axis, biased variance, eps 1e-5
    mu, var = z.mean(axis=axis, keepdims=True), z.var(axis=axis, keepdims=True)
    np.testing.assert_allclose(xhat, (z - mu) / np.sqrt(var + 1e-5), rtol=1e-13)


def _loss_data(loss: Loss, rng: np.random.Generator) -> LossData:
    if loss is Loss.XENT:
        return LossData(
            labels=rng.integers(0, 4, size=6),
            head_weight=rng.normal(size=(5, 4)),
            head_bias=rng.normal(size=4),
        )
    return LossData(target=rng.normal(size=(6, 5)))


@pytest.mark.parametrize("loss", list(Loss))
def test_loss_gradient_matches_finite_differences(loss: Loss) -> None:
    rng = np.random.default_rng(RNG_SEED)
    y, data = rng.normal(size=(6, 5)), _loss_data(loss, rng)
    direction = rng.normal(size=y.shape)
    result = LOSSES[loss](y, data)
    fd = _directional_fd(lambda v: LOSSES[loss](v, data).value, y, direction)
    assert float(np.sum(result.dy * direction)) == pytest.approx(fd, rel=1e-8)


def test_xent_head_gradients_match_finite_differences() -> None:
    rng = np.random.default_rng(RNG_SEED)
    y, data = rng.normal(size=(6, 5)), _loss_data(Loss.XENT, rng)
    result = LOSSES[Loss.XENT](y, data)
    assert data.head_weight is not None and data.head_bias is not None
    dw = rng.normal(size=data.head_weight.shape)
    fd_w = _directional_fd(
        lambda w: LOSSES[Loss.XENT](y, LossData(data.target, data.labels, w, data.head_bias)).value,
        data.head_weight,
        dw,
    )
    assert result.head_weight_grad is not None
    assert float(np.sum(result.head_weight_grad * dw)) == pytest.approx(fd_w, rel=1e-8)


def test_loss_values_match_their_definitions() -> None:
    rng = np.random.default_rng(RNG_SEED)
    y = rng.normal(size=(6, 5))
    t = rng.normal(size=(6, 5))
    assert LOSSES[Loss.MSE](y, LossData(target=t)).value == pytest.approx(
        sum(np.sum((y[b] - t[b]) ** 2) for b in range(6)) / 12, rel=1e-14
    )
    assert LOSSES[Loss.LINEAR](y, LossData(target=t)).value == pytest.approx(
        sum(float(y[b] @ t[b]) for b in range(6)) / 6, rel=1e-14
    )
    data = _loss_data(Loss.XENT, rng)
    assert data.head_weight is not None and data.head_bias is not None and data.labels is not None
    logits = y @ data.head_weight + data.head_bias
    expected = np.mean(
        [math.log(np.sum(np.exp(row))) - row[c] for row, c in zip(logits, data.labels, strict=True)]
    )
    assert LOSSES[Loss.XENT](y, data).value == pytest.approx(expected, rel=1e-13)
