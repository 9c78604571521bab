"""Mean-field predictions of the gradient's size, layer by layer, for networks without
normalisation (Poole et al. 2016, *Exponential expressivity in deep neural networks through
transient chaos*; Schoenholz et al. 2017, *Deep information propagation*; residual networks:
Yang & Schoenholz 2017, *Mean field residual networks: on the edge of chaos*).

In a wide network every pre-activation z is Gaussian across units, N(0, q), and a dense layer with
Var W = σ_w²/n and biases N(0, σ_b²) maps the second moment of its input to

    q ← σ_w²·E[φ(z)²] + σ_b²                    z ~ N(0, q); the input x ~ N(0, 1) starts it at 1

Backward through φ and Wᵀ, a gradient independent of the forward pass has its squared norm
multiplied by χ = σ_w²·E[φ′(z)²]; a residual block (wirings as in engine/wirings.py) by

    pre       s² + α²·Π_j χ_j                   h_out = s·h_in + α·u_k; stream Q ← s²·Q + α²·V
    post      E[φ′(z)²]·(s² + α²·Π_j χ_j)       h_out = φ(z), z = s·h_in + α·v after the add

over the branch's layers j, V = E[v²] the branch output's second moment. The add in post is not
Gaussian (h_in = φ(z_prev) is not): its expectations are taken over z = s·φ(ζ) + α·v with ζ
Gaussian of z_prev's mean and variance, v ~ N(0, V).

**The mse loss is not independent of the forward pass.** ∂L/∂y = (y − t)/B carries y itself, and
y's part comes back coherently: at a layer input h, g = a·h + r, with r independent of the
forward values there. Conditioning W on z = h W (Gaussian, so Stein's lemma E[z·f(z)] = q·E[f′])
splits what goes back through a layer with g = a·φ(z) + r at its output into

    a ← σ_w²·a·E[z·φ(z)φ′(z)]/q                 the part along the layer's input, coherent again
    ρ ← σ_w²·(a²·E[φ²φ′²] + ρ·E[φ′²])           the rest, ρ = E[r²]: fresh and independent

and ‖g‖²/n = a²·E[h²] + ρ. The mse loss starts (a, ρ) = (1, E[t²] = 1) up to 1/B, the linear
loss and the xent head (whose coherent part is O(C/n)) at (0, 1), where the recursion is the
classic χ product. For ReLU with He, a stays 1 and ρ grows by 2 per layer, so the plain
network's gain is √(1 + L) rather than 1: 0.5 decades at 10 layers, which is measured. A
residual block passes the coherent part back along both paths; at the stream a function of h
is projected onto h, exactly so for pre (its stream is Gaussian: what is left has no coherent
part further back), approximately for post.

No prediction (``predict`` returns None, ``unsupported`` says why) with batch or layer
normalisation (postnorm always has one), and where the forward variance leaves float64's range.
Orthogonal weights keep norms exactly where the Gaussian ones keep them on average, so the same
recursion applies (Pennington et al. 2017 show that q and χ are the same; only the spread of the
Jacobian's singular values differs).

Expectations are Gauss–Legendre panels under the Gaussian density (``gaussian_rule``), with a
panel end at z = 0, where the ReLUs' kink sits, and panels growing geometrically away from 0 and
from the mean: an activation changes on a scale of 1 near 0 however wide the Gaussian is (a plain
Gauss–Hermite rule of 128 nodes is 1% off for E[tanh²] at q = 40). Measured against closed forms
and adaptive integrals in the tests: E[relu(z)²] = q/2 and E[relu′(z)²] = ½ to 1e-13, tanh's
moments to 1e-9 for q from 0.05 to 40. Post's add uses the product of two such rules.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from gradflow.engine.activations import ACTIVATIONS
from gradflow.engine.initializers import init_scale
from gradflow.engine.spec import Init, Loss, NetworkSpec, Norm, Skip
from gradflow.engine.threads import one_blas_thread

OUT_OF_RANGE = "the forward variance leaves float64's range"
_PANEL_NODES = 8  # Gauss–Legendre nodes per panel of the Gaussian rule
_PANEL_NODES_2D = 4  # per panel and axis at post's add: ~30x fewer points, ~1e-7 relative
_REACH = 12.0  # standard deviations covered: the mass beyond is below 1e-32


@dataclass(frozen=True)
class Prediction:
    """What the mean-field theory predicts for one network at initialisation."""

    log10_gain: float  # log10 ‖∂L/∂x‖/‖∂L/∂y‖, as Summary.log10_gain
    log10_grad_input: np.ndarray  # (L,) log10 ‖∂L/∂(input of layer i)‖/‖∂L/∂y‖
    q: np.ndarray  # (L,) second moment of the pre-activation φ acts on in layer i
    chi: np.ndarray  # (L,) σ_w²·E[φ′(z)²] at that pre-activation


@functools.cache
def _legendre(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    return (x + 1) / 2, w / 2


# Panel ends around the mean, in standard deviations: the density is resolved on any scale.
_AROUND_MEAN = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, _REACH])


def gaussian_rule(
    mean: float, var: float, per_panel: int = _PANEL_NODES
) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z and weights w with E[f(z)] = Σ w·f(z) for z ~ N(mean, var), (panels·per_panel,).

    Gauss–Legendre panels over mean ± 12 sd whose ends include 0 (where the ReLUs' kink sits)
    and grow geometrically away from 0 from min(sd, 1)/8 on (an activation changes on a scale
    of 1 near 0, however wide the Gaussian) and away from the mean (the density's own scale).
    """
    sd = math.sqrt(var)
    low, high = mean - _REACH * sd, mean + _REACH * sd
    start = min(sd, 1.0) / 8
    steps = max(0, math.ceil(math.log2(max(abs(low), abs(high)) / start)) + 1)
    geometric = start * 2.0 ** np.arange(steps)
    ends = np.concatenate([[0.0], geometric, -geometric, mean + sd * _AROUND_MEAN,
                           mean - sd * _AROUND_MEAN])  # fmt: skip
    ends = np.unique(np.clip(ends, low, high))
    x, w = _legendre(per_panel)
    width = np.diff(ends)[:, None]
    z = (ends[:-1, None] + width * x).ravel()
    density = np.exp(-0.5 * (z - mean) ** 2 / var) / math.sqrt(2 * math.pi * var)
    return z, (width * w).ravel() * density


