"""``gradflow train`` on the command line: each bad input refused before any work, --fail-on,
every format parsed back, --save-arrays, and the same bytes for the same flags."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from gradflow.cli.app import app

SMALL = ["train", "--depth", "4", "--width", "6", "--batch", "4", "--samples", "8"]
SMALL += ["--steps", "6"]


def run(*args: str) -> Result:
    return CliRunner().invoke(app, [*SMALL, *args], env={"COLUMNS": "100"})


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--loss", "linear"], "--loss"),
        (["--lr", "0"], "--lr"),
        (["--lr", "-0.1"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--lr", "inf"], "--lr"),
        (["--lr", "1e-50", "--dtype", "float32"], "--lr"),  # rounds to 0: nothing would move
        (["--lr", "1e39", "--dtype", "float32"], "--lr"),  # rounds to inf
        (["--lr", "1e-320"], "--lr"),  # subnormal
        (["--steps", "0"], "--steps"),
        (["--every", "0"], "--every"),
        (["--eval-every", "0"], "--eval-every"),
        (["--samples", "0"], "--samples"),
        (["--samples", "10"], "--samples"),  # not a multiple of --batch 4
        # one target value: the teacher's targets have no spread to be scaled by
        (["--width", "1", "--batch", "1", "--samples", "1", "--variants", "none"], "--samples"),
        (["--batch", "0"], "--batch"),
        (["--optimizer", "rmsprop"], "--optimizer"),
        (["--fail-on", "vanishing"], "--fail-on"),
        (["--variants", "none,bogus"], "--variants"),
        (["--classes", "3"], "--classes"),  # mse has no head
        (["--output", "report.xyz"], "--output"),
        (["--max-memory", "1K"], "memory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], flag: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [*SMALL, *args], env={"COLUMNS": "100"})
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradflow: error: ")
    assert flag in lines[0]
    assert result.stdout == ""


def test_samples_not_a_multiple_of_batch_names_the_nearest() -> None:
    result = run("--samples", "10")
    assert "8 or 12" in result.stderr


def test_save_arrays_into_a_directory_is_refused_before_running(tmp_path: Path) -> None:
    result = run("--save-arrays", str(tmp_path))
    assert result.exit_code == 2 and "--save-arrays" in result.stderr
    assert result.stdout == ""


def test_fail_on_no_progress_and_nonfinite_exit_1() -> None:
    stalled = run("--optimizer", "sgd", "--lr", "1e-12", "--fail-on", "no-progress")
    assert stalled.exit_code == 1, stalled.stderr
    assert "check failed" in stalled.stderr and "no-progress" in stalled.stderr
    fine = run("--optimizer", "sgd", "--lr", "1e-12", "--fail-on", "nonfinite")
    assert fine.exit_code == 0
    blown = run(
        "--optimizer", "sgd", "--lr", "1e150", "--activation", "relu", "--init", "he",
        "--steps", "20", "--fail-on", "nonfinite",
    )  # fmt: skip
    assert blown.exit_code == 1, blown.stderr
    assert "nonfinite" in blown.stderr and "stopped at step" in blown.stderr


def test_fail_on_frozen_also_behind_an_earlier_verdict() -> None:
    # plain sigmoid, 20 layers: layer 1's gradient is far below Adam's ε, so it never moves;
    # its verdict is no-progress, and frozen holds too
    result = run(
        "--depth", "20", "--width", "16", "--batch", "8", "--samples", "32", "--steps", "10",
        "--variants", "none,pre", "--fail-on", "frozen",
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    assert "plain is frozen (--fail-on frozen)" in result.stderr
    assert "pre is" not in result.stderr  # pre learns


def test_a_gradient_rounded_to_zero_is_warned_about_and_not_called_never_moved() -> None:
    """--lr 1e308: the first step moves every weight by ~1e306, the sigmoids saturate, and from
    then on φ′ rounds to 0, so layer 1's gradient is exactly 0 in float64 though the loss is
    not. It stopped moving (frozen), but it did move; and its zero is not a true one."""
    result = run("--optimizer", "sgd", "--lr", "1e308", "--variants", "none", "--format", "json")
    assert result.exit_code == 0, result.stderr
    (summary,) = [r["summary"] for r in json.loads(result.stdout)["runs"]]
    assert summary["verdict"] == "frozen"
    assert summary["reason"] == "frozen: fc1 stopped moving: median update ratio 0 (largest 1)"
    (warning,) = summary["warnings"]
    assert warning.startswith("‖∂L/∂W‖ of fc1 is 0 in float64 at step 1, though the loss is not")
    assert result.stderr == f"gradflow: warning: plain: {warning}\n"
    # ReLU's zeros can be true ones (dead units): no such warning
    relu = run("--optimizer", "sgd", "--lr", "1e-3", "--activation", "relu", "--format", "json")
    assert all(not r["summary"]["warnings"] for r in json.loads(relu.stdout)["runs"])


def test_a_median_update_ratio_of_exactly_0_has_a_zero_status_in_json() -> None:
    """SGD at lr 1e6 saturates every sigmoid at once: after step 0 nothing moves, and layer 1's
    median update ratio is exactly 0. JSON's null alone could not tell 0 from no record."""
    result = run("--optimizer", "sgd", "--lr", "1e6", "--steps", "6", "--format", "json")
    assert result.exit_code == 0, result.stderr
    for r in json.loads(result.stdout)["runs"]:
        summary, first = r["summary"], [s["layers"][0] for s in r["steps"]]
        ratios = sorted(-math.inf if x["update_ratio_status"] == "zero" else x["log10_update_ratio"]
                        for x in first)  # fmt: skip
        median = ratios[len(ratios) // 2] if len(ratios) % 2 else None
        if median == -math.inf:
            assert summary["log10_update_ratio_first"] is None
            assert summary["update_ratio_first_status"] == "zero"
        else:
            assert summary["update_ratio_first_status"] in ("ok", "zero")
    statuses = {
        r["summary"]["update_ratio_first_status"] for r in json.loads(result.stdout)["runs"]
    }
    assert "zero" in statuses


def test_json_schema_and_its_numbers(tmp_path: Path) -> None:
    result = run("--format", "json", "--every", "2", "--eval-every", "3", "--loss", "xent")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["command"] == "train" and doc["config"]["variants"] == ["none", "post", "pre"]
    assert doc["config"]["optimizer"] == "adam" and doc["config"]["lr"] == 1e-3
    for r in doc["runs"]:
        assert [s["step"] for s in r["steps"]] == [0, 2, 4, 5]  # every 2nd, and the last
        assert [e["step"] for e in r["eval"]] == [0, 3, 6]  # and after the last step
        names = [layer["name"] for layer in r["steps"][0]["layers"]]
        assert names[-1] == "head" and len(names) == 5
        for s in r["steps"]:
            for layer in s["layers"]:
                assert layer["grad_weight_status"] == "ok" and layer["grad_weight"] > 0
                assert math.isclose(layer["log10_grad_weight"], math.log10(layer["grad_weight"]))
                assert 0 < layer["update_ratio"] < 1
        summary = r["summary"]
        assert summary["initial_loss"] == r["eval"][0]["loss"]
        assert summary["final_loss"] == r["eval"][-1]["loss"]
        assert summary["verdict"] in {"learns", "frozen", "no-progress"}
        assert summary["stopped"] is None and summary["warnings"] == []
    # every variant starts from the same weights and data: plain and post share a first loss
    # only by accident, but the minibatch order is shared, so eval steps agree
    assert len({tuple(e["step"] for e in r["eval"]) for r in doc["runs"]}) == 1


def test_csv_and_markdown_and_table(tmp_path: Path) -> None:
    result = run("--format", "csv", "--variants", "pre")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    layers = [r for r in rows if r["index"]]
    assert len(layers) == 6 * 4  # 6 recorded steps × 4 layers
    assert {r["label"] for r in rows} == {"pre"}
    assert all(float(r["grad_weight"]) > 0 for r in layers)
    assert rows[-1]["step"] == "6" and rows[-1]["eval_loss"]  # the loss after the last step
    markdown = run("--format", "markdown").stdout
    assert markdown.count("```text") == 3 and "| variant |" in markdown
    table = run().stdout
    for part in ("Loss (minibatch", "log10 ‖∂L/∂W‖", "update ratio", "rule of thumb", "Summary"):
        assert part in table


def test_same_flags_same_bytes_and_replayable_arrays(tmp_path: Path) -> None:
    outputs = []
    for k in range(2):
        report, arrays = tmp_path / f"r{k}.json", tmp_path / f"a{k}.npz"
        result = run("--output", str(report), "--save-arrays", str(arrays), "--loss", "xent")
        assert result.exit_code == 0, result.stderr
        outputs.append((report.read_bytes(), arrays.read_bytes()))
    assert outputs[0] == outputs[1]
    with np.load(tmp_path / "a0.npz") as saved:
        keys = set(saved.files)
        assert {"x", "labels", "order", "W_head", "b_head"} <= keys
        assert {f"W{i}" for i in range(1, 5)} | {f"b{i}" for i in range(1, 5)} <= keys
        assert saved["order"].shape == (6, 4) and saved["x"].shape == (8, 6)


def test_the_summary_note_names_each_wiring_s_last_layer() -> None:
    """A plain network's last layer is fc4, a residual one's block2.fc2: the note named only the
    first variant's."""
    page = " ".join(run("--variants", "pre,none,post").stdout.split())
    assert "last layer (block2.fc2 for pre and post; fc4 for plain)" in page
    page = " ".join(run("--variants", "none").stdout.split())
    assert "last layer (fc4)" in page
