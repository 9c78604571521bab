"""The engine against its peer, PyTorch eager, on the same network: one shape and dtype, several
activations and wirings, in a fresh process with one thread on both sides.

    python -m bench.peer '[{"depth": 50, "width": 256, "batch": 64, "dtype": "float64",
                            "cases": [["sigmoid", "none"], ["gelu", "pre"]], "repeat": 5}]'

prints one JSON line per shape as it finishes (torch is imported once, ~3 s): per case,
best-of-``repeat`` seconds of

    ours     one analyzed pass (statistics, checks and exact norms included)
    torch    forward, the MSE loss, backward, then ‖∂L/∂W_i‖ of every layer (autograd)
    phi      our φ and φ' over every layer's φ input of this pass (kept by the first torch pass)
    torch_phi  torch's φ forward and its backward over the same values (autograd)

and ``floor``: the bare products of one pass (``bench.case.matmul_floor``), timed beside each
case where a shape runs several repeats (milliseconds a pass), else once for the shape;
``operand_floor``, the same products over this case's own operands, recorded from one of our
passes (``pass_operands``): timed beside every case, as they depend on its values;
``torch_floor``, the same products in torch, timed beside it: torch brings its own BLAS (MKL in
the x86 wheels), whose products can be faster than NumPy's on the same machine. And per case
the share of subnormal values (nonzero, below the dtype's smallest normal) among the φ outputs,
ours and torch's: every product reads them, and some CPUs (Intel's, without flush-to-zero) take
many times longer over a product with subnormal operands.
The torch network reads our arrays (same x, weights, targets), so the first layer's gradient
norms can be compared: where torch's is exactly 0 in float32 and ours is not, it underflowed.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F

import gradflow.engine.tape as tape_module
from bench.case import matmul_floor
from gradflow.analysis.analyze import analyze
from gradflow.engine.activations import ACTIVATIONS
from gradflow.engine.heap import keep_freed_memory
from gradflow.engine.initializers import init_scale
from gradflow.engine.network import BUILD_FIELDS, Network, build
from gradflow.engine.products import both
from gradflow.engine.spec import NetworkSpec, Skip
from gradflow.engine.threads import one_blas_thread

Tensor = torch.Tensor

TORCH_PHI: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": lambda z: F.gelu(z, approximate="none"),  # exact, as ours
}


def torch_forward(
    spec: NetworkSpec, weights: list[Tensor], x: Tensor, seen: list[Tensor] | None = None
) -> Tensor:
    """The network's output y (B, n) in torch; ``seen`` collects every φ input."""
    phi = TORCH_PHI[spec.activation.value]

    def act(z: Tensor) -> Tensor:
        if seen is not None:
            seen.append(z)
        return phi(z)

    h = x
    if spec.skip is Skip.NONE:
        for w in weights:
            h = act(h @ w)  # h_i = φ(h_{i-1} W_i)
    else:  # pre: h_out = h_in + u_k, u_j = φ(u_{j-1}) W_j
        k = spec.block_size
        for first in range(0, spec.depth, k):
            u = h
            for w in weights[first : first + k]:
                u = act(u) @ w
            h = h + u
    return h


def torch_pass(
    spec: NetworkSpec, network: Network, seen: list[Tensor] | None = None
) -> tuple[float, Tensor]:
    """Seconds for one torch pass of ``spec`` on ``network``'s arrays, and its (L,) norms;
    ``seen`` collects every φ input (autograd holds them anyway)."""
    start = time.perf_counter()
    weights = [torch.from_numpy(w).requires_grad_(True) for w in network.weights]
    assert network.loss_data.target is not None  # the MSE loss's targets
    target = torch.from_numpy(network.loss_data.target)
    y = torch_forward(spec, weights, torch.from_numpy(network.x), seen)
    loss = ((y - target) ** 2).sum() / (2 * spec.batch)
    loss.backward()  # type: ignore[no-untyped-call]
    norms = torch.stack([torch.linalg.vector_norm(w.grad) for w in weights if w.grad is not None])
    return time.perf_counter() - start, norms


def torch_floor(network: Network) -> float:
    """Seconds for ``matmul_floor``'s products in torch on ``network``'s arrays."""
    w = torch.from_numpy(network.weights)
    depth, (batch, n) = len(w), network.x.shape
    drawn = np.random.default_rng(1).standard_normal((batch, n))
    g = torch.from_numpy(drawn.astype(network.weights.dtype))
    g /= torch.linalg.vector_norm(g)
    with torch.no_grad():
        start = time.perf_counter()
        a = torch.empty((depth + 1, batch, n), dtype=w.dtype)
        a[0] = torch.from_numpy(network.x)
        for i in range(depth):
            torch.matmul(a[i], w[i], out=a[i + 1])
        dw, g_next = torch.empty((n, n), dtype=w.dtype), torch.empty_like(g)
        for i in reversed(range(depth)):
            torch.matmul(a[i].T, g, out=dw)
            torch.matmul(g, w[i].T, out=g_next)
            g, g_next = g_next, g
        return time.perf_counter() - start


