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

over the branch's layers j, V = E[v²] the branch output's second moment. Post's add is not
Gaussian, and a product of means would be wrong there: one unit of the stream carries its state
from block to block, z_b = s·φ(z_{b-1}) + α·v_b with v_b fresh in every block, so the φ′ it meets
at successive adds are correlated (a saturated tanh unit stays saturated). Post follows that
chain: z_b's distribution on a grid (201 bins, the transition from bin to bin exact for the
Gaussian v), and the gradient at an add as a function of the unit's z there. Taking the product
of means instead was 0.26 decades off at 20 tanh blocks; the chain is within 0.02.

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
residual block passes the coherent part back along both paths; at pre's stream a function of h
is projected onto h, exactly so (the stream is Gaussian: what is left has no coherent part
further back); post keeps the function of the unit's z whole, with its mean over v as the
coherent part.

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
moments to 1e-9 for q from 0.05 to 40.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from gradflow.engine.activations import ACTIVATIONS
from gradflow.engine.initializers import init_scale
from gradflow.engine.spec import Activation, Init, Loss, NetworkSpec, Norm, Skip
from gradflow.engine.threads import one_blas_thread

OUT_OF_RANGE = "the forward variance leaves float64's range"
_PANEL_NODES = 8  # Gauss–Legendre nodes per panel of the Gaussian rule
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
    return _moments_at(spec.activation, q)


# A variance often repeats: ReLU with He keeps q exactly, saturating nets reach a fixed point.
@functools.lru_cache(maxsize=4096)
def _moments_at(activation: Activation, q: float) -> _Moments:
    z, w = gaussian_rule(0.0, q)
    h, d = np.empty_like(z), np.empty_like(z)
    ACTIVATIONS[activation].forward(z.copy(), h, d)
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
    """The gradient g = a·h + r at a point whose forward value is h, r independent of it:
    ‖g‖²/‖∂L/∂y‖² = 10^(2·log)·(a²·E[h²] + ρ) per unit, ``log`` carrying the scale."""

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


_CHAIN_POINTS = 201  # grid points for the distribution of one unit's z at post's add
_CHAIN_REACH = 8.0  # standard deviations of α·v beyond the extreme centres: 1e-15 of the mass
_CHAIN_TAIL = 1e-15  # probability mass below which a grid point no longer widens the next grid


@dataclass(frozen=True)
class _Chain:
    """One post block's add, z = s·h_in + α·v, as a step of the unit's chain: the grid of z
    (bin centres), the probability of each bin, and the transition from the input's grid."""

    z: np.ndarray  # (N,) bin centres
    mass: np.ndarray  # (N,) probability of each bin, summing to 1
    moves: np.ndarray  # (N_in, N) P(z in bin j | h_in = h(input node i))
    spread: float  # α²·V: the variance of α·v


def _chain_step(h_in: np.ndarray, mass_in: np.ndarray, s: float, spread: float) -> _Chain:
    """Bin z = s·h_in + α·v, v ~ N(0, V) independent of the unit's past, onto a new grid."""
    from scipy.special import ndtr

    centres = s * h_in  # (N_in,)
    live = centres[mass_in > _CHAIN_TAIL]
    sd = math.sqrt(spread)
    low, high = float(live.min()) - _CHAIN_REACH * sd, float(live.max()) + _CHAIN_REACH * sd
    if high - low <= 0:
        low, high = low - 1.0, high + 1.0  # no spread at all: one point, any grid holds it
    z = np.linspace(low, high, _CHAIN_POINTS)
    edges = np.concatenate([[-np.inf], (z[1:] + z[:-1]) / 2, [np.inf]])
    if sd > 0:
        cdf = ndtr((edges[None, :] - centres[:, None]) / sd)  # (N_in, N + 1)
        moves = np.diff(cdf, axis=1)
    else:
        moves = np.zeros((len(centres), _CHAIN_POINTS))
        bins = np.clip(np.searchsorted(edges, centres) - 1, 0, _CHAIN_POINTS - 1)
        moves[np.arange(len(centres)), bins] = 1.0
    return _Chain(z, mass_in @ moves, moves, spread)


