"""The gradient split by path length: the parts add up to the ordinary pass's ∂L/∂x, each part
holds exactly the paths of its length, the statistics of linear branches, exact zeros, magnitudes
far beyond float range, single sampled paths, the memory declaration, and the rendering."""

from __future__ import annotations

import itertools
import json
import math
import re
import tracemalloc
from typing import Any

import numpy as np
import pytest

from gradflow.analysis import paths
from gradflow.analysis.analyze import analyze
from gradflow.analysis.paths import (
    Decomposition,
    compare_paths,
    decompose,
    draw_paths,
    effective_range,
    paths_bytes,
    split_gradient,
)
from gradflow.engine.losses import LOSSES
from gradflow.engine.magnitudes import Status
from gradflow.engine.network import build
from gradflow.engine.passes import after_add_vjp, backward, blocks, branch_vjp, forward
from gradflow.engine.spec import NetworkSpec
from gradflow.render import paths_view

SMALL = {"depth": 8, "width": 7, "batch": 5, "block_size": 2, "bias_var": 0.1}


def true_scale(values: np.ndarray, exponents: np.ndarray) -> np.ndarray:
    return values * np.exp2(exponents.astype(np.float64))[:, None, None]


def ordinary_input_gradient(spec: NetworkSpec) -> np.ndarray:
    report = analyze(spec, keep_gradients=True)
    assert report.gradients is not None
    return report.gradients.inputs[0]


# ---- the engine's one addition ---------------------------------------------------------------


@pytest.mark.parametrize("skip", ["none", "post", "pre", "postnorm"])
def test_backward_hands_back_the_scaled_input_gradient(skip: str) -> None:
    spec = NetworkSpec(**SMALL, skip=skip, norm="layer", activation="tanh")  # type: ignore[arg-type]
    network = build(spec)
    tape, y = forward(spec, network.weights_for(spec), network.biases_for(spec), network.x)
    records = backward(spec, tape, LOSSES[spec.loss](y, network.loss_data).dy, keep=True)
    values, exponent = records.input_gradient
    assert records.input_grads is not None
    np.testing.assert_array_equal(values * 2.0**exponent, records.input_grads[0])


# ---- the parts add up to ∂L/∂x, and hold the right paths ---------------------------------------

WIRED = [
    (skip, activation, norm)
    for skip in ("post", "pre", "postnorm")
    for activation in ("relu", "tanh", "sigmoid", "gelu")
    for norm in ("none", "batch", "layer")
    if not (skip == "postnorm" and norm == "none")
]


@pytest.mark.parametrize(("skip", "activation", "norm"), WIRED)
def test_parts_add_up_to_the_ordinary_input_gradient(skip: str, activation: str, norm: str) -> None:
    spec = NetworkSpec(**SMALL, skip=skip, activation=activation, norm=norm)  # type: ignore[arg-type]
    values, exponents = split_gradient(spec)
    assert values.shape == (spec.blocks + 1, spec.batch, spec.width)
    expected = ordinary_input_gradient(spec)
    total = true_scale(values, exponents).sum(axis=0)
    assert np.linalg.norm(total - expected) <= 1e-12 * np.linalg.norm(expected)
    assert decompose(spec).check <= 1e-12


@pytest.mark.parametrize(
    ("skip", "norm", "skip_scale", "residual_scale", "max_length"),
    [
        ("pre", "none", 1.3, 0.7, None),
        ("post", "batch", 0.8, 1.6, None),
        ("postnorm", "layer", 2.0, 0.5, None),
        ("pre", "batch", 1.0, 1.0, 0),
        ("post", "none", 1.0, 0.5, 1),
        ("postnorm", "batch", 0.9, 1.1, 2),
        ("pre", "layer", 1.2, 0.8, 3),
    ],
)
def test_scales_and_truncation_keep_the_sum(
    skip: str, norm: str, skip_scale: float, residual_scale: float, max_length: int | None
) -> None:
    """With max_length K the lengths above K come back as one remainder, carried through the
    blocks beside the others: the sum still matches the ordinary pass."""
    spec = NetworkSpec(
        **{**SMALL, "depth": 12}, skip=skip, norm=norm, activation="gelu",  # type: ignore[arg-type]
        skip_scale=skip_scale, residual_scale=residual_scale,
    )  # fmt: skip
    values, exponents = split_gradient(spec, max_length=max_length)
    kept = spec.blocks if max_length is None else max_length
    assert len(values) == kept + 1 + (kept < spec.blocks)
    expected = ordinary_input_gradient(spec)
    total = true_scale(values, exponents).sum(axis=0)
    assert np.linalg.norm(total - expected) <= 1e-12 * np.linalg.norm(expected)
    d = decompose(spec, max_length=max_length)
    assert d.check <= 1e-12
    assert (d.remainder is None) == (max_length is None)


