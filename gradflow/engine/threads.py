"""Every pass runs its BLAS calls on one thread.

OpenBLAS splits a product's work differently with each thread count, and the sums then round
differently: with two threads instead of one, weight norms, gradients and activation statistics
changed in their last digits. One thread makes the results the same bits whatever
OPENBLAS_NUM_THREADS or OMP_NUM_THREADS say. BLAS's own threads also spin while they wait: on a
busy machine they made passes many times slower.

Threads come back above BLAS instead, where they cannot change bits. A product split by rows or
columns over threads, each calling single-threaded BLAS on its slice, does not reproduce the whole
product (in float32 no split tried did), so a pass never lets the thread count decide a split:
large products are always computed as the same two column halves, side by side when a second
thread is free, one after the other when not (``products.py``). Work that is already separate
calls (a chunk's two Gram products, its layers' weight gradients) is shared out as it is, and
where the products are not split, each chunk's weight-gradient norms go to a side thread while
the pass goes on.
``--threads`` sets how many a run uses; by default, what the user set for BLAS or OpenMP, else
one a core (``available``).

The command line owns its process: unless the user has set a thread count, it sets
OPENBLAS_NUM_THREADS=1 before NumPy loads (``start_on_one_thread``). Where NumPy's BLAS is an
OpenBLAS that reads that variable (its own pthreads, not OpenMP's), BLAS then has one thread from
the start and a pass has nothing to limit; anywhere else, or when the user set a count, each pass
takes the limit through threadpoolctl, whose controller costs ~10 ms to create.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import cache, partial, wraps
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

# Thread counts BLAS and OpenMP libraries read when they load: a user who set one has chosen.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS",
                    "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")  # fmt: skip
_started_on_one = False  # start_on_one_thread set OPENBLAS_NUM_THREADS=1 before NumPy loaded


def start_on_one_thread() -> bool:
    """Before NumPy loads, unless a thread count is set: OPENBLAS_NUM_THREADS=1 (for a process
    that is all gradflow's, such as the command line). True if it was set."""
    global _started_on_one
    if "numpy" in sys.modules or any(name in os.environ for name in THREAD_VARIABLES):
        return False
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    _started_on_one = True
    return True


def cores() -> int:
    """The cores this process may run on (its affinity where the system says)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def available() -> int:
    """The threads a run uses unless told: the count the user set in a BLAS or OpenMP variable
    (the smallest, where several are set), else one a core."""
    counts = []
    for name in THREAD_VARIABLES:
        if name == "OPENBLAS_NUM_THREADS" and _started_on_one:
            continue  # set by ``start_on_one_thread``, not the user
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            counts.append(int(value))
    return min(counts) if counts else cores()


def one_blas_thread(function: Callable[P, R]) -> Callable[P, R]:
    """Run ``function`` with the BLAS libraries NumPy loaded limited to one thread."""

    @wraps(function)
    def limited(*args: P.args, **kwargs: P.kwargs) -> R:
        with _one_thread():
            return function(*args, **kwargs)

    return limited


def _one_thread() -> AbstractContextManager[Any]:
    """A context in which BLAS runs on one thread."""
    return _limit()()


@cache
def _limit() -> Callable[[], AbstractContextManager[Any]]:
    """What keeps a pass on one BLAS thread, decided at the first pass (NumPy is loaded then):
    nothing where OpenBLAS started on one, else a limit from one threadpoolctl controller. The
    controller finds the loaded BLAS libraries once (~30 ms), after which a limit costs ~15 µs
    instead of a fresh scan's ~0.6 ms."""
    if _started_on_one and numpy_blas_reads_openblas_variable():
        return nullcontext
    from threadpoolctl import ThreadpoolController

    return partial(ThreadpoolController().limit, limits=1, user_api="blas")


def numpy_blas_reads_openblas_variable() -> bool:
    """Whether NumPy's build names OpenBLAS on its own threads, which takes its thread count
    from OPENBLAS_NUM_THREADS when it loads (an OpenMP build follows OMP_NUM_THREADS instead)."""
    import numpy

    config: Any = getattr(numpy, "__config__", None)
    blas = getattr(config, "CONFIG", {}).get("Build Dependencies", {}).get("blas", {})
    build = str(blas.get("openblas configuration", ""))  # openblas_get_config(): "OpenBLAS 0.3..."
    return build.startswith("OpenBLAS") and "USE_OPENMP" not in build.split()
