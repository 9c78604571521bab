"""The training loop: full ∂L/∂W tensors against central differences in float64, the teacher
data, the tape reused across steps, non-finite stops, the summary, and determinism."""

from __future__ import annotations

import dataclasses
import math
import re
import tracemalloc

import numpy as np
import pytest

import gradflow.analysis.train as train_module
from gradflow.analysis.analyze import variant_spec
from gradflow.analysis.teacher import constant_loss, teacher_data
from gradflow.analysis.train import (
    EvalRecord,
    Stop,
    Trainer,
    initial_parameters,
    summarize,
    train,
)
from gradflow.analysis.training import Training, TrainVerdict
from gradflow.engine.losses import LOSSES, LossData
from gradflow.engine.magnitudes import Magnitudes
from gradflow.engine.network import build
from gradflow.engine.passes import forward
from gradflow.engine.spec import Loss, NetworkSpec, Norm

VARIANTS = ("none", "post", "pre")
H = 1e-6  # central differences in float64: error ~H² · f''' plus ~eps/H rounding


def _loss_at(spec: NetworkSpec, params: list[np.ndarray], x: np.ndarray, data: LossData) -> float:
    """The minibatch loss with the given parameters, through a fresh forward pass."""
    _, y = forward(spec, list(params[0]), list(params[1]), x)
    if spec.loss is Loss.XENT:
        data = LossData(labels=data.labels, head_weight=params[2], head_bias=params[3])
    return LOSSES[spec.loss](y, data).value


@pytest.mark.parametrize(
    "spec",
    [
        NetworkSpec(depth=4, width=4, batch=3, skip="post", norm="batch", loss="xent", classes=3),
        NetworkSpec(depth=4, width=4, batch=3, skip="pre", norm="layer", activation="tanh"),
        NetworkSpec(depth=3, width=4, batch=3, activation="gelu", bias_var=0.2),
    ],
    ids=["post-batch-xent", "pre-layer-mse", "plain-gelu-bias"],
)
def test_every_gradient_entry_matches_central_differences(spec: NetworkSpec) -> None:
    """After two training steps (so zero and symmetric starts are gone), the gradient buffers
    the third step fills hold ∂L/∂W, ∂L/∂b and the head's, entry by entry."""
    training = Training(optimizer="adam", lr=0.05, steps=3, samples=6)
    data = teacher_data(spec, training.samples, training.steps)
    trainer = Trainer(spec, build(spec), data, training)
    with np.errstate(all="ignore"):
        for t in range(2):
            trainer.step(t, record=False)
        params = [p.copy() for p in trainer.params]
        trainer.step(2, record=False)  # fills the buffers at ``params``, then updates
    rows = data.order[2]
    x = data.x[rows]
    loss_data = (
        LossData(labels=data.labels[rows])
        if spec.loss is Loss.XENT
        else LossData(target=data.target[rows])  # type: ignore[index]
    )
    for k, grad in enumerate(trainer.grads):
        numeric = np.empty_like(grad)
        for index in np.ndindex(grad.shape):
            shifted = [p.copy() for p in params]
            shifted[k][index] += H
            up = _loss_at(spec, shifted, x, loss_data)
            shifted[k][index] -= 2 * H
            down = _loss_at(spec, shifted, x, loss_data)
            numeric[index] = (up - down) / (2 * H)
        scale = np.abs(numeric).max()
        # Batch norm's centring removes a shift of its input, so a bias before it has gradient
        # 0 (its differences are 0 or rounding noise); every other parameter's is not 0.
        if not (spec.norm is Norm.BATCH and k == 1):
            assert scale > 0
        np.testing.assert_allclose(grad, numeric, rtol=0, atol=1e-7 * max(scale, 1.0))