def test_float32_parts_add_up_to_float32_rounding() -> None:
    spec = NetworkSpec(
        **SMALL,
        skip="post",
        norm="batch",
        activation="gelu",
        dtype="float32",  # type: ignore[arg-type]
    )
    values, exponents = split_gradient(spec)
    assert values.dtype == np.float32
    expected = ordinary_input_gradient(spec).astype(np.float64)
    total = true_scale(values.astype(np.float64), exponents).sum(axis=0)
    assert np.linalg.norm(total - expected) <= 1e-5 * np.linalg.norm(expected)
    assert decompose(spec).check <= 1e-5


@pytest.mark.parametrize(
    ("skip", "norm"), [("post", "batch"), ("pre", "none"), ("postnorm", "layer")]
)
def test_each_part_is_the_sum_over_its_paths(skip: str, norm: str) -> None:
    """Against brute force over all 2^B paths, each walked back on its own (the skip at blocks
    off the path, the branch on it) and summed by the number of branches it takes."""
    spec = NetworkSpec(
        **SMALL,
        skip=skip,
        norm=norm,
        activation="tanh",
        skip_scale=1.2,
        residual_scale=0.6,  # type: ignore[arg-type]
    )
    network = build(spec)
    tape, y = forward(spec, network.weights_for(spec), network.biases_for(spec), network.x)
    dy = LOSSES[spec.loss](y, network.loss_data).dy
    count = spec.blocks
    brute = np.zeros((count + 1, spec.batch, spec.width))
    for on in itertools.product([False, True], repeat=count):
        g = dy[None]
        for block in reversed(blocks(spec)):
            arriving = after_add_vjp(spec, tape, block, g)
            if on[block.number]:
                g = branch_vjp(spec, tape, block, spec.residual_scale * arriving)
            else:
                g = spec.skip_scale * arriving
        brute[sum(on)] += g[0]
    values, exponents = split_gradient(spec, network=network)
    parts = true_scale(values, exponents)
    for k in range(count + 1):
        scale = np.linalg.norm(brute[k])
        assert np.linalg.norm(parts[k] - brute[k]) <= 1e-12 * scale


def test_linear_branches_follow_the_binomial() -> None:
    """Linear branches W ~ N(0, c/n), one layer each, no norm: paths through different branch
    sets are uncorrelated and each branch multiplies the expected energy by α²c, so
    E‖G_k‖² = C(B, k)·(α²c)^k·‖∂L/∂y‖². Measured over 30 seeds at this size, ‖G_k‖²/‖G_0‖²
    divided by C(B, k)(α²c)^k averages 0.99-1.00 with a standard deviation of 1.4% (k = 1),
    3.0% (k = 4) and 4.5% (k = 6): the mean over 3 seeds is held to 6% for k ≤ 4 (≥ 3.5σ) and
    12% above (≥ 4.6σ)."""
    count, c, alpha = 6, 0.8, 0.9
    ratios = []
    for seed in range(3):
        spec = NetworkSpec(
            depth=count, width=512, batch=16, block_size=1, skip="pre", activation="linear",  # type: ignore[arg-type]
            weight_var=c, residual_scale=alpha, loss="linear", seed=seed,  # type: ignore[arg-type]
        )  # fmt: skip
        d = decompose(spec)
        ratios.append(np.power(10.0, 2 * (d.grad.log10 - d.grad.log10[0])))
    expected = np.array([math.comb(count, k) * (alpha**2 * c) ** k for k in range(count + 1)])
    measured = np.mean(ratios, axis=0) / expected
    np.testing.assert_allclose(measured[:5], 1.0, atol=0.06)
    np.testing.assert_allclose(measured[5:], 1.0, atol=0.12)


