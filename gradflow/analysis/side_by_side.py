"""Independent runs on a few threads at once: the variants of compare, train and paths side by
side.

Every pass keeps to one BLAS thread (engine/threads.py), so a second core sits idle while a
comparison runs its variants one after another. Run on threads of their own, the variants share
the cores: NumPy releases the GIL for the products and the elementwise work, which is most of a
pass at the widths where it takes time (measured on 2 cores: 0.68-0.75 of the time at widths
128-512; no slower at width 16, where Python holds the GIL). The results are the same bits, as
each run is computed alone with its own buffers.

The threads are daemons: on Ctrl-C the command exits at once instead of waiting for the runs
still going. A progress callback is then called from the runs' threads, one call at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar, cast

from gradflow.engine.threads import available

T = TypeVar("T")


class Shares:
    """Progress of runs side by side as one count: each run's own count, summed, reported to
    ``progress(done, total)``."""

    def __init__(self, progress: Callable[[int, int], None], runs: int, each: int) -> None:
        self.progress, self.total = progress, runs * each
        self.done = [0] * runs
        self.lock = threading.Lock()  # one sum at a time, so the count never goes back

    def update(self, run: int, done: int) -> None:
        with self.lock:
            self.done[run] = done
            self.progress(sum(self.done), self.total)


def alone(progress: Callable[[int, int], None], total: int) -> Callable[[int], None]:
    """A single run's own count reported as ``progress(done, total)``."""
    return lambda done: progress(done, total)


def share(count: int, workers: int | None, threads: int | None) -> tuple[int, int]:
    """How ``count`` runs share ``threads`` (None: ``threads.available()``): how many run side
    by side (one a thread, at most ``workers`` where given), and how many threads each pass
    then has for its own products (``engine/products.py``)."""
    if threads is None:
        threads = available()
    elif isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads: expected an integer of at least 1, got {threads!r}")
    at_once = max(1, min(count, threads if workers is None else workers))
    return at_once, max(1, threads // at_once)


def side_by_side(task: Callable[[int], T], count: int, workers: int) -> list[T]:
    """[task(0), ..., task(count - 1)], on up to ``workers`` threads; one: in this thread. An
    exception in a task is raised here (the first by index) once the tasks already started are
    done; no further task starts after one has failed."""
    workers = max(1, min(workers, count))
    if workers == 1:
        return [task(i) for i in range(count)]
    results: list[T | None] = [None] * count
    errors: list[BaseException | None] = [None] * count
    pending = iter(range(count))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                i = None if any(errors) else next(pending, None)
            if i is None:
                return
            try:
                results[i] = task(i)
            except BaseException as error:  # handed to the caller, as a serial run would raise
                errors[i] = error

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None:
            raise error
    return cast(list[T], results)  # every slot is filled when none failed
