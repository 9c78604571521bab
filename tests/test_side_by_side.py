"""Variants side by side on threads (compare, train, paths): the same results, bit for bit, as
one after another; progress that counts every run; memory estimated for the runs held at once."""

from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np
import pytest
from typer.testing import CliRunner

from gradflow.analysis import analyze as analysis
from gradflow.analysis.analyze import compare, estimate_bytes
from gradflow.analysis.paths import compare_paths, paths_bytes
from gradflow.analysis.side_by_side import side_by_side
from gradflow.analysis.train import train, train_bytes
from gradflow.analysis.training import Training
from gradflow.cli import execute
from gradflow.cli.app import app
from gradflow.engine.network import network_bytes
from gradflow.engine.spec import NetworkSpec
from gradflow.render.formats import to_json
from gradflow.render.paths_view import to_json as paths_json
from gradflow.render.train_view import to_json as train_json

VARIANTS = ["none", "post", "pre"]


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_every_task_once_and_in_order(workers: int) -> None:
    seen: list[int] = []
    threads: set[int] = set()
    first = min(workers, 7)
    together = threading.Barrier(first, timeout=10)  # the first tasks run at once, or fail

    def task(i: int) -> int:
        seen.append(i)
        threads.add(threading.get_ident())
        if workers > 1 and i < first:
            together.wait()
        return i * i

    assert side_by_side(task, 7, workers) == [i * i for i in range(7)]
    assert sorted(seen) == list(range(7))
    if workers == 1:
        assert threads == {threading.get_ident()}  # in the caller's thread
    else:
        assert threading.get_ident() not in threads
        assert len(threads) == min(workers, 7)


def test_a_failure_is_raised_and_stops_further_tasks() -> None:
    started: list[int] = []

    def task(i: int) -> int:
        started.append(i)
        if i == 1:
            raise ValueError("task 1 failed")
        time.sleep(0.02)
        return i

    with pytest.raises(ValueError, match="task 1 failed"):
        side_by_side(task, 20, 2)
    assert len(started) < 20  # no new task began once one had failed


@pytest.mark.parametrize(
    "spec",
    [
        NetworkSpec(depth=12, width=24, batch=8),
        NetworkSpec(depth=10, width=16, batch=32, activation="gelu", dtype="float32", norm="layer"),
        NetworkSpec(depth=9, width=12, batch=4, activation="tanh", block_size=3, skip_scale=2.0),
        NetworkSpec(depth=8, width=20, batch=6, activation="relu", loss="xent", bias_var=0.1),
    ],
)
def test_side_by_side_gives_the_same_bits_as_one_after_another(spec: NetworkSpec) -> None:
    variants = [*VARIANTS, "postnorm"] if spec.norm != "none" else VARIANTS
    serial = compare(spec, variants, workers=1)
    together = compare(spec, variants, workers=len(variants))
    assert to_json("compare", spec, together) == to_json("compare", spec, serial)
    for a, b in zip(serial, together, strict=True):
        for name in ("grad_weight", "grad_bias", "grad_input"):
            np.testing.assert_array_equal(
                getattr(a.layers, name).mantissa, getattr(b.layers, name).mantissa
            )


def test_progress_counts_every_run_and_never_goes_back() -> None:
    spec = NetworkSpec(depth=300, width=8, batch=4)
    calls: list[tuple[int, int]] = []
    threads: set[int] = set()

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        threads.add(threading.get_ident())

    compare(spec, VARIANTS, progress=progress, workers=3)
    assert threading.get_ident() not in threads  # reported from the runs' own threads
    done = [d for d, _ in calls]
    assert {t for _, t in calls} == {2 * spec.depth * len(VARIANTS)}
    assert done == sorted(done)
    assert done[-1] == 2 * spec.depth * len(VARIANTS)


