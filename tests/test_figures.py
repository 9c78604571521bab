"""The figures: what each one plots, read back from the Figure's artists (not from pixels), and
the style they are drawn in. Files and their bytes are tested through the command line
(test_cli_plot.py)."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Annotation

from gradflow.analysis.analyze import analyze, compare
from gradflow.analysis.paths import compare_paths, decompose
from gradflow.analysis.theory import Prediction, assess
from gradflow.engine.magnitudes import Status
from gradflow.engine.spec import NetworkSpec, Skip
from gradflow.render import paths_view, view
from gradflow.render.figures import style
from gradflow.render.figures.gradients import gradient_figure
from gradflow.render.figures.path_lengths import path_figure
from gradflow.render.figures.sweep import SweepSeries, sweep_figure
from gradflow.render.figures.training import runs_figure, train_figure

TINY = NetworkSpec(depth=6, width=4, batch=3, skip=Skip.POST)


def by_gid(figure: Figure, gid: str) -> Line2D:
    found = [a for ax in figure.axes for a in ax.get_lines() if a.get_gid() == gid]
    assert len(found) == 1, (gid, [a.get_gid() for ax in figure.axes for a in ax.get_lines()])
    return found[0]


def gids(figure: Figure) -> set[str]:
    return {str(a.get_gid()) for ax in figure.axes for a in ax.get_lines()}


def xy(line: Line2D) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float)


def test_each_variant_line_is_the_report_log10_per_layer() -> None:
    reports = compare(TINY, ["none", "post", "pre"])
    figure = gradient_figure(reports)
    assert figure._suptitle is not None
    assert " ".join(figure._suptitle.get_text().split()) == view.header_line("compare", reports)
    for report in reports:
        for what in ("weight", "input"):
            x, y = xy(by_gid(figure, f"{report.label}:{what}"))
            np.testing.assert_array_equal(x, np.arange(1, 7))
            values = getattr(report.layers, f"grad_{what}").value  # floats: in range here
            np.testing.assert_allclose(10**y, values, rtol=1e-12)


def test_theory_lines_are_the_predicted_grad_input_anchored_at_the_output() -> None:
    reports = compare(NetworkSpec(depth=6, width=4, batch=3, activation="tanh"), ["none", "pre"])
    reports.append(analyze(NetworkSpec(depth=6, width=4, batch=3, norm="batch")))
    theory = [assess(r.spec) for r in reports]
    assert isinstance(theory[0], Prediction) and isinstance(theory[1], Prediction)
    assert isinstance(theory[2], str)  # batch norm: no prediction, so no line
    figure = gradient_figure(reports, "compare", theory)
    for report, prediction in zip(reports[:2], theory[:2], strict=True):
        assert isinstance(prediction, Prediction)
        x, y = xy(by_gid(figure, f"{report.label}:theory"))
        np.testing.assert_array_equal(x, np.arange(1, 7))
        # the prediction of ‖∂L/∂in_i‖ is the measured ‖∂L/∂y‖ times the predicted ratio
        # (‖∂L/∂y‖ found back from the measured ‖∂L/∂x‖ and the measured gain)
        expected = report.layers.grad_input.log10[0] - report.summary.log10_gain
        np.testing.assert_allclose(y - prediction.log10_grad_input, expected, rtol=0, atol=1e-9)
    drawn = [str(a.get_gid()) for ax in figure.axes for a in ax.get_lines()]
    assert sum(g.endswith(":theory") for g in drawn) == 2  # none for batch norm
    assert "theory (dotted)" in figure.axes[0].get_title(loc="left")
    assert "theory" not in gradient_figure(reports).axes[0].get_title(loc="left")


def test_the_block_panel_shows_skip_branch_and_sum_at_each_block() -> None:
    reports = compare(TINY, ["none", "post", "pre"])
    figure = gradient_figure(reports)
    assert len(figure.axes) == 2  # layers, blocks
    assert not any(g.startswith("plain:skip") for g in gids(figure))  # plain has no additions
    for report in reports[1:]:
        blocks = report.blocks
        for what, magnitudes in (
            ("skip", blocks.grad_skip),
            ("branch", blocks.grad_branch),
            ("sum", blocks.grad_input),
        ):
            x, y = xy(by_gid(figure, f"{report.label}:{what}"))
            np.testing.assert_array_equal(x, [1, 3, 5])  # each block's first layer
            np.testing.assert_allclose(10**y, magnitudes.value, rtol=1e-12)


def test_the_decades_between_variants_at_layer_1_are_annotated() -> None:
    reports = compare(TINY, ["none", "post", "pre"])
    figure = gradient_figure(reports)
    texts = {str(a.get_gid()): a for a in figure.axes[0].texts if isinstance(a, Annotation)}
    base = reports[0].layers.grad_weight.value[0]
    for report in reports[1:]:
        decades = math.log10(report.layers.grad_weight.value[0] / base)
        assert texts[f"decades-text:{report.label}"].get_text() == f"{decades:+.1f}"
        arrow = texts[f"decades:{report.label}"]
        # from the baseline's first-layer gradient to the variant's, at layer 1
        assert arrow.xy[0] == 1 and arrow.xyann[0] == 1
        assert 10 ** arrow.xy[1] == pytest.approx(report.layers.grad_weight.value[0])
        assert 10 ** arrow.xyann[1] == pytest.approx(base)


def test_one_variant_has_a_single_panel_without_blocks() -> None:
    figure = analyze(TINY.replace(skip=Skip.NONE)).plot()
    assert len(figure.axes) == 1
    assert gids(figure) >= {"plain:weight", "plain:input"}
    assert not any(t.get_gid() for t in figure.axes[0].texts if isinstance(t, Annotation))


def test_beyond_float_range_is_plotted_at_its_log10_and_ringed() -> None:
    # 640 sigmoid layers: the first layers' gradients lie below 1e-323, where a float is 0
    report = analyze(NetworkSpec(depth=640, width=4, batch=2, skip=Skip.NONE))
    status = np.array([str(s) for s in report.layers.grad_weight.status()])
    assert (status == Status.UNDERFLOW.value).sum() > 10  # the case this test is about
    figure = report.plot()
    log10 = report.layers.grad_weight.log10
    x, y = xy(by_gid(figure, "plain:weight"))
    np.testing.assert_array_equal(y, log10)  # nothing lost below float64's range
    assert y.min() < -330
    ring_x, ring_y = xy(by_gid(figure, "beyond:plain:weight"))
    np.testing.assert_array_equal(ring_x, x[status == Status.UNDERFLOW.value])
    np.testing.assert_array_equal(ring_y, log10[status == Status.UNDERFLOW.value])


def test_exact_zeros_are_marked_at_the_bottom_edge() -> None:
    # zeroed branch ends: the layer before each one gets exactly no weight gradient
    report = analyze(TINY.replace(skip=Skip.PRE, zero_init_residual=True))
    zero = np.flatnonzero(report.layers.grad_weight.mantissa == 0) + 1
    assert len(zero) == 3
    figure = report.plot()
    mark = by_gid(figure, "zero:pre:weight:zero")
    x, y = xy(mark)
    np.testing.assert_array_equal(x, zero)
    np.testing.assert_array_equal(y, 0.0)  # the axes' bottom edge (axes coordinates)
    _, line_y = xy(by_gid(figure, "pre:weight"))
    assert np.isnan(line_y[zero - 1]).all()  # a gap in the line, not a made-up value
    labels = figure.axes[0].get_legend().get_texts()
    assert "exactly 0" in [t.get_text() for t in labels]


def test_paths_bars_are_the_energy_shares_and_the_line_the_binomial_counts() -> None:
    spec = NetworkSpec(depth=8, width=4, batch=3, skip=Skip.PRE, activation="tanh")  # type: ignore[arg-type]
    runs = compare_paths(spec, ["post", "pre"])
    figure = path_figure(runs)
    assert figure._suptitle is not None
    assert " ".join(figure._suptitle.get_text().split()) == paths_view.header_line(runs)
    bars = {c.get_label(): c for c in figure.axes[0].containers}
    for i, d in enumerate(runs):
        patches = bars[f"{d.label}: share of the energy"].patches
        heights = [p.get_height() for p in patches]  # type: ignore[attr-defined]
        np.testing.assert_allclose(heights, d.share, rtol=1e-15)
        np.testing.assert_allclose(sum(heights), 1.0, rtol=1e-12)
        centres = [p.get_x() + p.get_width() / 2 for p in patches]  # type: ignore[attr-defined]
        np.testing.assert_allclose(centres, np.arange(5) + (i - 0.5) * 0.4, atol=1e-12)
    x, y = xy(by_gid(figure, "paths"))
    np.testing.assert_array_equal(x, np.arange(5))
    np.testing.assert_allclose(10**y, [math.comb(4, k) for k in range(5)], rtol=1e-12)


def test_a_truncated_split_ends_in_the_remainder_bar() -> None:
    spec = NetworkSpec(depth=10, width=4, batch=3, skip=Skip.PRE, activation="tanh")  # type: ignore[arg-type]
    d = decompose(spec, max_length=2)
    assert d.remainder is not None
    figure = d.plot()
    (bars,) = figure.axes[0].containers
    heights = [p.get_height() for p in bars.patches]  # type: ignore[attr-defined]
    np.testing.assert_allclose(heights, [*d.share, d.remainder.share], rtol=1e-15)
    _, y = xy(by_gid(figure, "paths"))
    assert 10 ** y[-1] == pytest.approx(2**5 - 1 - 5 - 10)  # the paths through 3..5 branches
    assert figure.axes[0].get_xticklabels()[-1].get_text() == ">2"


def test_sweep_lines_bands_and_theory_are_the_given_arrays() -> None:
    x = np.array([4.0, 8.0, 16.0, 32.0])
    plain = SweepSeries(
        median=np.array([-1.0, -2.0, -4.0, -math.inf]),
        low=np.array([-1.5, -2.5, -5, -9]),
        high=np.array([-0.5, -1.5, -3, -7]),
        theory=np.array([-1.1, -2.2, -4.4, -8.8]),
    )
    pre = SweepSeries(np.zeros(4), -np.ones(4), np.ones(4))
    figure = sweep_figure("depth", x, True, {"plain": plain, "pre": pre}, "gradflow sweep")
    (axes,) = figure.axes
    assert axes.get_xscale() == "log"
    mx, my = xy(by_gid(figure, "median:plain"))
    np.testing.assert_array_equal(mx, x)
    np.testing.assert_array_equal(my, [-1.0, -2.0, -4.0, np.nan])  # -inf: a gap
    np.testing.assert_array_equal(xy(by_gid(figure, "theory:plain"))[1], plain.theory)
    assert by_gid(figure, "theory:plain").get_linestyle() == "--"
    assert "theory:pre" not in gids(figure)
    band = next(c for c in axes.collections if c.get_gid() == "band:plain")
    vertices = band.get_paths()[0].vertices
    assert {(a, b) for a, b in vertices} >= {(4.0, -1.5), (32.0, -9.0), (4.0, -0.5), (32.0, -7.0)}


def test_train_curves_and_heatmaps_are_the_given_arrays() -> None:
    steps = np.arange(0, 50, dtype=float)
    losses = {"plain": (steps, 2.0 / (1 + steps)), "pre": (steps, np.exp(-steps / 10))}
    plain = -np.arange(12, dtype=float).reshape(4, 3)  # (layers, steps)
    pre = plain / 4
    pre[0, 0] = -math.inf  # an exact zero
    figure = train_figure(losses, {"plain": plain, "pre": pre}, np.array([0.0, 20, 40]), "t")
    loss_axes = figure.axes[0]
    assert loss_axes.get_yscale() == "log"
    for label, (s, loss) in losses.items():
        x, y = xy(by_gid(figure, f"loss:{label}"))
        np.testing.assert_array_equal(x, s)
        np.testing.assert_array_equal(y, loss)
    meshes = {m.get_gid(): m for ax in figure.axes for m in ax.collections}
    for label, matrix in (("plain", plain), ("pre", pre)):
        mesh = meshes[f"heatmap:{label}"]
        assert isinstance(mesh, QuadMesh)
        shown = np.ma.masked_invalid(matrix)
        np.testing.assert_array_equal(np.ma.getmaskarray(mesh.get_array()), shown.mask)
        np.testing.assert_array_equal(mesh.get_array().compressed(), shown.compressed())
        assert (mesh.norm.vmin, mesh.norm.vmax) == (-11.0, 0.0)  # one scale for every panel
    heat_axes = [ax for ax in figure.axes if ax.collections and ax is not loss_axes]
    assert all(ax.yaxis_inverted() for ax in heat_axes[:2])  # layer 1 at the top
    # zeros are left blank, as the colorbar says, and no colour of the scale is near blank
    # (cividis' grey middle once read as the zeros' grey)
    cmap = meshes["heatmap:pre"].get_cmap()
    assert tuple(cmap.get_bad()) == (1.0, 1.0, 1.0, 1.0)
    assert "blank: exactly 0 or nan" in figure.axes[-1].get_ylabel()
    ramp = cmap(np.linspace(0, 1, 256))[:, :3]
    assert np.abs(ramp - 1.0).sum(axis=1).min() > 0.3
    assert (ramp.max(axis=1) - ramp.min(axis=1)).min() > 0.15  # never a grey
    # layers and steps are ticked at whole numbers (4 layers once read 2.5)
    figure.canvas.draw()
    for ax in heat_axes[:2]:
        for ticks in (ax.get_xticks(), ax.get_yticks()):
            assert np.array_equal(ticks, np.round(ticks)), ticks


def test_layers_and_steps_are_ticked_at_whole_numbers_on_short_ranges() -> None:
    """Four layers, or steps 0 to 3, read 0.5, 1.5, 2.5 on matplotlib's own ticks."""
    steps = np.arange(4, dtype=float)
    figure = train_figure({"plain": (steps, 1 / (1 + steps))}, {"plain": -np.ones((3, 4))},
                          steps, "t")  # fmt: skip
    figure.canvas.draw()
    reports = [analyze(NetworkSpec(depth=4, width=4, batch=2))]
    compared = gradient_figure(reports)
    compared.canvas.draw()
    for ax in [*figure.axes[:2], compared.axes[0]]:
        ticks = ax.get_xticks()
        assert np.array_equal(ticks, np.round(ticks)), (ax.get_title(), ticks)


