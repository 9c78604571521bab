"""The wirings: each kind of layer or residual block, its forward step beside its backward step.

Notation as in docs/engine.md: a dense layer is z = a W + b; φ is the activation, N the
normalisation (``--norm``), α the residual scale and s the skip scale.

    plain     h = φ(N(h_prev W + b))                                  one layer, no addition
    post      u_j = φ(N(u_{j-1} W_j + b_j)), j < k;   v = N(u_{k-1} W_k + b_k)
              h_out = φ(s·h_in + α·v)                                 (original ResNet)
    pre       u_j = φ(N(u_{j-1})) W_j + b_j, u_0 = h_in;   h_out = s·h_in + α·u_k
    postnorm  u_j = φ(u_{j-1} W_j + b_j), j < k;   v = u_{k-1} W_k + b_k
              h_out = N(s·h_in + α·v)                                 (Post-LN)

A residual block is ``after_add(s·h_in + α·branch(h_in))``. Its backward is the seed question's
answer in three lines (``residual_backward``): the add hands the gradient arriving at it back
along the skip unchanged (times s), the branch receives α times the same gradient, and the two
parts meet again at h_in, where they are summed.

Forward steps are the tape's (``linear``, ``norm``, ``phi``, ``add``); backward steps are the
gradient flow's (``linear_back``, ``norm_back``, ``phi_back``, ``at_input``; ``fork``, ``scale``,
``join`` at the add). Buffers, chunking and the carried exponent live below this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import numpy as np

from gradflow.engine.gradient import Flow
from gradflow.engine.spec import Skip
from gradflow.engine.tape import Order, Tape


class Block(NamedTuple):
    """A run of dense layers that the driver hands to a wiring in one step. (A named tuple:
    a deep plain network makes 100,000 of them, and a frozen dataclass costs ~10x more.)"""

    number: int  # 0-based block number (a plain network: the layer number)
    layers: range  # its dense layers, 0-based
    first: int  # layers[0]
    last: int  # layers[-1]


class Steps(Protocol):
    """The backward steps a wiring uses: ``Flow`` (recording) and ``Stack`` (many vectors)."""

    def phi_back(self, i: int) -> None: ...
    def norm_back(self, site: int) -> None: ...
    def linear_back(self, i: int) -> None: ...
    def at_input(self, i: int) -> None: ...


# ---- plain: one layer ------------------------------------------------------------------------


def layer_forward(tape: Tape, i: int, h: np.ndarray) -> np.ndarray:
    return tape.phi(i, tape.norm(i, tape.linear(i, h)))  # h = φ(N(h_prev W + b))


def layer_backward(flow: Steps, i: int) -> None:
    flow.phi_back(i)  # ∂L/∂N(z) = g ⊙ φ'
    flow.norm_back(i)  # ∂L/∂z
    flow.linear_back(i)  # ∂L/∂h_prev = ∂L/∂z Wᵀ
    flow.at_input(i)


# ---- post: φ after the add (original ResNet) ------------------------------------------------


def post_branch(tape: Tape, block: Block, h_in: np.ndarray) -> np.ndarray:
    u = h_in
    for i in block.layers[:-1]:
        u = layer_forward(tape, i, u)  # u_j = φ(N(u_{j-1} W_j + b_j))
    return tape.norm(block.last, tape.linear(block.last, u))  # v = N(u_{k-1} W_k + b_k)


def post_after_add(tape: Tape, block: Block, total: np.ndarray) -> np.ndarray:
    return tape.phi(block.last, total)  # h_out = φ(s·h_in + α·v)


def post_branch_backward(flow: Steps, block: Block) -> None:
    flow.norm_back(block.last)  # through v = N(u_{k-1} W_k + b_k)
    flow.linear_back(block.last)
    flow.at_input(block.last)
    for i in reversed(block.layers[:-1]):
        layer_backward(flow, i)


def post_after_add_backward(flow: Steps, block: Block) -> None:
    flow.phi_back(block.last)  # ∂L/∂(s·h_in + α·v) = g ⊙ φ'


# ---- pre: nothing after the add (identity mappings) -----------------------------------------


def pre_branch(tape: Tape, block: Block, h_in: np.ndarray) -> np.ndarray:
    u, out = h_in, tape.stream_buffer(h_in)  # the stream keeps h_in until the add
    for i in block.layers:
        u = tape.linear(i, tape.phi(i, tape.norm(i, u)), out)  # u_j = φ(N(u_{j-1})) W_j + b_j
    return u


def pre_after_add(tape: Tape, block: Block, total: np.ndarray) -> np.ndarray:
    return total  # h_out = s·h_in + α·u_k: nothing follows the add


def pre_branch_backward(flow: Steps, block: Block) -> None:
    for i in reversed(block.layers):
        flow.linear_back(i)  # ∂L/∂φ(N(u_{j-1})) = ∂L/∂u_j Wᵀ
        flow.phi_back(i)
        flow.norm_back(i)  # ∂L/∂u_{j-1}
        flow.at_input(i)


def pre_after_add_backward(flow: Steps, block: Block) -> None:
    pass  # the add's output is the block's output


# ---- postnorm: N after the add (Post-LN) ----------------------------------------------------


def postnorm_branch(tape: Tape, block: Block, h_in: np.ndarray) -> np.ndarray:
    u = h_in
    for i in block.layers[:-1]:
        u = tape.phi(i, tape.linear(i, u))  # u_j = φ(u_{j-1} W_j + b_j)
    return tape.linear(block.last, u)  # v = u_{k-1} W_k + b_k


def postnorm_after_add(tape: Tape, block: Block, total: np.ndarray) -> np.ndarray:
    return tape.norm(block.number, total)  # h_out = N(s·h_in + α·v), kept as the layer's output


def postnorm_branch_backward(flow: Steps, block: Block) -> None:
    flow.linear_back(block.last)  # ∂L/∂u_{k-1} = ∂L/∂v Wᵀ
    flow.at_input(block.last)
    for i in reversed(block.layers[:-1]):
        flow.phi_back(i)
        flow.linear_back(i)
        flow.at_input(i)


def postnorm_after_add_backward(flow: Steps, block: Block) -> None:
    flow.norm_back(block.number)  # ∂L/∂(s·h_in + α·v): through N


# ---- the residual addition, shared by every residual wiring ----------------------------------


class Wiring(NamedTuple):  # a table row of functions: immutable, cheap to create at import
    """A residual block's parts; the addition between them is the same for every wiring."""

    order: Order  # what the tape keeps for each layer
    branch: Callable[[Tape, Block, np.ndarray], np.ndarray]  # h_in ↦ the branch's output
    after_add: Callable[[Tape, Block, np.ndarray], np.ndarray]  # s·h_in + α·branch ↦ h_out
    branch_backward: Callable[[Steps, Block], None]
    after_add_backward: Callable[[Steps, Block], None]
    norm_after_add: bool = False  # N sits after the add, one site per block (Post-LN)


