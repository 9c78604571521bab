"""The whole pass: finite differences through every option, exact identities, log-scaled
magnitudes beyond float range, determinism."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest

from gradflow.analysis.analyze import analyze, compare
from gradflow.analysis.results import Report
from gradflow.analysis.verdict import Verdict
from gradflow.engine.initializers import layer_norms
from gradflow.engine.magnitudes import Magnitudes, Status
from gradflow.engine.network import Network, build
from gradflow.engine.spec import Activation, Init, Loss, NetworkSpec, Norm, Skip

SMALL = dict(depth=6, width=5, batch=7, block_size=3, init="he", bias_var=0.1)


def _loss(spec: NetworkSpec, network: Network) -> float:
    return analyze(spec, network=network).summary.loss


def _fd(f: Callable[[float], float], eps: float) -> float:
    """Fourth-order central difference of f at 0."""
    return (8 * (f(eps) - f(-eps)) - (f(2 * eps) - f(-2 * eps))) / (12 * eps)


KINKED = {Activation.RELU, Activation.LEAKY_RELU, Activation.SELU}  # φ' jumps at 0


def _check_fd(spec: NetworkSpec, seed: int = 0) -> None:
    """Directional derivatives of the loss along random directions in W, b and x."""
    network = build(spec)
    grads = analyze(spec, network=network, keep_gradients=True).gradients
    assert grads is not None
    if spec.zero_init_residual or spec.branch_weight_scale != 1.0:
        # Perturb around the weights the run uses (zeroed, β-scaled): the same run without
        # the flags, on those weights.
        arrays = network.arrays(spec)
        weights = np.stack([arrays[f"W{i + 1}"] for i in range(spec.depth)])
        biases = np.stack([arrays[f"b{i + 1}"] for i in range(spec.depth)])
        network = dataclasses.replace(network, weights=weights, biases=biases)
        spec = spec.replace(zero_init_residual=False, branch_weight_scale=1.0)
        same = analyze(spec, network=network, keep_gradients=True).gradients
        assert same is not None
        for a, b in zip(grads.weights, same.weights, strict=True):
            assert np.array_equal(a, b)
    eps = 1e-6 if spec.activation in KINKED else 1e-4  # small steps rarely cross a kink
    # Finite differences cannot resolve below the loss's rounding noise, about |L|·1e-16/eps.
    noise = 1e-9 * max(1.0, abs(_loss(spec, network)))
    rng = np.random.default_rng(seed)
    for layer in sorted({0, spec.depth // 2, spec.depth - 1}):
        dw = rng.standard_normal(network.weights[layer].shape)
        db = rng.standard_normal(network.biases[layer].shape)

        def perturb_w(t: float, layer: int = layer, dw: np.ndarray = dw) -> float:
            w = network.weights.copy()
            w[layer] += t * dw
            return _loss(spec, dataclasses.replace(network, weights=w))

        def perturb_b(t: float, layer: int = layer, db: np.ndarray = db) -> float:
            b = network.biases.copy()
            b[layer] += t * db
            return _loss(spec, dataclasses.replace(network, biases=b))

        _assert_close(float(np.sum(grads.weights[layer] * dw)), _fd(perturb_w, eps), noise)
        _assert_close(float(np.sum(grads.biases[layer] * db)), _fd(perturb_b, eps), noise)
    dx = rng.standard_normal(network.x.shape)

    def perturb_x(t: float) -> float:
        return _loss(spec, dataclasses.replace(network, x=network.x + t * dx))

    _assert_close(float(np.sum(grads.inputs[0] * dx)), _fd(perturb_x, eps), noise)


def _assert_close(analytic: float, numeric: float, noise: float) -> None:
    """Relative error ≤ 1e-6, above the finite-difference noise floor."""
    assert abs(analytic - numeric) <= 1e-6 * max(abs(analytic), abs(numeric)) + noise, (
        analytic,
        numeric,
    )


@pytest.mark.parametrize(
    ("skip", "norm", "loss"),
    [c for c in itertools.product(Skip, Norm, Loss) if c[:2] != (Skip.POSTNORM, Norm.NONE)],
)
def test_fd_every_skip_norm_loss(skip: Skip, norm: Norm, loss: Loss) -> None:
    _check_fd(NetworkSpec(**SMALL, skip=skip, norm=norm, loss=loss, activation="tanh"))


@pytest.mark.parametrize(("activation", "skip"), list(itertools.product(Activation, Skip)))
def test_fd_every_activation(activation: Activation, skip: Skip) -> None:
    norm = Norm.LAYER if skip is Skip.POSTNORM else Norm.NONE
    _check_fd(NetworkSpec(**SMALL, skip=skip, activation=activation, residual_scale=0.6, norm=norm))


@pytest.mark.parametrize("skip", [Skip.POST, Skip.PRE, Skip.POSTNORM])
@pytest.mark.parametrize(("skip_scale", "beta"), [(1.6, 0.5), (0.7, -1.3)])
def test_fd_skip_scale_and_branch_weight_scale(skip: Skip, skip_scale: float, beta: float) -> None:
    _check_fd(
        NetworkSpec(
            **SMALL, skip=skip, activation="tanh", norm="batch", residual_scale=0.8,  # type: ignore[arg-type]
            skip_scale=skip_scale, branch_weight_scale=beta,
        )
    )  # fmt: skip


@pytest.mark.parametrize("init", list(Init))
def test_fd_every_init_and_zero_init(init: Init) -> None:
    _check_fd(NetworkSpec(**{**SMALL, "init": init}, skip="post", zero_init_residual=True))
    _check_fd(NetworkSpec(**{**SMALL, "init": init}, skip="pre", weight_var=1.7))


def test_zero_init_pre_hands_the_same_gradient_to_every_block_input() -> None:
    """With W_k = 0 every branch is cut off in backward: each block input gets ∂L/∂y itself,
    the last branch weight gets q_kᵀ·(α ∂L/∂y) and the other branch weights get nothing."""
    spec = NetworkSpec(
        depth=12, width=6, batch=4, block_size=3, skip="pre", zero_init_residual=True,
        activation="relu", init="he", bias_var=0.2, residual_scale=0.5, norm="layer",
    )  # fmt: skip
    network = build(spec)
    report = analyze(spec, network=network, keep_gradients=True)
    grads = report.gradients
    assert grads is not None
    for start in range(0, spec.depth, spec.block_size):
        assert np.array_equal(grads.inputs[start], grads.output)
    # forward by hand: with zeroed branch ends every block input is x itself
    x = network.x
    for start in range(0, spec.depth, spec.block_size):
        u = x
        for j in range(start, start + spec.block_size):
            mu, var = u.mean(axis=1, keepdims=True), u.var(axis=1, keepdims=True)
            q = np.maximum((u - mu) / np.sqrt(var + 1e-5), 0.0)
            u = q @ network.weights[j] + network.biases[j]
        last = start + spec.block_size - 1
        np.testing.assert_allclose(grads.weights[last], q.T @ (0.5 * grads.output), rtol=1e-12)
        np.testing.assert_allclose(grads.biases[last], 0.5 * grads.output.sum(axis=0), rtol=1e-12)
        for j in range(start, last):
            assert not grads.weights[j].any() and not grads.biases[j].any()
    # the split at each add: no branch part, the skip part is the whole block-input gradient
    assert report.blocks.grad_branch.status() == [Status.ZERO] * spec.blocks
    np.testing.assert_array_equal(report.blocks.grad_input.value, report.blocks.grad_skip.value)


def test_block_split_adds_up() -> None:
    spec = NetworkSpec(depth=8, width=6, batch=5, block_size=2, skip="post", activation="tanh")
    report = analyze(spec, keep_gradients=True)
    grads = report.gradients
    assert grads is not None
    blocks = report.blocks
    for b in range(spec.blocks):
        start, end = int(blocks.first_layer[b]) - 1, int(blocks.last_layer[b]) - 1
        assert blocks.grad_input.value[b] == pytest.approx(np.linalg.norm(grads.inputs[start]))
        # the add's incoming gradient is ∂L/∂(output of the block) · φ'(s)
        above = grads.inputs[end + 1] if end + 1 < spec.depth else grads.output
        assert blocks.grad_add.value[b] > 0 and np.isfinite(blocks.grad_add.value[b])
        skip, total = blocks.grad_skip.value[b], blocks.grad_input.value[b]
        branch, cos = blocks.grad_branch.value[b], blocks.cosine[b]
        # ‖skip + branch‖² = ‖skip‖² + ‖branch‖² + 2·cos·‖skip‖‖branch‖
        assert total**2 == pytest.approx(skip**2 + branch**2 + 2 * cos * skip * branch, rel=1e-10)
        assert np.linalg.norm(above) > 0


def _plain_sigmoid_by_hand(network: Network) -> list[float]:
    """Direct float64 backprop of a plain sigmoid net with mse, no rescaling anywhere."""
    hs = [network.x]
    for w, b in zip(network.weights, network.biases, strict=True):
        hs.append(1.0 / (1.0 + np.exp(-(hs[-1] @ w + b))))
    assert network.loss_data.target is not None
    g = (hs[-1] - network.loss_data.target) / network.x.shape[0]
    norms = []
    for i in reversed(range(len(network.weights))):
        dz = g * hs[i + 1] * (1 - hs[i + 1])
        norms.append(float(np.linalg.norm(hs[i].T @ dz)))
        g = dz @ network.weights[i].T
    return norms[::-1]


def test_log_scaled_magnitudes_agree_with_direct_float64() -> None:
    spec = NetworkSpec(depth=80, width=16, batch=8)  # gradients reach ~1e-50: still in range
    network = build(spec)
    report = analyze(spec, network=network)
    direct = np.array(_plain_sigmoid_by_hand(network))
    assert direct.min() < 1e-40
    np.testing.assert_allclose(report.layers.grad_weight.value, direct, rtol=1e-11)
    np.testing.assert_allclose(report.layers.grad_weight.log10, np.log10(direct), atol=1e-12)


@pytest.mark.parametrize("gain", [0.5, 2.0])
def test_exact_magnitudes_far_beyond_float_range(gain: float) -> None:
    """Linear activation and loss, orthogonal weights times a gain: backward does not depend on
    the forward pass and each layer scales ‖g‖ by exactly the gain, so at depth 3000 the first
    layer's input gradient is gain^3000·‖∂L/∂y‖ (10^±903)."""
    depth = 3000
    spec = NetworkSpec(
        depth=depth, width=8, batch=4, activation="linear", init="orthogonal",
        weight_var=gain**2, loss="linear",
    )  # fmt: skip
    report = analyze(spec)
    expected = report.summary.log10_grad_output + depth * math.log10(gain)
    assert report.layers.grad_input.log10[0] == pytest.approx(expected, abs=1e-8)
    status = report.layers.grad_input.status()[0]
    assert status is (Status.UNDERFLOW if gain < 1 else Status.OVERFLOW)
    # The forward signal leaves float range too (0.5^1075 underflows, 2^1024 overflows); that
    # is reported, and the late layers' weight gradients are then zero or NaN.
    first_bad = 1075 if gain < 1 else 1024
    if gain < 1:
        assert report.summary.verdict is Verdict.VANISHING
        assert report.summary.zero_from is not None
        assert abs(report.summary.zero_from - first_bad) < 10
    else:
        assert report.summary.verdict is Verdict.NONFINITE
        assert report.summary.nonfinite_from is not None
        assert abs(report.summary.nonfinite_from - first_bad) < 10


