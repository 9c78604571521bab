"""Build a network's arrays from its spec: input, loss targets, weights and biases.

All randomness flows from one ``numpy.random.Generator`` seeded by the spec. It is split into
independent streams (input, loss data, weights, biases) so that, for example, the input does not
change with the depth and the weights do not change with the loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gradflow.engine.initializers import draw_chunk, draw_weights, layer_norms
from gradflow.engine.losses import LossData
from gradflow.engine.redrawn import RedrawnWeights, WeightStream, reader_ahead, reader_bytes
from gradflow.engine.spec import Loss, NetworkSpec
from gradflow.engine.threads import one_blas_thread

# What the arrays depend on; compare() reuses one Network for specs that agree on these.
BUILD_FIELDS = (
    "depth", "width", "batch", "activation", "init", "weight_var", "bias_var",
    "loss", "classes", "dtype", "seed",
)  # fmt: skip


# Frozen, without the generated == and repr: it holds arrays, whose == is ambiguous, and each
# generated method costs start-up time.
@dataclass(frozen=True, eq=False, repr=False)
class Network:
    """A network's drawn arrays. Shared by every skip variant: only the wiring differs."""

    x: np.ndarray  # (B, n) input, x ~ N(0, 1)
    # (L, n, n); layer i computes z = a @ weights[i-1] + biases[i-1]. (0, n, n) where the
    # weights are redrawn for each pass from ``stream`` instead of held (``build(redraw=True)``)
    weights: np.ndarray
    biases: np.ndarray  # (L, n)
    loss_data: LossData
    build_key: tuple[object, ...]
    stream: WeightStream | None = None
    # (L,) ‖W_i‖_F of the drawn weights, measured from them at construction (so a Network made
    # with other weights, e.g. by dataclasses.replace, never carries stale norms); redrawn
    # weights are measured as they are first drawn
    weight_norms: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        norms = layer_norms(self.weights) if self.stream is None else self.stream.norms
        object.__setattr__(self, "weight_norms", norms)

    def weights_for(self, spec: NetworkSpec, threads: int | None = None) -> Sequence[np.ndarray]:
        """Per-layer weights as ``spec`` sees them: inside residual branches multiplied by
        branch_weight_scale β (new arrays), and branch ends zeroed if it asks. Redrawn weights
        come as a reader for one pass, which draws them as it is read, on up to ``threads``
        threads beside it (None: one a core; 1: none, in the pass)."""
        self.check_matches(spec)
        if self.stream is not None:
            return RedrawnWeights(self.stream, spec, ahead=reader_ahead(threads))
        layers = list(self.weights)
        beta = spec.weight_scale
        if beta != 1.0:
            layers = [w * beta for w in layers]
        return _zero_branch_ends(layers, spec)

    def weight_norms_for(self, spec: NetworkSpec) -> np.ndarray:
        """‖W_i‖_F as ``spec`` sees the weights (β-scaled, zeroed branch ends 0), (L,)."""
        norms = (self.weight_norms if self.stream is None else self.stream.complete()).copy()
        norms *= abs(spec.weight_scale)
        norms[spec.zeroed_layers] = 0.0
        return norms

    def biases_for(self, spec: NetworkSpec) -> list[np.ndarray]:
        """Per-layer biases; a zero-initialised branch end gets a zero bias too."""
        return _zero_branch_ends(list(self.biases), spec)

    def pass_biases(self, spec: NetworkSpec) -> list[np.ndarray] | None:
        """The biases a pass adds: None when every bias is zero (the default), so that the
        pass skips adding zeros layer after layer."""
        return self.biases_for(spec) if self.biases.any() else None

    def check_matches(self, spec: NetworkSpec) -> None:
        if _build_key(spec) != self.build_key:
            raise ValueError("network: was built from a spec with different sizes, init or seed")

    def arrays(self, spec: NetworkSpec) -> dict[str, np.ndarray]:
        """The run's arrays for ``np.savez``: x, target, W1..WL, b1..bL, W_head, b_head, labels."""
        if self.stream is not None:
            raise ValueError("network: redrawn weights are not held; build it with redraw=False")
        out: dict[str, np.ndarray] = {"x": self.x}
        data = self.loss_data
        if data.target is not None:
            out["target"] = data.target
        for i, (w, b) in enumerate(
            zip(self.weights_for(spec), self.biases_for(spec), strict=True), start=1
        ):
            out[f"W{i}"] = w
            out[f"b{i}"] = b
        if data.labels is not None:
            assert data.head_weight is not None and data.head_bias is not None
            out["W_head"] = data.head_weight
            out["b_head"] = data.head_bias
            out["labels"] = data.labels
        return out