def residual_forward(wiring: Wiring, tape: Tape, block: Block, h_in: np.ndarray) -> np.ndarray:
    v = wiring.branch(tape, block, h_in)
    out = v if wiring.order is Order.PRE else None  # pre: the sum stays in the stream
    return wiring.after_add(tape, block, tape.add(h_in, v, out))  # after_add(s·h_in + α·v)


def residual_backward(wiring: Wiring, flow: Flow, block: Block) -> None:
    wiring.after_add_backward(flow, block)  # g: the gradient arriving at the add
    skip = flow.fork()  # the skip hands it back unchanged (times s)
    flow.scale(flow.tape.alpha)  # the branch receives α·g
    wiring.branch_backward(flow, block)
    flow.join(skip, block.first)  # ∂L/∂h_in = skip part + branch part


WIRINGS: dict[Skip, Wiring] = {
    Skip.POST: Wiring(
        Order.POST, post_branch, post_after_add, post_branch_backward, post_after_add_backward
    ),
    Skip.PRE: Wiring(
        Order.PRE, pre_branch, pre_after_add, pre_branch_backward, pre_after_add_backward
    ),
    Skip.POSTNORM: Wiring(
        Order.POST,
        postnorm_branch,
        postnorm_after_add,
        postnorm_branch_backward,
        postnorm_after_add_backward,
        norm_after_add=True,
    ),
}