def test_teacher_data_follows_its_definition() -> None:
    spec = NetworkSpec(depth=2, width=8, batch=4)
    data = teacher_data(spec, 16, 9)
    assert data.x.shape == (16, 8) and data.target is not None
    assert data.target.std() == pytest.approx(1.0, rel=1e-12)  # rescaled to unit variance
    # each epoch (four minibatches) is a permutation of all 16 rows
    for epoch in range(2):
        rows = data.order[4 * epoch : 4 * epoch + 4].ravel()
        assert sorted(rows.tolist()) == list(range(16))
    assert data.order.shape == (9, 4)
    assert not np.array_equal(data.order[:4], data.order[4:8])  # a fresh permutation
    # the data do not depend on the depth, the wiring or the weights
    other = teacher_data(spec.replace(depth=6, skip="pre"), 16, 9)
    assert np.array_equal(other.x, data.x) and np.array_equal(other.order, data.order)
    xent = teacher_data(spec.replace(loss="xent", classes=3), 16, 9)
    assert xent.labels is not None and set(xent.labels.tolist()) <= {0, 1, 2}
    # the best constant output: ½·mean‖t − t̄‖² (mse), the label entropy (xent)
    t = data.target
    assert constant_loss(data, Loss.MSE) == pytest.approx(0.5 * ((t - t.mean(0)) ** 2).sum() / 16)
    p = np.bincount(xent.labels) / 16
    p = p[p > 0]
    assert constant_loss(xent, Loss.XENT) == pytest.approx(float(-(p * np.log(p)).sum()))
    with pytest.raises(ValueError, match="linear"):
        teacher_data(spec.replace(loss="linear"), 16, 9)
    with pytest.raises(ValueError, match="do not vary"):  # one value: no spread to scale by
        teacher_data(NetworkSpec(depth=1, width=1, batch=1), 1, 3)


def test_steps_reuse_the_tape_and_allocate_little() -> None:
    """The tape is made once; a later step allocates far less than the tape holds."""
    spec = NetworkSpec(depth=30, width=32, batch=16)
    training = Training(steps=4, samples=32)
    trainer = Trainer(spec, build(spec), teacher_data(spec, 32, 4), training)
    with np.errstate(all="ignore"):
        trainer.step(0, record=True)
        tape = trainer.tape
        assert tape is not None
        acts = tape.acts
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            trainer.step(1, record=True)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
    assert trainer.tape is tape and tape.acts is acts
    tape_bytes = acts.nbytes + (0 if tape.deriv is None else tape.deriv.nbytes)
    assert peak < tape_bytes / 3, (peak, tape_bytes)


def test_a_diverging_run_stops_at_the_first_nonfinite_value() -> None:
    spec = NetworkSpec(depth=4, width=8, batch=4, activation="relu", init="he")
    training = Training(optimizer="sgd", lr=1e150, steps=20, samples=8, every=1)
    (run,) = train(spec, ["none"], training)
    s = run.summary
    assert s.verdict is TrainVerdict.NONFINITE and s.stopped is not None
    assert 0 < s.stopped.step < 20
    assert len(run.steps) == s.stopped.step  # the records up to there
    assert all(np.isfinite(r.loss) for r in run.steps)
    assert s.stopped.layer in run.names or s.stopped.layer == "loss"
    assert f"step {s.stopped.step}" in s.reason


def test_plain_deep_sigmoid_never_moves_its_first_layer() -> None:
    """The lesson in small: 20 sigmoid layers, plain: layer 1's updates are orders of magnitude
    below the rule of thumb; pre-activation ones are not."""
    spec = NetworkSpec(depth=20, width=16, batch=8)
    training = Training(optimizer="sgd", lr=0.05, steps=10, samples=16)
    plain, pre = train(spec, ["none", "pre"], training)
    assert plain.summary.verdict is not TrainVerdict.LEARNS
    assert plain.summary.log10_ratio_first < -6
    assert pre.summary.log10_ratio_first > plain.summary.log10_ratio_first + 4


