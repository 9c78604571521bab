"""The golden corpus: every number of a dozen varied configurations, as recorded from the engine
before the block-level redesign (``tests/golden/record.py``), must come back.

float64 values agree to 1e-12 relative, float32 values to 1e-4: the files were recorded on one CPU,
and another's BLAS kernels sum in another order (on an Intel Xeon against the AMD EPYC that
recorded them: up to 1.5e-13 in float64; in float32 up to 1.3e-5 through 8 layers of batch norm,
whose centring cancels). A number that is itself the small result of a cancellation is held to
the scale of what cancelled, as rounding is: an activation mean to rtol × its standard deviation,
a cosine to rtol, a bias gradient to rtol × the layer's weight gradient (before batch norm the
true bias gradient is 0 and what is reported is rounding noise), and a log10 to the tolerance of
its value carried through the logarithm. Verdicts and the summary's ratios are left out: their
definitions are allowed to change (and are tested on their own); the per-layer and per-block
numbers they are made from are all here.
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


def _close(new: Any, old: Any, rtol: float, where: str, abs_tol: float = 0.0) -> None:
    if isinstance(old, float) and isinstance(new, float):
        assert math.isclose(new, old, rel_tol=rtol, abs_tol=abs_tol), f"{where}: {new!r} != {old!r}"
    else:
        assert new == old, f"{where}: {new!r} != {old!r}"


def _scale(record: dict[str, Any], key: str) -> float:
    """The record's value of ``key`` as a finite magnitude (from its log10 where it is out of
    float range), or 0."""
    value = record.get(key)
    if isinstance(value, float) and math.isfinite(value) and value != 0.0:
        return abs(value)
    exponent = record.get(f"log10_{key}")
    if isinstance(exponent, float) and -300 < exponent < 300:
        return 10.0**exponent
    return 0.0


def _abs_tol(record: dict[str, Any], key: str, rtol: float) -> float:
    """The absolute part of ``key``'s tolerance: the scale of what its value cancelled from."""
    if key == "cosine":
        return rtol
    if key == "act_mean":
        return rtol * _scale(record, "act_std")
    if key == "grad_bias":
        return rtol * _scale(record, "grad_weight")
    if key.startswith("log10_"):
        base = key.removeprefix("log10_")
        size = _scale(record, base)
        spread = _abs_tol(record, base, rtol) / (size * math.log(10)) if size else 0.0
        return rtol + spread
    return 0.0


def _records(new: list[dict[str, Any]], old: list[dict[str, Any]], rtol: float, where: str) -> None:
    assert len(new) == len(old), where
    for i, (a, b) in enumerate(zip(new, old, strict=True)):
        for key, value in b.items():
            if key in SKIPPED:
                assert a[key] == value
                continue
            _close(a[key], value, rtol, f"{where}[{i}].{key}", _abs_tol(b, key, rtol))


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_numbers_come_back(name: str) -> None:
    old = json.loads((GOLDEN / f"{name}.json").read_text())
    result = CliRunner().invoke(app, [*CASES[name], "--format", "json"])
    assert result.exit_code == 0, result.output
    new = json.loads(result.stdout)
    rtol = 1e-12 if old["config"]["dtype"] == "float64" else 1e-4
    assert len(new["runs"]) == len(old["runs"])
    for run_new, run_old in zip(new["runs"], old["runs"], strict=True):
        label = run_old["label"]
        assert run_new["label"] == label
        for key, value in run_old["spec"].items():
            assert run_new["spec"][key] == value
        for key in SUMMARY_FIELDS:
            _close(run_new["summary"][key], run_old["summary"][key], rtol, f"{label}.{key}",
                   rtol if key.startswith("log10") else 0.0)  # fmt: skip
        _records(run_new["layers"], run_old["layers"], rtol, f"{label}.layers")
        _records(run_new["blocks"], run_old["blocks"], rtol, f"{label}.blocks")