def test_deep_sigmoid_stays_finite_in_log10() -> None:
    report = analyze(NetworkSpec(depth=3000, width=16, batch=8))
    log10 = report.layers.grad_weight.log10
    assert np.isfinite(log10).all()
    assert log10[0] < -1000  # the first-layer gradient is far below float64's smallest number
    assert report.layers.grad_weight.status()[0] is Status.UNDERFLOW
    # it decays at a steady rate: the two halves lose about the same number of decades
    first_half, second_half = log10[1500] - log10[0], log10[-1] - log10[1500]
    assert first_half == pytest.approx(second_half, rel=0.1)


def test_forward_overflow_is_reported_not_raised() -> None:
    spec = NetworkSpec(depth=400, width=8, batch=4, activation="linear", weight_var=100.0)
    report = analyze(spec)  # filterwarnings=error: any RuntimeWarning would fail here
    assert report.summary.verdict is Verdict.NONFINITE
    assert report.summary.nonfinite_from is not None and 100 < report.summary.nonfinite_from < 400
    assert not report.layers.finite[-1] and report.layers.finite[0]


def _assert_reports_equal(a: Report, b: Report) -> None:
    for field in ("grad_weight", "grad_bias", "grad_input"):
        ma, mb = getattr(a.layers, field), getattr(b.layers, field)
        assert np.array_equal(ma.mantissa, mb.mantissa) and np.array_equal(ma.exponent, mb.exponent)
    for field in ("act_mean", "act_std", "weight_norm"):
        assert np.array_equal(getattr(a.layers, field), getattr(b.layers, field), equal_nan=True)
    assert a.summary == b.summary


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_same_spec_gives_bit_identical_results(dtype: str) -> None:
    spec = NetworkSpec(depth=10, width=8, batch=4, skip="pre", block_size=2, dtype=dtype)
    _assert_reports_equal(analyze(spec), analyze(spec))


