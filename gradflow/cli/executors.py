"""Where a sweep's runs run: here one after another, in a local process pool, or on a Dask
cluster. Each gives back ``(index, summary record)`` pairs as runs finish; ``InOrder`` puts
them back in grid order, so that what is written does not depend on the executor.

A run is ``analyze`` on one spec with one BLAS thread (``engine/threads.py``); a worker sends
back only the summary record (a small dict), never the per-layer arrays. Pool workers start from
a fork server that has imported this module once, and ignore Ctrl-C: the main process stops
handing out runs, takes in the runs under way as they finish (``under_way``), and the workers
end.
"""

from __future__ import annotations

import importlib
import itertools
import multiprocessing
import signal
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from gradflow.analysis.analyze import analyze
from gradflow.analysis.verdict import Thresholds
from gradflow.cli.errors import BadInput
from gradflow.cli.interrupts import interrupts_held
from gradflow.cli.sweep_plan import INSTALL_DASK
from gradflow.engine.heap import keep_freed_memory
from gradflow.engine.spec import NetworkSpec
from gradflow.render.formats import summary_record

Task = tuple[NetworkSpec, Thresholds, int]  # the run's spec, thresholds and threads
Record = dict[str, Any]  # analyze's summary as its JSON holds it
WINDOW = 4  # runs handed to each pool worker ahead of time: busy workers, bounded memory
CONNECT_TIMEOUT = 5  # seconds to reach a Dask scheduler before giving up


def run_summary(task: Task) -> Record:
    """One run, exactly ``gradflow analyze`` with the spec's flags: its summary record."""
    spec, thresholds, threads = task
    return summary_record(analyze(spec, thresholds=thresholds, threads=threads))


class Executor(Protocol):
    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[int, Record]]:
        """(index into tasks, record) for every task, in the order the runs finish."""
        ...

    def under_way(self) -> Iterator[tuple[int, Record]]:
        """After Ctrl-C or SIGTERM stopped ``run``: the runs not started are dropped, those
        under way finish and come back as ``run``'s pairs do. Another signal meanwhile drops
        them too, and is raised."""
        ...

    def close(self) -> None: ...


class InOrder:
    """Runs that finish in any order, handed on in index order from ``first``: the next one
    ``ready`` is the one after all handed on; it stays next until ``taken``."""

    def __init__(self, first: int = 0) -> None:
        self.waiting: dict[int, Record] = {}
        self.following = first

    def add(self, index: int, record: Record) -> None:
        self.waiting[index] = record

    def ready(self) -> tuple[int, Record] | None:
        record = self.waiting.get(self.following)
        return None if record is None else (self.following, record)

    def taken(self) -> None:
        del self.waiting[self.following]
        self.following += 1


class Serial:
    """Every run in this process, in grid order."""

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[int, Record]]:
        for index, task in enumerate(tasks):
            yield index, run_summary(task)

    def under_way(self) -> Iterator[tuple[int, Record]]:
        return iter(())  # the run under way was this process's, and the signal ended it

    def close(self) -> None:
        pass


def _start_worker() -> None:
    """Pool workers leave Ctrl-C to the main process, which stops handing out runs, and keep
    the memory one run frees for the next."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_freed_memory()


def _context() -> Any:
    """A fork server that has imported the engine once, where there is one; else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