# ---- exact zeros -------------------------------------------------------------------------------


def test_no_branch_share_leaves_only_the_skip_path() -> None:
    spec = NetworkSpec(**SMALL, skip="post", activation="tanh", residual_scale=0.0)  # type: ignore[arg-type]
    values, _ = split_gradient(spec)
    assert values[0].any() and not values[1:].any()
    d = decompose(spec)
    assert d.grad.status()[1:] == [Status.ZERO] * spec.blocks
    assert d.share[0] == 1.0 and not d.share[1:].any()
    assert d.check <= 1e-12


def test_zero_initialised_branches_pass_only_the_skip_path() -> None:
    spec = NetworkSpec(**SMALL, skip="pre", activation="relu", zero_init_residual=True)  # type: ignore[arg-type]
    values, exponents = split_gradient(spec)
    assert not values[1:].any()
    np.testing.assert_array_equal(true_scale(values, exponents)[0], ordinary_input_gradient(spec))
    d = decompose(spec)
    assert d.grad.status()[1:] == [Status.ZERO] * spec.blocks
    assert d.effective is not None and (d.effective.low, d.effective.high) == (0, 0)


# ---- far beyond float range --------------------------------------------------------------------


def test_paths_far_below_float_range_stay_exact() -> None:
    """400 sigmoid blocks with the add's φ' after each, skip and branch both scaled by 0.3:
    every part of ∂L/∂x lies far below 1e-308 (float64 holds none of them), and the parts still
    add up to the ordinary pass's ∂L/∂x, compared at a common exponent."""
    spec = NetworkSpec(
        depth=400, width=16, batch=32, block_size=1, skip="post", activation="sigmoid",  # type: ignore[arg-type]
        skip_scale=0.3, residual_scale=0.3,
    )  # fmt: skip
    d = decompose(spec)
    log10 = d.grad.log10
    assert np.isfinite(log10).all() and log10.max() < -380
    assert set(d.grad.status()) == {Status.UNDERFLOW}
    assert d.total.status() == [Status.UNDERFLOW]
    assert d.check <= 1e-12
    assert math.isclose(d.share.sum(), 1.0) and d.effective is not None
    truncated = decompose(spec, max_length=3)
    assert truncated.check <= 1e-12
    np.testing.assert_allclose(truncated.grad.log10, log10[:4], rtol=1e-12)


# ---- single paths --------------------------------------------------------------------------


def test_the_skip_only_path_is_the_output_gradient_scaled() -> None:
    """Pre without norm: the path through no branch is s^B·∂L/∂y, in the split and sampled."""
    spec = NetworkSpec(**SMALL, skip="pre", activation="relu", skip_scale=0.9)  # type: ignore[arg-type]
    network = build(spec)
    _, y = forward(spec, network.weights_for(spec), network.biases_for(spec), network.x)
    dy = LOSSES[spec.loss](y, network.loss_data).dy
    expected = spec.skip_scale**spec.blocks * np.linalg.norm(dy)
    d = decompose(spec, samples=5, network=network)
    assert d.samples is not None
    for m in (d.grad, d.samples.mean, d.samples.min, d.samples.max):
        assert math.isclose(float(m.value[0]), expected, rel_tol=1e-13)
    # a single path of length B takes every branch: there is one, so it is G_B
    assert math.isclose(float(d.samples.mean.value[-1]), float(d.grad.value[-1]), rel_tol=1e-12)


def test_single_paths_fall_off_with_length_under_batch_norm() -> None:
    """Veit et al.'s observation: with normalised branches, a single path's gradient shrinks
    about exponentially with the number of branches it passes through."""
    spec = NetworkSpec(
        depth=24,
        width=64,
        batch=16,
        skip="pre",
        activation="relu",
        init="he",
        norm="batch",  # type: ignore[arg-type]
    )
    d = decompose(spec, samples=8)
    assert d.samples is not None
    mean = d.samples.mean.log10
    slope = np.polyfit(np.arange(len(mean)), mean, 1)[0]
    assert slope < -0.1 and mean[0] - mean[-1] > 1.5
    assert (d.samples.min.log10 <= mean).all() and (mean <= d.samples.max.log10).all()


