"""Same flags and seed, same bytes: also across BLAS thread counts (each pass runs its BLAS on
one thread), checked by running the command under OPENBLAS_NUM_THREADS=1, 2 and unset (where
the command starts BLAS on one thread itself; under 2, every pass takes the limit). The same
variables, and --threads, set how many threads share a pass's large products: one computes
their two halves in turn, two side by side (``engine/products.py``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CASES = [
    # shapes where two OpenBLAS threads used to change the last digits of norms and gradients
    ["analyze", "--depth", "12", "--width", "64", "--batch", "256"],
    ["analyze", "--depth", "12", "--width", "256", "--batch", "4", "--dtype", "float32"],
    ["compare", "--depth", "8", "--width", "96", "--batch", "160", "--norm", "batch"],
    ["paths", "--depth", "8", "--width", "96", "--batch", "128", "--activation", "relu"],
    # the sweep's pool workers and every training step run under the same one-thread rule
    ["sweep", "--vary", "depth=4,8", "--width", "64", "--batch", "256", "--jobs", "2"],
    ["train", "--depth", "6", "--width", "64", "--batch", "128", "--samples", "256",
     "--steps", "4", "--variants", "none,pre"],
    # products large enough to be split in halves: in turn on one thread, side by side on two
    ["analyze", "--depth", "4", "--width", "512", "--batch", "128", "--skip", "pre"],
    ["train", "--depth", "2", "--width", "512", "--batch", "128", "--samples", "128",
     "--steps", "1", "--variants", "pre"],
]  # fmt: skip


def _json(args: list[str], threads: str | None) -> bytes:
    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
    }
    if threads is not None:
        env["OPENBLAS_NUM_THREADS"] = threads
    out = subprocess.run(
        [sys.executable, "-m", "gradflow", *args, "--format", "json"],
        env=env,
        capture_output=True,
        check=True,
    )
    return out.stdout


@pytest.mark.parametrize("args", CASES, ids=[" ".join(c[:1] + c[-2:]) for c in CASES])
def test_blas_thread_count_does_not_change_a_bit(args: list[str]) -> None:
    assert _json(args, "1") == _json(args, None) == _json(args, "2")


def test_the_threads_option_does_not_change_a_bit() -> None:
    """float32, whose halves are not the whole product's bits: still the same for any N."""
    args = ["analyze", "--depth", "4", "--width", "512", "--batch", "256", "--dtype", "float32"]
    alone = _json([*args, "--threads", "1"], None)
    assert _json([*args, "--threads", "3"], None) == alone == _json(args, None)
