"""JSON, CSV and markdown exports, parsed back and checked against the engine's reports; atomic
writes and saved arrays."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math

import numpy as np
import pytest

from gradflow.analysis.analyze import compare
from gradflow.analysis.results import Report
from gradflow.analysis.verdict import Thresholds
from gradflow.engine.magnitudes import from_log10
from gradflow.engine.spec import NetworkSpec, Skip
from gradflow.render import formats as export
from gradflow.render import view

SPEC = NetworkSpec(depth=6, width=6, batch=4, skip=Skip.POST, block_size=2)
VARIANTS = (Skip.NONE, Skip.POST, Skip.PRE)


@pytest.fixture(scope="module")
def reports() -> list[Report]:
    return compare(SPEC, VARIANTS)


def strict_loads(text: str) -> object:
    """json.loads that refuses NaN and Infinity tokens."""

    def refuse(token: str) -> None:
        raise AssertionError(f"non-strict JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def with_specials(report: Report) -> Report:
    """The report with layer gradients replaced by every special case, in layer order:
    zero, nan, inf, beyond float64 below, beyond float64 above, ordinary."""
    log10 = np.array([-math.inf, math.nan, math.inf, -2000.0, 400.0, -3.0])
    layers = dataclasses.replace(report.layers, grad_weight=from_log10(log10))
    return report._replace(layers=layers)


def test_json_holds_the_engine_numbers(reports: list[Report]) -> None:
    document = strict_loads(export.to_json("compare", SPEC, reports))
    assert isinstance(document, dict)
    assert document["schema_version"] == export.SCHEMA_VERSION
    assert document["config"]["variants"] == ["none", "post", "pre"]
    assert document["config"]["depth"] == SPEC.depth
    assert [run["label"] for run in document["runs"]] == ["plain", "post", "pre"]
    for run, report in zip(document["runs"], reports, strict=True):
        layers = report.layers
        assert [row["index"] for row in run["layers"]] == list(range(1, len(layers) + 1))
        assert [row["name"] for row in run["layers"]] == list(layers.name)
        np.testing.assert_array_equal(
            [row["grad_weight"] for row in run["layers"]], layers.grad_weight.value
        )
        np.testing.assert_array_equal(
            [row["log10_grad_input"] for row in run["layers"]], layers.grad_input.log10
        )
        np.testing.assert_array_equal([row["act_std"] for row in run["layers"]], layers.act_std)
        assert run["summary"]["verdict"] == str(report.summary.verdict)
        assert run["summary"]["log10_weight_ratio"] == report.summary.log10_weight_ratio
        assert run["spec"]["skip"] == str(report.spec.skip)
        assert len(run["blocks"]) == len(report.blocks)
        if len(report.blocks):
            np.testing.assert_array_equal(
                [b["grad_skip"] for b in run["blocks"]], report.blocks.grad_skip.value
            )
            np.testing.assert_array_equal(
                [b["last_layer"] for b in run["blocks"]], report.blocks.last_layer
            )
    gains = [run["decades_vs_first"] for run in document["runs"]]
    base = reports[0].summary.log10_weight_ratio
    assert gains == [r.summary.log10_weight_ratio - base for r in reports]


def test_json_is_strict_beyond_float_range(reports: list[Report]) -> None:
    special = with_specials(reports[0])
    document = strict_loads(export.to_json("analyze", special.spec, [special]))
    assert isinstance(document, dict)
    rows = document["runs"][0]["layers"]
    got = [(r["grad_weight"], r["log10_grad_weight"], r["grad_weight_status"]) for r in rows]
    assert got[0] == (0.0, None, "zero")
    assert got[1] == (None, None, "nan")
    assert got[2] == (None, None, "inf")
    assert got[3][0] is None and got[3][2] == "underflow"
    assert got[3][1] == pytest.approx(-2000.0)
    assert got[4][0] is None and got[4][2] == "overflow"
    assert got[4][1] == pytest.approx(400.0)
    assert got[5][0] == pytest.approx(1e-3) and got[5][2] == "ok"


def test_json_is_byte_identical_for_the_same_run(reports: list[Report]) -> None:
    again = compare(SPEC, VARIANTS)
    assert export.to_json("compare", SPEC, reports) == export.to_json("compare", SPEC, again)


def test_csv_one_row_per_layer_per_variant(reports: list[Report]) -> None:
    rows = list(csv.DictReader(io.StringIO(export.to_csv(reports))))
    assert len(rows) == sum(len(r.layers) for r in reports)
    for report in reports:
        mine = [row for row in rows if row["label"] == report.label]
        assert [row["name"] for row in mine] == list(report.layers.name)
        np.testing.assert_array_equal(
            [float(row["grad_weight"]) for row in mine], report.layers.grad_weight.value
        )
        assert {row["skip"] for row in mine} == {str(report.spec.skip)}
        assert {row["finite"] for row in mine} == {"true"}


def test_csv_leaves_non_finite_cells_empty(reports: list[Report]) -> None:
    rows = list(csv.DictReader(io.StringIO(export.to_csv([with_specials(reports[0])]))))
    assert [row["grad_weight_status"] for row in rows] == [
        "zero", "nan", "inf", "underflow", "overflow", "ok"
    ]  # fmt: skip
    assert rows[1]["grad_weight"] == "" and rows[1]["log10_grad_weight"] == ""
    assert float(rows[3]["log10_grad_weight"]) == pytest.approx(-2000.0)


def test_markdown_has_tables_and_chart(reports: list[Report]) -> None:
    text = export.to_markdown("compare", reports, max_rows=3, width=100, unicode=False)
    assert text.count("```text") == 1
    tables = [line for line in text.splitlines() if line.startswith("|")]
    header = next(line for line in tables if "plain ‖∂L/∂W‖" in line)
    assert "post÷plain decades" in header
    layer_rows = [line for line in tables if line.startswith(("| 1-2 |", "| 3-4 |", "| 5-6 |"))]
    assert len(layer_rows) == 3  # six layers in at most three rows
    assert "Split at the addition" in text
    assert view.comparison_sentence(reports) in text


ZERO_INIT = SPEC.replace(depth=8, zero_init_residual=True)


@pytest.fixture(scope="module")
def zero_init() -> list[Report]:
    return compare(ZERO_INIT, VARIANTS)


def test_json_ratio_with_an_exact_zero_is_null_with_its_status(zero_init: list[Report]) -> None:
    document = strict_loads(export.to_json("compare", ZERO_INIT, zero_init))
    assert isinstance(document, dict)
    runs = {run["label"]: run for run in document["runs"]}
    for label in ("post", "pre"):  # the first layer's gradient is 0 by construction
        summary = runs[label]["summary"]
        assert summary["log10_weight_ratio"] is None
        assert summary["weight_ratio_status"] == "zero"
        assert runs[label]["decades_vs_first"] is None
        assert runs[label]["decades_vs_first_status"] == "zero"
    plain = runs["plain"]["summary"]
    assert plain["weight_ratio_status"] == "ok" and plain["log10_weight_ratio"] is not None
    for name in ("grad_output", "gain", "signal"):
        assert plain[f"{name}_status"] == "ok"
        assert plain[f"log10_{name}"] == getattr(zero_init[0].summary, f"log10_{name}")


def test_json_zero_weights_have_a_status(zero_init: list[Report]) -> None:
    """A zero-initialised branch end has ‖W‖ = 0: its grad_to_weight is no ratio, and the record
    says why (grad_to_weight and its status keep their values for old readers)."""
    document = strict_loads(export.to_json("compare", ZERO_INIT, zero_init))
    assert isinstance(document, dict)
    for run in document["runs"]:
        for layer in run["layers"]:
            zero = run["label"] != "plain" and layer["index"] % 2 == 0
            assert layer["weight_norm_status"] == ("zero" if zero else "ok")
            assert (layer["weight_norm"] == 0.0) == zero
            if zero:
                assert layer["grad_to_weight"] is None and layer["log10_grad_to_weight"] is None


def test_json_lists_the_findings_and_every_threshold(reports: list[Report]) -> None:
    strict = Thresholds(vanish_below=0.5, gain_below=0.9, signal_above=1.01)
    judged = compare(SPEC, VARIANTS, thresholds=strict)
    document = strict_loads(export.to_json("compare", SPEC, judged))
    assert isinstance(document, dict)
    config = document["config"]
    for name in ("vanish_below", "explode_above", "gain_below", "gain_above",
                 "signal_below", "signal_above"):  # fmt: skip
        assert config[name] == getattr(strict, name)
    total = 0
    for run, report in zip(document["runs"], judged, strict=True):
        got = run["summary"]["findings"]
        assert [f["quantity"] for f in got] == [str(f.quantity) for f in report.summary.findings]
        for record, finding in zip(got, report.summary.findings, strict=True):
            assert record["log10"] == finding.log10
            assert record["status"] == "ok"
            assert record["verdict"] == str(finding.verdict)
            assert record["threshold"] == finding.threshold
            assert record["limit"] == finding.limit == getattr(strict, finding.threshold)
        total += len(got)
    assert total > 0


def _titles(lines: list[str]) -> list[str]:
    """The sections a page shows, in order, by their title words."""
    marks = ("gradflow compare", "Showing", "Gradient per layer", "Split at the addition",
             "per layer, log scale", "Summary", "plain is", "Compared with")  # fmt: skip
    order = []
    for line in lines:
        for mark in marks:
            if mark in line and mark not in order:
                order.append(mark)
    return order


def test_markdown_and_the_terminal_page_share_one_order(reports: list[Report]) -> None:
    from rich.console import Console, Group

    from gradflow.render import table

    text = export.to_markdown("compare", reports, max_rows=None, width=100, unicode=False)
    buffer = io.StringIO()
    page = table.page("compare", reports, max_rows=None, width=100, unicode=False)
    Console(file=buffer, width=100, color_system=None).print(Group(*page))
    sections = view.sections("compare", reports, max_rows=None, unicode=False)
    assert len(sections) == 8
    assert _titles(text.splitlines()) == _titles(buffer.getvalue().splitlines())
    assert len(_titles(text.splitlines())) == len(sections)


TABLE = export.Table(
    ["index", "name", "value", "flag", "mixed", 'odd key %s "q"', "nested"],
    [
        [1, 2, 3],
        ["dense 1", 'quote " and \\ slash', "ünïcode, comma"],
        [1e-320, 1.5e300, -0.0],
        [True, False, True],
        [None, 2.5, "text"],
        [0, -7, 10**20],
        [[1, 2], {"a": None}, []],
    ],
)


@pytest.mark.parametrize(("level", "expand"), [(0, 1), (3, 4), (0, 4), (2, 2), (1, 5)])
def test_a_table_is_written_as_the_list_of_its_records(level: int, expand: int) -> None:
    """Column by column, or record by record through the encoder: the same text, at any depth
    of indentation, for every kind of value JSON has (and keys that look like templates)."""
    for keep in (slice(None), slice(0, 1), slice(0, 0)):
        table = export.Table(TABLE.keys, [column[keep] for column in TABLE.columns])
        written = export.pretty_json({"rows": table}, level, expand)
        assert written == export.pretty_json({"rows": table.records()}, level, expand)
        if table.columns[0]:
            rows = zip(*table.columns, strict=True)
            expected = [dict(zip(table.keys, row, strict=True)) for row in rows]
            assert json.loads(written)["rows"] == expected


def test_a_table_refuses_what_json_cannot_hold() -> None:
    """NaN and infinity are refused as the encoder refuses them (the exports write null)."""
    for bad in (math.nan, math.inf):
        table = export.Table(["x"], [[1.0, bad]])
        with pytest.raises(ValueError, match="JSON compliant"):
            export.pretty_json({"rows": table}, 0, 2)


def test_summary_keys_name_every_field_of_a_summary_record_in_order() -> None:
    from gradflow.analysis.analyze import analyze
    from gradflow.engine.spec import NetworkSpec
    from gradflow.render.formats import SUMMARY_KEYS, summary_record

    record = summary_record(analyze(NetworkSpec(depth=2, width=4, batch=2)))
    assert tuple(record) == SUMMARY_KEYS
