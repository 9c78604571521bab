"""The gradient as it flows back, and the backward steps that move it one operation at a time.

Once the forward pass is fixed, backward is linear in the incoming gradient. So ``Flow`` keeps
its (B, n) gradient rescaled by exact powers of two, near norm 1, and carries the scale as an
integer binary exponent: every recorded magnitude is ``mantissa · 2**exponent``, exact even
where float64 would underflow to 0 or overflow to inf. The wirings call its steps
(``phi_back``, ``norm_back``, ``linear_back``, ``at_input``, and at a residual addition
``fork`` / ``scale`` / ``join``); the buffers, the exponent and the records stay in here.

``Stack`` offers the same steps on a stack of vectors (M, B, n) without recording anything: a
block's transposed Jacobian applied to many vectors at once, for path decompositions.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from gradflow.engine.magnitudes import (
    HIGH_SQ,
    LOW_SQ,
    Magnitudes,
    checked_norm,
    exact_norm,
    sum_sq,
    times_pow2,
)
from gradflow.engine.normalization import normalize_backward
from gradflow.engine.spec import NetworkSpec
from gradflow.engine.tape import Order, Tape
from gradflow.engine.weight_grads import WeightGradients


def flow_bytes(spec: NetworkSpec, keep_inputs: bool) -> int:
    """Bytes ``Flow`` holds: three (B, n) buffers, the scaled ∂L/∂x it hands back, and the
    per-layer and per-block records (a Python float and int per layer, 40 bytes each with the
    list's pointer), and with ``keep_inputs`` every ∂L/∂(layer input)."""
    layer = spec.batch * spec.width * np.dtype(spec.dtype.value).itemsize
    total = 4 * layer + spec.depth * 2 * 40 + spec.blocks * 5 * 8
    if keep_inputs:
        total += spec.depth * layer
    return total


# Named tuples: immutable, and made at import for a quarter of a frozen dataclass's cost.
class Skip(NamedTuple):
    """The part of the gradient handed back along a skip path, with its own exponent."""

    values: np.ndarray  # (B, n)
    exponent: int


class Records(NamedTuple):
    """Magnitudes measured by one backward pass (dense layers in forward order)."""

    grad_weight: Magnitudes  # (L,)
    grad_bias: Magnitudes  # (L,)
    grad_input: Magnitudes  # (L,) total derivative w.r.t. each layer's input
    block_add: Magnitudes  # (blocks,) gradient arriving at each addition
    block_skip: Magnitudes  # (blocks,) part handed back along the skip: s times block_add
    block_branch: Magnitudes  # (blocks,) part coming back through the branch
    block_input: Magnitudes  # (blocks,) their sum at the block input
    block_cosine: np.ndarray  # (blocks,)
    weight_grads: list[np.ndarray] | None  # kept on request, true scale, forward order
    bias_grads: list[np.ndarray] | None
    input_grads: list[np.ndarray] | None
    # ∂L/∂x · 2**-exponent (B, n) and the exponent: the network input's gradient, exact also
    # where its true scale leaves float range
    input_gradient: tuple[np.ndarray, int]


class Flow:
    """∂L/∂(the current point) · 2**-exponent, walked back through one pass's tape."""

    def __init__(
        self, tape: Tape, dy: np.ndarray, grads: WeightGradients, keep_inputs: bool, blocks: int
    ) -> None:
        depth = tape.spec.depth
        self.tape, self.grads = tape, grads
        self.skip_scale = tape.skip_scale
        # looked up once, not once per layer: at width 16 Python's overhead is the cost
        self.phi_prime, self.weights_t, self.product = tape.phi_prime, tape.weights_t, tape.product
        self.post_order = tape.order is Order.POST
        self.slots, self.chunk, self.exponents = grads.slots, grads.chunk, grads.exponent
        self.period = grads.period  # layer i's ∂L/∂z slot: slots[i % period]
        # two ping-pong buffers; a layer's ∂L/∂z lives in the weight-gradient slot of its layer
        self.pair = (dy.copy(), np.empty_like(dy))
        self.g = self.pair[0]
        self.e = 0
        _, self.e = self._rescale()
        self.skip = np.empty_like(dy)
        self.input_norm, self.input_exp = [0.0] * depth, [0] * depth
        self.kept_inputs: list[np.ndarray] | None = [] if keep_inputs else None
        self.block_add, self.block_skip = np.zeros((blocks, 2)), np.zeros((blocks, 2))
        self.block_branch = np.zeros((blocks, 2))
        self.cosine = np.full(blocks, np.nan)
        self.block_firsts: list[int] = []

    # ---- steps ----------------------------------------------------------------------------

    def phi_back(self, i: int) -> None:
        """g ← g ⊙ φ'(layer i). In post order the result is layer i's ∂L/∂z (or N's input),
        so it goes straight into that layer's weight-gradient slot; in pre order, in place."""
        d = self.phi_prime(i)
        if d is None:
            return
        if self.post_order:
            out = self.slots[i % self.period]  # the weight-gradient slot of layer i
            np.multiply(self.g, d, out=out)
            self.g = out
        else:
            self.g *= d

    def norm_back(self, site: int) -> None:
        """g ← the normalisation's transposed Jacobian applied to g, in place."""
        tape = self.tape
        if tape.axis is not None:
            normalize_backward(self.g, tape.xhat[site], tape.inv_std[site], tape.axis, out=self.g)

    def linear_back(self, i: int) -> None:
        """g is ∂L/∂z_i: record it for ‖∂L/∂W_i‖ and ‖∂L/∂b_i‖, then g ← g W_iᵀ (B, n)."""
        dz = self.slots[i % self.period]  # the weight-gradient slot of layer i
        if self.g is not dz:
            np.copyto(dz, self.g)
        out = self.pair[1] if self.g is self.pair[0] else self.pair[0]
        self.product(dz, self.weights_t[i], out=out)  # (B, n) @ (n, n)
        self.g = out
        self.exponents[i] = self.e  # at this scale; a chunk is taken once its first layer is in
        if i % self.chunk == 0:
            self.grads.flush(i)

    def at_input(self, i: int) -> None:
        """g is now ∂L/∂(input of layer i): record its norm and keep it near 1."""
        g = self.g
        sq = float(np.vdot(g, g))  # _rescale, inline: this runs once a layer
        if LOW_SQ <= sq <= HIGH_SQ:
            self.input_norm[i] = math.sqrt(sq)
        else:
            self.input_norm[i], self.e = exact_norm(g, self.e, inplace=True)
        self.input_exp[i] = self.e
        if self.kept_inputs is not None:
            self.kept_inputs.append(times_pow2(self.g, self.e))

    def fork(self) -> Skip:
        """The skip path's part at a residual addition: s·g, handed back unchanged."""
        if self.skip_scale != 1.0:
            # the gradient arriving at the add, before the skip scales it
            b = len(self.block_firsts)
            self.block_add[b] = checked_norm(sum_sq(self.g), self.g, self.e)
            np.multiply(self.g, self.skip_scale, out=self.skip)
        else:
            np.copyto(self.skip, self.g)
        return Skip(self.skip, self.e)

    def scale(self, factor: float) -> None:
        """g ← factor·g (the branch's share at the addition, α·g)."""
        if factor != 1.0:
            self.g *= factor

    def join(self, skip: Skip, i: int) -> None:
        """g ← skip part + branch part: ∂L/∂h_in at the block input, which is the input of
        layer i. Records both parts' norms, their cosine, and the sum as layer i's input
        gradient."""
        b = len(self.block_firsts)
        self.block_firsts.append(i)
        branch, branch_e = self.g, self.e
        # the branch part's norm: at_input(i) has just taken it (and brought g near 1)
        self.block_branch[b] = self.input_norm[i], self.input_exp[i]
        sq_skip, sq_branch = sum_sq(skip.values), self.input_norm[i] ** 2
        dot = float(np.vdot(skip.values, branch))
        self.block_skip[b] = checked_norm(sq_skip, skip.values, skip.exponent)
        if self.skip_scale == 1.0:
            self.block_add[b] = self.block_skip[b]
        if sq_skip > 0 and sq_branch > 0:
            self.cosine[b] = dot / math.sqrt(sq_skip * sq_branch)
        # Bring both to the larger exponent; the smaller part loses only what is below rounding.
        if skip.exponent > branch_e:
            times_pow2(branch, branch_e - skip.exponent, out=branch)
            branch += skip.values
            self.e = skip.exponent
        elif skip.exponent < branch_e:
            branch += times_pow2(skip.values, skip.exponent - branch_e)
        else:
            branch += skip.values
        if self.kept_inputs is not None:
            self.kept_inputs.pop()  # layer i's input gradient was the branch part alone
        self.at_input(i)

    def _rescale(self) -> tuple[float, int]:
        """‖g‖ as (mantissa, exponent), g brought near norm 1 by an exact power of two when
        it has left [2^-32, 2^32]."""
        sq = float(np.vdot(self.g, self.g))
        if LOW_SQ <= sq <= HIGH_SQ:
            return math.sqrt(sq), self.e
        return exact_norm(self.g, self.e, inplace=True)

    # ---- results --------------------------------------------------------------------------

    def records(self) -> Records:
        grads = self.grads
        grads.finish()
        grad_input = Magnitudes(np.array(self.input_norm), np.array(self.input_exp, dtype=np.int64))
        firsts = np.array(self.block_firsts[::-1], dtype=np.int64)  # forward order
        kept = self.kept_inputs
        return Records(
            grad_weight=_magnitudes(grads.weight),
            grad_bias=_magnitudes(grads.bias),
            grad_input=grad_input,
            block_add=_magnitudes(self.block_add[::-1]),
            block_skip=_magnitudes(self.block_skip[::-1]),
            block_branch=_magnitudes(self.block_branch[::-1]),
            block_input=Magnitudes(grad_input.mantissa[firsts], grad_input.exponent[firsts]),
            block_cosine=self.cosine[::-1].copy(),
            weight_grads=None if grads.kept_w is None else grads.kept_w[::-1],
            bias_grads=None if grads.kept_b is None else grads.kept_b[::-1],
            input_grads=None if kept is None else kept[::-1],
            input_gradient=(self.g.copy(), self.e),  # g is now ∂L/∂x, scaled
        )


def _magnitudes(rows: np.ndarray) -> Magnitudes:
    return Magnitudes(rows[:, 0].copy(), rows[:, 1].astype(np.int64))


class Stack:
    """The same backward steps on a stack of vectors g (M, B, n), recording nothing: applies
    a stretch of the network's transposed Jacobian to M vectors at once. No rescaling: callers
    that need magnitudes beyond float range scale their vectors themselves (the map is
    linear)."""

    def __init__(self, tape: Tape, g: np.ndarray) -> None:
        self.tape, self.g = tape, g

    def phi_back(self, i: int) -> None:
        d = self.tape.phi_prime(i)
        if d is not None:
            self.g = self.g * d

    def norm_back(self, site: int) -> None:
        tape = self.tape
        if tape.axis is not None:
            out = np.empty_like(self.g)
            normalize_backward(self.g, tape.xhat[site], tape.inv_std[site], tape.axis, out=out)
            self.g = out

    def linear_back(self, i: int) -> None:
        self.g = self.g @ self.tape.weights_t[i]  # (M, B, n) @ (n, n)

    def at_input(self, i: int) -> None:
        pass

    def scale(self, factor: float) -> None:
        if factor != 1.0:
            self.g = self.g * factor
