"""``gradflow paths``: the decomposition through the command line, its formats and its bad
input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_cli import one_line_error, run

from gradflow.analysis.paths import compare_paths
from gradflow.engine.spec import NetworkSpec

SMALL = ["--depth", "8", "--width", "12", "--batch", "6", "--activation", "tanh"]


def _strict(text: str) -> dict:  # type: ignore[type-arg]
    def refuse(token: str) -> None:
        raise ValueError(f"non-strict JSON token {token}")

    document = json.loads(text, parse_constant=refuse)
    assert isinstance(document, dict)
    return document


def test_json_carries_the_decomposition_of_each_variant() -> None:
    result = run("paths", *SMALL, "--variants", "post,pre", "--format", "json")
    assert result.exit_code == 0, result.output
    document = _strict(result.stdout)
    assert document["command"] == "paths"
    assert [r["label"] for r in document["runs"]] == ["post", "pre"]
    spec = NetworkSpec(depth=8, width=12, batch=6, activation="tanh")  # type: ignore[arg-type]
    expected = compare_paths(spec, ["post", "pre"])
    for record, decomposition in zip(document["runs"], expected, strict=True):
        assert record["blocks"] == 4
        assert [x["paths"] for x in record["lengths"]] == [1, 4, 6, 4, 1]
        np.testing.assert_allclose(
            [x["log10_grad"] for x in record["lengths"]], decomposition.grad.log10, rtol=1e-12
        )
        assert record["check"] < 1e-12


def test_table_shows_every_length_and_the_summary() -> None:
    result = run("paths", *SMALL, env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "C(4,k)" in result.stdout  # the histogram's binomial column
    assert "check" in result.stdout


def test_same_flags_same_bytes() -> None:
    first = run("paths", *SMALL, "--samples", "3", "--format", "json").stdout
    assert first == run("paths", *SMALL, "--samples", "3", "--format", "json").stdout


def test_max_length_returns_a_remainder(tmp_path: Path) -> None:
    target = tmp_path / "paths.json"
    result = run("paths", *SMALL, "--max-length", "2", "--output", str(target))
    assert result.exit_code == 0, result.output
    record = _strict(target.read_text())["runs"][0]
    assert [x["length"] for x in record["lengths"]] == [0, 1, 2]
    assert record["remainder"] is not None
    assert record["check"] < 1e-12


def test_the_last_cumulative_share_is_one_and_max_length_0_splits_off_the_skip_path() -> None:
    """Every share summed is 1 by definition: the last cumulative is 1, not 1 - 1e-16 (which
    read >99.99%). --max-length 0: the skip-only path against all the others."""
    whole = _strict(run("paths", *SMALL, "--depth", "12", "--format", "json").stdout)["runs"][0]
    assert whole["lengths"][-1]["cumulative"] == 1.0
    table = run("paths", *SMALL, "--depth", "12", env={"COLUMNS": "100"}).stdout
    last_row = next(line for line in table.splitlines() if line.split()[:2] == ["6", "1"])
    assert last_row.endswith(" 100%")
    result = run("paths", *SMALL, "--max-length", "0", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    rows = result.stdout.splitlines()
    assert [row.split(",")[3] for row in rows[1:]] == ["0", ">0"]
    assert rows[-1].endswith(",1.0")
    skip_led = run("paths", "--depth", "8", "--width", "16", "--batch", "4", "--max-length", "0",
                   "-q").stdout  # fmt: skip
    assert "energy lies in length 0 (99%)" in skip_led


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--skip", "none"], "--skip"),
        (["--variants", "pre,plain"], "--variants"),
        (["--max-length", "-1"], "--max-length"),
        (["--skip", "post", "--variants", "post,pre"], "--variants"),  # one would be ignored
        (["--samples", "-2"], "--samples"),
        (["--skip", "postnorm"], "--norm"),
        (["--max-memory", "1K"], "memory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], flag: str) -> None:
    assert one_line_error(run("paths", *SMALL, *args)).startswith(f"gradflow: error: {flag}")


def test_numerical_trouble_is_a_warning_on_stderr_and_in_json() -> None:
    result = run("paths", "--depth", "8", "--width", "8", "--batch", "2", "--skip", "pre",
                 "--weight-var", "1e200", "--format", "json")  # fmt: skip
    assert result.exit_code == 0
    warning = "every path through a branch is 0 in float64"
    assert result.stderr.startswith(f"gradflow: warning: pre: {warning}")
    assert warning in _strict(result.stdout)["runs"][0]["warnings"][0]