def pass_operands(spec: NetworkSpec, network: Network) -> tuple[np.ndarray, np.ndarray]:
    """The left operands of one analyzed pass's products, recorded as it runs: every layer's
    input a_i (forward, a_i @ W_i) and ∂L/∂z_i as backward holds it, rescaled near norm 1
    (g_i @ W_iᵀ), each (L, B, n) in layer order."""
    inputs = np.empty((spec.depth, spec.batch, spec.width), dtype=network.weights.dtype)
    grads = np.empty_like(inputs)
    # a product's layer, from where its weight matrix (W_i or its transposed view) starts
    layer = {w.ctypes.data: i for i, w in enumerate(network.weights)}
    calls = 0

    def recording(*_shape: object) -> Callable[..., None]:
        def record(a: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
            nonlocal calls
            i = layer[w.ctypes.data]
            np.copyto(inputs[i] if w.flags.c_contiguous else grads[i], a)  # Wᵀ: backward
            np.matmul(a, w, out=out)
            calls += 1

        return record

    # the tape's products, forward and backward's alike, for one pass
    with mock.patch.object(tape_module, "product", recording):
        analyze(spec, network=dataclasses.replace(network), threads=1)
    assert calls == 2 * spec.depth, calls
    return inputs, grads


def operand_floor(network: Network, inputs: np.ndarray, grads: np.ndarray) -> float:
    """Seconds for ``matmul_floor``'s products over a pass's own operands (``pass_operands``):
    a_i @ W_i, then a_iᵀ @ g_i and g_i @ W_iᵀ per layer backward. The products' cost depends on
    their values where some are subnormal, which the floor's random operands are not."""
    w = network.weights
    n = w.shape[1]
    out, dw = np.empty_like(inputs[0]), np.empty((n, n), dtype=w.dtype)
    with np.errstate(all="ignore"):
        start = time.perf_counter()
        for i in range(len(w)):
            np.matmul(inputs[i], w[i], out=out)
        for i in reversed(range(len(w))):
            np.matmul(inputs[i].T, grads[i], out=dw)
            np.matmul(grads[i], w[i].T, out=out)
        return time.perf_counter() - start


def subnormal_shares(spec: NetworkSpec, inputs: list[np.ndarray]) -> tuple[float, float]:
    """The share of subnormal values among our φ outputs and among torch's, over ``inputs``."""
    forward = ACTIVATIONS[spec.activation].forward
    phi = TORCH_PHI[spec.activation.value]
    tiny = np.finfo(inputs[0].dtype).tiny
    h, d = np.empty_like(inputs[0]), np.empty_like(inputs[0])
    ours = theirs = 0
    with np.errstate(all="ignore"), torch.no_grad():
        for z in inputs:
            forward(z, h, d)
            ours += int(np.count_nonzero((h != 0) & (np.abs(h) < tiny)))
            t = phi(torch.from_numpy(z)).numpy()
            theirs += int(np.count_nonzero((t != 0) & (np.abs(t) < tiny)))
    size = sum(z.size for z in inputs)
    return ours / size, theirs / size


def network_for(spec: NetworkSpec, held: list[tuple[NetworkSpec, Network]]) -> Network:
    """``spec``'s network, drawn once a shape: where the init's scale does not depend on φ
    (xavier, the default), every activation gets the same arrays, keyed to its own spec."""
    key = tuple(getattr(spec, name) for name in BUILD_FIELDS)
    if held:
        drawn, network = held[0]
        if drawn.init is spec.init and init_scale(drawn) == init_scale(spec):
            return (
                network if network.build_key == key else dataclasses.replace(network, build_key=key)
            )
    held[:] = [(spec, build(spec))]  # one network held at a time: the wide ones take 400 MB
    return held[0][1]


def our_phi_time(spec: NetworkSpec, inputs: list[np.ndarray]) -> float:
    """Seconds for our φ and φ' on each of ``inputs``: elementwise work no pass can skip."""
    forward = ACTIVATIONS[spec.activation].forward
    h, d = np.empty_like(inputs[0]), np.empty_like(inputs[0])
    start = time.perf_counter()
    with np.errstate(all="ignore"):
        for z in inputs:
            forward(z, h, d)
    return time.perf_counter() - start


def torch_phi_time(spec: NetworkSpec, inputs: list[np.ndarray]) -> float:
    """Seconds for torch's φ forward and backward (autograd) on each of ``inputs``."""
    phi = TORCH_PHI[spec.activation.value]
    leaves = [torch.from_numpy(z).requires_grad_(True) for z in inputs]
    g = torch.ones_like(leaves[0])
    start = time.perf_counter()
    for z in leaves:
        phi(z).backward(g)  # type: ignore[no-untyped-call]
    return time.perf_counter() - start


def ours_time(spec: NetworkSpec, network: Network, threads: int = 1) -> tuple[float, float]:
    """Seconds for one analyzed pass on ``threads``, and log10 ‖∂L/∂W_1‖ it reports."""
    start = time.perf_counter()
    report = analyze(spec, network=network, threads=threads)
    return time.perf_counter() - start, float(report.layers.grad_weight.log10[0])


@one_blas_thread  # the floor and φ too: every pass of ours runs on one BLAS thread
def run(plan: dict[str, Any]) -> dict[str, Any]:
    """Every case of one shape and dtype; with ``"threads": T`` (> 1), ours on T threads and
    on one against torch on T, without the floor and φ."""
    threads = int(plan.get("threads", 1))
    if threads > 1:
        return on_threads(plan, threads)
    repeat = int(plan["repeat"])
    shape = {key: plan[key] for key in ("depth", "width", "batch", "dtype")}
    out: dict[str, Any] = {"floor_s": float("inf"), "cases": []}
    held: list[tuple[NetworkSpec, Network]] = []
    for activation, skip in plan["cases"]:
        spec = NetworkSpec(**shape, activation=activation, skip=skip)
        network = network_for(spec, held)
        seen: list[Tensor] = []
        ours = theirs = phi = torch_phi = floor = their_floor = on_operands = float("inf")
        operands = pass_operands(spec, network)
        if repeat == 1 and not out["cases"]:  # timed once: an untimed pass of each side
            # first, so that neither side's first touch of this shape's memory is timed
            ours_time(spec, network)
            torch_pass(spec, network)
        for r in range(repeat):  # interleaved, so all see the same machine
            t, first = ours_time(spec, network)
            ours = min(ours, t)
            t, norms = torch_pass(spec, network, seen if r == 0 else None)
            theirs = min(theirs, t)
            # φ's cost depends on its values (erf and exp branch far from 0, and a
            # pre-activation stream grows with depth): timed on this pass's own φ inputs
            inputs = [z.detach().numpy() for z in seen]
            if r == 0:
                subnormal = subnormal_shares(spec, inputs)
            phi = min(phi, our_phi_time(spec, inputs))
            torch_phi = min(torch_phi, torch_phi_time(spec, inputs))
            # The products do not depend on φ; where a pass takes milliseconds they are timed
            # beside every case (its own window of the machine), else once a shape (seconds).
            if repeat > 1 or not out["cases"]:
                # once a shape: best of two, so that neither side's first touch of the
                # products' memory (hundreds of MB at width 1024) decides its floor
                for _ in range(1 if repeat > 1 else 2):
                    with np.errstate(all="ignore"):
                        floor = min(floor, matmul_floor(network))
                    their_floor = min(their_floor, torch_floor(network))
            on_operands = min(on_operands, operand_floor(network, *operands))
        out["floor_s"] = min(out["floor_s"], floor)
        out["torch_floor_s"] = min(out.get("torch_floor_s", float("inf")), their_floor)
        del seen, inputs, operands
        torch_first = float(norms[0])
        out["cases"].append(
            {
                "activation": activation,
                "skip": skip,
                "ours_s": ours,
                "torch_s": theirs,
                "phi_s": phi,
                "torch_phi_s": torch_phi,
                "floor_s": floor if floor < float("inf") else out["floor_s"],
                "torch_floor_s": (
                    their_floor if their_floor < float("inf") else out["torch_floor_s"]
                ),
                "operand_floor_s": on_operands,
                "subnormal": subnormal[0],
                "torch_subnormal": subnormal[1],
                "log10_first_grad": first,
                "torch_first_grad": torch_first,
                "torch_first_underflow": bool(torch_first == 0.0 and np.isfinite(first)),
            }
        )
    return out


def on_threads(plan: dict[str, Any], threads: int) -> dict[str, Any]:
    """Ours on ``threads`` threads and on one, torch on ``threads``, interleaved."""
    shape = {key: plan[key] for key in ("depth", "width", "batch", "dtype")}
    held: list[tuple[NetworkSpec, Network]] = []
    cases = []
    torch.set_num_threads(threads)
    trips = []
    for _ in range(200):  # a hand-off to the helper thread and back, after other work
        busy = time.perf_counter() + 1e-3
        while time.perf_counter() < busy:
            pass
        start = time.perf_counter()
        both(int, int)
        trips.append(time.perf_counter() - start)
    try:
        for activation, skip in plan["cases"]:
            spec = NetworkSpec(**shape, activation=activation, skip=skip)
            network = network_for(spec, held)
            many = one = theirs = float("inf")
            for _ in range(int(plan["repeat"])):
                many = min(many, ours_time(spec, network, threads)[0])
                one = min(one, ours_time(spec, network, 1)[0])
                theirs = min(theirs, torch_pass(spec, network, None)[0])
            cases.append({"activation": activation, "skip": skip, "ours_s": many,
                          "ours_one_s": one, "torch_s": theirs})  # fmt: skip
    finally:
        torch.set_num_threads(1)
    return {"threads": threads, "cases": cases, "handoff_s": float(np.median(trips))}


if __name__ == "__main__":
    torch.set_num_threads(1)  # the same thread count as every pass of ours
    keep_freed_memory()  # as the command line does; torch allocates through the same malloc
    for shape in json.loads(sys.argv[1]):
        print(json.dumps(run(shape)), flush=True)
