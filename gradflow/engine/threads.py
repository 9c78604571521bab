"""Every pass runs its BLAS calls on one thread.

OpenBLAS splits a product's work differently with each thread count, and the sums then round
differently: with two threads instead of one, weight norms, gradients and activation statistics
changed in their last digits. One thread makes the results the same bits whatever
OPENBLAS_NUM_THREADS or OMP_NUM_THREADS say. It costs little: at the widths gradflow runs
(products of a few hundred rows), a second thread gains little on an idle machine, and on a busy
one its spin-waiting made passes many times slower.

Nor can threads be added back above BLAS without changing bits: a product split by rows (or
columns) over threads, each calling single-threaded BLAS on its slice, did not reproduce the
whole product. In float32 no split tried did (halves and quarters, widths 128 to 1024); in
float64, splits into three, or of batches that are not a multiple of the kernel's row block,
did not. So there is no ``--threads``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, wraps
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def one_blas_thread(function: Callable[P, R]) -> Callable[P, R]:
    """Run ``function`` with the BLAS libraries NumPy loaded limited to one thread."""

    @wraps(function)
    def limited(*args: P.args, **kwargs: P.kwargs) -> R:
        with _controller().limit(limits=1, user_api="blas"):
            return function(*args, **kwargs)

    return limited


@cache
def _controller() -> Any:
    """One threadpoolctl controller: it finds the loaded BLAS libraries once (~30 ms), after
    which a limit costs ~15 µs instead of a fresh scan's ~0.6 ms. Imported with the first pass,
    not at start-up."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()
