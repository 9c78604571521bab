"""The command line: every command and option, each bad value, each format parsed back and
checked against the engine, exit codes, determinism, colour and width."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from gradflow import __version__
from gradflow.analysis.analyze import analyze, compare
from gradflow.analysis.results import Report
from gradflow.analysis.verdict import Thresholds
from gradflow.cli.app import app
from gradflow.engine import memory
from gradflow.engine.network import build
from gradflow.engine.spec import Activation, DType, Init, Loss, NetworkSpec, Norm, Skip
from gradflow.render import view

SMALL = ["--depth", "6", "--width", "6", "--batch", "4"]
SMALL_SPEC = NetworkSpec(depth=6, width=6, batch=4)
VARIANTS = (Skip.NONE, Skip.POST, Skip.PRE)
COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-8]|9[0-7])[0-9;]*m")  # SGR with a foreground colour
BASE_ENV = {"COLUMNS": "100", "NO_COLOR": None, "FORCE_COLOR": None, "TTY_COMPATIBLE": None}


def run(*args: str, env: Mapping[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={**BASE_ENV, **(env or {})})


def one_line_error(result: Result) -> str:
    """Exit 2 with exactly one line on stderr, nothing on stdout, no traceback."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gradflow: error: ")
    assert result.stdout == ""
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return lines[0]


def flat(text: str) -> str:
    return " ".join(text.split())


def small_compare() -> list[Report]:
    return compare(SMALL_SPEC.replace(skip=Skip.POST), VARIANTS)


