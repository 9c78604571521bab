"""``gradflow train`` replayed in PyTorch (float64) from its --save-arrays file.

The replay shares nothing with the NumPy training loop but the saved arrays (x, target or
labels, the minibatch order, the initial weights): each step runs the independent torch forward
and autograd of ``torch_reference.reference_pass`` on the minibatch and hands the gradients to
torch.optim's own SGD, SGD(momentum=0.9) or Adam update. Per-step minibatch losses, every layer's
‖∂L/∂W‖ (the xent head's too), the losses on all samples and the update ratios must agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.optim.adam import adam as torch_adam
from torch.optim.sgd import sgd as torch_sgd
from torch_reference import reference_pass
from typer.testing import CliRunner

from gradflow.cli.app import app
from gradflow.engine.spec import Loss, NetworkSpec, Skip

STEPS = 24
LR = 0.05
Tensor = torch.Tensor
RTOL = 1e-10

# A covering set: each optimiser, wiring, loss and normalisation appears at least twice, with
# the residual scale α, zero-initialised branch ends and non-zero biases along the way.
CASES: dict[str, dict[str, Any]] = {
    "sgd-plain-mse-none": dict(optimizer="sgd", skip="none", loss="mse", norm="none"),
    "sgd-pre-xent-batch": dict(optimizer="sgd", skip="pre", loss="xent", norm="batch"),
    "momentum-post-xent-batch": dict(
        optimizer="momentum", skip="post", loss="xent", norm="batch", activation="tanh"
    ),
    "momentum-pre-mse-layer-zero-init": dict(
        optimizer="momentum",
        skip="pre",
        loss="mse",
        norm="layer",
        extra=["--zero-init-residual", "--residual-scale", "0.5"],
    ),
    "adam-pre-mse-layer": dict(
        optimizer="adam", skip="pre", loss="mse", norm="layer", activation="relu"
    ),
    "adam-plain-xent-batch": dict(
        optimizer="adam", skip="none", loss="xent", norm="batch", extra=["--bias-var", "0.1"]
    ),
    "adam-post-mse-none-zero-init": dict(
        optimizer="adam",
        skip="post",
        loss="mse",
        norm="none",
        activation="gelu",
        extra=["--zero-init-residual"],
    ),
    "sgd-postnorm-xent-layer": dict(optimizer="sgd", skip="postnorm", loss="xent", norm="layer"),
}
SIZES = dict(depth=4, width=6, batch=4, samples=8)


def _run(case: dict[str, Any], tmp_path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    report, arrays = tmp_path / "run.json", tmp_path / "run.npz"
    args = [
        "train",
        "--depth", str(SIZES["depth"]), "--width", str(SIZES["width"]),
        "--batch", str(SIZES["batch"]), "--samples", str(SIZES["samples"]),
        "--variants", case["skip"], "--optimizer", case["optimizer"],
        "--loss", case["loss"], "--norm", case["norm"],
        "--activation", case.get("activation", "sigmoid"), "--classes", "3",
        "--steps", str(STEPS), "--every", "1", "--eval-every", "5", "--lr", str(LR),
        "--output", str(report), "--save-arrays", str(arrays), "--seed", "3",
        *case.get("extra", []),
    ]  # fmt: skip
    if case["loss"] != "xent":
        args.remove("--classes")
        args.remove("3")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    with np.load(arrays) as saved:
        return json.loads(report.read_text()), dict(saved)


def _spec(case: dict[str, Any], document: dict[str, Any]) -> NetworkSpec:
    return NetworkSpec(**document["runs"][0]["spec"])


class Replay:
    """The run again in torch: parameters as torch leaves, torch.optim's optimiser."""

    def __init__(self, spec: NetworkSpec, arrays: dict[str, np.ndarray], optimizer: str) -> None:
        self.spec, self.arrays = spec, arrays
        names = [f"W{i}" for i in range(1, spec.depth + 1)]
        names += [f"b{i}" for i in range(1, spec.depth + 1)]
        if spec.loss is Loss.XENT:
            names += ["W_head", "b_head"]
        self.names = names
        self.params = {n: torch.tensor(arrays[n], dtype=torch.float64) for n in names}
        self.kind = optimizer
        # state as torch.optim keeps it: momentum buffers (made at the first step), Adam's
        # moments and step counts
        self.momentum: list[Tensor | None] = [None] * len(names)
        self.m = [torch.zeros_like(p) for p in self.params.values()]
        self.v = [torch.zeros_like(p) for p in self.params.values()]
        self.count = [torch.tensor(0.0, dtype=torch.float64) for _ in names]

    def _update(self, grads: list[Tensor]) -> None:
        """torch.optim's own single-tensor updates: what SGD.step and Adam.step run (the
        functional forms skip the optimizer classes' first-use import of torch._dynamo, ~4 s)."""
        params = list(self.params.values())
        if self.kind == "adam":
            torch_adam(
                params, grads, self.m, self.v, [], self.count, foreach=False, amsgrad=False,
                beta1=0.9, beta2=0.999, lr=LR, weight_decay=0.0, eps=1e-8, maximize=False,
            )  # fmt: skip
        else:
            momentum = 0.9 if self.kind == "momentum" else 0.0
            torch_sgd(
                params, grads, self.momentum, weight_decay=0.0, momentum=momentum, lr=LR,
                dampening=0.0, nesterov=False, maximize=False, foreach=False,
            )  # fmt: skip

    def _pass(self, rows: np.ndarray | slice) -> dict[str, Any]:
        batch: dict[str, Any] = {n: p.numpy() for n, p in self.params.items()}
        batch["x"] = self.arrays["x"][rows]
        key = "labels" if self.spec.loss is Loss.XENT else "target"
        batch[key] = self.arrays[key][rows]
        return reference_pass(self.spec, batch)

    def full_loss(self) -> float:
        b = self.spec.batch
        chunks = len(self.arrays["x"]) // b
        return sum(self._pass(slice(c * b, (c + 1) * b))["loss"] for c in range(chunks)) / chunks

    def step(self, t: int) -> tuple[float, list[float], list[float]]:
        """One step: the minibatch loss, each layer's ‖∂L/∂W‖ and update ratio (W after)."""
        ref = self._pass(self.arrays["order"][t])
        grads = ref["weights"] + ref["biases"]
        if self.spec.loss is Loss.XENT:
            grads += [ref["head_weight"], ref["head_bias"]]
        weights = [n for n in self.names if n.startswith("W")]
        before = {n: self.params[n].clone() for n in weights}
        self._update([torch.tensor(g, dtype=torch.float64) for g in grads])
        after = self.params
        ratios = [
            float(torch.linalg.norm(before[n] - after[n]) / torch.linalg.norm(after[n]))
            for n in weights
        ]
        norms = [float(np.linalg.norm(g)) for g in ref["weights"]]
        if self.spec.loss is Loss.XENT:
            norms.append(float(np.linalg.norm(ref["head_weight"])))
        return ref["loss"], norms, ratios