class Pool:
    """A local process pool of ``jobs`` workers, each running one pass at a time.

    The workers start with Ctrl-C and SIGTERM held back (``interrupts_held``): one that came
    while a worker was being started left it half made, unknown to the pool and printing a
    traceback once this process had gone. The fork server and the workers keep SIGINT blocked
    (a Ctrl-C to the process group is this process's to handle); SIGTERM stays open to them,
    as the pool ends its workers with it. A second Ctrl-C (or SIGTERM) while the runs under
    way finish ends the workers at once."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self.pool = ProcessPoolExecutor(jobs, mp_context=_context(), initializer=_start_worker)
        self.pending: dict[Future[Record], int] = {}  # handed out, not yet handed back

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[int, Record]]:
        queue = iter(enumerate(tasks))
        pending = self.pending

        def hand_out(count: int) -> None:
            for index, task in itertools.islice(queue, count):
                pending[self.pool.submit(run_summary, task)] = index

        with interrupts_held(children_too=True):  # the first submissions start the workers
            hand_out(self.jobs * WINDOW)
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=pending.__getitem__):
                index = pending[future]
                yield index, _result(future)
                del pending[future]
                hand_out(1)

    def under_way(self) -> Iterator[tuple[int, Record]]:
        for future in self.pending:
            future.cancel()  # those not started; a run under way cannot be
        with interrupts_held(meanwhile=self._end_workers):
            wait(self.pending)
        for future, index in sorted(self.pending.items(), key=lambda item: item[1]):
            if not future.cancelled() and future.exception() is None:
                yield index, future.result()
        self.pending.clear()

    def close(self) -> None:
        """Drop the runs not started, let those under way finish, end the workers; at another
        Ctrl-C or SIGTERM meanwhile, end them now (the pool then winds down as it does for a
        worker that died), and raise it once the pool is shut."""
        with interrupts_held(meanwhile=self._end_workers):
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _end_workers(self) -> None:
        for process in list((getattr(self.pool, "_processes", None) or {}).values()):
            process.kill()


def _result(future: Future[Record]) -> Record:
    """A pool run's record; a worker that died (killed, or out of memory) as one line, as a
    run out of memory here is (exit 2; the finished runs are kept)."""
    try:
        return future.result()
    except BrokenProcessPool:
        raise BadInput(
            "--jobs", "a worker process died (killed, or out of memory); try fewer --jobs"
        ) from None


class Dask:
    """Runs sent to an existing Dask distributed scheduler."""

    def __init__(self, address: str) -> None:
        try:
            self.distributed: Any = importlib.import_module("distributed")  # the [dask] extra
        except ImportError:
            raise BadInput("--scheduler", f"needs Dask distributed: {INSTALL_DASK}") from None
        try:
            if not address.startswith("inproc://"):  # another process's: it must answer
                self._answers(address)
            self.client = self.distributed.Client(
                address, timeout=CONNECT_TIMEOUT, set_as_default=False
            )
        except Exception as error:  # OSError, TimeoutError; TypeError for tls:// without TLS
            reason = _reason(error)
            raise BadInput(
                "--scheduler", f"cannot reach a Dask scheduler at {address!r}: {reason}"
            ) from None
        self.futures: list[Any] = []
        # the cluster failing under a run, as opposed to the run failing (a bug: its traceback)
        self.lost = (
            self.distributed.client.FutureCancelledError,
            self.distributed.KilledWorker,
            self.distributed.comm.core.CommClosedError,
        )

    def _answers(self, address: str) -> None:
        """Connect and shake hands with a deadline: the client's own timeout covers connecting,
        and a server that accepts and never answers (a dashboard's port, 8787, for the
        scheduler's, 8786) held it for good."""
        import asyncio

        async def shake() -> None:
            comm = await self.distributed.comm.connect(address, timeout=CONNECT_TIMEOUT)
            await comm.close()

        async def within() -> None:
            try:
                await asyncio.wait_for(shake(), CONNECT_TIMEOUT + 1)
            except asyncio.TimeoutError:
                raise TimeoutError(f"no answer within {CONNECT_TIMEOUT} s") from None

        asyncio.run(within())

    def under_way(self) -> Iterator[tuple[int, Record]]:
        return iter(())  # cancelled with the rest (``close``): a cluster's are not ours to await

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[int, Record]]:
        self.futures = self.client.map(run_summary, list(tasks), pure=False)
        index = {future.key: i for i, future in enumerate(self.futures)}
        try:
            for future in self.distributed.as_completed(self.futures, loop=self.client.loop):
                yield index[future.key], future.result()
        except self.lost as error:  # one line and exit 2, as a run out of memory here
            raise BadInput(
                "--scheduler", f"the Dask cluster failed during the sweep: {_reason(error)}"
            ) from None

    def close(self) -> None:
        unfinished = [f for f in self.futures if not f.done()]
        if unfinished:  # after Ctrl-C: the runs not yet done are dropped
            self.client.cancel(unfinished)
        self.client.close()


def _reason(error: BaseException) -> str:
    """An error's message on one line (its type where it has none)."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def run_threads(jobs: int, scheduler: str | None, runs: int, threads: int) -> int:
    """Each run's threads for its products: one on a cluster (whose workers run runs side by
    side), else its share of ``threads`` among the runs ``make_executor`` runs at once."""
    if scheduler is not None:
        return 1
    return max(1, threads // (min(jobs, runs) if jobs > 1 and runs > 1 else 1))


def make_executor(jobs: int, scheduler: str | None, runs: int) -> Executor:
    """Dask for --scheduler, a pool for more than one job and run, else this process."""
    if scheduler is not None:
        return Dask(scheduler)
    if jobs > 1 and runs > 1:
        return Pool(min(jobs, runs))
    return Serial()
