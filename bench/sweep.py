"""``gradflow sweep``'s executors: what a run costs beyond its pass, and what a second job buys.

    python -m bench.sweep

1. per-run overhead: N tiny runs through the serial executor and through a warm one-worker pool,
   against the same N passes called directly; the difference per run is the overhead
   (target ≤ 20 ms).
2. speed-up: a sweep of width-64 runs on a warm pool of 2 workers against the serial executor,
   interleaved best of 3 (target ≥ 1.7× on 2 idle cores; a busy machine shows less). Beside
   it, the same measurement of a pure-Python loop: the speed-up this machine allows right now
   to any two processes, so that a low figure can be told apart from a busy machine.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from gradflow.analysis.analyze import analyze
from gradflow.analysis.verdict import Thresholds
from gradflow.cli.executors import InOrder, Pool, Serial, Task
from gradflow.engine.spec import NetworkSpec

OVERHEAD_TARGET_MS = 20.0
SPEEDUP_TARGET = 1.7


def tasks(depth: int, width: int, batch: int, count: int) -> list[Task]:
    return [
        (NetworkSpec(depth=depth, width=width, batch=batch, seed=seed), Thresholds(), 1)
        for seed in range(count)
    ]


def wall(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def drain(executor: Serial | Pool, work: list[Task]) -> None:
    """Every run through the executor, put back in grid order as the sweep does."""
    order = InOrder()
    for index, record in executor.run(work):
        order.add(index, record)
        while order.ready() is not None:
            order.taken()


def overhead(count: int = 40) -> dict[str, Any]:
    """Milliseconds per run beyond the pass, serial and through a warm one-worker pool."""
    work = tasks(depth=4, width=16, batch=8, count=count)
    pool = Pool(1)
    try:
        drain(pool, work[:2])  # the worker has started and imported the engine
        best = {"direct": float("inf"), "serial": float("inf"), "pool": float("inf")}
        for _ in range(3):
            direct = wall(lambda: [analyze(s, threads=1) for s, _, _ in work])
            best["direct"] = min(best["direct"], direct)
            best["serial"] = min(best["serial"], wall(lambda: drain(Serial(), work)))
            best["pool"] = min(best["pool"], wall(lambda: drain(pool, work)))
    finally:
        pool.close()
    pass_ms = best["direct"] / count * 1e3
    return {
        "runs": count,
        "pass_ms": pass_ms,
        "serial_overhead_ms": best["serial"] / count * 1e3 - pass_ms,
        "pool_overhead_ms": best["pool"] / count * 1e3 - pass_ms,
        "target_ms": OVERHEAD_TARGET_MS,
    }


def speedup(count: int = 24, depth: int = 100) -> dict[str, Any]:
    """A width-64 sweep on 2 workers against 1 (the serial executor), both warm."""
    work = tasks(depth=depth, width=64, batch=32, count=count)
    pool = Pool(2)
    try:
        drain(pool, work[:4])
        one, two = float("inf"), float("inf")
        for _ in range(3):
            one = min(one, wall(lambda: drain(Serial(), work)))
            two = min(two, wall(lambda: drain(pool, work)))
    finally:
        pool.close()
    return {
        "runs": count,
        "depth": depth,
        "width": 64,
        "one_job_s": one,
        "two_jobs_s": two,
        "speedup": one / two,
        "target": SPEEDUP_TARGET,
    }


def burn(n: int) -> int:
    """CPU-bound pure Python, no BLAS, no memory traffic: the control."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def control(count: int = 8, n: int = 1_000_000) -> dict[str, Any]:
    """The 2-process speed-up of ``burn``, measured as the sweep's is."""
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        list(pool.map(burn, [10, 10]))
        one, two = float("inf"), float("inf")
        for _ in range(3):
            one = min(one, wall(lambda: [burn(n) for _ in range(count)]))
            two = min(two, wall(lambda: list(pool.map(burn, [n] * count))))
    return {"one_s": one, "two_s": two, "speedup": one / two}


def main() -> dict[str, Any]:
    cost = overhead()
    print(f"   per-run overhead beyond the pass ({cost['runs']} runs of "
          f"{cost['pass_ms']:.1f} ms): serial {cost['serial_overhead_ms']:.2f} ms, "
          f"1-worker pool {cost['pool_overhead_ms']:.2f} ms "
          f"(target <= {OVERHEAD_TARGET_MS:.0f} ms)")  # fmt: skip
    gain = speedup()
    print(f"   width-64 sweep, {gain['runs']} runs of depth {gain['depth']}: 1 job "
          f"{gain['one_job_s']:.2f} s, 2 jobs {gain['two_jobs_s']:.2f} s, "
          f"speed-up {gain['speedup']:.2f}x (target >= {SPEEDUP_TARGET}x)")  # fmt: skip
    machine = control()
    print(f"   control, a pure-Python loop on 2 processes: speed-up {machine['speedup']:.2f}x "
          "(what the machine allows now; 2 idle cores give ~2x)")  # fmt: skip
    return {"overhead": cost, "speedup": gain, "control": machine}


if __name__ == "__main__":  # the table's lines, then the results as one JSON line
    print(json.dumps(main()))
