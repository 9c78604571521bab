"""The network specification: one frozen, validated value that describes a run.

Every network flag maps to exactly one field here. The spec imports nothing heavy, so the CLI can
validate flags before NumPy is loaded.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Choice(str, Enum):
    """A str Enum whose members compare and print as their value."""

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def parse(cls, value: Any, field: str) -> Any:
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).strip().lower().replace("-", "_"))
        except ValueError:
            accepted = ", ".join(m.value for m in cls)
            raise ValueError(f"{field}: unknown value {value!r} (accepted: {accepted})") from None


class Skip(Choice):
    NONE = "none"  # plain network: h_i = φ(N(h_{i-1} W_i + b_i))
    POST = "post"  # original ResNet: h_out = φ(s·h_in + α·N(...)), activation after the add
    PRE = "pre"  # pre-activation ResNet: h_out = s·h_in + α·u_k, nothing after the add
    POSTNORM = "postnorm"  # Post-LN: h_out = N(s·h_in + α·v), plain layers in the branch

    @classmethod
    def _missing_(cls, value: object) -> Skip | None:
        return cls.NONE if str(value) == "plain" else None

    @property
    def label(self) -> str:
        return "plain" if self is Skip.NONE else self.value


class Activation(Choice):
    RELU = "relu"
    LEAKY_RELU = "leaky_relu"
    TANH = "tanh"
    SIGMOID = "sigmoid"
    GELU = "gelu"
    SILU = "silu"
    SELU = "selu"
    ELU = "elu"
    SOFTPLUS = "softplus"
    LINEAR = "linear"


class Init(Choice):
    HE = "he"  # N(0, gain²/fan_in), gain per activation (PyTorch's calculate_gain)
    XAVIER = "xavier"  # N(0, 2/(fan_in + fan_out))
    LECUN = "lecun"  # N(0, 1/fan_in)
    ORTHOGONAL = "orthogonal"  # gain · Q, Q a random orthogonal matrix

    @classmethod
    def _missing_(cls, value: object) -> Init | None:
        aliases = {"kaiming": cls.HE, "glorot": cls.XAVIER}
        return aliases.get(str(value))


class Norm(Choice):
    NONE = "none"
    BATCH = "batch"  # over the batch axis, training-mode statistics
    LAYER = "layer"  # over the feature axis


class Loss(Choice):
    MSE = "mse"  # (1/2B) Σ‖y_b − t_b‖²
    XENT = "xent"  # linear head n→C, mean softmax cross-entropy
    LINEAR = "linear"  # (1/B) Σ⟨y_b, u_b⟩: upstream gradient independent of the forward pass


class DType(Choice):
    FLOAT64 = "float64"
    FLOAT32 = "float32"


# The smallest and largest positive normal number of each dtype (NumPy's finfo, without NumPy)
NORMAL_RANGE = {
    DType.FLOAT32: (2.0**-126, 3.4028234663852886e38),
    DType.FLOAT64: (2.0**-1022, 1.7976931348623157e308),
}
# A Gaussian draw of this many standard deviations: its chance is ~1e-15 a value
_PEAK_STDS = 8.0

_CHOICES: dict[str, type[Choice]] = {
    "skip": Skip,
    "activation": Activation,
    "init": Init,
    "norm": Norm,
    "loss": Loss,
    "dtype": DType,
}


def _nearest_multiples(depth: int, k: int) -> str:
    below, above = (depth // k) * k, (depth // k + 1) * k
    return f"{below} or {above}" if below > 0 else f"{above}"


@dataclass(frozen=True)
class NetworkSpec:
    """A synthetic network and the single forward/backward pass to run on it."""

    depth: int = 50  # number of dense layers L (the xent head is extra)
    width: int = 128  # every layer is width → width; the picture does not change with width
    batch: int = 32  # rows of the input x ~ N(0, 1)
    skip: Skip = Skip.NONE  # none | post | pre | postnorm
    block_size: int = 2  # dense layers per residual block (k); depth must be a multiple
    residual_scale: float = 1.0  # α in s·h_in + α·branch
    skip_scale: float = 1.0  # s in s·h_in + α·branch (DeepNorm's α is our s)
    branch_weight_scale: float = 1.0  # β: residual branches' initial weights multiplied by β
    activation: Activation = Activation.SIGMOID  # the classic vanishing-gradient case
    init: Init = Init.XAVIER
    weight_var: float | None = None  # σ_w²: overrides the init scale, Var W = σ_w²/fan_in
    bias_var: float = 0.0  # σ_b²: biases ~ N(0, σ_b²); zero by default
    zero_init_residual: bool = False  # zero the last weight of every residual branch
    norm: Norm = Norm.NONE
    loss: Loss = Loss.MSE
    classes: int = 10  # head width for loss=xent
    dtype: DType = DType.FLOAT64  # float64 by default: gradients at depth reach 1e-30 and below
    seed: int = 0

    def __post_init__(self) -> None:
        # Coerce strings to Enums once, at construction; the spec is never changed afterwards.
        for name, enum in _CHOICES.items():
            object.__setattr__(self, name, enum.parse(getattr(self, name), name))
        for name in ("residual_scale", "skip_scale", "branch_weight_scale", "bias_var"):
            object.__setattr__(self, name, _finite(getattr(self, name), name))
        if self.weight_var is not None:
            object.__setattr__(self, "weight_var", _finite(self.weight_var, "weight_var"))
        self._validate()

    def _validate(self) -> None:
        for name, low in (
            ("depth", 1),
            ("width", 1),
            ("batch", 1),
            ("block_size", 1),
            ("classes", 2),
            ("seed", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name}: expected an integer, got {value!r}")
            if value < low:
                raise ValueError(f"{name}: must be at least {low}, got {value}")
        if not isinstance(self.zero_init_residual, bool):
            raise ValueError(
                f"zero_init_residual: expected a bool, got {self.zero_init_residual!r}"
            )
        if self.weight_var is not None and self.weight_var <= 0:
            raise ValueError(f"weight_var: must be positive, got {self.weight_var}")
        if self.bias_var < 0:
            raise ValueError(f"bias_var: must be non-negative, got {self.bias_var}")
        if self.skip is not Skip.NONE and self.depth % self.block_size != 0:
            raise ValueError(
                f"depth: {self.depth} is not a multiple of block_size {self.block_size}; "
                f"nearest valid depths: {_nearest_multiples(self.depth, self.block_size)}"
            )
        if self.zero_init_residual and self.skip is Skip.NONE:
            raise ValueError(
                "zero_init_residual: needs residual branches (skip post, pre or postnorm)"
            )
        if self.skip is Skip.POSTNORM and self.norm is Norm.NONE:
            raise ValueError(
                "norm: skip postnorm normalises after the add; choose norm batch or layer"
            )
        if self.norm is Norm.BATCH and self.batch < 2:
            raise ValueError("norm: batch normalization needs batch ≥ 2 (one row has no variance)")
        if self.norm is Norm.LAYER and self.width < 2:
            raise ValueError("norm: layer normalization needs width ≥ 2 (one unit has no variance)")
        self._check_scales()

    def _check_scales(self) -> None:
        """Weights and biases are drawn in float64 and rounded to the run's dtype: refuse a
        scale whose values that dtype cannot hold (inf, or subnormal and 0)."""
        tiny, huge = NORMAL_RANGE[self.dtype]
        where = f"beyond {self.dtype}'s range (largest {huge:.3g})"
        below = f"below {self.dtype}'s normal range (from {tiny:.3g}): subnormal or 0"
        # the RMS of a weight: σ_w/√n (orthogonal too: gain·Q has entries of RMS gain/√n); the
        # default inits' are within a factor of two of 1/√n, close enough at the float limits
        var = 1.0 if self.weight_var is None else self.weight_var
        rms = math.sqrt(var / self.width)
        peak = math.sqrt(var) if self.init is Init.ORTHOGONAL else _PEAK_STDS * rms
        if self.weight_var is not None and peak > huge:
            raise ValueError(f"weight_var: {var:g} gives weights of RMS {rms:.3g}, {where}")
        if self.weight_var is not None and rms < tiny:
            raise ValueError(f"weight_var: {var:g} gives weights of RMS {rms:.3g}, {below}")
        beta = abs(self.weight_scale)
        if peak * beta > huge:
            raise ValueError(
                f"branch_weight_scale: {self.branch_weight_scale:g} takes the weights {where}"
            )
        if 0 < rms * beta < tiny:
            raise ValueError(
                f"branch_weight_scale: {self.branch_weight_scale:g} takes the weights {below}"
            )
        for name in ("residual_scale", "skip_scale") if self.residual else ():  # α and s
            value = abs(getattr(self, name))
            if value > huge:
                raise ValueError(f"{name}: {getattr(self, name):g} is {where}")
            if 0 < value < tiny:
                raise ValueError(f"{name}: {getattr(self, name):g} is {below}")
        bias_std = math.sqrt(self.bias_var)
        if _PEAK_STDS * bias_std > huge:
            raise ValueError(f"bias_var: {self.bias_var:g} gives biases {where}")
        if 0 < bias_std < tiny:
            raise ValueError(f"bias_var: {self.bias_var:g} gives biases {below}")

    @property
    def residual(self) -> bool:
        return self.skip is not Skip.NONE

    @property
    def weight_scale(self) -> float:
        """β on every layer's initial weights: a residual net's layers are all in branches."""
        return self.branch_weight_scale if self.residual else 1.0

    @property
    def zeroed_layers(self) -> range:
        """The layers whose initial weights are zero: with zero_init_residual, every branch's
        last (a plain net has none, as the spec allows it no zero_init_residual)."""
        k = self.block_size
        return range(k - 1, self.depth, k) if self.zero_init_residual else range(0)

    @property
    def blocks(self) -> int:
        """Number of residual blocks (0 for a plain network)."""
        return self.depth // self.block_size if self.residual else 0

    @property
    def label(self) -> str:
        return self.skip.label

    def replace(self, **changes: Any) -> NetworkSpec:
        """A new validated spec with some fields changed."""
        return dataclasses.replace(self, **changes)

    def wired(self, skip: Skip) -> NetworkSpec:
        """This network wired as ``skip`` (a variant of compare, paths, train or sweep): its
        branch ends zero-initialised only where it has branches."""
        return self.replace(
            skip=skip, zero_init_residual=self.zero_init_residual and skip is not Skip.NONE
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, in field order."""
        return {
            f.name: (v.value if isinstance(v, Enum) else v)
            for f in dataclasses.fields(self)
            for v in [getattr(self, f.name)]
        }


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    return number
