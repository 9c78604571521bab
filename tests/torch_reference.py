"""An independent PyTorch (float64, autograd) reference for gradflow's networks.

Written from the network semantics in ``gradflow.engine.spec`` only, never from the NumPy
engine: the value of the cross-check is that the two implementations share nothing but the maths
and the saved arrays (``x``, ``target``, ``W1``…``WL``, ``b1``…``bL``, and ``W_head``,
``b_head``, ``labels`` for xent).

    dense      z = a @ W + b                           W: (n_in, n_out)
    plain      h_i = φ(N(h_{i-1} @ W_i + b_i))
    post       u_j = φ(N(u_{j-1} @ W_j + b_j)) (j < k);  v = N(u_{k-1} @ W_k + b_k)
               h_out = φ(h_in + α·v)
    pre        u_j = φ(N(u_{j-1})) @ W_j + b_j (j = 1..k);  h_out = s·h_in + α·u_k
    postnorm   u_j = φ(u_{j-1} @ W_j + b_j) (j < k);  v = u_{k-1} @ W_k + b_k
               h_out = N(s·h_in + α·v)
    (post: h_out = φ(s·h_in + α·v); s is the skip scale, 1 by default)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gradflow.engine.spec import Activation, DType, Loss, NetworkSpec, Norm, Skip

Tensor = torch.Tensor

# The tensors here are a few dozen numbers: intra-op threads buy nothing, and on a busy machine
# their spin-waiting made the test file 3-5x slower (5 s became 15-25 s).
torch.set_num_threads(1)

NORM_EPS = 1e-5

ACTIVATIONS: dict[Activation, Callable[[Tensor], Tensor]] = {
    Activation.RELU: F.relu,
    Activation.LEAKY_RELU: lambda z: F.leaky_relu(z, negative_slope=0.01),
    Activation.TANH: torch.tanh,
    Activation.SIGMOID: torch.sigmoid,
    Activation.GELU: lambda z: F.gelu(z, approximate="none"),  # exact, erf-based
    Activation.SILU: F.silu,
    Activation.SELU: F.selu,
    Activation.ELU: lambda z: F.elu(z, alpha=1.0),
    # torch turns softplus into the identity above `threshold`; the dropped log1p(e^-40) ≈ 4e-18
    # is below float64 resolution there, so this is the exact softplus (the default 20 is not)
    Activation.SOFTPLUS: lambda z: F.softplus(z, beta=1.0, threshold=40.0),
    Activation.LINEAR: lambda z: z,
}

NORMS: dict[Norm, Callable[[Tensor], Tensor]] = {
    Norm.NONE: lambda z: z,
    # training-mode batch statistics (biased variance), no running stats, no affine γ/β
    Norm.BATCH: lambda z: F.batch_norm(z, None, None, training=True, eps=NORM_EPS),
    Norm.LAYER: lambda z: F.layer_norm(z, z.shape[1:], eps=NORM_EPS),
}


def _loss_mse(y: Tensor, arrays: dict[str, Any], head: dict[str, Tensor]) -> Tensor:
    t = _tensor(arrays["target"])  # (B, n)
    return ((y - t) ** 2).sum() / (2 * y.shape[0])


def _loss_linear(y: Tensor, arrays: dict[str, Any], head: dict[str, Tensor]) -> Tensor:
    u = _tensor(arrays["target"])  # (B, n), the fixed probe direction
    return (y * u).sum() / y.shape[0]


def _loss_xent(y: Tensor, arrays: dict[str, Any], head: dict[str, Tensor]) -> Tensor:
    logits = y @ head["W_head"] + head["b_head"]  # (B, C)
    labels = torch.as_tensor(np.asarray(arrays["labels"]), dtype=torch.int64)  # (B,)
    return F.cross_entropy(logits, labels)  # mean over the batch


LOSSES: dict[Loss, Callable[[Tensor, dict[str, Any], dict[str, Tensor]], Tensor]] = {
    Loss.MSE: _loss_mse,
    Loss.LINEAR: _loss_linear,
    Loss.XENT: _loss_xent,
}


def _tensor(array: Any) -> Tensor:
    return torch.tensor(np.asarray(array, dtype=np.float64), dtype=torch.float64)


def _leaf(array: Any) -> Tensor:
    return _tensor(array).requires_grad_(True)


def _keep(t: Tensor) -> Tensor:
    """Ask autograd to keep ∂L/∂t for an intermediate tensor (a no-op on leaves)."""
    if not t.is_leaf:
        t.retain_grad()
    return t


def _grad(t: Tensor) -> np.ndarray:
    if t.grad is None:
        raise RuntimeError("reference: a tensor that should feed the loss received no gradient")
    return t.grad.detach().numpy().copy()


def reference_pass(
    spec: NetworkSpec, arrays: dict[str, Any], *, shortcuts: bool = True
) -> dict[str, Any]:
    """Run forward, loss and backward in torch on the run's arrays; return loss and gradients.

    Keys (lists are indexed by layer 0..L-1 or by block 0..L/k-1):
      loss            float
      weights         ∂L/∂W_i, (n, n)            biases    ∂L/∂b_i, (n,)
      inputs          ∂L/∂(input of layer i), (B, n): h_{i-1} in a plain net, u_{j-1} inside a
                      block, and for a block's first layer the block input h_in, total derivative
                      (skip part plus branch part)
      dense_operands  ∂L/∂a for the left operand a of layer i's matmul, through that matmul only
                      (pre: a = φ(N(u_{j-1})); a block's first layer: the branch part only)
      output          ∂L/∂y, (B, n)
      head_weight     ∂L/∂W_head, (n, C), and head_bias ∂L/∂b_head, (C,): xent only, else None
      block_add       ∂L/∂(h_in + α·branch), the gradient arriving at each block's addition
      block_skip      the part handed back along the skip (identical to block_add)
      block_branch    the part that reaches h_in through the branch
      block_input     ∂L/∂h_in, their sum
    ``shortcuts=False`` drops the additions (h_out = φ(v) for post, h_out = u_k for pre), which
    must reproduce a plain network for post.
    """
    if spec.dtype is not DType.FLOAT64:
        raise ValueError("the torch reference runs in float64 only")
    phi, norm = ACTIVATIONS[spec.activation], NORMS[spec.norm]
    depth, alpha, s = spec.depth, spec.residual_scale, spec.skip_scale

    x = _leaf(arrays["x"])  # (B, n)
    weights = [_leaf(arrays[f"W{i}"]) for i in range(1, depth + 1)]  # (n, n) each
    biases = [_leaf(arrays[f"b{i}"]) for i in range(1, depth + 1)]  # (n,) each
    head = (
        {"W_head": _leaf(arrays["W_head"]), "b_head": _leaf(arrays["b_head"])}
        if spec.loss is Loss.XENT
        else {}
    )

    layer_inputs: list[Tensor] = []
    operands: list[Tensor] = []
    adds: list[Tensor] = []
    block_inputs: list[Tensor] = []
    branch_inputs: list[Tensor] = []

    h = x
    if spec.skip is Skip.NONE:
        for W, b in zip(weights, biases, strict=True):
            layer_inputs.append(_keep(h))
            operands.append(h)
            h = phi(norm(h @ W + b))  # (B, n)
    else:
        k = spec.block_size
        for start in range(0, depth, k):
            h_in = _keep(h)
            # The branch reads a copy of h_in, so the copy's .grad is exactly the branch part
            # while h_in.grad is the total (skip plus branch); clone() does not change values.
            u = _keep(h_in.clone())
            block_inputs.append(h_in)
            branch_inputs.append(u)
            for j in range(start, start + k):
                layer_inputs.append(h_in if j == start else _keep(u))
                last = j == start + k - 1
                if spec.skip is Skip.POST:
                    a = u
                    z = a @ weights[j] + biases[j]  # (B, n)
                    # the last branch layer is left un-activated: φ comes after the add
                    u = norm(z) if last else phi(norm(z))
                elif spec.skip is Skip.POSTNORM:
                    a = u
                    z = a @ weights[j] + biases[j]  # (B, n)
                    u = z if last else phi(z)  # no normalisation inside the branch
                else:
                    a = _keep(phi(norm(u)))  # pre-activation: N and φ before the dense layer
                    u = a @ weights[j] + biases[j]  # (B, n)
                operands.append(a)
            total = _keep(s * h_in + alpha * u) if shortcuts else _keep(u)
            adds.append(total)
            if spec.skip is Skip.POST:
                h = phi(total)
            elif spec.skip is Skip.POSTNORM:
                h = norm(total)
            else:
                h = total

    y = _keep(h)  # (B, n)
    loss = LOSSES[spec.loss](y, arrays, head)
    loss.backward()

    block_add = [_grad(t) for t in adds]
    return {
        "loss": float(loss.item()),
        "weights": [_grad(W) for W in weights],
        "biases": [_grad(b) for b in biases],
        "inputs": [_grad(t) for t in layer_inputs],
        "dense_operands": [_grad(t) for t in operands],
        "output": _grad(y),
        "head_weight": _grad(head["W_head"]) if head else None,
        "head_bias": _grad(head["b_head"]) if head else None,
        "block_add": block_add,
        "block_skip": [s * g for g in block_add],  # the skip hands back s times the gradient
        "block_branch": [_grad(t) for t in branch_inputs],
        "block_input": [_grad(t) for t in block_inputs],
    }
