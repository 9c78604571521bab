"""Weights drawn as a pass reads them, twice, instead of held: the same layers and the same
reports, bit for bit, in a fraction of the memory. Chunks are made a few layers small here so
that every pass crosses many of them."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from gradflow.analysis.analyze import analyze, estimate_bytes
from gradflow.cli import execute
from gradflow.cli.app import app
from gradflow.engine import network as network_module
from gradflow.engine import redrawn
from gradflow.engine.network import Network, build, network_bytes, redraws_weights
from gradflow.engine.spec import DType, NetworkSpec
from gradflow.render.formats import to_json

CASES: list[dict[str, Any]] = [
    {"depth": 20, "width": 16, "batch": 4},
    {"depth": 21, "width": 16, "batch": 4, "dtype": "float32", "activation": "tanh"},
    {"depth": 20, "width": 16, "batch": 4, "skip": "pre", "branch_weight_scale": 0.5,
     "zero_init_residual": True},
    {"depth": 24, "width": 16, "batch": 8, "skip": "post", "init": "orthogonal", "block_size": 3,
     "norm": "batch"},
    {"depth": 20, "width": 16, "batch": 4, "skip": "postnorm", "norm": "layer", "bias_var": 0.1,
     "loss": "xent", "activation": "gelu"},
]  # fmt: skip
SPECS = [NetworkSpec(**case) for case in CASES]


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Three layers of width 16 in float64 a chunk (six in float32)."""
    monkeypatch.setattr(redrawn, "CHUNK_BYTES", 3 * 16 * 16 * 8)
    yield


