"""The NumPy engine's hand-written backward against an independent PyTorch autograd reference.

Every case runs one pass with ``keep_gradients=True``, rebuilds the same network in torch from the
run's saved arrays (``tests/torch_reference.py``, written from issue 2's semantics, not from the
engine) and compares the loss, every gradient tensor, and the per-layer and per-block norms that
the report carries. float64 throughout.

Tolerance: an entry passes when ``|ours − torch| ≤ 1e-10·|torch| + 1e-12·scale``, ``scale`` being
the largest reference gradient of the run. The small absolute floor is there only for gradients
that are zero in exact arithmetic and rounding noise in both implementations (a bias followed by
batch norm); anything of genuine size is held to 1e-10 relative.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch_reference import reference_pass

from gradflow.analysis.analyze import analyze
from gradflow.analysis.results import Report
from gradflow.engine.network import build
from gradflow.engine.spec import Activation, Init, Loss, NetworkSpec, Norm, Skip

RTOL = 1e-10  # relative agreement required of every gradient of genuine size
FLOOR = 1e-12  # absolute floor, as a fraction of the run's largest gradient: rounding noise only

SKIPS = [s.value for s in Skip]
RESIDUAL_SKIPS = [s.value for s in Skip if s is not Skip.NONE]

# depth 4, block 2: two blocks; small enough that the whole file runs in a few seconds
BASE: dict[str, Any] = {"depth": 4, "width": 6, "batch": 5, "block_size": 2, "classes": 4}


def make_spec(**changes: Any) -> NetworkSpec:
    """A small spec; Post-LN normalises after every add, so it takes layer norm unless told."""
    if changes.get("skip") == Skip.POSTNORM.value and changes.get("norm", "none") == "none":
        changes["norm"] = Norm.LAYER.value
    return NetworkSpec(**{**BASE, "seed": 7, **changes})


CASES: list[Any] = [
    *(
        pytest.param(make_spec(activation=a, skip=s), id=f"act-{a}-{s}")
        for a in [a.value for a in Activation]
        for s in SKIPS
    ),
    *(
        pytest.param(make_spec(norm=n, skip=s, activation="gelu"), id=f"norm-{n}-{s}")
        for n in [n.value for n in Norm]
        for s in SKIPS
        if (s, n) != ("postnorm", "none")
    ),
    *(
        pytest.param(
            make_spec(skip=s, skip_scale=scale, branch_weight_scale=beta, activation="tanh"),
            id=f"skip_scale{scale}-beta{beta}-{s}",
        )
        for scale, beta in ((1.7, 0.4), (0.6, 1.0), (1.0, -2.0))
        for s in RESIDUAL_SKIPS
    ),
    *(
        pytest.param(
            make_spec(skip="postnorm", norm="batch", activation=a, depth=6, block_size=3),
            id=f"postnorm-batch-{a}",
        )
        for a in ("relu", "sigmoid", "gelu")
    ),
    *(
        pytest.param(make_spec(loss=loss, skip=s, activation="tanh"), id=f"loss-{loss}-{s}")
        for loss in [loss.value for loss in Loss]
        for s in SKIPS
    ),
    *(
        pytest.param(make_spec(init=i, skip=s, activation="relu"), id=f"init-{i}-{s}")
        for i in [i.value for i in Init]
        for s in SKIPS
    ),
    *(
        pytest.param(make_spec(weight_var=2.5, skip=s, activation="selu"), id=f"weight_var-{s}")
        for s in SKIPS
    ),
    *(
        pytest.param(make_spec(bias_var=0.3, skip=s, activation="silu"), id=f"bias_var-{s}")
        for s in SKIPS
    ),
    *(
        pytest.param(
            make_spec(skip=s, residual_scale=alpha, depth=6, block_size=3, activation="elu"),
            id=f"alpha{alpha}-{s}",
        )
        for alpha in (0.25, -1.5)
        for s in RESIDUAL_SKIPS
    ),
    *(
        pytest.param(
            make_spec(skip=s, zero_init_residual=True, activation=a, norm=n),
            id=f"zero_init-{a}-{n}-{s}",
        )
        for s in RESIDUAL_SKIPS
        for a, n in (("relu", "none"), ("tanh", "none"), ("softplus", "batch"), ("gelu", "layer"))
    ),
    *(
        pytest.param(make_spec(skip=s, depth=3, block_size=1), id=f"block1-{s}")
        for s in RESIDUAL_SKIPS
    ),
    pytest.param(
        make_spec(
            skip="pre",
            norm="layer",
            loss="xent",
            activation="silu",
            residual_scale=0.5,
            bias_var=0.1,
            init="orthogonal",
            depth=6,
            block_size=3,
            batch=7,
            width=5,
        ),
        id="mixed-pre-layer-xent",
    ),
    pytest.param(
        make_spec(
            skip="post",
            norm="batch",
            loss="linear",
            activation="leaky_relu",
            residual_scale=2.0,
            bias_var=0.2,
            init="he",
            depth=6,
            block_size=2,
            batch=3,
            width=8,
        ),
        id="mixed-post-batch-linear",
    ),
    pytest.param(
        make_spec(norm="layer", loss="xent", activation="sigmoid", depth=6, bias_var=0.5),
        id="mixed-plain-layer-xent",
    ),
]


def _mismatch(name: str, ours: Any, ref: Any, scale: float) -> str | None:
    """A description of the disagreement, or None when ours matches the reference."""
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if ours.shape != ref.shape:
        return f"{name}: shape {ours.shape}, reference {ref.shape}"
    diff = np.abs(ours - ref)
    allowed = RTOL * np.abs(ref) + FLOOR * scale
    if np.all(np.isfinite(ours)) and np.all(diff <= allowed):
        return None
    badness = np.where(np.isfinite(ours), diff / allowed, np.inf)  # a nan or inf of ours is worst
    worst = np.unravel_index(int(np.argmax(badness)), diff.shape) if diff.size else ()
    return (
        f"{name}: at {tuple(int(i) for i in worst)} ours {ours[worst]!r}, torch {ref[worst]!r} "
        f"(|diff| {diff[worst]:.3e}, allowed {allowed[worst]:.3e})"
    )


def _frobenius(tensors: list[np.ndarray]) -> np.ndarray:
    """‖t‖_F of each tensor, as one array."""
    return np.array([np.linalg.norm(t) for t in tensors])


def _reference_gradients(ref: dict[str, Any]) -> list[np.ndarray]:
    """Every gradient tensor of the reference pass: W_i, b_i, layer inputs, ∂L/∂y, head."""
    tensors = [*ref["weights"], *ref["biases"], *ref["inputs"], ref["output"]]
    if ref["head_weight"] is not None:
        tensors += [ref["head_weight"], ref["head_bias"]]
    return tensors


def _compare(report: Report, ref: dict[str, Any]) -> list[str]:
    """Every disagreement between the engine's report and the torch reference; the gradient
    tensors themselves only where the report kept them."""
    spec, grads = report.spec, report.gradients
    tensors = _reference_gradients(ref)
    scale = max(float(np.max(np.abs(t))) for t in tensors)  # the run's largest gradient entry
    norm_scale = max(float(np.linalg.norm(t)) for t in tensors)  # and largest gradient norm
    problems: list[str | None] = []

    problems.append(_mismatch("loss", report.summary.loss, ref["loss"], max(1.0, abs(ref["loss"]))))
    for family in ("weights", "biases", "inputs") if grads is not None else ():
        ours = getattr(grads, family)
        if len(ours) != spec.depth:
            problems.append(f"gradients.{family}: {len(ours)} layers, expected {spec.depth}")
            continue
        for i, (g, r) in enumerate(zip(ours, ref[family], strict=True)):
            problems.append(_mismatch(f"gradients.{family}[{i}] (layer {i + 1})", g, r, scale))
    if grads is not None:
        problems.append(_mismatch("gradients.output (dL/dy)", grads.output, ref["output"], scale))
    if grads is not None and spec.loss is Loss.XENT:
        for name in ("head_weight", "head_bias"):
            problems.append(_mismatch(f"gradients.{name}", getattr(grads, name), ref[name], scale))

    # Per-layer norms as the report carries them (mantissa·2^exponent, here within float range).
    layers = report.layers
    expected = {
        "grad_weight": _frobenius(ref["weights"]),
        "grad_bias": _frobenius(ref["biases"]),
        "grad_input": _frobenius(ref["inputs"]),
    }
    if spec.loss is Loss.XENT:  # the head is its own row; its input is y
        expected["grad_weight"] = np.append(
            expected["grad_weight"], np.linalg.norm(ref["head_weight"])
        )
        expected["grad_bias"] = np.append(expected["grad_bias"], np.linalg.norm(ref["head_bias"]))
        expected["grad_input"] = np.append(expected["grad_input"], np.linalg.norm(ref["output"]))
    for name, want in expected.items():
        problems.append(_mismatch(f"layers.{name}", getattr(layers, name).value, want, norm_scale))

    # Per-block split at the addition.
    blocks = report.blocks
    if spec.residual:
        k = spec.block_size
        problems.append(
            _mismatch("blocks.first_layer", blocks.first_layer, np.arange(spec.blocks) * k + 1, 1.0)
        )
        for name, key in (
            ("grad_add", "block_add"),
            ("grad_skip", "block_skip"),
            ("grad_branch", "block_branch"),
            ("grad_input", "block_input"),
        ):
            want = _frobenius(ref[key])
            problems.append(
                _mismatch(f"blocks.{name}", getattr(blocks, name).value, want, norm_scale)
            )
        skip, branch = ref["block_skip"], ref["block_branch"]
        cosine = np.array(
            [
                np.vdot(s, b) / (np.linalg.norm(s) * np.linalg.norm(b))
                if np.linalg.norm(s) > 0 and np.linalg.norm(b) > 0
                else np.nan
                for s, b in zip(skip, branch, strict=True)
            ]
        )
        ours_cos = np.asarray(blocks.cosine, dtype=np.float64)
        if not np.array_equal(np.isnan(ours_cos), np.isnan(cosine)):
            problems.append(f"blocks.cosine: ours {ours_cos}, torch {cosine} (nan pattern differs)")
        else:
            keep = ~np.isnan(cosine)
            # cosines are O(1); an absolute 1e-10 is the relative check for them
            problems.append(_mismatch("blocks.cosine", ours_cos[keep], cosine[keep], 1e2))
    elif len(blocks) != 0:
        problems.append(f"blocks: a plain network reported {len(blocks)} blocks")

    # Summary magnitudes, as log10 (-inf where a zero-init branch leaves a gradient exactly 0).
    summary = report.summary
    w, x = expected["grad_weight"], expected["grad_input"]
    with np.errstate(divide="ignore"):
        wanted = {
            "log10_grad_output": np.log10(np.linalg.norm(ref["output"])),
            "log10_weight_ratio": np.log10(w[0]) - np.log10(w[spec.depth - 1]),
            "log10_gain": np.log10(x[0]) - np.log10(np.linalg.norm(ref["output"])),
        }
    for name, want in wanted.items():
        ours = getattr(summary, name)
        if not np.isfinite(want):
            if ours != want:
                problems.append(f"summary.{name}: ours {ours!r}, torch {want!r}")
            continue
        # relative 1e-10 on a magnitude is ~4e-11 in log10
        problems.append(_mismatch(f"summary.{name}", ours, want, 1e2))
    return [p for p in problems if p is not None]


@pytest.mark.parametrize("spec", CASES)
def test_engine_matches_torch(spec: NetworkSpec) -> None:
    report = analyze(spec, keep_gradients=True)
    arrays = build(spec).arrays(spec)
    ref = reference_pass(spec, arrays)
    problems = _compare(report, ref)
    assert not problems, f"{len(problems)} mismatches vs torch:\n" + "\n".join(problems)
    # Without kept gradients the weight-gradient norms come from B×B Gram matrices (width 6 >
    # batch 5); they are held to the same tolerance.
    problems = _compare(analyze(spec), ref)
    assert not problems, f"{len(problems)} mismatches vs torch (norms only):\n" + "\n".join(
        problems
    )


def test_zero_init_residual_gives_the_same_input_gradient_at_every_block() -> None:
    # With every branch ending in a zero weight, each block is the identity (pre) and the
    # gradient reaches every block input unchanged: a number the torch reference must also give.
    spec = make_spec(skip="pre", zero_init_residual=True, depth=6, block_size=2, activation="tanh")
    report = analyze(spec, keep_gradients=True)
    ref = reference_pass(spec, build(spec).arrays(spec))
    want = np.linalg.norm(ref["output"])
    np.testing.assert_allclose(report.blocks.grad_input.value, [want] * spec.blocks, rtol=RTOL)
    np.testing.assert_allclose(report.blocks.grad_branch.value, [0.0] * spec.blocks, atol=0)


# The reference itself, on arrays drawn here (no engine involved): it must honour the written
# identities, so that a disagreement with the engine points at the engine.


def _random_arrays(spec: NetworkSpec, seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    b, n = spec.batch, spec.width
    arrays = {"x": rng.standard_normal((b, n)), "target": rng.standard_normal((b, n))}
    for i in range(1, spec.depth + 1):
        arrays[f"W{i}"] = rng.standard_normal((n, n)) * 1.3 / np.sqrt(n)
        arrays[f"b{i}"] = 0.2 * rng.standard_normal(n)
    arrays["W_head"] = rng.standard_normal((n, spec.classes)) / np.sqrt(n)
    arrays["b_head"] = 0.1 * rng.standard_normal(spec.classes)
    arrays["labels"] = rng.integers(0, spec.classes, b)
    return arrays


@pytest.mark.parametrize("norm", [n.value for n in Norm])
def test_reference_post_without_shortcuts_is_plain(norm: str) -> None:
    spec = make_spec(skip="post", norm=norm, activation="tanh", depth=6, block_size=3)
    arrays = _random_arrays(spec)
    post = reference_pass(spec, arrays, shortcuts=False)
    plain = reference_pass(spec.replace(skip="none"), arrays)
    assert post["loss"] == plain["loss"]
    for family in ("weights", "biases", "inputs"):
        for p, q in zip(post[family], plain[family], strict=True):
            np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("skip", RESIDUAL_SKIPS)
def test_reference_block_input_gradient_is_skip_plus_branch(skip: str) -> None:
    spec = make_spec(skip=skip, activation="gelu", norm="layer", residual_scale=0.6)
    ref = reference_pass(spec, _random_arrays(spec))
    for j in range(spec.blocks):
        total = ref["block_add"][j] + ref["block_branch"][j]
        np.testing.assert_allclose(ref["block_input"][j], total, rtol=1e-13, atol=1e-15)
        assert np.linalg.norm(ref["block_branch"][j]) > 1e-3  # the branch really contributes


def _layer_norm(z: np.ndarray) -> np.ndarray:
    return (z - z.mean(axis=1, keepdims=True)) / np.sqrt(z.var(axis=1, keepdims=True) + 1e-5)


def test_reference_loss_follows_the_written_formulas() -> None:
    # post, layer norm, α = 0.3, linear loss, evaluated straight from issue 2's formulas
    spec = make_spec(
        skip="post", norm="layer", activation="tanh", residual_scale=0.3, loss="linear"
    )
    arrays = _random_arrays(spec)
    h = arrays["x"]
    for first in range(1, spec.depth + 1, 2):
        u = np.tanh(_layer_norm(h @ arrays[f"W{first}"] + arrays[f"b{first}"]))
        v = _layer_norm(u @ arrays[f"W{first + 1}"] + arrays[f"b{first + 1}"])
        h = np.tanh(h + 0.3 * v)
    want = np.sum(h * arrays["target"]) / spec.batch
    assert reference_pass(spec, arrays)["loss"] == pytest.approx(want, rel=1e-13)

    # pre, no norm, α = 0.3, softmax cross-entropy on a linear head
    spec = spec.replace(skip="pre", norm="none", loss="xent")
    h = arrays["x"]
    for first in range(1, spec.depth + 1, 2):
        u = h
        for i in (first, first + 1):
            u = np.tanh(u) @ arrays[f"W{i}"] + arrays[f"b{i}"]
        h = h + 0.3 * u
    logits = h @ arrays["W_head"] + arrays["b_head"]
    log_z = np.log(np.exp(logits).sum(axis=1))
    want = np.mean(log_z - logits[np.arange(spec.batch), arrays["labels"]])
    assert reference_pass(spec, arrays)["loss"] == pytest.approx(want, rel=1e-13)


@pytest.mark.parametrize("skip", SKIPS)
def test_reference_gradients_match_finite_differences(skip: str) -> None:
    # Central differences of the reference's own loss along random directions: checks that each
    # returned gradient belongs to the array it is filed under (x, W_i, b_i, head).
    spec = make_spec(skip=skip, norm="batch", loss="xent", activation="softplus", bias_var=0.1)
    arrays = _random_arrays(spec)
    ref = reference_pass(spec, arrays)
    filed = {"x": ref["inputs"][0], "W_head": ref["head_weight"], "b_head": ref["head_bias"]}
    for i in range(spec.depth):
        filed[f"W{i + 1}"], filed[f"b{i + 1}"] = ref["weights"][i], ref["biases"][i]
    rng, eps = np.random.default_rng(11), 1e-6
    for key, grad in filed.items():
        direction = rng.standard_normal(grad.shape)
        loss_at = [
            reference_pass(spec, {**arrays, key: arrays[key] + sign * eps * direction})["loss"]
            for sign in (1.0, -1.0)
        ]
        numeric = (loss_at[0] - loss_at[1]) / (2 * eps)
        # biases followed by batch norm have zero gradient: there only the absolute error counts
        assert numeric == pytest.approx(np.vdot(grad, direction), rel=1e-6, abs=1e-8), key


def test_reference_stays_float64_whatever_the_torch_default() -> None:
    spec = make_spec(skip="pre", norm="batch", loss="xent", activation="gelu")
    arrays = _random_arrays(spec)
    want = reference_pass(spec, arrays)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        got = reference_pass(spec, arrays)
    finally:
        torch.set_default_dtype(previous)
    assert got["loss"] == want["loss"]
    for g, w in zip(got["weights"] + got["inputs"], want["weights"] + want["inputs"], strict=True):
        assert g.dtype == np.float64
        np.testing.assert_array_equal(g, w)