# ---- entry points -------------------------------------------------------------------------


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"gradflow {__version__}"


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["compare", "--help"]])
def test_help_and_version_do_not_load_numpy(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from gradflow.cli.app import main\n"
        f"sys.argv = ['gradflow', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "print('numpy' in sys.modules, 'gradflow.analysis.analyze' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[-1] == "False False"


def test_python_dash_m() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gradflow", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"gradflow {__version__}"


def test_version_is_answered_before_typer_loads() -> None:
    """The entry point (``gradflow.cli:main``) prints the version without importing typer."""
    code = (
        "import sys\n"
        "from gradflow.cli import main\n"
        "sys.argv = ['gradflow', '--version']\n"
        "main()\n"
        "print('typer' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines() == [f"gradflow {__version__}", "False"]


def test_start_up_skips_what_the_command_does_not_use() -> None:
    """--help builds no Plan (its module loads when a command runs), and the table page does
    not load the path decomposition (only the paths page does)."""
    code = (
        "import sys\n"
        "from gradflow.cli.app import main\n"
        "sys.argv = ['gradflow', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "import gradflow.render.table\n"
        "print('gradflow.cli.plan' in sys.modules, 'gradflow.analysis.paths' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[-1] == "False False"


def test_bare_command_shows_the_help_and_exits_0() -> None:
    result = run()
    assert result.exit_code == 0
    assert "analyze" in result.stdout and "compare" in result.stdout


@pytest.mark.parametrize("command", ["analyze", "compare"])
def test_every_spec_field_is_a_flag(command: str) -> None:
    result = run(command, "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for field in NetworkSpec().to_dict():
        if command == "compare" and field == "skip":
            continue
        assert "--" + field.replace("_", "-") in result.stdout
    assert ("--variants" in result.stdout) == (command == "compare")


def test_help_shows_the_engine_thresholds() -> None:
    text = flat(run("analyze", "--help").stdout)
    assert f"(default {Thresholds().vanish_below:g})" in text
    assert f"(default {Thresholds().explode_above:g})" in text


# ---- what a person sees -------------------------------------------------------------------


def test_compare_page_shows_layers_split_chart_and_sentence() -> None:
    result = run("compare", *SMALL, "--all-rows", env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    reports = small_compare()
    assert out.splitlines()[0].startswith("gradflow compare · depth 6")
    assert "Split at the addition" in out
    assert "per layer, log scale" in out
    assert flat(view.comparison_sentence(reports)) in flat(out)
    # the first layer's gradient of every variant, as printed in the table
    first_row = next(line for line in out.splitlines() if line.split()[:2] == ["1", "block1.fc1"])
    for r in reports:
        text = view.magnitude_text(
            float(r.layers.grad_weight.log10[0]), r.layers.grad_weight.status()[0]
        )
        assert text in first_row.split()


def test_headline_command_answers_the_question() -> None:
    result = run("compare", "--depth", "50", "--format", "json")
    assert result.exit_code == 0
    runs = {run["label"]: run for run in json.loads(result.stdout)["runs"]}
    assert runs["plain"]["summary"]["verdict"] == "vanishing"
    assert runs["pre"]["summary"]["verdict"] == "healthy"
    ratios = {label: run["summary"]["log10_weight_ratio"] for label, run in runs.items()}
    assert ratios["plain"] < ratios["post"] < ratios["pre"]
    assert ratios["pre"] - ratios["plain"] > 20  # tens of orders of magnitude


def test_analyze_residual_page_and_xent_head() -> None:
    result = run("analyze", *SMALL, "--skip", "pre", "--loss", "xent", "--all-rows")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:2] == ["head", "head"] for line in lines)
    assert "Split at the addition" in result.stdout


def test_plain_analyze_has_no_block_table() -> None:
    result = run("analyze", *SMALL)
    assert result.exit_code == 0
    assert "Split at the addition" not in result.stdout


def test_no_escape_codes_off_a_terminal() -> None:
    result = run("compare", *SMALL)
    assert "\x1b" not in result.stdout


def test_colour_when_forced_and_none_with_no_color() -> None:
    forced = run("compare", *SMALL, env={"FORCE_COLOR": "1"})
    assert COLOUR.search(forced.stdout)
    no_color = run("compare", *SMALL, env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert no_color.exit_code == 0
    assert not COLOUR.search(no_color.stdout)


@pytest.mark.parametrize("columns", [80, 100, 160])
def test_output_follows_the_terminal_width(columns: int) -> None:
    result = run("compare", *SMALL, env={"COLUMNS": str(columns)})
    assert result.exit_code == 0
    assert max(len(line) for line in result.stdout.splitlines()) <= columns


def test_quiet_prints_only_the_summary_lines() -> None:
    result = run("compare", *SMALL, "--quiet")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    reports = small_compare()
    assert [flat(line) for line in lines[:3]] == [flat(x) for x in view.summary_lines(reports)[:3]]
    assert flat(" ".join(lines[3:])) == flat(view.comparison_sentence(reports))


def chart_rows(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "per layer, log scale" in line)
    end = next(i for i in range(start, len(lines)) if lines[i].lstrip().startswith("+"))
    return lines[start + 2 : end]


@pytest.mark.parametrize(
    ("args", "rows"),
    [([], 12), (["--max-rows", "4"], 4), (["--max-rows", "5"], 4), (["--all-rows"], 12)],
)
def test_rows_are_grouped_beyond_max_rows(args: list[str], rows: int) -> None:
    result = run("analyze", "--depth", "12", "--width", "4", "--batch", "2", *args)
    assert result.exit_code == 0
    assert len(chart_rows(result.stdout)) == rows


def test_deep_default_rows_fit_a_screen() -> None:
    result = run("analyze", "--depth", "60", "--width", "2", "--batch", "2", "--all-rows")
    assert len(chart_rows(result.stdout)) == 60
    result = run("analyze", "--depth", "60", "--width", "2", "--batch", "2")
    assert len(chart_rows(result.stdout)) <= 25


def test_chart_is_ascii_unless_unicode_is_asked() -> None:
    plain = chart_rows(run("compare", *SMALL).stdout)
    assert all(line.isascii() for line in plain)
    fine = chart_rows(run("compare", *SMALL, "--unicode").stdout)
    assert any("█" in line for line in fine)


# ---- formats, parsed back against the engine ----------------------------------------------


def test_json_matches_the_engine() -> None:
    result = run("compare", *SMALL, "--format", "json")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    reports = small_compare()
    assert [r["label"] for r in document["runs"]] == [r.label for r in reports]
    for got, report in zip(document["runs"], reports, strict=True):
        np.testing.assert_array_equal(
            [layer["grad_weight"] for layer in got["layers"]], report.layers.grad_weight.value
        )
        np.testing.assert_array_equal(
            [layer["log10_grad_input"] for layer in got["layers"]], report.layers.grad_input.log10
        )
        assert got["summary"]["verdict"] == str(report.summary.verdict)


def test_every_network_flag_reaches_the_spec() -> None:
    args = [
        "--depth", "4", "--width", "5", "--batch", "3", "--skip", "pre", "--block-size", "2",
        "--residual-scale", "0.5", "--activation", "tanh", "--init", "orthogonal",
        "--weight-var", "1.5", "--bias-var", "0.1", "--zero-init-residual", "--norm", "layer",
        "--loss", "xent", "--classes", "3", "--dtype", "float32", "--seed", "7",
        "--vanish-below", "1e-5", "--explode-above", "1e4",
    ]  # fmt: skip
    result = run("analyze", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    spec = NetworkSpec(
        depth=4,
        width=5,
        batch=3,
        skip=Skip.PRE,
        block_size=2,
        residual_scale=0.5,
        activation=Activation.TANH,
        init=Init.ORTHOGONAL,
        weight_var=1.5,
        bias_var=0.1,
        zero_init_residual=True,
        norm=Norm.LAYER,
        loss=Loss.XENT,
        classes=3,
        dtype=DType.FLOAT32,
        seed=7,
    )
    assert document["runs"][0]["spec"] == spec.to_dict()
    assert document["config"]["vanish_below"] == 1e-5
    assert document["config"]["explode_above"] == 1e4
    report = analyze(spec)
    np.testing.assert_array_equal(
        [layer["grad_weight"] for layer in document["runs"][0]["layers"]],
        report.layers.grad_weight.value,
    )


def test_csv_matches_the_engine() -> None:
    result = run("compare", *SMALL, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    reports = small_compare()
    assert len(rows) == len(reports) * SMALL_SPEC.depth
    for report in reports:
        mine = [row for row in rows if row["label"] == report.label]
        np.testing.assert_array_equal(
            [float(row["log10_grad_weight"]) for row in mine], report.layers.grad_weight.log10
        )


def test_markdown_format() -> None:
    result = run("compare", *SMALL, "--format", "markdown")
    assert result.exit_code == 0
    assert result.stdout.startswith("### gradflow compare")
    assert "```text" in result.stdout


@pytest.mark.parametrize("fmt", ["json", "csv", "markdown", "table"])
def test_same_flags_same_bytes(fmt: str) -> None:
    args = ["compare", *SMALL, "--seed", "3", "--format", fmt]
    assert run(*args).stdout == run(*args).stdout


def test_seed_changes_the_numbers() -> None:
    a = json.loads(run("analyze", *SMALL, "--format", "json").stdout)
    b = json.loads(run("analyze", *SMALL, "--format", "json", "--seed", "1").stdout)
    assert a["runs"][0]["layers"] != b["runs"][0]["layers"]


# ---- files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("r.json", "json"),
        ("r.csv", "csv"),
        ("r.md", "markdown"),
        ("r.txt", "table"),
        ("r.JSON", "json"),
        ("r.Csv", "csv"),
        ("r.MD", "markdown"),
        ("r.markdown", "markdown"),
        ("r.TXT", "table"),
        ("report", "table"),
    ],
)
def test_output_file_format_from_suffix(tmp_path: Path, name: str, fmt: str) -> None:
    target = tmp_path / name
    result = run("compare", *SMALL, "--output", str(target))
    assert result.exit_code == 0, result.stderr
    direct = run("compare", *SMALL, "--format", fmt)
    if fmt != "table":
        assert target.read_text() == direct.stdout
    else:
        assert "Split at the addition" in target.read_text()
        assert "\x1b" not in target.read_text()
    # stdout carries the summary, stderr says where the report went
    reports = small_compare()
    assert flat(view.comparison_sentence(reports)) in flat(result.stdout)
    assert str(target) in result.stderr


def test_explicit_format_beats_the_suffix(tmp_path: Path) -> None:
    target = tmp_path / "r.txt"
    assert run("analyze", *SMALL, "--format", "json", "--output", str(target)).exit_code == 0
    assert json.loads(target.read_text())["command"] == "analyze"


@pytest.mark.parametrize("name", ["out.npz", "r.jsn", "r.json.bak"])
def test_unknown_suffix_needs_a_format(tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    one_line_error(run("analyze", *SMALL, "--output", str(target)))
    assert not target.exists()
    assert run("analyze", *SMALL, "--output", str(target), "--format", "json").exit_code == 0
    assert json.loads(target.read_text())["command"] == "analyze"


def test_failed_run_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    one_line_error(run("analyze", "--depth", "0", "--output", str(target)))
    assert not target.exists()
    target.write_text("previous\n")
    one_line_error(run("analyze", *SMALL, "--max-memory", "1K", "--output", str(target)))
    assert target.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


@pytest.mark.parametrize("command", ["analyze", "compare"])
def test_save_arrays(tmp_path: Path, command: str) -> None:
    target = tmp_path / "run.npz"
    result = run(command, *SMALL, "--save-arrays", str(target), "--quiet")
    assert result.exit_code == 0, result.stderr
    spec = SMALL_SPEC
    expected = build(spec).arrays(spec)
    with np.load(target) as saved:
        assert set(saved.files) == set(expected)
        for key, value in expected.items():
            np.testing.assert_array_equal(saved[key], value)


# ---- exit codes ---------------------------------------------------------------------------


def test_fail_on_matching_verdict_exits_1_with_reason() -> None:
    result = run("analyze", *SMALL, "--vanish-below", "0.5", "--fail-on", "vanishing,nonfinite")
    assert result.exit_code == 1
    assert "Gradient per layer" in result.stdout  # the report is still printed
    (line,) = result.stderr.splitlines()
    assert "vanishing" in line and "--vanish-below" in line


def test_fail_on_given_twice_checks_both_lists() -> None:
    """A CI script's second --fail-on adds to the first; it does not replace it."""
    for order in (["vanishing", "exploding"], ["exploding", "vanishing"]):
        flags = [part for verdict in order for part in ("--fail-on", verdict)]
        result = run("analyze", *SMALL, "--vanish-below", "0.5", *flags)
        assert result.exit_code == 1, order
        assert "--fail-on vanishing" in result.stderr


def test_a_weight_ratio_of_0_over_0_reads_n_a() -> None:
    """α = 0: every branch weight's gradient is exactly 0, at both ends: the ratio is not
    measurable (n/a, as documented), not a NaN value."""
    result = run("compare", "--depth", "8", "--width", "16", "--batch", "4",
                 "--residual-scale", "0", "-q")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    for label in ("post", "pre"):
        line = next(x for x in lines if x.startswith(label))
        assert "‖∂L/∂W‖       n/a" in line and "nan" not in line


def test_fail_on_other_verdict_exits_0() -> None:
    result = run("analyze", *SMALL, "--vanish-below", "0.5", "--fail-on", "exploding")
    assert result.exit_code == 0
    assert result.stderr == ""


def test_fail_on_catches_a_finding_behind_another_verdict() -> None:
    """A vanishing weight ratio decides the verdict, but the gain explodes too: a CI check for
    exploding networks must fail on it."""
    args = ["analyze", "--depth", "50", "--skip", "post", "--activation", "relu", "--init", "he",
            "--vanish-below", "0.9"]  # fmt: skip
    summary = json.loads(run(*args, "--format", "json").stdout)["runs"][0]["summary"]
    assert summary["verdict"] == "vanishing"
    assert "exploding" in [f["verdict"] for f in summary["findings"]]
    result = run(*args, "--fail-on", "exploding", "-q")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("gradflow: check failed: post is vanishing, and exploding too")
    assert "--gain-above" in line and "--vanish-below" not in line


def test_thresholds_set_the_verdict() -> None:
    lenient = json.loads(
        run(
            "analyze", *SMALL, "--format", "json", "--vanish-below", "1e-12", "--gain-below",
            "1e-12",
        ).stdout
    )  # fmt: skip
    strict = json.loads(run("analyze", *SMALL, "--format", "json", "--vanish-below", "0.5").stdout)
    assert lenient["runs"][0]["summary"]["verdict"] == "healthy"
    assert strict["runs"][0]["summary"]["verdict"] == "vanishing"


def test_memory_guard_uses_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda: 1000)
    line = one_line_error(run("compare", *SMALL))
    assert "memory" in line and "--dtype float32" in line


def test_max_memory_allows_what_fits() -> None:
    assert run("analyze", *SMALL, "--max-memory", "1G", "--quiet").exit_code == 0


BAD = [
    (["analyze", "--depth", "0"], "--depth"),
    (["analyze", "--depth", "abc"], "--depth"),
    (["analyze", "--depth", "2.5"], "--depth"),
    (["analyze", "--width", "-3"], "--width"),
    (["analyze", "--batch", "0"], "--batch"),
    (["analyze", "--block-size", "0"], "--block-size"),
    (["analyze", "--skip", "sideways"], "--skip"),
    (["analyze", "--activation", "swish"], "--activation"),
    (["analyze", "--init", "zeros"], "--init"),
    (["analyze", "--norm", "group"], "--norm"),
    (["analyze", "--loss", "hinge"], "--loss"),
    (["analyze", "--dtype", "float16"], "--dtype"),
    (["analyze", "--weight-var", "0"], "--weight-var"),
    (["analyze", "--weight-var", "x"], "--weight-var"),
    (["analyze", "--dtype", "float32", "--weight-var", "1e80"], "--weight-var"),
    (["compare", "--dtype", "float32", "--branch-weight-scale", "1e-40"], "--branch-weight-scale"),
    (["sweep", "--vary", "weight-var=1,1e80", "--dtype", "float32"], "weight-var=1e+80"),
    (["analyze", "--bias-var", "-1"], "--bias-var"),
    (["analyze", "--residual-scale", "inf"], "--residual-scale"),
    (["analyze", "--classes", "1"], "--classes"),
    (["analyze", "--seed", "-1"], "--seed"),
    (["analyze", "--skip", "post", "--depth", "5"], "--depth"),
    (["analyze", "--zero-init-residual"], "--zero-init-residual"),
    (["analyze", "--norm", "batch", "--batch", "1"], "--norm"),
    (["analyze", "--vanish-below", "0"], "--vanish-below"),
    (["analyze", "--vanish-below", "10", "--explode-above", "1"], "--vanish-below"),
    (["analyze", "--explode-above", "nan"], "--explode-above"),
    (["analyze", "--fail-on", "sometimes"], "--fail-on"),
    (["analyze", "--fail-on", "vanishing,vanishing"], "--fail-on"),
    (["analyze", "--fail-on", "vanishing", "--fail-on", "vanishing"], "listed twice"),
    (["analyze", "--fail-on", "vanishing,,exploding"], "empty value"),
    (["train", "--fail-on", ",frozen"], "empty value"),
    # an empty list ("$CHECKS" unset) was taken as no check at all
    (["analyze", "--fail-on", ""], "give a comma-separated list"),
    (["analyze", "--fail-on", " "], "give a comma-separated list"),
    (["train", "--fail-on", ""], "give a comma-separated list"),
    (["analyze", "--format", "xml"], "--format"),
    (["analyze", "--output", "/nonexistent-dir/r.json"], "--output"),
    (["analyze", "--output", "."], "--output"),
    (["analyze", "--save-arrays", "/nonexistent-dir/a.npz"], "--save-arrays"),
    (["analyze", "--save-arrays", "/dev/stderr"], "stderr carries messages"),
    (["analyze", "--output", "x.json", "--save-arrays", "x.json"], "--save-arrays"),
    (["analyze", "--max-rows", "0"], "--max-rows"),
    (["analyze", "--max-memory", "lots"], "--max-memory"),
    (["analyze", "--max-memory", "1.5"], "--max-memory: expected a size"),  # it read 1 B
    (["analyze", "--max-memory", "1K"], "memory"),
    (["train", "--steps", "99999999999999999999"], "smaller --depth, --width, --batch, --steps"),
    (["paths", "--skip", "pre", "--samples", "99999999999999999999"], "--batch or --samples"),
    (["analyze", "--threads", "0"], "--threads"),
    (["compare", "--threads", "-2"], "--threads"),
    (["paths", "--threads", "0"], "--threads"),
    (["train", "--threads", "0"], "--threads"),
    (["sweep", "--vary", "depth=2,4", "--threads", "0"], "--threads"),
    (["analyze", "--threads", "two"], "--threads"),
    (["analyze", "--quiet", "--format", "json"], "--quiet"),
    (["analyze", "--no-such-flag"], "--no-such-flag"),
    (["analyze", "surplus"], "surplus"),
    (["compare", "--variants", "none,sideways"], "--variants"),
    (["compare", "--variants", ","], "--variants"),
    (["compare", "--variants", "none,,post"], "empty value"),
    (["compare", "--variants", "pre,"], "empty value"),
    (["paths", "--variants", ",pre"], "empty value"),
    (["compare", "--variants", "post,post"], "--variants"),
    (["compare", "--variants", "none", "--zero-init-residual"], "--zero-init-residual"),
    (["compare", "--depth", "7"], "--depth"),
    (["compare", "--skip", "post"], "--skip"),
    (["compare", "--fail-on", "vanishing"], "--fail-on"),
    # a variant's own rule, whatever its place in the list (a later one was a traceback)
    (["compare", "--variants", "pre,postnorm"], "--norm"),
    (["paths", "--variants", "post,postnorm"], "--norm"),
    (["train", "--variants", "pre,postnorm"], "--norm"),
    # the sampled paths' own arrays count too (a billion was a MemoryError traceback)
    (
        ["paths", "--depth", "8", "--width", "4", "--batch", "2", "--samples", "1000000000"],
        "memory",
    ),
    (["frobnicate"], "frobnicate"),
]


@pytest.mark.parametrize(("args", "flag"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_one_line_exit_2(args: list[str], flag: str) -> None:
    line = one_line_error(run(*args))
    assert flag in line


def test_choice_errors_list_the_accepted_values() -> None:
    line = one_line_error(run("analyze", "--activation", "swish"))
    assert all(name in line for name in ("relu", "tanh", "sigmoid", "gelu"))
    line = one_line_error(run("compare", "--variants", "side"))
    assert all(name in line for name in ("none", "post", "pre"))


def test_no_progress_output_off_a_terminal() -> None:
    result = run("compare", *SMALL)
    assert result.exit_code == 0
    assert result.stderr == ""


def test_numerical_trouble_is_reported_on_stderr_and_in_json() -> None:
    flags = ["--depth", "400", "--width", "8", "--batch", "4", "--activation", "linear",
             "--weight-var", "100"]  # fmt: skip
    result = run("analyze", *flags, "--format", "json")
    assert result.exit_code == 0
    summary = json.loads(result.stdout)["runs"][0]["summary"]
    assert summary["verdict"] == "nonfinite"
    first_bad = summary["nonfinite_from"]
    assert 100 < first_bad < 400
    assert f"from layer {first_bad}" in result.stderr
    assert summary["warnings"] and all(w in result.stderr for w in summary["warnings"])
    assert "Traceback" not in result.stderr


# ---- choices, defaults and error lines ----------------------------------------------------


@pytest.mark.parametrize("name", ["plain", "PLAIN", "none"])
def test_skip_takes_plain_like_variants(name: str) -> None:
    result = run("analyze", *SMALL, "--skip", name, "--format", "json")
    assert result.exit_code == 0, result.stderr
    got = json.loads(result.stdout)["runs"][0]
    assert got["spec"] == SMALL_SPEC.to_dict()
    reference = json.loads(run("compare", *SMALL, "--variants", "plain", "--format", "json").stdout)
    assert got["layers"] == reference["runs"][0]["layers"]


def test_classes_only_with_xent() -> None:
    line = one_line_error(run("analyze", *SMALL, "--classes", "3"))
    assert "--classes" in line and "--loss" in line
    one_line_error(run("compare", *SMALL, "--classes", "3", "--loss", "linear"))
    chosen = run("analyze", *SMALL, "--loss", "xent", "--classes", "3", "--format", "json")
    assert json.loads(chosen.stdout)["runs"][0]["spec"]["classes"] == 3
    default = run("analyze", *SMALL, "--loss", "xent", "--format", "json")
    assert json.loads(default.stdout)["runs"][0]["spec"]["classes"] == NetworkSpec().classes


HUGE = "9" * 100_000
LONG_VALUES = [
    (["analyze", "--depth", HUGE], "--depth"),
    (["analyze", "--depth", "-" + HUGE], "--depth"),
    (["analyze", "--weight-var", "x" * 100_000], "--weight-var"),
    (["analyze", "--activation", "x" * 100_000], "--activation"),
    (["analyze", "--skip", "x" * 100_000], "--skip"),
    (["compare", "--variants", "none," + "x " * 50_000], "--variants"),
    (["analyze", "--fail-on", "y" * 100_000], "--fail-on"),
    (["analyze", "--max-memory", "z" * 100_000], "--max-memory"),
    (["analyze", "--output", "/nonexistent/" + "d" * 100_000 + "/r.json"], "--output"),
    (["analyze", "--" + "q" * 100_000], "--qqq"),
    (["analyze", "surplus " * 10_000], "surplus"),
]


@pytest.mark.parametrize(("args", "flag"), LONG_VALUES, ids=[f for _, f in LONG_VALUES])
def test_long_values_are_cut_in_error_lines(args: list[str], flag: str) -> None:
    line = one_line_error(run(*args))
    assert flag in line
    assert len(line) < 500


def flags_named(line: str) -> list[str]:
    return re.findall(r"--[a-z][a-z-]*", line)


def test_unknown_flags_suggest_only_a_close_match() -> None:
    assert flags_named(one_line_error(run("analyze", "--dept", "3"))) == ["--dept", "--depth"]
    assert flags_named(one_line_error(run("analyze", "--widht", "3"))) == ["--widht", "--width"]
    assert flags_named(one_line_error(run("analyze", "--frobnicate"))) == ["--frobnicate"]
    assert flags_named(one_line_error(run("analyze", "--lr", "0.1"))) == ["--lr"]  # not --loss


@pytest.mark.parametrize(
    ("command", "name", "fmt"),
    [("analyze", "r.json", "csv"), ("compare", "r.CSV", "markdown"), ("train", "r.md", "json"),
     ("sweep", "r.jsonl", "json")],
)  # fmt: skip
def test_a_format_that_the_output_suffix_contradicts_is_refused(
    command: str, name: str, fmt: str, tmp_path: Path
) -> None:
    extra = ["--vary", "depth=2"] if command == "sweep" else []
    target = tmp_path / name
    line = one_line_error(run(command, *extra, "--output", str(target), "--format", fmt))
    assert line.startswith(f"gradflow: error: --format: {fmt} does not match --output")
    assert not target.exists()


def test_a_txt_or_suffixless_output_takes_any_format(tmp_path: Path) -> None:
    for name in ("r.txt", "report"):
        result = run("analyze", *SMALL, "--output", str(tmp_path / name), "--format", "json")
        assert result.exit_code == 0, result.stderr
        assert json.loads((tmp_path / name).read_text())["command"] == "analyze"


def test_a_flag_of_other_commands_names_them() -> None:
    """A CI script that moves --fail-on from analyze to compare learns where it belongs."""
    line = one_line_error(run("compare", "--fail-on", "vanishing"))
    assert line.endswith("no such option --fail-on (only analyze and train take it)")
    assert one_line_error(run("analyze", "--lr", "0.1")).endswith("(only train takes it)")
    assert "(compare, paths, train, sweep take it)" in one_line_error(run("analyze", "--variants"))
    assert "take" not in one_line_error(run("analyze", "--frobnicate"))


@pytest.mark.parametrize(
    ("args", "flag"),
    [(["analyze"], "--skip"), (["compare", "--variants", "none"], "--variants"),
     (["train", "--variants", "none"], "--variants")],
)  # fmt: skip
def test_zero_init_residual_without_branches_names_the_flag_that_has_them(
    args: list[str], flag: str
) -> None:
    line = one_line_error(run(*args, "--zero-init-residual"))
    assert f"needs residual branches: {flag} post, pre or postnorm" in line


def test_unknown_commands_suggest_only_a_close_match() -> None:
    assert "compare" in one_line_error(run("compar"))
    line = one_line_error(run("frobnicate"))
    assert "analyze" not in line and "compare" not in line


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (5 << 30, "5.0 GiB"),
        (3 << 60, "3.0 EiB"),
        (1023 << 60, "1023.0 EiB"),
        (1 << 70, "1.0e+03 EiB"),
        (int(7.9e27) << 60, "7.9e+27 EiB"),
        (10**600, "8.7e+581 EiB"),
    ],
)
def test_memory_sizes_read_sanely(size: int, text: str) -> None:
    from gradflow.cli.execute import bytes_text

    assert bytes_text(size) == text


def test_an_absurd_run_is_refused_in_one_short_line() -> None:
    line = one_line_error(run("analyze", "--depth", "9" * 300, "--width", "100000000"))
    assert "memory" in line and "EiB" in line
    assert len(line) < 250


@pytest.mark.parametrize(("columns", "widest"), [("0", 40), ("1", 40), ("100000", 200)])
def test_page_width_is_kept_within_bounds(columns: str, widest: int) -> None:
    result = run("compare", *SMALL, env={"COLUMNS": columns})
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "Split at the addition" in result.stdout
    bars = [line for line in lines if re.match(r"\s*\d+ \|", line)]  # one chart row per layer
    assert len(bars) == SMALL_SPEC.depth
    assert max(len(line) for line in lines) <= widest


@pytest.mark.parametrize(
    "command",
    [
        ["compare", *SMALL],
        ["train", "--steps", "2", *SMALL],
        ["paths", *SMALL],
        ["sweep", "--vary", "depth=6,8", "--width", "6", "--batch", "4"],
    ],
    ids=lambda c: c[0],
)
def test_a_repeated_variants_flag_adds_up(command: list[str]) -> None:
    """--variants pre --variants post is pre,post, as --fail-on and --vary add up; it kept only
    the last."""
    result = run(*command, "--variants", "pre", "--variants", "post", "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    labels = (
        document["config"]["variants"]
        if command[0] == "sweep"
        else [r["label"] for r in document["runs"]]
    )
    assert labels == ["pre", "post"]


def test_choices_take_any_case_as_vary_and_skip_do() -> None:
    """--activation ReLU was refused where --vary activation=ReLU and --skip PRE were taken;
    the report is the same bytes as with the lower-case names."""
    lower = run("analyze", *SMALL, "--activation", "relu", "--dtype", "float32", "--init", "he",
                "--format", "json")  # fmt: skip
    mixed = run("analyze", *SMALL, "--activation", "ReLU", "--dtype", "Float32", "--init", "HE",
                "--format", "JSON")  # fmt: skip
    assert lower.exit_code == mixed.exit_code == 0, mixed.stderr
    assert mixed.stdout == lower.stdout