def test_variants_start_from_the_same_weights() -> None:
    """As compare wires them: the same arrays, but for zero-initialised branch ends, which only
    the residual variants have."""
    spec = NetworkSpec(depth=4, width=4, batch=2, skip="pre", zero_init_residual=True)
    network = build(spec)
    plain, post, pre = (initial_parameters(variant_spec(spec, v), network) for v in VARIANTS)
    for a, b in zip(post, pre, strict=True):
        assert np.array_equal(a, b)
    assert not pre[0][1].any() and not pre[0][3].any()  # the branch ends, zeroed
    assert np.array_equal(plain[0][0::2], pre[0][0::2]) and plain[0][1].any()
    # and the parameters are copies: training one variant leaves the network's arrays alone
    pre[0][0] += 1.0
    assert np.array_equal(initial_parameters(spec, network)[0][0], network.weights[0])


def test_summary_judges_progress_and_halving() -> None:
    spec = NetworkSpec(depth=2, width=4, batch=2)
    (run,) = train(spec, ["none"], Training(steps=2, samples=4))
    evals = [EvalRecord(0, 10.0), EvalRecord(1, 4.0), EvalRecord(2, 9.5)]
    summary = summarize(run.steps, evals, None, 1.0, run.names)
    assert summary.halved_at == 1
    assert summary.verdict is TrainVerdict.NO_PROGRESS  # 9.5 > 90% of 10
    evals[-1] = EvalRecord(2, 8.9)
    assert summarize(run.steps, evals, None, 1.0, run.names).verdict is not (
        TrainVerdict.NO_PROGRESS
    )


def test_reasons_lead_with_their_verdict_and_say_what_frozen_means() -> None:
    """Each finding names its verdict, so a CI log can be searched for it. "stuck below the
    resolution" where no update reached the dtype's spacing, else "barely moved"; a learner
    still above the constant output's loss is told so."""
    spec = NetworkSpec(depth=2, width=4, batch=2)
    (run,) = train(spec, ["none"], Training(steps=2, samples=4, every=1))
    evals = [EvalRecord(0, 10.0), EvalRecord(2, 2.0)]
    ratios = (3e-17, 3e-17)  # each record's update ratio, both layers
    steps = [
        dataclasses.replace(r, update_ratio=Magnitudes(np.full(2, x), np.zeros(2, np.int64)))
        for r, x in zip(run.steps, ratios, strict=True)
    ]
    frozen = summarize(steps, evals, None, 1.0, run.names)
    assert frozen.reason == "frozen: fc1 is stuck below float64's resolution: update ratio 3e-17"
    small = [
        dataclasses.replace(r, update_ratio=Magnitudes(np.full(2, 1e-10), np.zeros(2, np.int64)))
        for r in run.steps
    ]  # below float32's spacing (1.2e-7), above float64's
    assert summarize(small, evals, None, 1.0, run.names, "float32").reason == (
        "frozen: fc1 is stuck below float32's resolution: update ratio 1e-10"
    )
    assert summarize(small, evals, None, 1.0, run.names).reason == (
        "frozen: fc1 barely moved: update ratio 1e-10"
    )
    barely = [
        dataclasses.replace(r, update_ratio=Magnitudes(np.full(2, 3e-16), np.zeros(2, np.int64)))
        for r in run.steps
    ]  # above float64's spacing (2.2e-16): some weights do change
    assert summarize(barely, evals, None, 1.0, run.names).reason == (
        "frozen: fc1 barely moved: update ratio 3e-16"
    )
    still = [
        dataclasses.replace(r, update_ratio=Magnitudes(np.zeros(2), np.zeros(2, np.int64)))
        for r in run.steps
    ]  # exactly 0 at every record: a gradient that is 0 (s = α = 0), not one below the spacing
    assert summarize(still, evals, None, 1.0, run.names).reason == (
        "frozen: fc1 never moved: every update was exactly 0"
    )
    learns = summarize(run.steps, evals, None, 1.0, run.names)
    assert learns.reason.startswith("learns: loss 10 → 2, halved by step 2; still not below")
    assert summarize(run.steps, evals, None, 3.0, run.names).reason == (
        "learns: loss 10 → 2, halved by step 2"
    )
    stop = Stop(1, "fc2", "backward")
    assert summarize(run.steps, evals, stop, 1.0, run.names).reason.startswith(
        "nonfinite: stopped at step 1: first non-finite value in backward at fc2"
    )