def _post(spec: NetworkSpec) -> Prediction:
    """Post, following one unit of the stream from block to block: z_b = s·φ(z_{b-1}) + α·v_b,
    with v_b fresh in every block, so that the φ′ a unit meets at successive adds are as
    correlated as its states are. The gradient at an add is carried as a function of the
    unit's z there (its coherent part) and the energy of the rest, on the chain's grids."""
    s, alpha, k = spec.skip_scale, spec.residual_scale, spec.block_size
    layers = _branch(spec)
    x, x_mass = gaussian_rule(0.0, 1.0)  # h_0 = x: its own nodes, weights as masses
    h, mass = x, x_mass
    chains: list[_Chain] = []
    inputs: list[tuple[np.ndarray, np.ndarray]] = []  # (h_in at the input grid, its masses)
    branches: list[tuple[list[float], list[_Moments]]] = []
    for _ in range(spec.blocks):
        h2 = float(mass @ (h * h))
        seconds, moments, u = [_finite(h2)], [], h2  # E[u_j²], u_0 = h_in
        for layer in layers[:-1]:
            m = _moments(spec, _finite(layer.var * u + layer.bias))
            moments.append(m)
            u = m.phi2
            seconds.append(u)
        v = layers[-1].var * u + layers[-1].bias
        chain = _chain_step(h, mass, s, alpha * alpha * v)
        chains.append(chain)
        inputs.append((h, mass))
        branches.append((seconds, moments))
        h, _ = phi_and_slope(spec, chain.z)
        mass = chain.mass
        if not np.all(np.isfinite(h)):
            raise _Out(OUT_OF_RANGE)
    coherent = 1.0 if spec.loss is Loss.MSE else 0.0
    F = coherent * h  # the part of g that is y itself, as a function of the last z
    rho = np.ones_like(h)  # E[r²] given z: the target's (or u's) share
    energy = float(mass @ (F * F + rho))
    F, rho = F / math.sqrt(energy), rho / energy
    log = 0.0
    grad_input = np.empty(spec.depth)
    for b in reversed(range(spec.blocks)):
        chain, (h_in, mass_in), (seconds, moments) = chains[b], inputs[b], branches[b]
        _, slope = phi_and_slope(spec, chain.z)
        coherent_delta, random_delta = F * slope, rho * slope * slope  # δ = g ⊙ φ′ at the add
        total = float(chain.mass @ (coherent_delta**2 + random_delta))  # E[δ²]
        # Stein's lemma on v: E[(z − s·h_in)·f(z)] = α²V·E[f′(z)]
        through = chain.moves @ coherent_delta  # E[δ | h_in], (N_in,)
        if math.sqrt(chain.spread) >= chain.z[1] - chain.z[0]:
            offsets = chain.moves @ (chain.z * coherent_delta) - s * h_in * through
            stein = float(mass_in @ offsets) / chain.spread
        else:  # α·v narrower than a bin: the offsets are the grid's, not v's; take E[f′(z)]
            stein = float(chain.mass @ np.gradient(coherent_delta, chain.z))
        branch = _Backward(0.0, 0.0, log)
        branch.dense(layers[-1], alpha * alpha * stein, alpha * alpha * total, seconds[-1])
        for j in reversed(range(1, k)):
            grad_input[b * k + j] = branch.log_norm(branch.energy(seconds[j]))  # at u_j
            branch.layer(moments[j - 1], layers[j - 1], seconds[j - 1])
        # the skip hands s·δ back to each unit: its mean given the unit's h_in is coherent,
        # what v adds to it is not
        mean = s * through
        second = s * s * (chain.moves @ (coherent_delta**2 + random_delta))
        F = mean + branch.a * h_in
        rho = np.maximum(second - mean * mean, 0.0) + branch.rho
        energy = float(mass_in @ (F * F + rho))
        if not (math.isfinite(energy) and energy > 0):
            raise _Out(OUT_OF_RANGE if energy else "the gradient is cut off (skip scale 0)")
        log += 0.5 * math.log10(energy)
        F, rho = F / math.sqrt(energy), rho / energy
        grad_input[b * k] = log
    q: list[float] = []
    chi: list[float] = []
    for chain, (_, moments) in zip(chains, branches, strict=True):
        _, slope = phi_and_slope(spec, chain.z)
        q += [m.q for m in moments] + [float(chain.mass @ (chain.z * chain.z))]
        chi += [w.var * m.slope2 for w, m in zip(layers[:-1], moments, strict=True)]
        chi.append(layers[-1].var * float(chain.mass @ (slope * slope)))
    return Prediction(float(grad_input[0]), grad_input, np.array(q), np.array(chi))


_WIRINGS = {Skip.NONE: _plain, Skip.PRE: _pre, Skip.POST: _post}