def test_the_train_figure_shows_each_run_s_recorded_losses_and_gradients() -> None:
    from gradflow.analysis.train import train
    from gradflow.analysis.training import Training

    spec = NetworkSpec(depth=4, width=4, batch=2)
    runs = train(spec, ["none", "pre"], Training(steps=5, samples=4, every=2))
    figure = runs_figure(runs, "a title")
    for run in runs:
        x, y = xy(by_gid(figure, f"loss:{run.label}"))
        np.testing.assert_array_equal(x, [0, 2, 4])
        np.testing.assert_array_equal(y, [s.loss for s in run.steps])
        meshes = [
            c for ax in figure.axes for c in ax.collections if c.get_gid() == f"heatmap:{run.label}"
        ]
        assert len(meshes) == 1 and isinstance(meshes[0], QuadMesh)
        shown = np.asarray(meshes[0].get_array()).reshape(len(run.names), 3)
        for column, record in enumerate(run.steps):
            np.testing.assert_allclose(shown[:, column], record.grad_weight.log10, rtol=1e-15)
    one = runs[1].plot()
    np.testing.assert_array_equal(xy(by_gid(one, "loss:pre"))[1], [s.loss for s in runs[1].steps])


def test_the_user_style_does_not_leak_into_figures_and_is_restored() -> None:
    with matplotlib.rc_context({"lines.linewidth": 9.0, "font.size": 3.0, "font.family": "serif"}):
        figure = analyze(TINY).plot()
        assert matplotlib.rcParams["lines.linewidth"] == 9.0
    line = by_gid(figure, "post:weight")
    assert line.get_linewidth() == style.STYLE["lines.linewidth"]
    axes: Axes = figure.axes[0]
    label = axes.yaxis.get_label()
    assert label.get_fontsize() == style.STYLE["axes.labelsize"]
    assert label.get_fontfamily() == ["sans-serif"]
    assert figure.get_size_inches()[0] * figure.dpi >= 1600