def test_float32_follows_float64() -> None:
    spec = NetworkSpec(depth=20, width=16, batch=8, skip="post")
    r64, r32 = analyze(spec), analyze(spec.replace(dtype="float32"))
    np.testing.assert_allclose(
        r32.layers.grad_weight.log10, r64.layers.grad_weight.log10, atol=1e-4
    )
    np.testing.assert_allclose(r32.layers.act_mean, r64.layers.act_mean, rtol=1e-5)
    np.testing.assert_allclose(r32.layers.act_std, r64.layers.act_std, rtol=1e-4)


def test_compare_shares_weights_and_matches_separate_runs() -> None:
    spec = NetworkSpec(
        depth=6, width=5, batch=3, block_size=3, zero_init_residual=True, skip="post"
    )
    plain, post, pre = compare(spec, ["none", "post", "pre"])
    assert [r.spec.skip for r in (plain, post, pre)] == [Skip.NONE, Skip.POST, Skip.PRE]
    # removing the shortcuts reproduces the plain network bit for bit
    _assert_reports_equal(plain, analyze(NetworkSpec(depth=6, width=5, batch=3, block_size=3)))
    _assert_reports_equal(post, analyze(spec))
    # zero-init touches only the residual variants
    assert (plain.layers.weight_norm > 0).all()
    assert post.layers.weight_norm[2] == 0 and post.layers.weight_norm[5] == 0
    network = build(spec)
    plain_arrays = network.arrays(NetworkSpec(depth=6, width=5, batch=3, block_size=3))
    post_arrays = network.arrays(spec)
    assert np.array_equal(plain_arrays["W1"], post_arrays["W1"])
    assert not post_arrays["W3"].any() and plain_arrays["W3"].any()


