"""One training step of ``gradflow train`` against PyTorch eager doing the same step.

    python -m bench.train '[{"depth": 50, "width": 256, "batch": 64, "activation": "sigmoid",
                             "repeat": 5}]'

prints one JSON line a case: the best time of a gradflow step (forward into the reused tape, loss,
explicit backward into the gradient buffers, Adam's step) and of the same step in torch
(forward, mse, ``loss.backward()``, ``Adam.step()``, ``zero_grad()``), both float64 on one
thread, interleaved so that a slow spell of the machine hits both alike; and the bare products of
such a step on each side's BLAS (``floor``, ``torch_floor``), since torch brings its own. A
separate process, so that importing torch touches no other section.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np
import torch

from bench.case import matmul_floor
from bench.peer import torch_floor
from gradflow.analysis.teacher import teacher_data
from gradflow.analysis.train import Trainer
from gradflow.analysis.training import Training
from gradflow.engine.heap import keep_freed_memory
from gradflow.engine.network import build
from gradflow.engine.optim_spec import Optimizer
from gradflow.engine.spec import Activation, NetworkSpec
from gradflow.engine.threads import one_blas_thread

TORCH_ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": torch.relu}


class TorchStep:
    """The same network and step in torch eager: Linear layers as (W, b) leaves, φ, mse, Adam."""

    def __init__(self, spec: NetworkSpec, trainer: Trainer) -> None:
        self.phi = TORCH_ACTIVATIONS[str(spec.activation)]
        self.weights = [torch.tensor(w, requires_grad=True) for w in trainer.params[0]]
        self.biases = [torch.tensor(b, requires_grad=True) for b in trainer.params[1]]
        self.optimizer = torch.optim.Adam([*self.weights, *self.biases], lr=1e-3)
        data = trainer.data
        assert data.target is not None
        rows = data.order[0]
        self.x = torch.tensor(data.x[rows])
        self.t = torch.tensor(data.target[rows])

    def __call__(self) -> None:
        h = self.x
        for w, b in zip(self.weights, self.biases, strict=True):
            h = self.phi(h @ w + b)
        loss = ((h - self.t) ** 2).sum() / (2 * h.shape[0])
        loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        self.optimizer.zero_grad()


@one_blas_thread
def measure(depth: int, width: int, batch: int, activation: str, repeat: int) -> dict[str, Any]:
    spec = NetworkSpec(depth=depth, width=width, batch=batch, activation=Activation(activation))
    training = Training(optimizer=Optimizer.ADAM, steps=2 * repeat + 2, samples=batch)
    network = build(spec)  # the trainer copies its arrays; the floors read the same ones
    trainer = Trainer(spec, network, teacher_data(spec, batch, training.steps), training)
    theirs = TorchStep(spec, trainer)
    ours = {"gradflow": float("inf"), "recorded": float("inf"), "torch": float("inf")}
    floors = {"floor": float("inf"), "torch_floor": float("inf")}
    t = 0
    with np.errstate(all="ignore"):
        trainer.step(t, record=False)  # the tape is made here, once
        theirs()
        for _ in range(repeat):
            for name in ours:
                start = time.perf_counter()
                if name == "torch":
                    theirs()
                else:
                    t += 1
                    trainer.step(t, record=name == "recorded")
                ours[name] = min(ours[name], time.perf_counter() - start)
            floors["floor"] = min(floors["floor"], matmul_floor(network))
            floors["torch_floor"] = min(floors["torch_floor"], torch_floor(network))
    same_blas = ours["gradflow"] / (ours["torch"] - floors["torch_floor"] + floors["floor"])
    return {**ours, **floors, "ratio": ours["gradflow"] / ours["torch"], "same_blas": same_blas}


def main() -> None:
    torch.set_num_threads(1)
    keep_freed_memory()  # as the command line does
    torch.set_default_dtype(torch.float64)
    for case in json.loads(sys.argv[1]):  # one process, one torch import, for every case
        print(json.dumps(measure(**case)), flush=True)


if __name__ == "__main__":
    main()