def test_sampled_paths_take_exactly_k_branches_from_the_seed() -> None:
    spec = NetworkSpec(depth=20, skip="pre", block_size=2, seed=3)  # type: ignore[arg-type]
    masks = draw_paths(spec, 6, 4)
    assert masks.shape == (7, 4, 10)
    np.testing.assert_array_equal(masks.sum(axis=2), np.repeat(np.arange(7)[:, None], 4, axis=1))
    np.testing.assert_array_equal(masks, draw_paths(spec, 6, 4))
    assert not np.array_equal(masks, draw_paths(spec.replace(seed=4), 6, 4))


# ---- results and their limits ------------------------------------------------------------------


def test_a_plain_network_has_no_paths() -> None:
    with pytest.raises(ValueError, match=r"^paths: a plain network has no skip paths"):
        decompose(NetworkSpec(depth=4))
    with pytest.raises(ValueError, match="plain network"):
        compare_paths(NetworkSpec(depth=4, skip="pre"), ["pre", "none"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_length"):
        decompose(NetworkSpec(depth=4, skip="pre"), max_length=-1)  # type: ignore[arg-type]


def test_variants_share_the_weights() -> None:
    spec = NetworkSpec(**SMALL, norm="layer", activation="tanh")
    runs = compare_paths(spec, ["post", "pre", "postnorm"], max_length=2)
    assert [d.label for d in runs] == ["post", "pre", "postnorm"]
    assert all(d.check <= 1e-12 for d in runs)
    alone = decompose(spec.replace(skip="pre"), max_length=2)
    np.testing.assert_array_equal(alone.grad.mantissa, runs[1].grad.mantissa)


def test_counts_shares_and_means() -> None:
    spec = NetworkSpec(**SMALL, skip="pre", activation="relu", init="he")  # type: ignore[arg-type]
    d = decompose(spec)
    assert d.paths == (1, 4, 6, 4, 1) and sum(d.paths) == 2**d.blocks
    np.testing.assert_allclose(d.log10_paths, np.log10(d.paths))
    energy = np.power(10.0, 2 * d.grad.log10)
    np.testing.assert_allclose(d.share, energy / energy.sum(), rtol=1e-12)
    np.testing.assert_allclose(d.cumulative[-1], 1.0)
    assert math.isclose(d.mean_length, float(np.dot(np.arange(5), d.share)))
    assert d.mean_length_exact and d.mean_path_length == 2.0
    truncated = decompose(spec, max_length=1)
    r = truncated.remainder
    assert r is not None and (r.low, r.high, r.paths) == (2, 4, 11)
    assert not truncated.mean_length_exact
    assert truncated.mean_length <= d.mean_length + 1e-12


@pytest.mark.parametrize(
    ("shares", "window"),
    [
        ([0.05, 0.9, 0.05], (1, 1)),
        ([0.3, 0.3, 0.3, 0.1], (0, 2)),
        ([0.1, 0.3, 0.3, 0.3], (1, 3)),
        ([0.25, 0.25, 0.25, 0.25], (0, 3)),
        ([0.02, 0.5, 0.02, 0.46], (1, 3)),
    ],
)
def test_effective_range_is_the_shortest_window(
    shares: list[float], window: tuple[int, int]
) -> None:
    lengths = np.arange(len(shares))
    found = effective_range(lengths, lengths, np.array(shares))
    assert found is not None and found[:2] == window
    assert found[2] >= 0.9 - 1e-12


def test_memory_declaration_bounds_the_peak() -> None:
    cases: list[tuple[dict[str, Any], int | None, int]] = [
        (
            {"depth": 60, "width": 48, "skip": "post", "norm": "batch", "activation": "sigmoid"},
            None,
            0,
        ),
        ({"depth": 60, "width": 48, "skip": "pre", "norm": "layer", "activation": "relu"}, 4, 3),
        # several chunks of sampled paths (2 MiB each), of which the branch takes some
        (
            {"depth": 24, "width": 128, "skip": "pre", "norm": "batch", "activation": "relu"},
            None,
            8,
        ),
        # many sampled paths on a small network: their draws and norms are most of the peak
        ({"depth": 8, "width": 4, "skip": "pre"}, None, 20_000),
    ]
    decompose(NetworkSpec(depth=4, width=8, batch=4, skip="post", norm="batch"), samples=2)  # type: ignore[arg-type]
    for fields, max_length, samples in cases:
        spec = NetworkSpec(batch=24, **fields)
        tracemalloc.start()
        try:
            decompose(spec, max_length=max_length, samples=samples)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        declared = paths_bytes(spec, max_length, samples)
        assert peak <= declared <= 1.8 * peak


# ---- rendering -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs() -> list[Decomposition]:
    spec = NetworkSpec(depth=24, width=16, batch=8, block_size=2, activation="relu", init="he")
    return [
        decompose(spec.replace(skip="pre"), samples=3),
        decompose(spec.replace(skip="post"), max_length=4),
    ]


def _strict(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_json_is_strict_and_complete(runs: list[Decomposition]) -> None:
    document = _strict(paths_view.to_json(runs))
    assert document["command"] == "paths"
    first, second = document["runs"]
    assert {"label", "blocks", "lengths", "total", "log10_total", "total_status", "check",
            "effective", "mean_length", "mean_path_length"} <= set(first)  # fmt: skip
    assert first["label"] == "pre" and first["blocks"] == 12 and first["mean_path_length"] == 6
    assert len(first["lengths"]) == 13 and first["remainder"] is None
    length = first["lengths"][6]
    assert length["length"] == 6 and length["paths"] == math.comb(12, 6)
    for name in ("grad", "sample_mean", "sample_min", "sample_max"):
        assert {name, f"log10_{name}", f"{name}_status"} <= set(length)
    assert set(first["effective"]) >= {"low", "high", "share"}
    assert len(second["lengths"]) == 5 and second["remainder"]["low"] == 5
    assert "sample_mean" not in second["lengths"][0]


def test_json_writes_nonfinite_and_huge_counts_as_null() -> None:
    spec = NetworkSpec(
        depth=120, width=8, batch=4, block_size=1, skip="post", activation="sigmoid",  # type: ignore[arg-type]
        skip_scale=0.2, residual_scale=0.2,
    )  # fmt: skip
    d = decompose(spec, max_length=70)
    run = _strict(paths_view.to_json([d]))["runs"][0]
    huge = run["lengths"][60]
    assert huge["paths"] is None and huge["log10_paths"] > 15.9
    assert run["lengths"][0]["paths"] == 1


def test_a_broken_pass_is_reported_not_raised() -> None:
    """Weights large enough to overflow the forward pass: nan parts, no range, strict JSON."""
    spec = NetworkSpec(
        depth=300,
        width=8,
        batch=4,
        skip="pre",
        activation="relu",
        weight_var=1e6,  # type: ignore[arg-type]
    )
    d = decompose(spec, max_length=3, samples=2)
    assert set(d.grad.status()) == {Status.NAN} and d.effective is None
    run = _strict(paths_view.to_json([d]))["runs"][0]
    assert run["check"] is None and run["effective"] is None
    assert run["lengths"][1]["grad"] is None and run["lengths"][1]["grad_status"] == "nan"
    assert "no check" in paths_view.summary_line(d)


def test_csv_has_a_row_per_length(runs: list[Decomposition]) -> None:
    lines = paths_view.to_csv(runs).splitlines()
    assert lines[0].startswith("label,skip,blocks,length,paths,log10_paths,grad,")
    assert len(lines) == 1 + 13 + 6  # pre: 0..12; post: 0..4 and >4
    assert lines[-1].split(",")[3] == ">4"


def test_grid_has_a_row_per_length_and_the_remainder(runs: list[Decomposition]) -> None:
    pre, post = runs
    grid = paths_view.paths_grid(pre)
    assert [c.header for c in grid.columns] == [
        "k", "paths", "‖G_k‖", "share", "cumulative", "path mean", "path min", "path max",
    ]  # fmt: skip
    assert [c.text for c in grid.columns[1].cells] == [str(math.comb(12, k)) for k in range(13)]
    labels = [c.text for c in paths_view.paths_grid(post).columns[0].cells]
    assert labels == ["0", "1", "2", "3", "4", ">4"]
    grouped = paths_view.paths_grid(pre, max_rows=4)
    assert [c.text for c in grouped.columns[0].cells] == ["0-3", "4-7", "8-11", "12"]
    assert paths_view.GROUP_NOTE in grouped.caption


def test_paths_text_is_exact_below_1e15() -> None:
    assert paths_view.paths_text(math.comb(50, 25)) == "126410606437752"
    assert paths_view.paths_text(math.comb(100, 50)) == "1.0e+29"


def test_histogram_is_ascii_and_fits(runs: list[Decomposition]) -> None:
    for d in runs:
        lines = paths_view.histogram(d, width=90)
        assert all(line.isascii() and len(line) <= 90 for line in lines)
        assert sum(line.split()[0] == "12" for line in lines) == (d.remainder is None)
    deep = decompose(NetworkSpec(depth=200, width=8, batch=4, block_size=1, skip="pre"))  # type: ignore[arg-type]
    lines = paths_view.histogram(deep, width=120)
    bars = [line for line in lines if "|" in line]
    assert len(bars) <= 40 and any("rows group up to" in line for line in lines)
    assert all(line.isascii() and len(line) <= 120 for line in lines)


def test_a_share_below_float_range_of_a_nonzero_length_reads_below_0_01_percent() -> None:
    """‖G_200‖ = 5e-174 beside ‖G_0‖ ≈ 10: its share, 10^-350, is 0.0 in float64; the table
    read 0%, as for an exact zero."""
    spec = NetworkSpec(depth=600, width=2, batch=1, block_size=1, skip="pre")  # type: ignore[arg-type]
    d = decompose(spec, max_length=220)
    tiny = [k for k in range(221) if d.share[k] == 0.0 and d.grad.status()[k] is not Status.ZERO]
    assert tiny  # lengths whose share leaves float64's range
    cells = paths_view.paths_grid(d, max_rows=None).columns[3].cells
    assert paths_view.paths_grid(d, max_rows=None).columns[3].header == "share"
    assert all(cells[k].text == "<0.01%" for k in tiny)


def test_the_page_s_histogram_is_grouped_as_its_table() -> None:
    """--max-rows 6 gave a table of 6 rows beside a histogram of 31; --all-rows one row a
    length in the table only."""
    from gradflow.render import table

    spec = NetworkSpec(depth=60, width=4, batch=2, block_size=1, skip="pre")  # type: ignore[arg-type]
    d = decompose(spec)
    for max_rows, rows in ((6, 6), (None, 61)):
        page = table.paths_page([d], max_rows=max_rows, width=80)
        chart = next(p for p in page if isinstance(p, table.Lines) and "|G_k|" in str(p.lines))
        bars = [line for line in chart.lines if re.match(r"\s*[0-9>][0-9-]* \|", line)]
        assert len(bars) == rows == len(paths_view.rows(d, max_rows))


def test_wirings_on_one_page_share_the_norms_scale() -> None:
    """post's G_0 (1e-5) and pre's (4) once drew bars of one length, each on its own scale."""
    spec = NetworkSpec(depth=16, width=8, batch=4, skip="post")  # type: ignore[arg-type]
    post, pre = decompose(spec), decompose(spec.replace(skip="pre"))
    both = (post, pre)
    lines = [paths_view.histogram(d, width=100, together=both) for d in both]

    def bar(page: list[str], k: str) -> int:
        row = next(line for line in page if line.split()[0] == k)
        return row.split("|")[1].count("#")

    axes = [[line for line in page if line.lstrip().startswith("+")] for page in lines]
    assert axes[0] == axes[1]  # one scale
    g0 = [float(d.grad.log10[0]) for d in both]
    assert g0[1] - g0[0] > 4  # pre's G_0 is four decades and more above post's ...
    assert bar(lines[1], "0") > bar(lines[0], "0") + 10  # ... and its bar longer
    alone = paths_view.histogram(post, width=100)
    assert bar(alone, "0") > bar(lines[0], "0")  # on its own scale, post's fills the panel
    # and so the page draws them, in the terminal and in markdown
    from gradflow.render import table

    page = [p.lines for p in table.paths_page(both, max_rows=None, width=100)
            if isinstance(p, table.Lines) and "|G_k|" in str(p.lines)]  # fmt: skip
    assert [[x for x in chart if x.lstrip().startswith("+")] for chart in page] == axes
    markdown = paths_view.to_markdown(both, width=100)
    assert sum(markdown.count(axis) for axis in axes[0]) == 2 * len(axes[0])


def test_summary_and_markdown(runs: list[Decomposition]) -> None:
    line = paths_view.summary_line(runs[0])
    assert "path counts peak at k = 6 of 12" in line and "B/2 = 6" in line
    assert "check" in line and "energy-weighted mean length" in line
    text = paths_view.to_markdown(runs, width=100)
    assert text.count("```text") == 2 and "| k | paths |" in text


def test_progress_counts_the_blocks() -> None:
    seen: list[tuple[int, int]] = []
    spec = NetworkSpec(**SMALL, skip="pre")  # type: ignore[arg-type]
    compare_paths(
        spec, ["pre", "post"], samples=2, progress=lambda done, total: seen.append((done, total))
    )
    assert seen[-1] == (16, 16) and len(seen) == 16
    assert paths.SAMPLE_STREAM == 2


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"skip": "pre"}, "every path through a branch is 0 in float64"),
        ({"skip": "post"}, "∂L/∂x is 0 in float64"),
        ({"skip": "pre", "activation": "linear", "weight_var": 1e300}, "non-finite"),
        ({"skip": "pre", "weight_var": 1.0}, None),  # healthy
        ({"skip": "pre", "branch_weight_scale": 0.0}, None),  # zero branches: true zeros
        ({"skip": "pre", "zero_init_residual": True}, None),  # zeroed branch ends: true zeros
    ],
)
def test_parts_lost_to_rounding_or_overflow_are_said(
    changes: dict[str, object], words: str | None
) -> None:
    """σ_w² = 1e200 saturates every sigmoid: φ′ rounds to 0, and with it every part through a
    branch (pre) or, after the add, all of ∂L/∂x (post); the decomposition says so instead of
    leaving 0 to read as a true zero."""
    base: dict[str, object] = {"depth": 8, "width": 8, "batch": 2, "weight_var": 1e200}
    d = decompose(NetworkSpec(**{**base, **changes}))  # type: ignore[arg-type]
    if words is None:
        assert d.warnings == ()
    else:
        assert len(d.warnings) == 1 and words in d.warnings[0]
    if words is not None and "branch" in words:
        assert d.grad.mantissa[0] > 0 and (d.grad.mantissa[1:] == 0).all()