def test_arrays_keys_for_every_loss() -> None:
    for loss, extra in [("mse", {"target"}), ("linear", {"target"}),
                        ("xent", {"W_head", "b_head", "labels"})]:  # fmt: skip
        spec = NetworkSpec(depth=3, width=4, batch=2, loss=loss)
        keys = set(build(spec).arrays(spec))
        assert keys == {"x", "W1", "W2", "W3", "b1", "b2", "b3"} | extra


def test_xent_reports_the_head_as_its_own_row() -> None:
    report = analyze(NetworkSpec(depth=4, width=6, batch=5, loss="xent", classes=3))
    assert report.layers.name[-1] == "head" and len(report.layers) == 5
    assert report.layers.grad_weight.value[-1] > 0


@pytest.mark.parametrize(
    ("init", "expected_std"),
    [("he", math.sqrt(2 / 256)), ("xavier", math.sqrt(2 / 512)), ("lecun", math.sqrt(1 / 256))],
)
def test_gaussian_init_scales(init: str, expected_std: float) -> None:
    spec = NetworkSpec(depth=4, width=256, batch=2, init=init, activation="relu")
    assert build(spec).weights.std() == pytest.approx(expected_std, rel=0.01)


def test_orthogonal_init_is_orthogonal_times_gain() -> None:
    spec = NetworkSpec(depth=3, width=32, batch=2, init="orthogonal", activation="tanh")
    for w in build(spec).weights:
        np.testing.assert_allclose(w.T @ w, (5 / 3) ** 2 * np.eye(32), atol=1e-12)