@pytest.mark.parametrize("ahead", [0, 1, 3])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.skip.value}-{s.dtype.value}")
def test_the_same_report_bit_for_bit(
    spec: NetworkSpec, ahead: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Going back, ``ahead`` chunks are drawn at once, each on its own generator (none: each
    as the pass comes to it)."""
    monkeypatch.setattr(network_module, "reader_ahead", lambda threads=None: ahead)
    held, drawn = build(spec), build(spec, redraw=True)
    assert drawn.weights.size == 0 and drawn.stream is not None
    ours = to_json("analyze", spec, [analyze(spec, network=drawn)])
    assert ours == to_json("analyze", spec, [analyze(spec, network=held)])
    np.testing.assert_array_equal(drawn.weight_norms_for(spec), held.weight_norms_for(spec))


@pytest.mark.parametrize("spec", SPECS[:3], ids=lambda s: f"{s.skip.value}-{s.dtype.value}")
def test_kept_gradients_are_the_same(spec: NetworkSpec) -> None:
    held = analyze(spec, network=build(spec), keep_gradients=True).gradients
    drawn = analyze(spec, network=build(spec, redraw=True), keep_gradients=True).gradients
    assert held is not None and drawn is not None
    for ours, theirs in zip(drawn, held, strict=True):  # weights, biases, inputs, output, head
        if isinstance(ours, tuple) and isinstance(theirs, tuple):
            for a, b in zip(ours, theirs, strict=True):
                np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("ahead", [0, 1, 3])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.skip.value}-{s.dtype.value}")
def test_any_order_of_reading_gives_the_held_layers(spec: NetworkSpec, ahead: int) -> None:
    """Backward first (chunks never reached are drawn through), then at random: every layer is
    the held one as the spec sees it (β-scaled, branch ends zeroed), with no chunk drawn
    ahead, one, or three at once."""
    held = build(spec).weights_for(spec)
    stream = build(spec, redraw=True).stream
    assert stream is not None
    drawn = redrawn.RedrawnWeights(stream, spec, ahead=ahead)
    order = [*reversed(range(spec.depth)), *np.random.default_rng(0).permutation(spec.depth)]
    for i in order:
        np.testing.assert_array_equal(drawn[i], held[i])
    np.testing.assert_array_equal(drawn[-1], held[-1])
    assert len(list(drawn)) == len(drawn) == spec.depth
    with pytest.raises(IndexError):
        drawn[spec.depth]
    with pytest.raises(TypeError):
        drawn[1:3]


def test_one_thread_draws_in_the_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """``threads=1``: the reader starts no thread; the report is the same bits."""
    spec = SPECS[0]
    assert redrawn.reader_ahead(1) == 0 and redrawn.reader_ahead(64) == redrawn.cores()
    expected = to_json("analyze", spec, [analyze(spec, network=build(spec))])

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("a thread was started")

    monkeypatch.setattr(redrawn.threading, "Thread", refused)
    drawn = build(spec, redraw=True)
    assert to_json("analyze", spec, [analyze(spec, network=drawn, threads=1)]) == expected


def test_norms_without_a_pass() -> None:
    """The norms of layers no pass has read are drawn for the asking."""
    spec = SPECS[0]
    drawn = build(spec, redraw=True)
    assert np.isnan(drawn.weight_norms).all()
    np.testing.assert_array_equal(drawn.weight_norms_for(spec), build(spec).weight_norms_for(spec))


def test_two_readers_share_the_stream() -> None:
    """Readers of one network each have their buffers; the saved states serve both."""
    spec = SPECS[2]
    network = build(spec, redraw=True)
    first, second = network.weights_for(spec), network.weights_for(spec)
    held = build(spec).weights_for(spec)
    for i in range(spec.depth):
        np.testing.assert_array_equal(first[i], held[i])
        np.testing.assert_array_equal(second[spec.depth - 1 - i], held[spec.depth - 1 - i])


def test_arrays_refused_when_not_held() -> None:
    spec = SPECS[0]
    with pytest.raises(ValueError, match="not held"):
        build(spec, redraw=True).arrays(spec)


def test_large_stacks_are_redrawn() -> None:
    assert not redraws_weights(NetworkSpec(depth=191, width=256))  # just under 96 MiB
    assert redraws_weights(NetworkSpec(depth=192, width=256))  # 96 MiB
    assert not redraws_weights(NetworkSpec(depth=192, width=256, dtype=DType.FLOAT32))


@pytest.mark.parametrize("spec", SPECS[:3], ids=lambda s: f"{s.skip.value}-{s.dtype.value}")
def test_estimate_bounds_the_measured_peak(spec: NetworkSpec) -> None:
    deep = spec.replace(depth=spec.depth * 10, width=64, batch=8)
    assert network_bytes(deep, redraw=True) < network_bytes(deep) / 10
    analyze(deep.replace(depth=deep.block_size), network=build(deep.replace(depth=deep.block_size)))
    tracemalloc.start()
    try:
        analyze(deep, network=build(deep, redraw=True))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= estimate_bytes(deep, redraw=True) <= 1.8 * peak


def test_the_command_redraws_a_large_analyze_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """analyze redraws a stack at or above REDRAW_FROM, with the same output; compare, and
    analyze with --save-arrays (which writes the weights), hold it."""
    built: list[bool] = []

    def spy(spec: NetworkSpec, redraw: bool = False) -> Network:
        built.append(redraw)
        return build(spec, redraw)

    monkeypatch.setattr(execute, "build", spy)
    args = ["--depth", "12", "--width", "16", "--batch", "4", "--format", "json"]
    runner = CliRunner()
    held = runner.invoke(app, ["analyze", *args])
    monkeypatch.setattr(network_module, "REDRAW_FROM", 1)
    drawn = runner.invoke(app, ["analyze", *args])
    compared = runner.invoke(app, ["compare", *args])
    assert held.exit_code == drawn.exit_code == compared.exit_code == 0
    assert drawn.stdout == held.stdout
    assert built == [False, True, False]


def test_save_arrays_holds_the_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setattr(network_module, "REDRAW_FROM", 1)
    target = f"{tmp_path}/arrays.npz"
    args = ["--depth", "4", "--width", "8", "--batch", "2", "-q", "--save-arrays", target]
    result = CliRunner().invoke(app, ["analyze", *args])
    assert result.exit_code == 0, result.output
    with np.load(target) as saved:
        held = build(NetworkSpec(depth=4, width=8, batch=2))
        np.testing.assert_array_equal(saved["W4"], held.weights[3])


def test_a_failed_draw_ahead_is_met_in_the_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk whose drawing ahead failed (out of memory) is drawn by the pass itself: once the
    failure is gone, the layers are right and no thread printed a traceback; if it recurs, the
    pass meets the error, as one exception in its own thread."""
    spec = SPECS[0]
    held = build(spec).weights_for(spec)
    stream = build(spec, redraw=True).stream
    assert stream is not None
    draw, failures = stream.draw, {"left": 1}

    def failing(c: int, out: np.ndarray) -> None:
        if c == 2 and failures["left"] > 0:
            failures["left"] -= 1
            raise MemoryError("no room for chunk 2")
        draw(c, out)

    monkeypatch.setattr(stream, "draw", failing)
    printed: list[object] = []
    monkeypatch.setattr(threading, "excepthook", printed.append)
    reader = redrawn.RedrawnWeights(stream, spec, ahead=2)
    for i in range(spec.depth):  # chunk 2 is first drawn ahead, on a thread, and fails there
        np.testing.assert_array_equal(reader[i], held[i])
    assert failures["left"] == 0 and printed == []
    failures["left"] = 10**6
    again = redrawn.RedrawnWeights(stream, spec, ahead=2)
    again[0]
    with pytest.raises(MemoryError, match="chunk 2"):
        for i in range(spec.depth):
            again[i]
    assert printed == []