def test_the_train_figure_of_runs_that_recorded_no_step_says_so() -> None:
    """Every variant stopped at step 0 (its loss inf before any step): the heatmaps had no
    columns to draw, and the figure raised IndexError (exit 70)."""
    from gradflow.analysis.train import train
    from gradflow.analysis.training import Training

    spec = NetworkSpec(depth=20, width=16, batch=8, activation="relu", weight_var=1e30)
    runs = train(spec, ["none", "pre"], Training(steps=5, samples=64))
    assert all(not run.steps for run in runs)
    figure = runs_figure(runs, "a title")
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert texts.count("no step recorded") == 2


def test_sweep_and_train_figures_draw() -> None:
    """Drawn on their Agg canvas (the files themselves are tested through --plot)."""
    x = np.array([2.0, 4.0, 8.0])
    series = {"plain": SweepSeries(-x, -x - 1, -x + 1, -x), "pre": SweepSeries(0 * x, -x, x)}
    steps = np.arange(10.0)
    heat = -np.arange(6.0).reshape(3, 2)
    for figure in (
        sweep_figure("depth", x, True, series, "s"),
        train_figure({"pre": (steps, 1 / (1 + steps))}, {"pre": heat}, np.array([0.0, 9]), "t"),
    ):
        with style.isolated_style():
            figure.canvas.draw()
        assert figure.get_size_inches()[0] * figure.dpi >= 1600