def test_weight_var_overrides_init_scale() -> None:
    spec = NetworkSpec(depth=4, width=256, batch=2, weight_var=3.0)
    assert build(spec).weights.std() == pytest.approx(math.sqrt(3.0 / 256), rel=0.01)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"depth": 0}, "depth"),
        ({"width": -3}, "width"),
        ({"batch": 2.5}, "batch"),
        ({"activation": "swish"}, "activation"),
        ({"skip": "post", "depth": 51, "block_size": 2}, "nearest valid depths: 50 or 52"),
        ({"zero_init_residual": True}, "zero_init_residual"),
        ({"weight_var": -1.0}, "weight_var"),
        ({"bias_var": float("nan")}, "bias_var"),
        ({"residual_scale": "x"}, "residual_scale"),
        ({"norm": "batch", "batch": 1}, "norm"),
        ({"classes": 1}, "classes"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_spec_values_raise_clear_errors(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NetworkSpec(**changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dtype": "float32", "weight_var": 1e80}, "weight_var: 1e\\+80 gives weights of RMS"),
        ({"dtype": "float32", "weight_var": 1e-90}, "weight_var: .* below float32's normal"),
        ({"dtype": "float32", "init": "orthogonal", "weight_var": 1e78}, "weight_var"),
        ({"weight_var": 1e-320, "width": 2**40}, "below float64's normal range"),
        ({"skip": "pre", "dtype": "float32", "branch_weight_scale": 1e39}, "branch_weight_scale"),
        ({"skip": "pre", "branch_weight_scale": -1e-310}, "branch_weight_scale"),
        ({"dtype": "float32", "bias_var": 1e78}, "bias_var: .* beyond float32's range"),
        ({"dtype": "float32", "bias_var": 1e-80}, "bias_var"),
        # α and s: a subnormal one lost its digits (5e-324 is the smallest, 1e-45 in float32
        # rounds to 1.4e-45) and 1e-320 became 0 in float32, a network without branches
        ({"skip": "pre", "residual_scale": 5e-324}, "residual_scale: .* below float64's"),
        ({"skip": "pre", "dtype": "float32", "residual_scale": 1e-45}, "residual_scale"),
        ({"skip": "post", "skip_scale": -1e-310}, "skip_scale: .* below float64's"),
        ({"skip": "pre", "dtype": "float32", "skip_scale": 1e39}, "skip_scale: .* beyond"),
    ],
)
def test_scales_a_dtype_cannot_hold_are_refused(changes: dict[str, object], message: str) -> None:
    """Weights and biases drawn in float64 would round to inf, or to subnormals and 0, in the
    run's dtype: a network other than the one asked for."""
    with pytest.raises(ValueError, match=message):
        NetworkSpec(**changes)  # type: ignore[arg-type]


def test_scales_at_the_dtype_limits_are_drawn_as_asked() -> None:
    """Just inside the limits the check allows, the weights and biases drawn are finite in the
    dtype, and their RMS is what was asked; a branch scale of 0 (zero branches) is allowed."""
    rms = (3.4e38 / 9, 2 * float(np.finfo(np.float32).tiny))  # 8·RMS < float32's largest
    for changes in (
        {"dtype": "float32", "weight_var": 16 * rms[0] ** 2},
        {"dtype": "float32", "weight_var": 16 * rms[1] ** 2},
        {"dtype": "float32", "bias_var": rms[0] ** 2},
        {"skip": "pre", "branch_weight_scale": 0.0},
        {"skip": "pre", "residual_scale": 0.0, "skip_scale": -2 * rms[1]},
        {"skip": "pre", "dtype": "float32", "residual_scale": 3.4e38},
        {"dtype": "float32", "residual_scale": 1e-40},  # a plain network has no α to round
    ):
        spec = NetworkSpec(depth=2, width=16, batch=2, **changes)  # type: ignore[arg-type]
        network = build(spec)
        assert np.isfinite(network.weights).all() and np.isfinite(network.biases).all()
        if "weight_var" in changes:
            drawn = np.sqrt(np.mean(network.weights.astype(np.float64) ** 2))
            assert drawn == pytest.approx(math.sqrt(spec.weight_var / 16), rel=0.1)


def test_weight_norms_are_exact_where_their_squares_leave_float64() -> None:
    """‖W‖ of weights near 1e154 (squares overflow) or 1e-160 (squares underflow), against
    math.hypot, which scales as it sums; the same weights at ordinary scale stay as they were."""
    spec = NetworkSpec(depth=3, width=8, batch=2)
    base = build(spec).weights
    for factor in (2.0**512, 2.0**-530, 1.0):
        stack = base * factor  # exact: a power of two
        got = layer_norms(stack)
        want = [math.hypot(*w.ravel()) for w in stack]
        np.testing.assert_allclose(got, want, rtol=1e-15)
    assert layer_norms(np.zeros((2, 4, 4)))[0] == 0.0
    with np.errstate(invalid="ignore"):
        assert np.isnan(layer_norms(np.full((1, 4, 4), np.nan))[0])


@pytest.mark.parametrize("loss", ["mse", "xent"])
def test_output_gradients_are_exact_where_their_squares_overflow(loss: str) -> None:
    """Outputs near 1e200 (a linear network of σ_w² = 1e200): ∂L/∂y of the MSE loss, and the
    xent head's ∂L/∂W, are near 1e200 too, their sums of squares beyond float64. The report's
    ‖∂L/∂y‖, gain and head row are exact (against math.hypot), not inf or 0."""
    spec = NetworkSpec(depth=2, width=8, batch=2, activation="linear", weight_var=1e200, loss=loss)
    network = build(spec)
    report = analyze(spec, network=network)
    data = network.loss_data
    y = network.x @ network.weights[0] @ network.weights[1]
    if loss == "mse":
        assert data.target is not None
        dy = (y - data.target) / spec.batch
    else:
        assert data.head_weight is not None and data.labels is not None
        logits = y @ data.head_weight + data.head_bias
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(spec.batch), data.labels] -= 1
        head = y.T @ p / spec.batch
        assert math.hypot(*head.ravel()) > 1e150  # beyond float64 once squared
        want_head = math.log10(math.hypot(*head.ravel()))
        assert report.layers.grad_weight.log10[-1] == pytest.approx(want_head, abs=1e-12)
        dy = p @ data.head_weight.T / spec.batch
    want = math.log10(math.hypot(*dy.ravel()))
    summary = report.summary
    assert summary.log10_grad_output == pytest.approx(want, abs=1e-12)
    assert summary.log10_gain == pytest.approx(report.layers.grad_input.log10[0] - want, abs=1e-12)


