"""One benchmark case, run in a fresh process so its peak RSS is its own.

    python -m bench.case '{"depth": 50, "width": 256, "batch": 64, "dtype": "float64"}'

prints one JSON line: engine and floor times (best of ``repeat``; where the engine takes
weight-gradient norms from Gram matrices, also the same pass forming every ∂L/∂W explicitly),
peak RSS growth of the pass and the memory estimate the CLI's guard uses.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import Any

import numpy as np

from gradflow.analysis.analyze import analyze, estimate_bytes
from gradflow.engine.activations import ACTIVATIONS
from gradflow.engine.heap import keep_freed_memory
from gradflow.engine.network import Network, build
from gradflow.engine.spec import NetworkSpec
from gradflow.engine.threads import one_blas_thread
from gradflow.engine.weight_grads import Method, uses_gram


def rss_bytes(field: str) -> int:
    """VmRSS (now) or VmHWM (peak so far) of this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


@one_blas_thread  # as every pass: the floor on more threads than the pass would flatter neither
def matmul_floor(network: Network) -> float:
    """Seconds for the bare products of one pass: a @ W forward (keeping every a, as backward
    must), then a.T @ g and g @ W.T per layer backward; no activation, no statistics."""
    w = network.weights
    depth, (batch, n) = len(w), network.x.shape
    g = np.random.default_rng(1).standard_normal((batch, n)).astype(w.dtype)
    g /= np.linalg.norm(g)
    start = time.perf_counter()
    a = np.empty((depth + 1, batch, n), dtype=w.dtype)
    a[0] = network.x
    for i in range(depth):
        np.matmul(a[i], w[i], out=a[i + 1])
    dw, g_next = np.empty((n, n), dtype=w.dtype), np.empty_like(g)
    for i in reversed(range(depth)):
        np.matmul(a[i].T, g, out=dw)
        np.matmul(g, w[i].T, out=g_next)
        g, g_next = g_next, g
    return time.perf_counter() - start


def activation_time(spec: NetworkSpec, network: Network) -> float:
    """Seconds for φ and φ' alone on every layer's (B, n) values: elementwise work no pass can
    skip (for sigmoid it is an exp per value, which NumPy has no AVX2 kernel for in float64)."""
    act = ACTIVATIONS[spec.activation]
    z = network.x.copy()
    h, d = np.empty_like(z), np.empty_like(z)
    start = time.perf_counter()
    for _ in range(spec.depth):
        act.forward(z, h, d)
    return time.perf_counter() - start


def engine_time(spec: NetworkSpec, network: Network, explicit: bool = False) -> float:
    """Seconds for one analyzed pass, on one thread as the floor. explicit: form every ∂L/∂W
    (n×n) as the floor does, instead of taking its norm from B×B Gram matrices."""
    # A fresh Network object each time, so nothing cached by an earlier pass is reused.
    fresh = dataclasses.replace(network)
    start = time.perf_counter()
    method = Method.EXPLICIT if explicit else Method.AUTO
    analyze(spec, network=fresh, method=method, threads=1)
    return time.perf_counter() - start


def run(case: dict[str, Any]) -> dict[str, Any]:
    repeat = int(case.pop("repeat", 3))
    with_explicit = bool(case.pop("explicit", True))  # the deep cases show no explicit column
    spec = NetworkSpec(**case)
    baseline = rss_bytes("VmRSS")
    network = build(spec)
    report = analyze(spec, network=network, threads=1)  # first pass: also the memory measured
    peak = rss_bytes("VmHWM") - baseline
    gram = uses_gram(spec, keep=False)
    engine = explicit = floor = activation = float("inf")
    for _ in range(repeat):  # interleaved, so all see the same machine
        engine = min(engine, engine_time(spec, network))
        if gram and with_explicit:
            explicit = min(explicit, engine_time(spec, network, explicit=True))
        with np.errstate(all="ignore"):  # the floor multiplies unnormalized values
            floor = min(floor, matmul_floor(network))
        activation = min(activation, activation_time(spec, network))
    return {
        "engine_s": engine,
        # without Gram matrices the pass is the explicit one; None: not measured
        "explicit_s": (explicit if gram else engine) if with_explicit else None,
        "gram": gram,
        "floor_s": floor,
        "activation_s": activation,
        "peak_rss": peak,
        "estimate": estimate_bytes(spec, redraw=False),  # the weights are held here
        "log10_first_grad": float(report.layers.grad_weight.log10[0]),
        "status_first_grad": str(report.layers.grad_weight.status()[0]),
    }


if __name__ == "__main__":
    keep_freed_memory()  # as the command line does for its own process
    print(json.dumps(run(json.loads(sys.argv[1]))))
