"""One pass: forward over the blocks, then backward over them in reverse, in loops, never
recursion (depth 100,000 works).

The driver owns what is the same for every wiring: the tape, the chunks in which finished layers
are handed on, the gradient flow with its carried power-of-two exponent, and progress. What a
block computes is the wiring's (``wirings.py``). Its backward offers three services:

    backward(..., method="auto"|"gram"|"explicit")   norms of every ∂L/∂W, ∂L/∂b, ∂L/∂(input)
    backward(..., keep=True)                         also every ∂L/∂W, ∂L/∂b, ∂L/∂(input) formed
    branch_vjp / after_add_vjp                       a block's transposed Jacobian applied to a
                                                     stack of vectors (M, B, n)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache, partial

import numpy as np

from gradflow.engine.gradient import Flow, Records, Stack
from gradflow.engine.spec import NetworkSpec
from gradflow.engine.tape import CheckedTape, NonFinite, Observer, Order, Tape
from gradflow.engine.weight_grads import GradientBuffers, Method, WeightGradients
from gradflow.engine.wirings import (
    WIRINGS,
    Block,
    layer_backward,
    layer_forward,
    residual_backward,
    residual_forward,
)

Progress = Callable[[int], None]  # called with the number of layers done so far

ForwardStep = Callable[[Tape, Block, np.ndarray], np.ndarray]
BackwardStep = Callable[[Flow, Block], None]


@lru_cache(maxsize=8)
def blocks(spec: NetworkSpec) -> tuple[Block, ...]:
    """The steps of a pass: one per layer in a plain network, one per residual block. (A plain
    pass loops over its layers without them.)"""
    k = spec.block_size if spec.residual else 1
    return tuple(
        Block(b, range(b * k, (b + 1) * k), b * k, (b + 1) * k - 1) for b in range(spec.depth // k)
    )


BLOCK_BYTES = 300  # a Block and its range, as tracemalloc counts them (~294)


def driver_bytes(spec: NetworkSpec) -> int:
    """Bytes the driver holds for a pass: a residual network's blocks (cached beyond it)."""
    return spec.blocks * BLOCK_BYTES if spec.residual else 0


def _steps(spec: NetworkSpec) -> tuple[ForwardStep, BackwardStep]:
    """A residual block's steps (a plain network's are its layers' own, run by the loops)."""
    wiring = WIRINGS[spec.skip]
    return partial(residual_forward, wiring), partial(residual_backward, wiring)


def order(spec: NetworkSpec) -> Order:
    return WIRINGS[spec.skip].order if spec.residual else Order.POST


def norm_after_add(spec: NetworkSpec) -> bool:
    """N follows the add (Post-LN): one normalisation site per block, its output the block's."""
    return spec.residual and WIRINGS[spec.skip].norm_after_add


def forward(
    spec: NetworkSpec,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray] | None,
    x: np.ndarray,
    observe: Observer | None = None,
    chunk: int = 1 << 30,
    threads: int = 1,
) -> tuple[Tape, np.ndarray]:
    """Run the network on x (B, n); biases None means all zero. Returns the tape and the output
    y (B, n). Finished layers go to ``observe`` ``chunk`` at a time. ``threads``: how many the
    products of this pass and its backward may use; the bits are the same for any count."""
    norm_out = [block.last for block in blocks(spec)] if norm_after_add(spec) else None
    tape = Tape(spec, order(spec), weights, biases, x, norm_out, chunk, observe, threads)
    return tape, _run_forward(spec, tape, x)


def first_nonfinite(
    spec: NetworkSpec,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray] | None,
    x: np.ndarray,
) -> int | None:
    """The layer whose forward step on x first gives a value that is not finite (its product,
    normalisation or φ, or the add that ends its block); None where every value is finite.
    The pass is run again with a check after every step (``CheckedTape``): to locate a
    failure, not for every pass."""
    norm_out = [block.last for block in blocks(spec)] if norm_after_add(spec) else None
    tape = CheckedTape(spec, order(spec), weights, biases, x, norm_out)
    try:
        with np.errstate(all="ignore"):
            _run_forward(spec, tape, x)
    except NonFinite as found:
        return found.layer
    return None


def forward_again(spec: NetworkSpec, tape: Tape, x: np.ndarray) -> np.ndarray:
    """Run the network on a new x (B, n) into the existing ``tape``, with the weights as they
    are now (updated in place): a training step allocates no tape. Returns the output y."""
    tape.rewind(x)
    return _run_forward(spec, tape, x)


def _run_forward(spec: NetworkSpec, tape: Tape, x: np.ndarray) -> np.ndarray:
    h = x
    if not spec.residual:  # a plain network's blocks are its layers: the wiring's layer step
        for i in range(spec.depth):
            h = layer_forward(tape, i, h)
            if i >= tape.due:  # a chunk is complete: no call for the layers before
                tape.finish(i + 1)
        return h
    step, _ = _steps(spec)
    for block in blocks(spec):
        h = step(tape, block, h)
        if block.last >= tape.due:  # a chunk is complete: no call for the layers before
            tape.finish(block.last + 1)
    return h.copy() if tape.order is Order.PRE else h


def backward(
    spec: NetworkSpec,
    tape: Tape,
    dy: np.ndarray,
    *,
    method: Method | str = Method.AUTO,
    keep: bool = False,
    progress: Progress | None = None,
    into: GradientBuffers | None = None,
) -> Records:
    """Propagate ∂L/∂y (B, n) back through the network recorded on ``tape``. ``into``: every
    ∂L/∂W (L, n, n) and ∂L/∂b (L, n) is written there, at true scale (a training step's
    gradient buffers, allocated once); the norms are recorded as always."""
    chosen: Method = Method.parse(method, "method")
    grads = WeightGradients(spec, tape.dense_in, keep, chosen, into, tape.threads)
    flow = Flow(tape, dy, grads, keep, spec.blocks)
    every = max(1, spec.depth // 100)
    due = spec.depth - every  # report when the layers below this one are reached
    if not spec.residual:  # one layer a step, as forward
        for i in range(spec.depth - 1, -1, -1):
            layer_backward(flow, i)
            if i <= due and progress is not None:
                progress(spec.depth - i)
                due = i - every
        return flow.records()
    _, step = _steps(spec)
    for block in reversed(blocks(spec)):
        step(flow, block)
        if block.first <= due and progress is not None:
            progress(spec.depth - block.first)
            due = block.first - every
    return flow.records()


def branch_vjp(spec: NetworkSpec, tape: Tape, block: Block, vectors: np.ndarray) -> np.ndarray:
    """J_Fᵀ v for each v of a (M, B, n) stack: the transposed Jacobian of the block's branch,
    from its output back to the block input, at the forward pass recorded on ``tape``."""
    stack = Stack(tape, vectors)
    WIRINGS[spec.skip].branch_backward(stack, block)
    return stack.g


def after_add_vjp(spec: NetworkSpec, tape: Tape, block: Block, vectors: np.ndarray) -> np.ndarray:
    """The transposed Jacobian of what follows the block's add (post: φ', Post-LN: N; pre:
    nothing) applied to each v of a (M, B, n) stack."""
    stack = Stack(tape, vectors)
    WIRINGS[spec.skip].after_add_backward(stack, block)
    return stack.g