@pytest.mark.parametrize(
    ("activation", "skip"), [("sigmoid", "none"), ("tanh", "none"), ("sigmoid", "post")]
)
def test_a_gradient_lost_to_saturation_is_not_called_zero(activation: str, skip: str) -> None:
    """σ_w² = 1e8 saturates every unit: φ′ rounds to 0 in float64, and the gradient with it
    (in post blocks φ′ follows the add, so the skip's share too), though its true value is
    e^-|z|-small, not zero. The report says so, at the layer."""
    spec = NetworkSpec(depth=8, width=8, batch=2, activation=activation, weight_var=1e8, skip=skip)
    report = analyze(spec)
    zero = report.layers.grad_input.mantissa == 0
    assert zero.any()
    k = int(np.flatnonzero(zero)[-1]) + 1  # the layer where it is lost, and all below it
    assert zero[:k].all() and not zero[k:].any()
    assert report.layers.saturated_fraction[k - 1] == 1.0
    lost = [w for w in report.summary.warnings if "rounds to 0" in w]
    assert lost and f"from layer {k} down" in lost[0]
    for quiet in (
        spec.replace(weight_var=1.0),
        spec.replace(activation="relu"),
        spec.replace(skip="pre"),  # the skip carries the gradient past every branch
    ):
        assert not any("gradient is 0 in" in w for w in analyze(quiet).summary.warnings)


@pytest.mark.parametrize(
    ("loss", "dtype", "depth", "weight_var"),
    [("mse", "float64", 1, 3e307), ("linear", "float64", 2, 3e307), ("mse", "float32", 1, 1e38)],
)
def test_a_loss_within_float_range_is_finite_when_its_sums_are_not(
    loss: str, dtype: str, depth: int, weight_var: float
) -> None:
    """Σ (y − t)² (or a partial sum of ⟨y, u⟩) overflows, the loss (÷ 2B, ÷ B) does not. It read
    inf, and the verdict nonfinite. Against math.hypot and math.fsum, which do not overflow."""
    spec = NetworkSpec(depth=depth, width=8, batch=4, activation="linear", loss=loss,
                       weight_var=weight_var, dtype=dtype)  # fmt: skip
    network = build(spec)
    report = analyze(spec, network=network)
    data = network.loss_data
    assert data.target is not None
    y = network.x
    for w in network.weights:  # the pass's own products, rounded as it rounds them
        y = y @ w
    y = y.astype(np.float64)
    if loss == "mse":
        want = (math.hypot(*(y - data.target).ravel()) / math.sqrt(2 * spec.batch)) ** 2
    else:
        scaled = math.fsum((y * 2.0**-600 * data.target).ravel())  # exact powers of two
        want = math.ldexp(scaled / spec.batch, 600)
    assert math.isfinite(want) and abs(want) > 1e37
    assert report.summary.loss == pytest.approx(want, rel=1e-6 if dtype == "float32" else 1e-12)
    assert report.summary.verdict.value != "nonfinite" and report.summary.warnings == ()