def phi_and_slope(spec: NetworkSpec, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """φ(z) and φ′(z) of the spec's activation, the engine's own functions, float64."""
    h, d = np.empty_like(z), np.empty_like(z)
    ACTIVATIONS[spec.activation].forward(np.array(z, dtype=np.float64), h, d)
    return h, d


@dataclass(frozen=True)
class _Moments:
    """Gaussian expectations at one pre-activation z ~ N(0, q)."""

    q: float
    phi2: float  # E[φ²]
    slope2: float  # E[φ′²]
    stein: float  # E[z·φφ′]/q = E[(φφ′)′]
    phi2_slope2: float  # E[φ²φ′²]


def _moments(spec: NetworkSpec, q: float) -> _Moments:
    z, w = gaussian_rule(0.0, q)
    h, d = phi_and_slope(spec, z)
    hd = h * d
    return _Moments(
        q, float(w @ (h * h)), float(w @ (d * d)), float(w @ (z * hd)) / q, float(w @ (hd * hd))
    )


def unsupported(spec: NetworkSpec) -> str | None:
    """Why the theory makes no prediction for ``spec`` from its flags alone, or None."""
    if spec.norm is Norm.BATCH:
        return "batch norm"
    if spec.norm is Norm.LAYER:
        return "layer norm"
    return None


def weight_var(spec: NetworkSpec) -> float:
    """σ_w² of a hidden layer: Var W × fan-in (orthogonal: gain², the same per-entry variance)."""
    scale = init_scale(spec)
    return scale * scale if spec.init is Init.ORTHOGONAL else scale * scale * spec.width


class _Out(Exception):
    """No prediction past this point; the message says why."""


class _Backward:
    """The gradient g = a·h + r at a point whose forward value is h, r independent of it, in
    units of 10^``log`` times ‖∂L/∂y‖/√(nB)-ish: ‖g‖²/n = 10^(2·log)·(a²·E[h²] + ρ)."""

    def __init__(self, a: float, rho: float, log: float = 0.0) -> None:
        self.a, self.rho, self.log = a, rho, log

    def energy(self, second: float) -> float:
        return self.a * self.a * second + self.rho

    def log_norm(self, energy: float) -> float:
        """log10 of the norm whose square is ``energy`` in this state's units (-inf: exactly
        zero, as inside a zero-initialised branch)."""
        if not (math.isfinite(energy) and energy >= 0):
            raise _Out(OUT_OF_RANGE)
        return self.log + 0.5 * math.log10(energy) if energy > 0 else -math.inf

    def normalise(self, second: float) -> float:
        """Rescale so that the energy at a point of forward second moment ``second`` is 1;
        returns log10 ‖g‖ there relative to the start."""
        energy = self.energy(second)
        if not (math.isfinite(energy) and energy > 0):
            raise _Out(OUT_OF_RANGE if energy else "the gradient is cut off (skip scale 0)")
        self.log = self.log_norm(energy)
        self.a /= math.sqrt(energy)
        self.rho /= energy
        return self.log

    def layer(self, m: _Moments, weights: _Weights, second: float) -> None:
        """From φ(z) (z at m) back through φ and a dense layer to its input, whose second
        moment is ``second``: Stein's lemma brings a back, the rest becomes independent."""
        a, rho = self.a, self.rho
        self.dense(weights, a * m.stein, a * a * m.phi2_slope2 + rho * m.slope2, second)

    def dense(self, weights: _Weights, stein: float, energy: float, second: float) -> None:
        """Back through z = h W + b, given δ = ∂L/∂z with E[∂δ/∂z] = ``stein`` (its part that
        is a function of z) and E[δ²] = ``energy``."""
        self.a = weights.var * stein
        # Gaussian W: the part orthogonal to h is fresh, σ_w²·E[δ²] on top of the coherent one;
        # orthogonal W keeps the norm exactly, so the coherent part is inside σ_w²·E[δ²]
        fresh = weights.var * energy
        if weights.orthogonal:
            fresh = max(fresh - self.a * self.a * second, 0.0)
        self.rho = fresh


@dataclass(frozen=True)
class _Weights:
    """One layer's weights as the theory sees them."""

    var: float  # σ_w²
    bias: float  # σ_b²
    orthogonal: bool  # norm-preserving rather than Gaussian


def predict(spec: NetworkSpec) -> Prediction | None:
    """The mean-field prediction for ``spec``, or None where the theory does not apply."""
    outcome = assess(spec)
    return outcome if isinstance(outcome, Prediction) else None


@one_blas_thread  # its dot products then round the same whatever the thread settings
def assess(spec: NetworkSpec) -> Prediction | str:
    """The prediction, or in a few words why there is none (``batch norm``)."""
    reason = unsupported(spec)
    if reason is not None:
        return reason
    with np.errstate(all="ignore"):
        try:
            return _WIRINGS[spec.skip](spec)
        except _Out as out:
            return str(out)


def _start(spec: NetworkSpec, y_second: float) -> _Backward:
    """(a, ρ) of ∂L/∂y up to 1/B: mse carries y itself (t ~ N(0, 1)), linear and xent do not."""
    flow = _Backward(1.0 if spec.loss is Loss.MSE else 0.0, 1.0)
    flow.normalise(y_second)
    flow.log = 0.0  # everything is relative to ‖∂L/∂y‖
    return flow


def _finite(value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise _Out(OUT_OF_RANGE if value else "the forward signal is exactly zero")
    return value


def _plain(spec: NetworkSpec) -> Prediction:
    """h_i = φ(h_{i-1} W_i + b_i), h_0 = x."""
    weights, depth = _hidden(spec), spec.depth
    moments, second = [], 1.0  # E[h_0²] = E[x²] = 1
    seconds = np.empty(depth)  # E[h_{i-1}²]: the second moment at layer i's input
    for i in range(depth):
        seconds[i] = second
        m = _moments(spec, _finite(weights.var * second + weights.bias))
        moments.append(m)
        second = m.phi2
    flow = _start(spec, second)
    grad_input = np.empty(depth)
    for i in reversed(range(depth)):
        flow.layer(moments[i], weights, seconds[i])
        grad_input[i] = flow.normalise(seconds[i])
    q = np.array([m.q for m in moments])
    chi = np.array([weights.var * m.slope2 for m in moments])
    return Prediction(float(grad_input[0]), grad_input, q, chi)


def _hidden(spec: NetworkSpec) -> _Weights:
    return _Weights(weight_var(spec), spec.bias_var, spec.init is Init.ORTHOGONAL)


def _branch(spec: NetworkSpec) -> list[_Weights]:
    """A branch's layers: β scales the weights (not the biases), a zero-initialised end is 0."""
    hidden = _hidden(spec)
    layer = _Weights(hidden.var * spec.branch_weight_scale**2, hidden.bias, hidden.orthogonal)
    layers = [layer] * spec.block_size
    if spec.zero_init_residual:
        layers[-1] = _Weights(0.0, 0.0, hidden.orthogonal)
    return layers


def _pre(spec: NetworkSpec) -> Prediction:
    """u_0 = h_in, u_{j+1} = φ(u_j) W_j + b_j, h_out = s·h_in + α·u_k; the stream is Gaussian."""
    s, alpha, k = spec.skip_scale, spec.residual_scale, spec.block_size
    layers = _branch(spec)
    blocks: list[tuple[float, float, list[_Moments]]] = []  # (E[h_in²], V = E[v²], moments)
    stream = 1.0
    for _ in range(spec.blocks):
        moments, u = [], stream
        for layer in layers:
            m = _moments(spec, _finite(u))  # φ acts on u_j
            moments.append(m)
            u = layer.var * m.phi2 + layer.bias
        blocks.append((stream, u, moments))
        stream = _finite(s * s * stream + alpha * alpha * u)
    flow = _start(spec, stream)
    grad_input = np.empty(spec.depth)
    for b in reversed(range(spec.blocks)):
        q_in, v, moments = blocks[b]
        q_out = s * s * q_in + alpha * alpha * v
        a, rho = flow.a, flow.rho
        # The branch receives α·g = α·a·s·h_in + α²·a·v + α·r. Only v's part is a function of
        # z = φ(u_{k-1}) W_k: Stein's lemma brings it back along φ(u_{k-1}).
        branch = _Backward(0.0, 0.0, flow.log)
        branch.dense(
            layers[-1], alpha * alpha * a, alpha * alpha * (a * a * q_out + rho), moments[-1].phi2
        )
        for j in reversed(range(1, k)):
            m = moments[j]  # back through φ at u_j: ∂L/∂u_j, the input of the branch's layer j
            grad_input[b * k + j] = branch.log_norm(
                branch.a**2 * m.phi2_slope2 + branch.rho * m.slope2
            )
            branch.layer(m, layers[j - 1], moments[j - 1].phi2)
        # at h_in: back through the first φ, the coherent part projected onto h_in (Gaussian:
        # what is left of it is no function of anything further back)
        m, c = moments[0], branch.a
        a_branch = c * m.stein
        rest = max(c * c * m.phi2_slope2 - a_branch * a_branch * q_in, 0.0)
        # the skip hands back s·g = s²·a·h_in + s·a·α·v + s·r: v is independent of h_in
        flow.a = s * s * a + a_branch
        flow.rho = s * s * (a * a * alpha * alpha * v + rho) + rest + branch.rho * m.slope2
        grad_input[b * k] = flow.normalise(q_in)
    q = np.array([m.q for *_, ms in blocks for m in ms])
    chi = np.array([w.var * m.slope2 for *_, ms in blocks for w, m in zip(layers, ms, strict=True)])
    return Prediction(float(grad_input[0]), grad_input, q, chi)


@dataclass(frozen=True)
class _Add:
    """Expectations at post's add, z = s·h_in + α·v, h_in = φ(ζ) (x in the first block)."""

    h2: float  # E[h_in²]
    mean: float  # E[z]
    var: float  # Var z
    phi2: float  # E[φ(z)²]: the block output's second moment
    slope2: float  # E[φ′(z)²]
    phi2_slope2: float  # E[φ²φ′²]
    stein: float  # E[(φφ′)′(z)], from v's side: E[v·φφ′(z)]/(α·V)
    along_input: float  # E[h_in·φφ′(z)]/E[h_in²]: the part of φφ′ along h_in


def _add(
    spec: NetworkSpec, zeta: tuple[float, float] | None, s: float, alpha: float, v: float
) -> _Add:
    """``zeta`` = (mean, variance) of the Gaussian ζ with h_in = φ(ζ), or None for h_in = x."""
    if zeta is None:
        h_in, w = gaussian_rule(0.0, 1.0, _PANEL_NODES_2D)
    else:
        nodes, w = gaussian_rule(*zeta, _PANEL_NODES_2D)
        h_in, _ = phi_and_slope(spec, nodes)
    v_nodes, w_v = gaussian_rule(0.0, v, _PANEL_NODES_2D) if v > 0 else (np.zeros(1), np.ones(1))
    weights = np.multiply.outer(w, w_v)  # (ζ, v)
    total = s * h_in[:, None] + alpha * v_nodes[None, :]
    phi, slope = phi_and_slope(spec, total)
    hd = phi * slope
    h2 = float(w @ (h_in * h_in))
    mean_in = float(w @ h_in)
    stein = float(np.sum(weights * v_nodes[None, :] * hd)) / (alpha * v) if alpha * v else 0.0
    return _Add(
        h2=h2,
        mean=s * mean_in,
        var=s * s * (h2 - mean_in * mean_in) + alpha * alpha * v,
        phi2=float(np.sum(weights * phi * phi)),
        slope2=float(np.sum(weights * slope * slope)),
        phi2_slope2=float(np.sum(weights * hd * hd)),
        stein=stein,
        along_input=float(np.sum(weights * h_in[:, None] * hd)) / h2,
    )


def _post(spec: NetworkSpec) -> Prediction:
    """u_0 = h_in, u_{j+1} = φ(u_j W_j + b_j), v = u_{k-1} W + b, h_out = φ(s·h_in + α·v)."""
    s, alpha, k = spec.skip_scale, spec.residual_scale, spec.block_size
    layers = _branch(spec)
    blocks: list[tuple[_Add, list[float], list[_Moments]]] = []
    zeta: tuple[float, float] | None = None
    h2 = 1.0
    for _ in range(spec.blocks):
        seconds, moments, u = [h2], [], h2  # E[u_j²], u_0 = h_in
        for layer in layers[:-1]:
            m = _moments(spec, _finite(layer.var * u + layer.bias))
            moments.append(m)
            u = m.phi2
            seconds.append(u)
        add = _add(spec, zeta, s, alpha, layers[-1].var * u + layers[-1].bias)
        blocks.append((add, seconds, moments))
        zeta, h2 = (add.mean, _finite(add.var)), _finite(add.phi2)
    flow = _start(spec, h2)
    grad_input = np.empty(spec.depth)
    for b in reversed(range(spec.blocks)):
        add, seconds, moments = blocks[b]
        a, rho = flow.a, flow.rho
        delta = a * a * add.phi2_slope2 + rho * add.slope2  # E[δ²], δ = g ⊙ φ′ at the add
        branch = _Backward(0.0, 0.0, flow.log)
        branch.dense(layers[-1], alpha * alpha * a * add.stein, alpha * alpha * delta, seconds[-1])
        for j in reversed(range(1, k)):
            grad_input[b * k + j] = branch.log_norm(branch.energy(seconds[j]))  # at u_j
            branch.layer(moments[j - 1], layers[j - 1], seconds[j - 1])
        a_skip = s * a * add.along_input  # s·δ projected onto h_in; the rest is independent
        flow.a = a_skip + branch.a
        flow.rho = max(s * s * delta - a_skip * a_skip * add.h2, 0.0) + branch.rho
        grad_input[b * k] = flow.normalise(add.h2)
    q: list[float] = []
    chi: list[float] = []
    for add, _, moments in blocks:
        q += [m.q for m in moments] + [add.var + add.mean * add.mean]
        chi += [w.var * m.slope2 for w, m in zip(layers[:-1], moments, strict=True)]
        chi.append(layers[-1].var * add.slope2)
    return Prediction(float(grad_input[0]), grad_input, np.array(q), np.array(chi))


_WIRINGS = {Skip.NONE: _plain, Skip.PRE: _pre, Skip.POST: _post}
