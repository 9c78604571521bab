"""The golden corpus: every number of a dozen varied configurations, as recorded from the engine
before the block-level redesign (``tests/golden/record.py``), must come back.

float64 values agree to 1e-12 relative; float32 runs within float32 rounding. Verdicts and the
summary's ratios are left out: their definitions are allowed to change (and are tested on
their own); the per-layer and per-block numbers they are made from are all here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gradflow.cli.app import app

GOLDEN = Path(__file__).parent / "golden"
CASES: dict[str, list[str]] = json.loads((GOLDEN / "cases.json").read_text())
SUMMARY_FIELDS = ("loss", "log10_grad_output", "log10_weight_ratio")
SKIPPED = {"index", "name", "first_layer", "last_layer"}


def _close(new: Any, old: Any, rtol: float, where: str) -> None:
    if isinstance(old, float) and isinstance(new, float):
        assert math.isclose(new, old, rel_tol=rtol, abs_tol=rtol if "log10" in where else 0.0), (
            f"{where}: {new!r} != {old!r}"
        )
    else:
        assert new == old, f"{where}: {new!r} != {old!r}"


def _records(new: list[dict[str, Any]], old: list[dict[str, Any]], rtol: float, where: str) -> None:
    assert len(new) == len(old), where
    for i, (a, b) in enumerate(zip(new, old, strict=True)):
        for key, value in b.items():
            if key in SKIPPED:
                assert a[key] == value
                continue
            _close(a[key], value, rtol, f"{where}[{i}].{key}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_numbers_come_back(name: str) -> None:
    old = json.loads((GOLDEN / f"{name}.json").read_text())
    result = CliRunner().invoke(app, [*CASES[name], "--format", "json"])
    assert result.exit_code == 0, result.output
    new = json.loads(result.stdout)
    rtol = 1e-12 if old["config"]["dtype"] == "float64" else 2e-6
    assert len(new["runs"]) == len(old["runs"])
    for run_new, run_old in zip(new["runs"], old["runs"], strict=True):
        label = run_old["label"]
        assert run_new["label"] == label
        for key, value in run_old["spec"].items():
            assert run_new["spec"][key] == value
        for key in SUMMARY_FIELDS:
            _close(run_new["summary"][key], run_old["summary"][key], rtol, f"{label}.{key}")
        _records(run_new["layers"], run_old["layers"], rtol, f"{label}.layers")
        _records(run_new["blocks"], run_old["blocks"], rtol, f"{label}.blocks")