def test_a_residual_stream_that_overflows_at_an_add_is_a_forward_overflow() -> None:
    """s = 1e200 four times over: the pre stream reaches inf at an add, and the sigmoid of inf is
    1, so no layer's activations show it. It read only 'loss is inf'."""
    spec = NetworkSpec(depth=8, width=8, batch=4, skip="pre", skip_scale=1e200)
    report = analyze(spec)
    assert report.summary.verdict.value == "nonfinite"
    assert any("forward pass overflows: the output is inf" in w for w in report.summary.warnings)
    healthy = analyze(spec.replace(skip_scale=1.0))
    assert not any("overflows" in w for w in healthy.summary.warnings)


def test_a_branch_shut_by_saturation_is_said_the_skip_carries_on() -> None:
    """α = 1e160 drives the pre stream so far that blocks 2–4's branches saturate: they pass
    back exactly 0 in float64 while the skip carries the gradient on. The report names them;
    zeroed branch ends (a true zero) are not named."""
    spec = NetworkSpec(depth=8, width=8, batch=4, skip="pre", residual_scale=1e160)
    report = analyze(spec)
    shut = [b + 1 for b in np.flatnonzero(report.blocks.grad_branch.mantissa == 0)]
    assert shut == [2, 3, 4] and (report.blocks.grad_add.mantissa != 0).all()
    assert any("the branches of blocks 2, 3, 4 pass 0 in float64" in w
               for w in report.summary.warnings)  # fmt: skip
    zeroed = analyze(spec.replace(residual_scale=1.0, zero_init_residual=True))
    assert (zeroed.blocks.grad_branch.mantissa == 0).all()  # a true zero: W_k = 0
    assert not any("branch" in w for w in zeroed.summary.warnings)


def test_spec_is_frozen_and_coerces_strings() -> None:
    spec = NetworkSpec(activation="ReLU", init="kaiming", skip="pre", block_size=5, depth=10)
    assert spec.activation is Activation.RELU and spec.init is Init.HE and spec.blocks == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.depth = 3  # type: ignore[misc]


def test_magnitude_status_and_views() -> None:
    m = Magnitudes(
        np.array([1.5, 0.0, 1.0, 1.0, np.nan, np.inf]),
        np.array([3, 0, -2000, 2000, 0, 0]),
    )
    assert m.status() == [
        Status.OK, Status.ZERO, Status.UNDERFLOW, Status.OVERFLOW, Status.NAN, Status.INF,
    ]  # fmt: skip
    assert m.value[0] == 12.0 and m.value[2] == 0.0 and np.isinf(m.value[3])
    np.testing.assert_allclose(m.log10[2:4], [-2000 * math.log10(2), 2000 * math.log10(2)])
    assert m.log10[1] == -np.inf and np.isnan(m.log10[4])


def test_subnormal_activations_are_reported() -> None:
    # ReLU with Xavier's scale halves the signal's second moment every layer: 2^-1000 by 2000
    spec = NetworkSpec(depth=2000, width=32, batch=4, activation="relu", init="xavier")
    network = build(spec)
    report = analyze(spec, network=network)
    # the statistics stay exact where the squares underflow: recompute layer 1500 by hand
    h = network.x
    for w in network.weights[:1500]:
        h = np.maximum(h @ w, 0.0)
    peak = np.abs(h).max()
    assert 0 < peak < 1e-200
    assert report.layers.act_std[1499] == pytest.approx(peak * (h / peak).std(), rel=1e-12)
    assert report.layers.act_mean[1499] == pytest.approx(h.mean(), rel=1e-12)
    size = np.maximum(np.abs(report.layers.act_mean), report.layers.act_std)
    first = int(np.argmax((size > 0) & (size < np.finfo(np.float64).tiny))) + 1
    assert 1500 < first < 2000
    assert any("subnormal" in w and f"layer {first}" in w for w in report.summary.warnings)
