"""A pass's second thread: large products as two column halves side by side, else side work.

Every product runs on one BLAS thread (``threads.py``), so a pass alone uses one core. A large
product a @ W (a (B, n), W (n, m), W may be a transposed view) is instead computed as its two
column halves, a @ W[:, :h] and a @ W[:, h:], each written into its half of the output; with two
threads, a helper thread computes the second half while the caller computes the first (NumPy
releases the GIL in a product).

Whether a product is split, and where, depends on its shape and dtype only, never on the thread
count: one thread computes the same two halves one after the other. So a pass gives the same bits
on one thread or two. In float64 the halves are also the whole product's bits (OpenBLAS, widths
512 to 2,048, batches 8 to 256); in float32 they differ from it in the last bits.

Measured on 2 cores, one BLAS thread, against the whole product (halves side by side / in
turn): 256×1024 float64, 17 ms whole: 0.56 / 1.02; 128×512 float64, 2.4 ms: 0.61 / 1.08;
64×1024 float32, 2.3 ms: 0.52 / 0.97. Below ``SPLIT_FROM`` the halves gain little and cost more
in turn (128×512 float32, 1.0 ms: 1.01 / 1.18): waking a helper thread that has waited through
a layer's other work takes 150-330 µs on this (virtual) machine, 16-40 µs back to back.

Where the products are not split, the second thread takes side work instead: a chunk of layers'
weight-gradient norms, handed over as the pass finishes the chunk (``side_worker``), taken
while the pass goes on, and waited for only when its slots are needed again. That costs no
wake-up on the pass's path: at 1000×128×128 float64, 0.77 of the one-thread time; at
200×512×128 float32, 0.75-0.97.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache, partial
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from gradflow.engine.threads import cores

if TYPE_CHECKING:  # concurrent.futures (logging with it) loads with the first helper: ~10 ms
    from concurrent.futures import Executor, Future, ThreadPoolExecutor

T = TypeVar("T")
Product = Callable[..., object]  # product(a, w, out=out): out ← a @ w

SPLIT_FROM = 1 << 28  # multiply-adds × itemsize: 128×512×512 in float64, 256×512×512 in float32
# Work that is already two pieces costs nothing more on one thread: shared out from pieces of
# 2^27 multiply-add bytes (~1 ms in float64), several times the helper's wake-up. (Smaller
# pieces, from 2^26, gained nothing measurable at 50×256×64 or 1000×128×128.)
SHARE_FROM = 1 << 27
# Side work is handed over a chunk of layers at a time and waited for only when its slots are
# needed again, two chunks on, so only the hand-over's Python (~20 µs) must be small beside it.
SIDE_FROM = 1 << 22
# ... and a pass hands over only if all of its side work is worth starting the side thread for
# (the first one also imports concurrent.futures, ~10 ms): from 2^30 multiply-add bytes, some
# 50 ms of norms. `analyze --depth 50` (2^28.6) was 20-40 ms slower with it.
SIDE_PASS_FROM = 1 << 30
# ... and its layers' products are at least this large (32×32×32 in float64). Narrower passes
# are mostly Python, which holds the lock the side thread's Python needs, and their norms are a
# few percent of them: at 100,000×16×16 and 20,000×16×16, two threads took 1.00-1.14 of one.
SIDE_LAYER_FROM = 1 << 18


def splits(rows: int, inner: int, cols: int, dtype: np.dtype) -> bool:
    """Whether a (rows, inner) @ (inner, cols) product of ``dtype`` is computed as two halves."""
    return cols >= 2 and rows * inner * cols * dtype.itemsize >= SPLIT_FROM


def worth_a_thread(multiply_adds: int, dtype: np.dtype, threads: int) -> bool:
    """Whether two independent pieces of work, each of ``multiply_adds``, run side by side:
    with a second thread, and pieces worth more than the hand-off."""
    return threads >= 2 and multiply_adds * dtype.itemsize >= SHARE_FROM


def both(first: Callable[[], object], second: Callable[[], object]) -> None:
    """``first()`` here and ``second()`` on a helper thread, side by side; returns when both are
    done (raising the first's error, else the second's)."""
    done = hand_over(_helper(), second)
    try:
        first()
    finally:
        done.result()


def product(rows: int, inner: int, cols: int, dtype: np.dtype, threads: int) -> Product:
    """How a pass computes its (rows, inner) @ (inner, cols) products on ``threads`` threads:
    whole, as two halves in turn, or as two halves side by side. The bits depend on the shape
    and dtype only. ``out`` must not overlap ``a``: one half is written while the other reads
    a (the tape's buffers never do)."""
    if not splits(rows, inner, cols, dtype):
        return np.matmul  # itself: at width 16 a wrapper's call is a cost
    half = cols // 2
    if threads < 2:
        return partial(_in_turn, half)
    return partial(_side_by_side, half)


def _in_turn(half: int, a: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    np.matmul(a, w[:, :half], out=out[:, :half])
    np.matmul(a, w[:, half:], out=out[:, half:])


def _side_by_side(half: int, a: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    both(partial(np.matmul, a, w[:, :half], out=out[:, :half]),
         partial(np.matmul, a, w[:, half:], out=out[:, half:]))  # fmt: skip


def side_worker(threads: int) -> Executor | None:
    """The thread that takes a pass's side work (work the pass does not wait for as it goes
    on) on two threads or more; None: the pass does it itself. For a pass whose products are
    not split (a split product's second half has the second thread), in pieces of at least
    ``SIDE_FROM`` (``worth_the_side``)."""
    return _side() if threads >= 2 else None


def worth_the_side(piece: int, whole: int, dtype: np.dtype, products: tuple[int, int, int]) -> bool:
    """Whether side work in pieces of ``piece`` multiply-adds, ``whole`` in the pass, goes to
    the side worker in a pass whose products are (rows, inner, cols): the products neither
    split nor small, each piece worth its hand-over and the whole worth starting the thread."""
    size = dtype.itemsize
    if piece * size < SIDE_FROM or whole * size < SIDE_PASS_FROM:
        return False
    rows, inner, cols = products
    return rows * inner * cols * size >= SIDE_LAYER_FROM and not splits(*products, dtype)


def hand_over(
    executor: Executor, function: Callable[..., T], *args: object, **kwargs: object
) -> Future[T]:
    """``function(*args, **kwargs)`` on ``executor``'s thread, under this thread's NumPy error
    state (which is per thread): a pass that reports overflow and NaN as results, not
    warnings, does so in its helpers too."""
    state = np.geterr()

    def run() -> T:
        with np.errstate(**state):
            return function(*args, **kwargs)

    return executor.submit(run)


@cache
def _side() -> ThreadPoolExecutor:
    """One thread, so that side work is done in the order it was handed over."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="gradflow-side")


@cache
def _helper() -> ThreadPoolExecutor:
    """The threads that compute second halves, started as they are first needed: one a core at
    most, shared by passes side by side."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=cores(), thread_name_prefix="gradflow-halves")


# A forked child has the executor objects but not their threads: it starts its own.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_helper.cache_clear)
    os.register_at_fork(after_in_child=_side.cache_clear)
