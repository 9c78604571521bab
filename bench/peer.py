"""The engine against its peer, PyTorch eager, on the same network: one shape and dtype, several
activations and wirings, in a fresh process with one thread on both sides.

    python -m bench.peer '[{"depth": 50, "width": 256, "batch": 64, "dtype": "float64",
                            "cases": [["sigmoid", "none"], ["gelu", "pre"]], "repeat": 5}]'

prints one JSON line per shape as it finishes (torch is imported once, ~3 s): per case,
best-of-``repeat`` seconds of

    ours     one analyzed pass (statistics, checks and exact norms included)
    torch    forward, the MSE loss, backward, then ‖∂L/∂W_i‖ of every layer (autograd)
    phi      our φ and φ' over every layer's (B, n) values, the elementwise work no pass skips
    torch_phi  torch's φ forward and its backward over the same values (autograd)

and once for the shape, ``floor``: the bare products of one pass (``bench.case.matmul_floor``).
The torch network reads our arrays (same x, weights, targets), so the first layer's gradient
norms can be compared: where torch's is exactly 0 in float32 and ours is not, it underflowed.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.case import activation_time, matmul_floor
from gradflow.analysis.analyze import analyze
from gradflow.engine.network import Network, build
from gradflow.engine.spec import NetworkSpec, Skip
from gradflow.engine.threads import one_blas_thread

Tensor = torch.Tensor

TORCH_PHI: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": lambda z: F.gelu(z, approximate="none"),  # exact, as ours
}


def torch_pass(spec: NetworkSpec, network: Network) -> tuple[float, Tensor]:
    """Seconds for one torch pass of ``spec`` on ``network``'s arrays, and its (L,) norms."""
    phi = TORCH_PHI[spec.activation.value]
    start = time.perf_counter()
    weights = [torch.from_numpy(w).requires_grad_(True) for w in network.weights]
    x = torch.from_numpy(network.x)
    target = torch.from_numpy(network.loss_data.target)  # type: ignore[arg-type]
    h = x
    if spec.skip is Skip.NONE:
        for w in weights:
            h = phi(h @ w)  # h_i = φ(h_{i-1} W_i)
    else:  # pre: h_out = h_in + u_k, u_j = φ(u_{j-1}) W_j
        k = spec.block_size
        for first in range(0, spec.depth, k):
            u = h
            for w in weights[first : first + k]:
                u = phi(u) @ w
            h = h + u
    loss = ((h - target) ** 2).sum() / (2 * spec.batch)
    loss.backward()
    norms = torch.stack([torch.linalg.vector_norm(w.grad) for w in weights])  # type: ignore[arg-type]
    return time.perf_counter() - start, norms


def torch_phi_time(spec: NetworkSpec, network: Network) -> float:
    """Seconds for torch's φ forward and backward on every layer's (B, n) values."""
    phi = TORCH_PHI[spec.activation.value]
    z = torch.from_numpy(network.x.copy()).requires_grad_(True)
    g = torch.ones_like(z)
    start = time.perf_counter()
    for _ in range(spec.depth):
        phi(z).backward(g)
    return time.perf_counter() - start


def ours_time(spec: NetworkSpec, network: Network) -> tuple[float, float]:
    """Seconds for one analyzed pass, and log10 ‖∂L/∂W_1‖ it reports."""
    start = time.perf_counter()
    report = analyze(spec, network=network)
    return time.perf_counter() - start, float(report.layers.grad_weight.log10[0])


@one_blas_thread  # the floor and φ too: every pass of ours runs on one BLAS thread
def run(plan: dict[str, Any]) -> dict[str, Any]:
    """Every case of one shape and dtype."""
    repeat = int(plan["repeat"])
    shape = {key: plan[key] for key in ("depth", "width", "batch", "dtype")}
    out: dict[str, Any] = {"floor_s": float("inf"), "cases": []}
    phi_seen: dict[str, tuple[float, float]] = {}
    networks: dict[str, Network] = {}  # the wirings share an activation's weights
    for activation, skip in plan["cases"]:
        spec = NetworkSpec(**shape, activation=activation, skip=skip)
        if activation not in networks:
            networks.clear()  # one network held at a time: the wide ones take 400 MB
            networks[activation] = build(spec)
        network = networks[activation]
        ours = theirs = float("inf")
        for _ in range(repeat):  # interleaved, so both see the same machine
            t, first = ours_time(spec, network)
            ours = min(ours, t)
            t, norms = torch_pass(spec, network)
            theirs = min(theirs, t)
        if activation not in phi_seen:  # φ and the floor do not depend on the wiring
            phi = torch_phi = float("inf")
            for _ in range(repeat):
                if not phi_seen:  # once a shape: the products do not depend on φ
                    with np.errstate(all="ignore"):
                        out["floor_s"] = min(out["floor_s"], matmul_floor(network))
                phi = min(phi, activation_time(spec, network))
                torch_phi = min(torch_phi, torch_phi_time(spec, network))
            phi_seen[activation] = (phi, torch_phi)
        torch_first = float(norms[0])
        out["cases"].append(
            {
                "activation": activation,
                "skip": skip,
                "ours_s": ours,
                "torch_s": theirs,
                "phi_s": phi_seen[activation][0],
                "torch_phi_s": phi_seen[activation][1],
                "log10_first_grad": first,
                "torch_first_grad": torch_first,
                "torch_first_underflow": bool(torch_first == 0.0 and np.isfinite(first)),
            }
        )
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)  # the same thread count as every pass of ours
    for shape in json.loads(sys.argv[1]):
        print(json.dumps(run(shape)), flush=True)
