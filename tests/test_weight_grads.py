"""‖∂L/∂W‖ from B×B Gram matrices against the explicit product, including the cases where the
Gram sum cancels and must be redone."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradflow.analysis.analyze import analyze
from gradflow.engine.spec import NetworkSpec
from gradflow.engine.weight_grads import WeightGradients, uses_gram


def _norms(a: np.ndarray, g: np.ndarray, keep: bool) -> tuple[np.ndarray, np.ndarray, bool]:
    """Weight-gradient norms of layers with inputs a (L, B, n) and ∂L/∂z g (L, B, n), in true
    scale, plus which layers the Gram path redid; exponents are 0 (g is given at scale)."""
    depth, batch, n = a.shape
    spec = NetworkSpec(depth=depth, width=n, batch=batch, dtype=a.dtype.name)
    grads = WeightGradients(spec, a, keep=keep)
    redo = np.zeros(depth, dtype=bool)
    with np.errstate(all="ignore"):  # as in a pass: out-of-range sums are handled, not warned
        for start in range(0, depth, grads.chunk):
            stop = min(start + grads.chunk, depth)
            grads.dz[: stop - start] = g[start:stop]
            if grads.gram:
                redo[start:stop] = grads._gram_sq(a[start:stop], g[start:stop])[1]
            grads.flush(start)
    return grads.weight[:, 0] * 2.0 ** grads.weight[:, 1], grads.bias[:, 0], bool(redo.any())


def _reference(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """‖aᵀg‖_F per layer in float64, from the explicit product (scaled, so that its squares
    stay in range)."""
    norms = []
    for x, y in zip(a.astype(np.float64), g.astype(np.float64), strict=True):
        dw = x.T @ y
        peak = float(np.max(np.abs(dw)))
        norms.append(peak * float(np.linalg.norm(dw / peak)) if peak > 0 else 0.0)
    return np.array(norms)


def test_gram_path_is_taken_only_when_it_saves_work() -> None:
    assert uses_gram(NetworkSpec(width=128, batch=32), keep=False)
    assert not uses_gram(NetworkSpec(width=128, batch=32), keep=True)  # kept: formed anyway
    assert not uses_gram(NetworkSpec(width=16, batch=16), keep=False)
    assert not uses_gram(NetworkSpec(width=16, batch=16, dtype="float32"), keep=False)


def test_gram_norms_match_the_explicit_product_on_random_layers() -> None:
    rng = np.random.default_rng(3)
    a, g = rng.standard_normal((2, 40, 8, 32))
    gram, bias, redone = _norms(a, g, keep=False)
    explicit, bias_explicit, _ = _norms(a, g, keep=True)
    assert not redone  # well-conditioned: the Gram sums are used as they are
    np.testing.assert_allclose(gram, _reference(a, g), rtol=1e-13)
    np.testing.assert_allclose(explicit, _reference(a, g), rtol=1e-13)
    np.testing.assert_array_equal(bias, bias_explicit)


def test_cancelling_gram_sum_is_redone_explicitly() -> None:
    # Inputs with a large common mean, gradients with zero column sums (as batch norm makes
    # them): the mean cancels exactly in aᵀg, but A·Aᵀ is dominated by it, so ⟨AAᵀ, GGᵀ⟩ is a
    # small difference of large terms. The engine must notice and take the explicit product.
    rng = np.random.default_rng(4)
    a = 1e6 + rng.standard_normal((3, 8, 32))
    g = rng.standard_normal((3, 8, 32))
    g -= g.mean(axis=1, keepdims=True)
    gram, _, redone = _norms(a, g, keep=False)
    assert redone
    np.testing.assert_allclose(gram, _reference(a, g), rtol=1e-10)
    # the unguarded Gram sum is visibly wrong here: the check is not idle
    p, q = a @ a.transpose(0, 2, 1), g @ g.transpose(0, 2, 1)
    naive = np.sqrt(np.abs(np.einsum("kij,kij->k", p, q)))
    assert np.max(np.abs(naive / _reference(a, g) - 1)) > 1e-6


def test_float32_gram_norms_keep_float32_accuracy() -> None:
    assert uses_gram(NetworkSpec(width=128, batch=32, dtype="float32"), keep=False)
    rng = np.random.default_rng(5)
    a, g = rng.standard_normal((2, 10, 8, 48)).astype(np.float32)
    gram, _, redone = _norms(a, g, keep=False)
    explicit, _, _ = _norms(a, g, keep=True)
    assert not redone
    # the same float32 values, summed exactly in float64: both paths round only at float32 level
    np.testing.assert_allclose(gram, _reference(a, g), rtol=2e-6)
    np.testing.assert_allclose(explicit, _reference(a, g), rtol=2e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("dead_first_sample", [False, True])
def test_tiny_activations_are_rescaled_not_lost(dtype: str, dead_first_sample: bool) -> None:
    # Vanishing activations: their squares fall to the bottom of the subnormal range (float32:
    # |a| ~ 2^-74, squares ~2^-148; float64: 2^-540), so A·Aᵀ is zero or has lost its digits.
    # The first row tells the engine to scale A up before the Gram products; where that row is
    # all zero (a dead sample), the range check catches the layer and it is taken again from A
    # scaled by a power of two. Either way the Gram sums give the norm.
    shift = {"float32": -74, "float64": -540}[dtype]
    rng = np.random.default_rng(7)
    a = np.ldexp(rng.standard_normal((4, 8, 48)), shift).astype(dtype)
    if dead_first_sample:
        a[:, 0] = 0.0
    g = rng.standard_normal((4, 8, 48)).astype(dtype)
    p, q = a @ a.transpose(0, 2, 1), g @ g.transpose(0, 2, 1)
    unguarded = np.sqrt(np.einsum("kij,kij->k", p.astype(np.float64), q.astype(np.float64)))
    assert np.all(np.abs(unguarded / _reference(a, g) - 1) > 1e-3)  # the check has work to do
    depth, batch, n = a.shape
    grads = WeightGradients(NetworkSpec(depth=depth, width=n, batch=batch, dtype=dtype), a, False)
    grads.dw.fill(np.nan)  # the explicit product's buffer: stays untouched
    grads.dz[:depth] = g
    near_one, _ = grads._near_one(a)
    redone = grads._gram_sq(near_one, g)[1]
    assert redone.all() if dead_first_sample else not redone.any()
    grads.flush(0)
    assert np.isnan(grads.dw).all()
    norms = grads.weight[:, 0] * 2.0 ** grads.weight[:, 1]
    np.testing.assert_allclose(norms, _reference(a, g), rtol=2e-6 if dtype == "float32" else 1e-13)


@pytest.mark.parametrize("value", [0.0, 1e-200, 1e200])
def test_gram_sums_out_of_range_fall_back(value: float) -> None:
    rng = np.random.default_rng(6)
    a = value * rng.standard_normal((2, 4, 16))
    g = rng.standard_normal((2, 4, 16))
    gram, _, redone = _norms(a, g, keep=False)
    assert redone
    want = _reference(a, g)
    np.testing.assert_allclose(gram, want, rtol=1e-12)
    assert np.all(np.isfinite(gram)) and (value == 0.0) == (gram.max() == 0.0)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"activation": "relu", "init": "he", "skip": "post"},
        {"norm": "batch", "skip": "pre"},
        {"norm": "layer", "activation": "tanh", "dtype": "float32"},
        {"activation": "sigmoid", "skip": "post", "norm": "batch", "dtype": "float32"},
        # activations vanish below 2^-32 within the net: A is scaled before its Gram product
        {"activation": "relu", "weight_var": 0.01, "dtype": "float32"},
        {"loss": "xent", "bias_var": 0.1, "activation": "gelu"},
    ],
)
def test_report_norms_do_not_depend_on_keeping_gradients(changes: dict[str, object]) -> None:
    spec = NetworkSpec(depth=12, width=24, batch=6, block_size=3, **changes)  # type: ignore[arg-type]
    norms = analyze(spec).layers.grad_weight
    kept = analyze(spec, keep_gradients=True).layers.grad_weight
    rtol = 1e-12 if spec.dtype.value == "float64" else 1e-5  # float32: the explicit one rounds
    np.testing.assert_allclose(norms.log10, kept.log10, rtol=0, atol=rtol / math.log(10))


@pytest.mark.parametrize("width", [48, 8])  # Gram path (batch < width) and explicit path
def test_dead_layers_have_norm_zero(width: int) -> None:
    rng = np.random.default_rng(12)
    a = rng.standard_normal((3, 8, width))
    a[1] = 0.0  # a dead layer: its weight gradient is exactly 0
    g = rng.standard_normal((3, 8, width))
    norms, _, _ = _norms(a, g, keep=False)
    assert norms[1] == 0.0
    np.testing.assert_allclose(norms[[0, 2]], _reference(a, g)[[0, 2]], rtol=1e-13)
