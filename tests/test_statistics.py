"""Statistics of each layer's activations: mean, spread, dead and saturated shares, exact also
where the one-pass sums cancel, underflow or overflow."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradflow.analysis.analyze import analyze
from gradflow.analysis.statistics import mean_std
from gradflow.engine.network import build
from gradflow.engine.spec import NetworkSpec


def test_statistics_of_activations() -> None:
    spec = NetworkSpec(depth=3, width=64, batch=32, activation="relu", init="he")
    network = build(spec)
    report = analyze(spec, network=network)
    h1 = np.maximum(network.x @ network.weights[0], 0)
    assert report.layers.act_mean[0] == pytest.approx(h1.mean(), rel=1e-12)
    assert report.layers.act_std[0] == pytest.approx(h1.std(), rel=1e-12)
    assert report.layers.dead_fraction[0] == pytest.approx(np.mean(~(h1 > 0).any(axis=0)))
    assert np.isnan(report.layers.saturated_fraction).all()
    spec = NetworkSpec(depth=3, width=64, batch=32, weight_var=40.0)
    network = build(spec)
    s1 = 1 / (1 + np.exp(-(network.x @ network.weights[0])))
    s2 = 1 / (1 + np.exp(-(s1 @ network.weights[1])))
    saturated = np.mean((s2 < 0.01) | (s2 > 0.99))
    assert saturated > 0.1  # large weights saturate the sigmoid
    assert analyze(spec, network=network).layers.saturated_fraction[1] == pytest.approx(saturated)


@pytest.mark.parametrize(
    ("dtype", "offset", "spread", "rtol"),
    [
        ("float64", 0.0, 1.0, 1e-12),  # the one-pass sums hold
        ("float64", 1e6, 1e-3, 1e-11),  # mean² / var = 1e18: redone from centered values
        # mean² / var from 1e3 to 1e8: the one-pass variance loses up to mean²/var ulps
        ("float64", 30.0, 1.0, 1e-11),
        ("float64", 1e3, 1.0, 1e-11),
        ("float64", 4e3, 1.0, 1e-11),
        ("float64", 1e4, 1.0, 1e-11),
        ("float32", 0.5, 0.01, 1e-4),  # a saturating sigmoid's outputs, in float32
        ("float64", 0.0, 1e-200, 1e-12),  # squares underflow: redone exactly
        ("float64", 0.0, 1e200, 1e-12),  # squares overflow
        ("float32", 0.0, 1e-29, 1e-5),  # vanishing float32 activations: squares underflow
        ("float32", 0.3, 1e25, 1e-5),  # exploding ones: squares overflow
    ],
)
def test_mean_std_of_layer_slabs(dtype: str, offset: float, spread: float, rtol: float) -> None:
    rng = np.random.default_rng(9)
    out = (offset + spread * rng.standard_normal((5, 16, 24))).astype(dtype)
    with np.errstate(all="ignore"):  # as in a pass
        mean, std = mean_std(out)
    wide = out.astype(np.float64).reshape(5, -1)
    shift = math.frexp(spread)[1]  # scaled by a power of two (exact), so squares stay in range
    want_std = np.ldexp(np.ldexp(wide, -shift).std(axis=1), shift)
    # a mean near 0 is only as exact as the spread of the values it sums
    mean_tol = {"rtol": 1e-12} if dtype == "float64" else {"rtol": 1e-6, "atol": 1e-6 * spread}
    np.testing.assert_allclose(mean, wide.mean(axis=1), **mean_tol)
    np.testing.assert_allclose(std, want_std, rtol=rtol)


@pytest.mark.parametrize("dead_first_row", [False, True])
def test_mean_std_out_of_range_is_rescaled_then_exact(dead_first_row: bool) -> None:
    # The scale comes from each slab's first row; where that row is all zero there is none,
    # and the slab is measured exactly, one value at a time.
    rng = np.random.default_rng(10)
    out = (1e-30 * rng.standard_normal((4, 16, 24))).astype(np.float32)
    if dead_first_row:
        out[:, 0] = 0.0
    mean, std = mean_std(out)
    wide = out.astype(np.float64).reshape(4, -1)
    np.testing.assert_allclose(mean, wide.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(std, wide.std(axis=1), rtol=1e-5)


def test_dead_layers_measure_zero() -> None:
    # a dead ReLU network: from some layer on every activation is exactly 0
    out = np.random.default_rng(11).random((6, 8, 12)).astype(np.float32)
    out[2:] = 0.0
    mean, std = mean_std(out)
    assert np.all(mean[2:] == 0.0) and np.all(std[2:] == 0.0)
    np.testing.assert_allclose(std[:2], out[:2].reshape(2, -1).std(axis=1), rtol=1e-5)