def _zero_branch_ends(layers: list[np.ndarray], spec: NetworkSpec) -> list[np.ndarray]:
    """``layers`` with the last layer of every residual branch replaced by zeros when ``spec``
    asks for zero_init_residual (the drawn arrays stay untouched)."""
    layers = list(layers)
    if spec.zeroed_layers:
        zero = np.zeros_like(layers[0])
        for end in spec.zeroed_layers:
            layers[end] = zero
    return layers


def redraws_weights(spec: NetworkSpec) -> bool:
    """Whether one pass of ``spec`` (``analyze``) draws its weights twice rather than holding
    them: where the stack takes REDRAW_FROM or more (``redrawn.py``). Several passes over one
    network (compare, paths, train) hold them."""
    return spec.depth * spec.width**2 * np.dtype(spec.dtype.value).itemsize >= REDRAW_FROM


# From here drawing twice, beside the pass, took less time than drawing once and faulting the
# stack in: at 52 and 67 MB as long, from 105 MB 0.55-0.75 of the time on the benchmark machine
REDRAW_FROM = 96 << 20


def network_bytes(spec: NetworkSpec, redraw: bool = False) -> int:
    """Bytes ``build`` allocates: weights and biases L·(n² + n), input and targets, the xent
    head n·C + C and its labels; and a variant's β-scaled copy of the weights, where it has one.
    The float32 draw's float64 temporary (the norms' widened copy is no larger, and comes
    after it) and the weight norms are included. ``redraw``: a pass's reader of redrawn
    weights, and the stream's saved states, instead of the weights."""
    n, size = spec.width, np.dtype(spec.dtype.value).itemsize
    total = spec.depth * n + 2 * spec.batch * n
    if spec.loss is Loss.XENT:
        total += n * spec.classes + spec.classes
    if redraw:
        return total * size + reader_bytes(spec) + spec.depth * 8
    total += spec.depth * n * n
    if spec.weight_scale != 1.0:
        total += spec.depth * n * n
    draw_temporary = draw_chunk(spec) * n * n * 8 if size != 8 else 0
    return total * size + draw_temporary + spec.depth * 8


def _build_key(spec: NetworkSpec) -> tuple[object, ...]:
    return tuple(getattr(spec, name) for name in BUILD_FIELDS)


@one_blas_thread
def build(spec: NetworkSpec, redraw: bool = False) -> Network:
    """Draw every array of the network described by ``spec``; with ``redraw``, every array but
    the weights, which each pass then draws as it reads them (``redrawn.py``)."""
    dtype = np.dtype(spec.dtype.value)
    n, batch = spec.width, spec.batch
    data_rng, loss_rng, weight_rng, bias_rng = np.random.default_rng(spec.seed).spawn(4)

    # Draws are float64 and then cast, so float32 runs see the same numbers, rounded.
    x = data_rng.standard_normal((batch, n)).astype(dtype)
    weights = np.empty((0 if redraw else spec.depth, n, n), dtype=dtype)
    stream = WeightStream(spec, weight_rng) if redraw else None
    if stream is None:
        draw_weights(spec, weight_rng, weights)
    biases = np.zeros((spec.depth, n), dtype=dtype)
    if spec.bias_var > 0:
        biases[:] = math.sqrt(spec.bias_var) * bias_rng.standard_normal((spec.depth, n))

    if spec.loss is Loss.XENT:
        loss_data = LossData(
            labels=loss_rng.integers(0, spec.classes, size=batch),
            # the head is linear: LeCun scale, N(0, 1/n)
            head_weight=(loss_rng.standard_normal((n, spec.classes)) / math.sqrt(n)).astype(dtype),
            head_bias=np.zeros(spec.classes, dtype=dtype),
        )
    else:  # mse targets t ~ N(0, 1), or the linear loss's fixed u ~ N(0, 1)
        loss_data = LossData(target=loss_rng.standard_normal((batch, n)).astype(dtype))
    return Network(x, weights, biases, loss_data, _build_key(spec), stream)
