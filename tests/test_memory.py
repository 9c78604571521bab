"""The memory estimate against what a pass really allocates, measured with tracemalloc (NumPy
reports its array buffers to it): never below, and not far above."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc

import pytest

from gradflow.analysis.analyze import analyze, estimate_bytes
from gradflow.engine.spec import NetworkSpec


@pytest.mark.parametrize(
    ("activation", "skip", "norm", "dtype", "keep", "loss"),
    [
        ("relu", "none", "none", "float64", False, "mse"),  # φ' not saved: derived in backward
        ("sigmoid", "post", "batch", "float64", False, "xent"),  # φ' saved, statistics use it
        ("gelu", "pre", "layer", "float32", False, "mse"),  # Gram path in float32
        ("tanh", "postnorm", "layer", "float64", True, "mse"),  # every gradient kept
        ("linear", "pre", "none", "float64", True, "linear"),  # φ' ≡ 1: nothing saved
        ("relu", "post", "none", "float32", False, "mse"),
    ],
)
@pytest.mark.parametrize(("depth", "width", "batch"), [(40, 64, 32), (30, 32, 64), (120, 96, 16)])
def test_estimate_bounds_the_measured_peak(
    activation: str,
    skip: str,
    norm: str,
    dtype: str,
    keep: bool,
    loss: str,
    depth: int,
    width: int,
    batch: int,
) -> None:
    spec = NetworkSpec(
        depth=depth, width=width, batch=batch, activation=activation, skip=skip, norm=norm,  # type: ignore[arg-type]
        dtype=dtype, loss=loss,  # type: ignore[arg-type]
    )  # fmt: skip
    analyze(spec.replace(depth=2, skip="none"))  # imports (scipy for GELU) are not the pass's
    tracemalloc.start()
    try:
        analyze(spec, keep_gradients=keep)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    estimate = estimate_bytes(spec, keep)
    assert peak <= estimate <= 1.8 * peak


@pytest.mark.parametrize(
    ("activation", "skip", "norm"), [("sigmoid", "none", "none"), ("relu", "pre", "layer")]
)
def test_estimate_counts_every_layer_view(activation: str, skip: str, norm: str) -> None:
    """Deep and narrow, where each layer's few bytes of values are outweighed by the array
    objects the pass keeps for it (views of the weights, their transposes, the outputs)."""
    spec = NetworkSpec(depth=8_000, width=4, batch=2, activation=activation, skip=skip, norm=norm)  # type: ignore[arg-type]
    analyze(spec.replace(depth=2, skip="none"))
    tracemalloc.start()
    try:
        analyze(spec)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= estimate_bytes(spec) <= 1.8 * peak


# A second pass of the same shape, counting the page faults it takes: run in a child process,
# since keep_freed_memory changes how that process's malloc hands memory back.
REUSE = """
import resource, sys
from gradflow.analysis.analyze import analyze
from gradflow.engine.heap import keep_freed_memory
from gradflow.engine.network import build
from gradflow.engine.spec import NetworkSpec
kept = sys.argv[1] == "keep" and keep_freed_memory()
spec = NetworkSpec(depth=40, width=256, batch=64, dtype="float32", activation="tanh", skip="pre")
network = build(spec)
analyze(spec, network=network)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
analyze(spec, network=network)
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux: glibc's malloc")
def test_a_second_pass_reuses_the_memory_the_first_freed() -> None:
    """Without the setting, glibc hands a pass's tape back and the next pass faults every page
    in again (~1,700 faults here); with it, the next pass finds the pages still mapped."""

    def faults(mode: str) -> tuple[str, int]:
        run = subprocess.run(
            [sys.executable, "-c", REUSE, mode], capture_output=True, text=True, check=True
        )
        kept, count = run.stdout.split()
        return kept, int(count)

    kept, with_setting = faults("keep")
    _, without = faults("default")
    assert kept == "True"
    assert without > 1000  # the tape, φ' and the gradient slots: ~7 MB of fresh pages
    assert with_setting < 100