@pytest.mark.parametrize("name", list(CASES))
def test_replay_matches_torch(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    document, arrays = _run(case, tmp_path)
    run = document["runs"][0]
    spec = _spec(case, document)
    assert spec.skip is Skip(case["skip"]) and spec.loss is Loss(case["loss"])
    assert arrays["order"].shape == (STEPS, spec.batch)
    replay = Replay(spec, arrays, case["optimizer"])
    evals = {e["step"]: e["loss"] for e in run["eval"]}
    assert sorted(evals) == [0, 5, 10, 15, 20, STEPS]
    assert [s["step"] for s in run["steps"]] == list(range(STEPS))
    for t, record in enumerate(run["steps"]):
        if t in evals:
            np.testing.assert_allclose(evals[t], replay.full_loss(), rtol=RTOL)
        loss, norms, ratios = replay.step(t)
        np.testing.assert_allclose(record["loss"], loss, rtol=RTOL, err_msg=f"step {t}")
        ours = [layer["grad_weight"] for layer in record["layers"]]
        np.testing.assert_allclose(ours, norms, rtol=RTOL, err_msg=f"step {t}")
        # the applied change W_before − W_after carries W's rounding: ~1e-16·‖W‖/‖ΔW‖
        got = [layer["update_ratio"] for layer in record["layers"]]
        np.testing.assert_allclose(got, ratios, rtol=1e-8, err_msg=f"step {t}")
    np.testing.assert_allclose(evals[STEPS], replay.full_loss(), rtol=RTOL)
    summary = run["summary"]
    assert summary["initial_loss"] == evals[0] and summary["final_loss"] == evals[STEPS]