def test_estimate_holds_the_passes_side_by_side() -> None:
    spec = NetworkSpec(depth=40, width=64, batch=32, skip="pre")
    variants = ["pre", "post", "none"]
    compare(spec.replace(depth=2), variants, workers=3)  # imports and caches are not the run's
    tracemalloc.start()
    try:
        compare(spec, variants, workers=3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    each = estimate_bytes(spec) - network_bytes(spec)
    assert estimate_bytes(spec, at_once=3) == network_bytes(spec) + 3 * each
    assert peak <= estimate_bytes(spec, at_once=3)


@pytest.mark.parametrize(("room", "expected"), [(1, 1), (2, 2), (3, 3), (9, 3)])
def test_the_command_runs_as_many_variants_at_once_as_memory_holds(
    monkeypatch: pytest.MonkeyPatch, room: int, expected: int
) -> None:
    """--max-memory with room for ``room`` passes side by side (and 4 threads): compare runs
    min(room, variants) at once, and never refuses what one at a time can run."""

    spec = NetworkSpec(depth=30, width=32, batch=8, skip="post")
    limit = max(
        estimate_bytes(spec.replace(skip=v, zero_init_residual=False), at_once=room)
        for v in VARIANTS
    )
    used: list[int | None] = []
    real = analysis.compare

    def spy(*args: object, workers: int | None = None, **kwargs: object) -> object:
        used.append(workers)
        return real(*args, workers=workers, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(execute, "available", lambda: 4)
    monkeypatch.setattr(analysis, "compare", spy)
    args = ["compare", "--depth", "30", "--width", "32", "--batch", "8", "-q"]
    result = CliRunner().invoke(app, [*args, "--max-memory", str(limit)])
    assert result.exit_code == 0, result.output
    assert used == [expected]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_training_side_by_side_gives_the_same_bits(optimizer: str) -> None:

    spec = NetworkSpec(depth=6, width=12, batch=4, activation="tanh", skip="post")
    training = Training(optimizer=optimizer, steps=12, samples=16, every=1)  # type: ignore[arg-type]
    calls: list[tuple[int, int]] = []
    serial = train(spec, VARIANTS, training, workers=1)
    together = train(
        spec, VARIANTS, training, workers=3, progress=lambda d, t: calls.append((d, t))
    )
    assert train_json(spec, together, training) == train_json(spec, serial, training)
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == 3 * training.steps
    assert {t for _, t in calls} == {3 * training.steps}


def test_training_estimate_holds_the_variants_side_by_side() -> None:

    spec = NetworkSpec(depth=20, width=48, batch=16, skip="pre")
    training = Training(steps=6, samples=64)
    train(spec.replace(depth=2), VARIANTS, training, workers=3)  # imports, caches
    tracemalloc.start()
    try:
        train(spec, VARIANTS, training, workers=3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= train_bytes(spec, training, at_once=3)


def test_path_decompositions_side_by_side_give_the_same_bits() -> None:

    spec = NetworkSpec(depth=12, width=10, batch=4, skip="pre", activation="relu")
    variants = ["post", "pre"]
    calls: list[tuple[int, int]] = []
    serial = compare_paths(spec, variants, max_length=3, samples=5, workers=1)
    together = compare_paths(
        spec, variants, max_length=3, samples=5, workers=2,
        progress=lambda d, t: calls.append((d, t)),
    )  # fmt: skip
    assert paths_json(together) == paths_json(serial)
    for a, b in zip(serial, together, strict=True):
        np.testing.assert_array_equal(a.share, b.share)
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == calls[0][1]


def test_path_estimate_holds_the_decompositions_side_by_side() -> None:

    spec = NetworkSpec(depth=16, width=32, batch=8, skip="pre")
    variants = ["post", "pre", "postnorm"]
    spec = spec.replace(norm="layer")
    compare_paths(spec.replace(depth=4), variants, workers=3)  # imports, caches
    tracemalloc.start()
    try:
        compare_paths(spec, variants, samples=3, workers=3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= paths_bytes(spec, samples=3, at_once=3)