def tick_labels(limits: tuple[float, float]) -> dict[float, str]:
    """The y ticks within ``limits`` of a log10 axis, and their labels."""
    with style.isolated_style():
        axes = style.new_figure(3.0).subplots()
        axes.set_ylim(*limits)
        style.log10_axis(axes)
    axis = axes.yaxis
    ticks = [t for t in axis.get_major_locator()() if limits[0] <= t <= limits[1]]
    return {t: axis.get_major_formatter()(t, i) for i, t in enumerate(ticks)}


def test_log10_axes_over_many_decades_show_whole_powers_of_ten() -> None:
    labels = tick_labels((-31.0, 0.5))
    assert len(labels) >= 4
    superscript = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
    for tick, label in labels.items():
        assert tick == int(tick)
        assert label == "10" + str(int(tick)).translate(superscript)


def test_log10_axes_over_few_decades_show_1_2_and_5_times_them() -> None:
    labels = tick_labels((0.5, 1.5))  # 10^0.5 ≈ 3.2 to 10^1.5 ≈ 31.6
    assert list(labels.values()) == ["5", "10", "20"]
    np.testing.assert_allclose(list(labels), np.log10([5, 10, 20]), rtol=1e-12)


@pytest.mark.parametrize("width", range(style.TITLE_CHARACTERS - 6, style.TITLE_CHARACTERS + 1))
def test_the_title_wraps_between_parts_and_never_leaves_a_lone_separator(width: int) -> None:
    """Parts of every length around the wrap width: each line ends in " ·" where the line goes
    on, and no line is a "·" alone (a closing " ·" once pushed a full line over the width)."""
    first = "x" * (width - 3)
    line = " · ".join([first, "ab", "cdef", "g" * 30, "tail"])
    figure = Figure()
    style.title(figure, line)
    assert figure._suptitle is not None
    lines = figure._suptitle.get_text().split("\n")
    assert all(text.strip() not in ("·", "") for text in lines)
    assert " ".join(lines).split(" · ") == line.split(" · ")
