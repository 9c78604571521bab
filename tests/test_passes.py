"""The pass driver's services: norms by either method, and a block's transposed Jacobian
applied to a stack of vectors."""

from __future__ import annotations

import numpy as np
import pytest

from gradflow.analysis.analyze import analyze
from gradflow.engine.losses import LOSSES
from gradflow.engine.network import build
from gradflow.engine.passes import after_add_vjp, blocks, branch_vjp, first_nonfinite, forward
from gradflow.engine.spec import NetworkSpec


@pytest.mark.parametrize(
    ("skip", "norm", "activation"),
    [
        ("post", "none", "tanh"),
        ("post", "batch", "relu"),
        ("pre", "layer", "gelu"),
        ("pre", "none", "relu"),
        ("postnorm", "layer", "sigmoid"),
        ("postnorm", "batch", "leaky_relu"),
    ],
)
def test_block_jacobians_rebuild_the_input_gradient(skip: str, norm: str, activation: str) -> None:
    """Walking the blocks back with after_add_vjp and branch_vjp, g_in = s·A(g) + J_Fᵀ(α·A(g)),
    gives ∂L/∂x of the ordinary pass; for a stack of vectors, each one's own."""
    spec = NetworkSpec(
        depth=8, width=7, batch=5, block_size=2, skip=skip, norm=norm, activation=activation,  # type: ignore[arg-type]
        residual_scale=0.7, skip_scale=1.3, bias_var=0.1,
    )  # fmt: skip
    network = build(spec)
    report = analyze(spec, network=network, keep_gradients=True)
    assert report.gradients is not None
    expected = report.gradients.inputs[0]  # ∂L/∂x, (B, n)

    weights, biases = network.weights_for(spec), network.biases_for(spec)
    tape, y = forward(spec, weights, biases, network.x)
    dy = LOSSES[spec.loss](y, network.loss_data).dy
    other = np.random.default_rng(1).standard_normal(dy.shape)
    g = np.stack([dy, 3.0 * dy, other])  # (M, B, n)
    for block in reversed(blocks(spec)):
        arriving = after_add_vjp(spec, tape, block, g)
        g = spec.skip_scale * arriving + branch_vjp(
            spec, tape, block, spec.residual_scale * arriving
        )
    np.testing.assert_allclose(g[0], expected, rtol=1e-12, atol=1e-14 * np.abs(expected).max())
    np.testing.assert_allclose(g[1], 3.0 * g[0], rtol=1e-12, atol=1e-14 * np.abs(g[0]).max())
    assert not np.allclose(g[2], g[0])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("skip", ["none", "pre", "postnorm"])
def test_gram_and_explicit_methods_agree(dtype: str, skip: str) -> None:
    spec = NetworkSpec(
        depth=12, width=24, batch=6, skip=skip, norm="layer", activation="tanh", dtype=dtype,  # type: ignore[arg-type]
    )  # fmt: skip
    network = build(spec)
    by = {m: analyze(spec, network=network, method=m).layers for m in ("auto", "gram", "explicit")}
    rtol = 1e-12 if dtype == "float64" else 2e-6
    for method in ("gram", "explicit"):
        np.testing.assert_allclose(by[method].grad_weight.value, by["auto"].grad_weight.value, rtol)
    kept = analyze(spec, network=network, keep_gradients=True, method="gram")
    assert kept.gradients is not None  # kept gradients are formed, whatever the method
    norms = [np.linalg.norm(w.astype(np.float64)) for w in kept.gradients.weights]
    np.testing.assert_allclose(by["gram"].grad_weight.value[: spec.depth], norms, rtol)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="method"):
        analyze(NetworkSpec(depth=2, width=4, batch=2), method="fast")


# ---- locating the first non-finite value -----------------------------------------------------


@pytest.mark.parametrize("skip", ["none", "post", "pre", "postnorm"])
@pytest.mark.parametrize("layer", [0, 2, 3])
def test_first_nonfinite_names_the_layer_whose_product_overflowed(skip: str, layer: int) -> None:
    """One row of the layer's weights is inf: its product is ±inf in every column, which tanh
    after it turns into ±1, so the layer outputs the tape keeps need not show it."""
    norm = "layer" if skip == "postnorm" else "none"
    spec = NetworkSpec(depth=6, width=8, batch=4, activation="tanh", skip=skip, norm=norm)
    rng = np.random.default_rng(0)
    weights = list(rng.standard_normal((6, 8, 8)) * 0.3)
    weights[layer][0] = np.inf
    x = rng.standard_normal((4, 8))
    assert first_nonfinite(spec, weights, None, x) == layer
    if skip == "none":  # tanh(±inf) = ±1: the layer's output is finite, and so are the rest
        with np.errstate(all="ignore"):
            tape, y = forward(spec, weights, None, x)
        assert np.isfinite(tape.dense_in).all() and np.isfinite(y).all()
    weights[layer][0] = 0.0
    assert first_nonfinite(spec, weights, None, x) is None


def test_first_nonfinite_names_the_add_that_overflowed_and_none_where_all_is_finite() -> None:
    """post with tanh: s = 1e200 takes the sum at block 2's add to inf (1e400), and tanh after
    the add hides it; a stream that stays finite gives None."""
    spec = NetworkSpec(depth=8, width=8, batch=4, activation="tanh", skip="post", skip_scale=1e200)
    rng = np.random.default_rng(1)
    weights = list(rng.standard_normal((8, 8, 8)) * 0.3)
    x = rng.standard_normal((4, 8))
    # block 1's output is tanh(...) in [-1, 1]: s·h ≤ 1e200 at every add, never inf
    assert first_nonfinite(spec, weights, None, x) is None
    pre = spec.replace(skip="pre")  # pre: the stream is s^b·x + ...: 1e400 at block 2's add
    assert first_nonfinite(pre, weights, None, x) == 3  # block2.fc2, the block's last layer
    assert first_nonfinite(pre.replace(skip_scale=1.0), weights, None, x) is None