def test_training_validates_its_fields() -> None:
    for bad in (dict(steps=0), dict(samples=-1), dict(every=0), dict(eval_every=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Training(**bad)  # type: ignore[arg-type]
    for lr in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="lr"):
            Training(lr=lr)
    assert Training(steps=200).record_every == 2 and Training(steps=50).record_every == 1
    assert Training(steps=200).recorded(199) and not Training(steps=200).recorded(197)


def test_update_ratios_of_weights_beyond_the_square_range_are_not_zero() -> None:
    """An SGD step of lr 1e155 makes W' ≈ ΔW near 1e155: ‖W'‖² leaves float64, ‖ΔW‖/‖W'‖ is
    still ≈ 1 (it read 0, 'never moved', when ‖W'‖ was taken from its squares)."""
    spec = NetworkSpec(depth=1, width=8, batch=4, activation="linear")
    training = Training(optimizer="sgd", lr=1e155, steps=3, samples=8, every=1)
    (run,) = train(spec, ["none"], training)
    first = run.steps[0].update_ratio
    np.testing.assert_allclose(first.value, 1.0, rtol=1e-9)


def test_no_progress_says_a_huge_loss_growth_in_few_digits() -> None:
    spec = NetworkSpec(depth=1, width=8, batch=4, activation="linear")
    (run,) = train(spec, ["none"], Training(optimizer="adam", lr=1e100, steps=2, samples=8))
    reason = run.summary.reason
    assert run.summary.verdict is TrainVerdict.NO_PROGRESS
    share = reason.split("(")[1].split(")")[0]
    assert share.endswith("%") and "e+" in share and len(share) < 12, reason


def test_a_run_that_stops_at_its_first_step_has_not_halved() -> None:
    """σ_w² = 1e30 at depth 20: the loss is inf before any step. inf ≤ inf/2 made it 'halved
    at 0'."""
    spec = NetworkSpec(depth=20, width=16, batch=8, activation="relu", weight_var=1e30)
    (run,) = train(spec, ["none"], Training(steps=5, samples=64))
    assert run.steps == [] and run.summary.verdict is TrainVerdict.NONFINITE
    assert run.summary.halved_at is None


def test_a_loss_that_turns_inf_after_the_last_step_is_nonfinite() -> None:
    """One SGD step of lr 1e307 leaves finite weights whose loss on all samples is inf: the
    run is nonfinite there (it read no-progress, and --fail-on nonfinite passed)."""
    spec = NetworkSpec(depth=10, width=16, batch=8, activation="tanh")
    training = Training(optimizer="sgd", lr=1e307, steps=1, samples=64)
    (run,) = train(spec, ["pre"], training)
    s = run.summary
    assert s.verdict is TrainVerdict.NONFINITE and s.stopped is not None
    assert s.stopped.step == 1 and s.stopped.stage == "evaluation"
    assert not np.isfinite(run.evals[-1].loss)


def test_a_pre_stream_that_overflows_at_an_add_is_named_at_its_block() -> None:
    """s = 1e200: the stream reaches 1e400 (inf) at block 2's add, while tanh keeps every layer's
    input finite; the stop names block 2's last layer, not the network's."""
    spec = NetworkSpec(depth=8, width=8, batch=4, activation="tanh", skip_scale=1e200)
    (run,) = train(spec, ["pre"], Training(steps=2, samples=8))
    assert run.summary.stopped is not None
    assert run.summary.stopped.layer == "block2.fc2"


def test_an_update_that_leaves_a_weight_nonfinite_is_named_as_the_stop() -> None:
    """Adam at lr 1e308: its first step is lr/(1 - β1) · m/(√v + ε) (torch's order), which is
    inf. The stop is that update, at step 0, not the evaluation before step 1 that met it."""
    spec = NetworkSpec(depth=2, width=4, batch=2)
    (run,) = train(spec, ["none"], Training(lr=1e308, steps=3, samples=4, every=1))
    assert run.summary.stopped is not None
    stop = run.summary.stopped
    assert (stop.step, stop.layer, stop.stage) == (0, "fc1", "update")
    # what step 0's record shows: a finite gradient, and an update that is not
    (record,) = run.steps
    assert np.isfinite(record.grad_weight.mantissa).all()
    assert not np.isfinite(record.update_ratio.mantissa[0])


@pytest.mark.parametrize(("layer", "found"), [(0, 3), (1, 2)])
def test_an_update_that_leaves_an_inf_weight_is_the_stop_however_it_shows(
    monkeypatch: pytest.MonkeyPatch, layer: int, found: int
) -> None:
    """Step 2's update leaves a row of one layer's weights inf. tanh turns its ±inf products
    into ±1, so the loss stays finite. In fc2, the next backward pass meets 0·inf below it:
    the stop is step 2's update. In fc1 every ‖∂L/∂W‖ stays finite too (tanh's slope is 0
    there): the next recorded step's check finds it and names that step."""
    real = train_module.update
    calls = 0

    def breaking(optimizer: object, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        nonlocal calls
        real(optimizer, params, grads)
        if calls == 2:  # step 2's update
            params[0][layer][0] = np.inf
        calls += 1

    monkeypatch.setattr(train_module, "update", breaking)
    spec = NetworkSpec(depth=3, width=4, batch=2, activation="tanh")
    training = Training(optimizer="sgd", lr=0.1, steps=8, samples=4, every=3)
    (run,) = train(spec, ["none"], training)
    stop = run.summary.stopped
    assert stop is not None and (stop.step, stop.stage) == (found, "update")
    assert stop.layer == f"fc{layer + 1}"
    assert all(np.isfinite(r.loss) for r in run.steps)  # the loss never showed it
    # the record that found it is kept; a backward pass that met it recorded nothing
    assert [r.step for r in run.steps] == ([0, 3] if layer == 0 else [0])


def test_a_float32_run_says_float32_s_resolution() -> None:
    """The trainer passes its dtype on: plain sigmoid at depth 20 under SGD moves layer 1 by
    about 1e-15 a step, far below float32's spacing (1.2e-7) and above float64's."""
    spec = NetworkSpec(depth=20, width=16, batch=8, dtype="float32")
    (run,) = train(spec, ["none"], Training(optimizer="sgd", lr=0.01, steps=6, samples=16))
    assert TrainVerdict.FROZEN in run.summary.holds
    assert "frozen: fc1 is stuck below float32's resolution" in run.summary.reason


def test_an_update_that_breaks_a_weight_between_records_is_named_at_that_update(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Step 1 (not recorded: records every 3) leaves a weight nan; step 2's forward pass meets
    it. The stop is step 1's update, not step 2's forward pass."""
    real = train_module.update
    calls = 0

    def breaking(optimizer: object, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        nonlocal calls
        real(optimizer, params, grads)
        if calls == 1:
            params[0][1][0, 0] = np.nan
        calls += 1

    monkeypatch.setattr(train_module, "update", breaking)
    spec = NetworkSpec(depth=3, width=4, batch=2)
    (run,) = train(spec, ["none"], Training(steps=6, samples=4, every=3, eval_every=6))
    stop = run.summary.stopped
    assert stop is not None and (stop.step, stop.layer, stop.stage) == (1, "fc2", "update")
    assert [r.step for r in run.steps] == [0]


def test_a_pre_activation_that_overflows_behind_a_bounded_phi_is_named_at_its_layer() -> None:
    """SGD at lr 1e308 with tanh, pre: after step 0, block 1's first product is -inf in places,
    and tanh turns that into -1 before block 1's second layer, whose sum is then named unless
    every step is checked."""
    spec = NetworkSpec(depth=4, width=4, batch=2, activation="tanh", skip="pre")
    training = Training(optimizer="sgd", lr=1e308, steps=4, samples=4)
    data = teacher_data(spec, 4, 4)
    (run,) = train(spec, ["pre"], training, data=data)
    stop = run.summary.stopped
    assert stop is not None and (stop.step, stop.stage) == (1, "evaluation")
    assert stop.layer == "block1.fc1"
    # by hand, after step 0's update: block 1's first product on the first evaluation batch
    trainer = Trainer(spec, build(spec), data, training)
    with np.errstate(all="ignore"):
        assert trainer.step(0, record=False) is None  # step 0 itself is finite
        w, b = trainer.params[0], trainer.params[1]
        x = data.x[:2]
        u1 = np.tanh(x) @ w[0] + b[0]
        assert not np.isfinite(u1).all() and np.isfinite(np.tanh(u1)).all()
        assert np.isfinite(w).all() and np.isfinite(b).all()  # no update left them non-finite


def test_the_text_charts_keep_their_points_labels_and_axes_apart() -> None:
    """SGD at lr 1e3 blows the losses up to 1e305: the loss chart's y labels are wider than
    its label field, and pre's steep stretch is filled across plain's point at step 1."""
    from gradflow.render import train_view

    spec = NetworkSpec(depth=6, width=16, batch=8, activation="relu", init="he")
    runs = train(spec, ["none", "post", "pre"],
                 Training(optimizer="sgd", lr=1e3, steps=30, samples=32))  # fmt: skip
    chart = train_view.loss_chart(runs, width=80)
    bars = {line.index("|") for line in chart if "|" in line}
    assert len(bars) == 1  # every row's axis in one column
    plain = runs[0].steps[1].loss  # plain's second point: its own mark, not pre's fill
    assert math.isfinite(plain) and plain > 1e30
    assert any("o" in line.split("|", 1)[1] for line in chart[:-3] if "|" in line)
    # few recorded steps: the heatmap's axis reads "step 0 2", not "step 02"
    heat = train_view.heatmap(runs, train_view.HEATMAPS[0], max_rows=None, width=80)
    last = runs[2].steps[-1].step
    assert any(line.strip() == f"step 0 {last}" for line in heat)
    # a range of a few 1e-5 decades: the legend's starts differ
    legend = train_view._legend(-3.0, -3.0 + 5e-5, None, 200)[0]
    starts = [part.split()[1] for part in legend.split("   ")[:-3]]
    assert len(set(starts)) == len(starts)


@pytest.mark.parametrize(
    ("low", "high", "mark", "width"),
    [(-12.2, 2.0, None, 80), (-8.1, -1.9, -3.0, 80), (-12.2, 2.0, -3.0, 60),
     (-12.2, 2.0, -3.0, 70), (-12.2, 2.0, -3.0, 100)],
)  # fmt: skip
def test_the_heatmap_legend_keeps_each_shade_with_its_value(
    low: float, high: float, mark: float | None, width: int
) -> None:
    """At 80 columns a line once ended in "%" and the next began with its "-1.1" (the
    ‖∂L/∂W‖ legend of train --depth 20 --steps 20)."""
    from gradflow.render import train_view

    lines = train_view._legend(low, high, mark, width)
    assert all(len(line) <= width for line in lines)
    for glyph in train_view.SHADES:
        assert any(re.search(rf"(^|   |: ){re.escape(glyph)} -?\d", line) for line in lines), glyph
    assert not any(line.rstrip().endswith(tuple(train_view.SHADES)) for line in lines)
