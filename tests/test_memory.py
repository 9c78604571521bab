"""The memory estimate against what a pass really allocates, measured with tracemalloc (NumPy
reports its array buffers to it): never below, and not far above."""

from __future__ import annotations

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
