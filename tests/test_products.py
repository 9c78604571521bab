"""Large products as two column halves (engine/products.py), and the threads a run shares out
(engine/threads.py ``available``, analysis/side_by_side.py ``share``): the same bits on one
thread, two or three; the halves' result is the product; an error in either half is raised."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from gradflow.analysis import side_by_side
from gradflow.analysis.analyze import analyze, compare
from gradflow.analysis.train import train
from gradflow.analysis.training import Training
from gradflow.engine import products, threads, weight_grads
from gradflow.engine.products import both, product, splits
from gradflow.engine.spec import NetworkSpec
from gradflow.render.formats import to_json
from gradflow.render.train_view import to_json as train_json

F64, F32 = np.dtype(np.float64), np.dtype(np.float32)


def test_which_products_are_split() -> None:
    assert splits(128, 512, 512, F64) and splits(256, 512, 512, F32)
    assert not splits(64, 512, 512, F64)  # the hand-off would cost more than the half saves
    assert not splits(128, 512, 512, F32)  # float32's products are twice as fast
    assert not splits(1 << 20, 1 << 10, 1, F64)  # one column has no halves
    assert product(64, 256, 256, F64, 4) is np.matmul  # whole, with no wrapper


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("transposed", [False, True])
def test_halves_give_the_product_and_the_same_bits_on_any_thread_count(
    dtype: np.dtype, transposed: bool
) -> None:
    rows, n = (128, 512) if dtype == F64 else (256, 520)  # an even and a ragged half
    rng = np.random.default_rng(3)
    a = rng.standard_normal((rows, n)).astype(dtype)
    w = rng.standard_normal((n, n)).astype(dtype)
    w = w.T if transposed else w
    outs = []
    for count in (1, 2, 3):
        out = np.full((rows, n), np.nan, dtype=dtype)
        product(rows, n, n, dtype, count)(a, w, out=out)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])
    exact = a.astype(np.float64) @ w.astype(np.float64)
    bound = 4 * n * np.finfo(dtype).eps * (np.abs(a) @ np.abs(w)).astype(np.float64)
    assert np.all(np.abs(outs[0] - exact) <= bound)


def test_an_error_in_the_helpers_half_is_raised_and_the_helper_still_works() -> None:
    a = np.ones((128, 512))
    w = np.ones((512, 512))
    narrow = np.empty((128, 400))  # the first half fits; the second (the helper's) does not
    halves = product(128, 512, 512, F64, 2)
    with pytest.raises(ValueError):
        halves(a, w, out=narrow)
    out = np.empty((128, 512))
    halves(a, w, out=out)
    assert np.all(out == 512.0)


def test_both_waits_for_the_second_before_raising_the_first() -> None:
    finished = threading.Event()

    def first() -> None:
        raise ValueError("first")

    def second() -> None:
        finished.wait(0.05)
        finished.set()

    with pytest.raises(ValueError, match="first"):
        both(first, second)
    assert finished.is_set()
    with pytest.raises(KeyError):
        both(lambda: None, lambda: {}["missing"])


class Counting:
    """Counts the calls that reach a helper thread."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = products._helper()
        monkeypatch.setattr(products, "_helper", lambda: self)
        self.real = real

    def submit(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        return self.real.submit(*args, **kwargs)  # type: ignore[arg-type]


def count_shared(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one at each piece of weight-gradient work shared out (``both``)."""
    shared: list[int] = []
    real_both = weight_grads.both

    def counting(first: object, second: object) -> None:
        shared.append(1)
        real_both(first, second)  # type: ignore[arg-type]

    monkeypatch.setattr(weight_grads, "both", counting)
    return shared


@pytest.mark.parametrize(
    "spec",
    [
        NetworkSpec(depth=4, width=512, batch=128, skip="pre", activation="gelu"),
        NetworkSpec(depth=3, width=512, batch=256, dtype="float32", norm="layer"),
        NetworkSpec(depth=4, width=512, batch=128, skip="post", activation="sigmoid"),
    ],
    ids=["float64-pre-gelu", "float32-layernorm", "float64-post-sigmoid"],
)
def test_a_pass_is_the_same_bits_on_one_two_or_three_threads(
    spec: NetworkSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    helper = Counting(monkeypatch)
    alone = to_json("analyze", spec, [analyze(spec, threads=1)])
    assert helper.calls == 0
    assert to_json("analyze", spec, [analyze(spec, threads=2)]) == alone
    assert helper.calls >= 2 * spec.depth  # forward and backward, a half each a layer
    assert to_json("analyze", spec, [analyze(spec, threads=3)]) == alone


def test_grams_and_explicit_products_shared_out_give_the_same_bits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A chunk's two Grams side by side (analyze, batch < width), and ∂L/∂W in two halves
    (training forms it): the same bits as one after the other."""
    shared = count_shared(monkeypatch)
    spec = NetworkSpec(depth=4, width=512, batch=256, skip="pre", activation="tanh")
    alone = to_json("analyze", spec, [analyze(spec, threads=1)])
    assert not shared
    assert to_json("analyze", spec, [analyze(spec, threads=2)]) == alone
    assert shared
    helper = Counting(monkeypatch)
    training = Training(steps=2, samples=256)
    spec = spec.replace(batch=128)
    one = train(spec, ["pre"], training, threads=1)
    assert helper.calls == 0
    two = train(spec, ["pre"], training, threads=2)
    assert helper.calls >= 2 * 3 * spec.depth  # forward, backward and ∂L/∂W, each step
    assert train_json(spec, two, training) == train_json(spec, one, training)


def test_variants_share_the_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = NetworkSpec(depth=4, width=32, batch=8, skip="post")
    given: list[int] = []
    real = side_by_side.side_by_side

    def spy(task: object, count: int, workers: int) -> object:
        given.append(workers)
        return real(task, count, workers)  # type: ignore[arg-type]

    monkeypatch.setattr("gradflow.analysis.analyze.side_by_side", spy)
    alone = compare(spec, ["none", "post", "pre"], threads=1)
    compare(spec, ["none", "post", "pre"], threads=2)
    shared = compare(spec, ["none", "post", "pre"], threads=5)
    assert given == [1, 2, 3]
    assert to_json("compare", spec, shared) == to_json("compare", spec, alone)
    assert side_by_side.share(3, None, 8) == (3, 2)  # three at once, two threads each
    assert side_by_side.share(3, 1, 4) == (1, 4)  # one at a time (memory): all four for it
    assert side_by_side.share(1, None, 1) == (1, 1)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads"):
            side_by_side.share(1, None, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("variables", "ours", "expected"),
    [
        ({}, False, 7),
        ({"OMP_NUM_THREADS": "3"}, False, 3),
        ({"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "6"}, False, 2),
        ({"OPENBLAS_NUM_THREADS": "1"}, True, 7),  # set by the command line itself
        ({"OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "4"}, True, 4),
        ({"OMP_NUM_THREADS": "zero"}, False, 7),
        ({"OMP_NUM_THREADS": "0"}, False, 7),
    ],
)
def test_available_threads_follow_what_the_user_set(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], ours: bool, expected: int
) -> None:
    for name in threads.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(threads, "_started_on_one", ours)
    monkeypatch.setattr(threads, "cores", lambda: 7)
    assert threads.available() == expected


def test_a_chunks_layers_shared_out_give_the_same_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """∂L/∂W formed for a chunk of layers too small to split: half the layers on each thread."""
    shared = count_shared(monkeypatch)
    spec = NetworkSpec(depth=8, width=256, batch=256, activation="relu")
    training = Training(steps=2, samples=512)
    one = train(spec, ["none"], training, threads=1)
    assert not shared
    two = train(spec, ["none"], training, threads=2)
    assert shared
    assert train_json(spec, two, training) == train_json(spec, one, training)


class CountingSide:
    """Counts the chunks handed to the side worker, and can fail the ``fail_at``-th."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_at: int | None = None) -> None:
        self.calls, self.fail_at = 0, fail_at
        self.real = products._side()
        monkeypatch.setattr(products, "_side", lambda: self)

    def submit(self, function: object, *args: object, **kwargs: object) -> object:
        self.calls += 1
        if self.calls == self.fail_at:
            function = _fails
        return self.real.submit(function, *args, **kwargs)  # type: ignore[arg-type]


def _fails() -> None:
    raise MemoryError("a side chunk failed")


@pytest.mark.parametrize(
    ("spec", "method"),
    [
        (NetworkSpec(depth=40, width=128, batch=64, activation="relu", skip="pre"), "auto"),
        (NetworkSpec(depth=120, width=96, batch=32, dtype="float32", norm="layer"), "auto"),
        (NetworkSpec(depth=80, width=64, batch=64, activation="sigmoid"), "explicit"),
        (NetworkSpec(depth=160, width=64, batch=32, activation="tanh", skip="post"), "gram"),
        # activations far below 2^-256: each chunk's A is rescaled before its Grams
        (NetworkSpec(depth=400, width=64, batch=32, activation="linear", weight_var=0.1), "auto"),
    ],
    ids=["gram", "float32-layernorm", "explicit", "gram-post", "vanishing-prescaled"],
)
def test_norms_on_the_side_are_the_same_bits(
    spec: NetworkSpec, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On two threads, each chunk's ‖∂L/∂W‖ and ‖∂L/∂b‖ are taken by the side worker while
    the pass goes on: the report is the one thread's, bit for bit. (Small networks, with the
    whole pass's minimum lifted: the mechanism is what is tested.)"""
    monkeypatch.setattr(products, "SIDE_PASS_FROM", 0)
    side = CountingSide(monkeypatch)
    alone = to_json("analyze", spec, [analyze(spec, threads=1, method=method)])
    assert side.calls == 0
    assert to_json("analyze", spec, [analyze(spec, threads=2, method=method)]) == alone
    assert side.calls > 1  # more than one chunk, so the two sets of slots take turns


def test_a_side_chunks_error_is_raised_by_the_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = NetworkSpec(depth=400, width=128, batch=64, activation="relu")
    CountingSide(monkeypatch, fail_at=2)
    with pytest.raises(MemoryError, match="a side chunk failed"):
        analyze(spec, threads=2)
    CountingSide(monkeypatch)
    analyze(spec, threads=2)  # the worker is still there


def test_small_or_split_passes_keep_their_norms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Too little work for a hand-over (width 8) or for starting the side thread (the default
    network, depth 50), products split in halves (the second thread computes those), or
    layers so narrow that the pass is mostly Python (width 16): no side work. Depth 400 at
    width 128 has enough."""
    side = CountingSide(monkeypatch)
    analyze(NetworkSpec(depth=50, width=8, batch=4), threads=2)
    analyze(NetworkSpec(depth=50), threads=2)
    analyze(NetworkSpec(depth=2, width=512, batch=128), threads=2)
    assert side.calls == 0
    monkeypatch.setattr(products, "SIDE_PASS_FROM", 0)  # enough in all, but narrow layers
    analyze(NetworkSpec(depth=2000, width=16, batch=16), threads=2)
    assert side.calls == 0
    analyze(NetworkSpec(depth=400, width=128, batch=64), threads=2)
    assert side.calls > 1
