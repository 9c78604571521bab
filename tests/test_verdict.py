"""The verdict judges the weight ratio, the end-to-end gain and the forward signal: each class of
network that one ratio alone lets through is caught by another."""

from __future__ import annotations

import math

import pytest

from gradflow.analysis.analyze import analyze, compare
from gradflow.analysis.verdict import Quantity, Thresholds, Verdict, judge
from gradflow.engine.spec import NetworkSpec

DEEP = dict(width=32, batch=16)


def _quantities(spec: NetworkSpec) -> dict[Quantity, Verdict]:
    return {f.quantity: f.verdict for f in analyze(spec).summary.findings}


def test_uniformly_vanishing_relu_net_is_not_healthy() -> None:
    # Every layer's weight gradient is about equally tiny, so first/last is near 1; the gain
    # and the forward signal have both lost ~150 decades.
    spec = NetworkSpec(depth=1000, activation="relu", **DEEP)  # type: ignore[arg-type]
    summary = analyze(spec).summary
    assert abs(summary.log10_weight_ratio) < 3
    assert summary.verdict is Verdict.VANISHING
    assert _quantities(spec) == {
        Quantity.GAIN: Verdict.VANISHING,
        Quantity.SIGNAL: Verdict.VANISHING,
    }


@pytest.mark.parametrize("depth", [100, 1000])
def test_exploding_preact_relu_he_is_not_healthy(depth: int) -> None:
    spec = NetworkSpec(depth=depth, skip="pre", activation="relu", init="he", **DEEP)  # type: ignore[arg-type]
    summary = analyze(spec).summary
    assert summary.verdict is Verdict.EXPLODING
    assert summary.log10_gain > 3 and summary.log10_signal > 3


def test_normalised_preact_relu_he_is_healthy() -> None:
    spec = NetworkSpec(
        depth=100,
        skip="pre",
        activation="relu",
        init="he",
        norm="batch",
        **DEEP,  # type: ignore[arg-type]
    )
    assert analyze(spec).summary.verdict is Verdict.HEALTHY


def test_a_signal_that_never_arrives_is_said_so_and_not_read_as_a_weight_ratio() -> None:
    spec = NetworkSpec(depth=3000, activation="relu", width=16, batch=8)  # type: ignore[arg-type]
    summary = analyze(spec).summary
    assert summary.zero_from is not None and summary.zero_from < spec.depth
    assert summary.verdict is Verdict.VANISHING
    assert summary.log10_signal == -math.inf
    assert Quantity.WEIGHT_RATIO not in {f.quantity for f in summary.findings}
    # warnings come in the order of the layers where the trouble starts
    starts = [int(w.split("from layer ")[1].split()[0].rstrip(":")) for w in summary.warnings]
    assert starts == sorted(starts) and len(starts) == 2


def test_a_dead_branch_does_not_stop_a_pre_network_s_signal() -> None:
    """Every ReLU of layers 6 and 8 is dead, inside their branches: the skip carries the
    signal on to a finite output. It read "forward signal is exactly zero from layer 6"."""
    spec = NetworkSpec(depth=8, width=2, batch=1, activation="relu", init="he", skip="pre",
                       seed=0)  # type: ignore[arg-type]  # fmt: skip
    report = analyze(spec)
    dead = (report.layers.act_mean == 0) & (report.layers.act_std == 0)
    assert dead[5] and dead[7]
    assert math.isfinite(report.summary.log10_signal)
    assert report.summary.zero_from is None
    assert not any("exactly zero" in w for w in report.summary.warnings)


@pytest.mark.parametrize("skip", ["pre", "post"])
def test_skip_and_branch_closed_by_their_scales_is_no_rounding(skip: str) -> None:
    """s = α = 0 closes both paths of every add: the gradient below is exactly 0, truly. It
    was said to be φ′ rounding to 0 at saturated units (none was), and pre's zero output had
    no zero_from."""
    spec = NetworkSpec(depth=6, skip=skip, skip_scale=0.0, residual_scale=0.0)
    report = analyze(spec)
    assert not any("rounds to 0" in w for w in report.summary.warnings)
    assert (report.layers.grad_input.mantissa == 0).all()
    if skip == "pre":  # the output is 0: s·h + α·u
        assert report.summary.log10_signal == -math.inf
        assert report.summary.zero_from == spec.depth and report.zero_at_output
        (warning,) = report.summary.warnings
        assert warning.startswith("forward signal is exactly zero at the output")


def test_zero_init_residual_is_judged_by_gain_and_signal() -> None:
    # A zero-initialised branch end makes the first layer's weight gradient exactly zero by
    # construction: that says nothing about the flow, which is the identity here.
    spec = NetworkSpec(depth=50, skip="pre", zero_init_residual=True)
    summary = analyze(spec).summary
    assert summary.log10_weight_ratio == -math.inf
    assert summary.log10_gain == pytest.approx(0.0, abs=1e-12)  # s = 1: ∂L/∂x = ∂L/∂y
    assert summary.verdict is Verdict.HEALTHY


def test_each_threshold_pair_decides_its_own_quantity() -> None:
    log10s = {Quantity.WEIGHT_RATIO: 0.0, Quantity.GAIN: -2.0, Quantity.SIGNAL: 2.5}
    judgement = judge(log10s, True, Thresholds())
    assert judgement.verdict is Verdict.HEALTHY and judgement.findings == ()
    judgement = judge(log10s, True, Thresholds(gain_below=0.1, signal_above=10.0))
    assert judgement.verdict is Verdict.VANISHING  # the first finding, in verdict order
    assert [(f.quantity, f.verdict, f.threshold) for f in judgement.findings] == [
        (Quantity.GAIN, Verdict.VANISHING, "gain_below"),
        (Quantity.SIGNAL, Verdict.EXPLODING, "signal_above"),
    ]
    assert judge(log10s, False, Thresholds()).verdict is Verdict.NONFINITE
    unjudged = judge({**log10s, Quantity.WEIGHT_RATIO: None, Quantity.GAIN: math.nan}, True,
                     Thresholds())  # fmt: skip
    assert unjudged.judged == (Quantity.SIGNAL,)


@pytest.mark.parametrize(
    "changes",
    [{"gain_below": 0.0}, {"signal_above": math.inf}, {"gain_below": 10.0, "gain_above": 5.0}],
)
def test_bad_thresholds_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Thresholds(**changes)


def test_compare_default_verdicts() -> None:
    reports = compare(NetworkSpec(depth=50), ["none", "post", "pre"])
    assert [r.summary.verdict for r in reports] == [
        Verdict.VANISHING,
        Verdict.VANISHING,
        Verdict.HEALTHY,
    ]