def test_a_split_of_an_exactly_zero_gradient_has_no_shares_mean_or_check() -> None:
    """α = 1e100 saturates every post block's φ after the add: ∂L/∂x and every part are 0.
    Shares, the mean length and the check are 0/0: undefined, not 0."""
    d = decompose(NetworkSpec(depth=8, width=8, batch=4, skip="post", residual_scale=1e100))
    assert d.total.mantissa[0] == 0 and (d.grad.mantissa == 0).all()
    assert np.isnan(d.share).all() and math.isnan(d.mean_length) and math.isnan(d.check)
    assert d.effective is None
    line = paths_view.summary_line(d)
    assert "mean length n/a" in line and "no check: ∂L/∂x is exactly 0" in line
    record = paths_view.run_record(d)
    assert record["mean_length"] is None and record["check"] is None


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_the_histogram_fits_its_width_with_every_count_and_note_whole(width: int) -> None:
    """At 40 columns its lines were 42 wide, and a terminal cut the path counts (125970 read
    1259) and the notes; below two panels' minimum it now stacks them, and wraps its notes."""
    d = decompose(NetworkSpec(depth=40, width=8, batch=4, skip="pre", activation="relu"))
    lines = paths_view.histogram(d, width=width)
    assert max(len(line) for line in lines) <= width
    counts = [line.split()[-1] for line in lines if line.split() and line.split()[0].isdigit()]
    for count in (190, 1140, 4845, 15504, 125970, 184756):
        assert str(count) in counts
    notes = " ".join(line.strip() for line in lines if not line.lstrip().startswith(("|", "+")))
    assert "one for |G_k| and one for the number of paths" in notes
