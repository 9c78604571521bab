"""Random flag combinations, good and bad: the CLI succeeds, fails a --fail-on check, or exits 2
with one line naming the problem. Never a traceback."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gradflow.cli.app import app
from gradflow.render.formats import SCHEMA_VERSION

# Each flag with values a user might type: mostly valid and small (so examples stay fast), some not.
VALUES: dict[str, list[str]] = {
    "--depth": ["1", "2", "4", "6", "0", "-1", "x", "2.5"],
    "--width": ["1", "3", "5", "0", "-2", "many"],
    "--batch": ["1", "2", "4", "0", "1e2"],
    "--block-size": ["1", "2", "3", "0"],
    "--residual-scale": ["1", "0.5", "0", "-1", "nan", "inf", "big"],
    "--activation": ["relu", "tanh", "sigmoid", "gelu", "selu", "linear", "swish", ""],
    "--init": ["he", "xavier", "lecun", "orthogonal", "kaiming", "zeros"],
    "--weight-var": ["1", "2.5", "0", "-1", "nan"],
    "--bias-var": ["0", "0.1", "-0.1", "inf"],
    "--norm": ["none", "batch", "layer", "group"],
    "--loss": ["mse", "xent", "linear", "hinge"],
    "--classes": ["2", "3", "1", "0"],
    "--dtype": ["float64", "float32", "float16"],
    "--seed": ["0", "1", "12345", "-1"],
    "--vanish-below": ["1e-3", "0.5", "0", "-1", "10", "nan"],
    "--explode-above": ["1e3", "2", "0.1", "inf"],
    "--format": ["table", "json", "csv", "markdown", "xml"],
    "--max-rows": ["1", "3", "25", "0", "-4"],
    "--max-memory": ["1G", "512M", "1K", "0", "lots"],
    "--threads": ["1", "2", "3", "0", "-1", "two"],
}
FLAGS = ["--zero-init-residual", "--all-rows", "--unicode", "--quiet"]
ANALYZE_ONLY = {
    "--skip": ["none", "plain", "post", "pre", "postnorm", "sideways"],
    "--fail-on": ["vanishing", "exploding,nonfinite", "healthy", "vanishing,vanishing", ""],
}
COMPARE_ONLY = {"--variants": ["none,post,pre", "pre", "post,none", "plain", "pre,pre", "", "x"]}
# "@name": a file in the example's temporary directory; "-": stdout
PATHS = ["@out.json", "@out.csv", "@out.md", "@out.txt", "@out.JSON", "@out.npz", "@out",
         "@missing/out.json", "@.", "-"]  # fmt: skip


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(["analyze", "compare"]))
    choices = {**VALUES, **(ANALYZE_ONLY if command == "analyze" else COMPARE_ONLY)}
    args = [command]
    # small networks unless the example picks otherwise: keeps every example quick
    args += ["--depth", "4", "--width", "4", "--batch", "3"]
    for flag in draw(st.lists(st.sampled_from(sorted(choices)), max_size=6, unique=True)):
        args += [flag, draw(st.sampled_from(choices[flag]))]
    args += draw(st.lists(st.sampled_from(FLAGS), max_size=2, unique=True))
    for flag in draw(st.lists(st.sampled_from(["--output", "--save-arrays"]), unique=True)):
        args += [flag, draw(st.sampled_from(PATHS))]
    return args


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command_lines())
def test_flags_run_or_exit_2_with_one_line(args: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        args = [str(Path(tmp) / a[1:]) if a.startswith("@") else a for a in args]
        result = CliRunner().invoke(app, args, env={"COLUMNS": "100"})
    assert result.exception is None or isinstance(result.exception, SystemExit), args
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("gradflow: error: "), (args, result.stderr)
        assert result.stdout == ""
        return
    assert result.exit_code in ((0, 1) if "--fail-on" in args else (0,)), (args, result.output)
    if result.exit_code == 1:
        assert any(
            line.startswith("gradflow: check failed: ") for line in result.stderr.splitlines()
        )
    formats = [args[i + 1] for i, a in enumerate(args) if a == "--format"]
    if formats == ["json"] and "--output" not in args:
        assert json.loads(result.stdout)["schema_version"] == SCHEMA_VERSION
