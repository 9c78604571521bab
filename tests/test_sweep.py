"""gradflow sweep: the grid, every bad input, a run against analyze, executors giving the same
bytes (serial, process pool, a real Dask cluster), jsonl resume and Ctrl-C, the chart and the
reading against independent computations. Tiny networks throughout."""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from gradflow.analysis.analyze import analyze
from gradflow.analysis.sweep import Axis, PointResult, Spread, aggregate, points, runs
from gradflow.analysis.theory import predict
from gradflow.analysis.verdict import Verdict
from gradflow.cli import executors
from gradflow.cli.app import app
from gradflow.cli.errors import BadInput
from gradflow.cli.sweep_plan import parse_axis
from gradflow.engine.spec import NetworkSpec, Skip
from gradflow.render import sweep_view
from gradflow.render.formats import summary_record

TINY = ["--width", "4", "--batch", "3"]
GRID = ["--vary", "depth=2,4", *TINY, "--seeds", "2"]  # 2 points × 3 variants × 2 seeds


def sweep(*args: str, **kwargs: Any) -> Result:
    return CliRunner().invoke(app, ["sweep", *args], **kwargs)


def refused(result: Result, *words: str) -> None:
    """Exit 2, one line on stderr naming what is wrong, nothing on stdout."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradflow: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert result.stdout == ""


# ---- the grid ---------------------------------------------------------------------------------


def test_comma_list_range_and_geometric_range() -> None:
    assert parse_axis("depth=10,20,50").values == (10, 20, 50)
    assert parse_axis("weight-var=0.5:2.5:5").values == (0.5, 1.0, 1.5, 2.0, 2.5)
    geometric = parse_axis("depth=10:1000:7:log")
    expected = [round(10 * 100 ** (i / 6)) for i in range(7)]  # 10, 22, 46, 100, 215, 464, 1000
    assert list(geometric.values) == expected and geometric.geometric
    # integers round to distinct values: 1..4 in 7 log steps has repeats, dropped in order
    assert parse_axis("depth=1:4:7:log").values == (1, 2, 3, 4)
    assert parse_axis("activation=tanh,ReLU").values == ("tanh", "relu")
    assert parse_axis("depth=10,100,1000").geometric
    assert parse_axis("depth=10,20,50,100,200").geometric  # 1-2-5 steps
    assert not parse_axis("depth=10,20,30").geometric
    # a range that crosses 0 hits it exactly, and integer ranges round each point as the step
    # puts it (a tie to even): what a --resume made by an earlier version expects
    assert parse_axis("skip-scale=-1:2:4").values == (-1.0, 0.0, 1.0, 2.0)
    assert 0.0 in parse_axis("residual-scale=-2:3:31").values
    assert parse_axis("depth=23:1190:13").values[2] == 218
    # ends whose difference or ratio would leave the float range
    wide = parse_axis("residual-scale=1e-300:1e300:3:log").values
    assert wide == (1e-300, 1.0, 1e300)
    assert parse_axis("bias-var=0:1.7e308:3").values == (0.0, 8.5e307, 1.7e308)


def test_grid_order_first_flag_slowest_then_variant_then_seed() -> None:
    axes = [Axis("depth", (2, 4)), Axis("width", (3, 5))]
    assert [dict(p) for p in points(axes)] == [
        {"depth": 2, "width": 3}, {"depth": 2, "width": 5},
        {"depth": 4, "width": 3}, {"depth": 4, "width": 5},
    ]  # fmt: skip
    listed = runs(axes, [Skip.NONE, Skip.PRE], seed=7, seeds=2)
    assert len(listed) == 16
    assert [(r.point, r.variant, r.seed) for r in listed[:4]] == [
        (0, Skip.NONE, 7), (0, Skip.NONE, 8), (0, Skip.PRE, 7), (0, Skip.PRE, 8)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--vary", "colour=1,2"], ["unknown flag", "depth"]),
        (["--vary", "depth="], ["no values"]),
        (["--vary", "depth"], ["FLAG=VALUES"]),
        (["--vary", "depth=10,,20"], ["empty value"]),
        (["--vary", "depth=ten"], ["expected a number"]),
        (["--vary", "depth=2.5"], ["integer"]),
        (["--vary", "depth=1:10"], ["start:stop:count"]),
        (["--vary", "depth=1:10:1"], ["count"]),
        (["--vary", "depth=0:10:3:log"], [":log"]),
        (["--vary", "activation=tanh,nope"], ["unknown value", "nope"]),
        (["--vary", "activation=a:b:3"], ["comma list"]),
        (["--vary", "depth=0,10"], ["depth=0", "at least 1"]),
        (["--vary", "weight-var=-1,1"], ["weight-var=-1", "positive"]),
        (["--vary", "depth=3,4"], ["depth=3", "multiple"]),  # post/pre need blocks of 2
        (["--vary", "depth=2,2"], ["listed twice"]),
        (["--vary", "depth=2:2:3"], ["one value only"]),  # ran a one-point sweep
        (["--vary", "depth=4:4.4:3"], ["one value only"]),  # rounded to 4, 4, 4
        (["--vary", "depth=2", "--vary", "depth=4"], ["varied twice"]),
        (["--vary", "depth=2", "--seeds", "0"], ["--seeds"]),
        (
            ["--vary", "depth=1:1000:1000", "--vary", "weight-var=1:40:40"],
            ["120,000 runs", "--yes"],
        ),
        # a flag both varied and set: the grid would silently override the flag
        (["--vary", "depth=2,4", "--depth", "6"], ["depth is also given as --depth"]),
        # a refusal whose message names a varied flag says at which point
        (["--vary", "loss=xent,mse", "--classes", "3"], ["loss=mse with plain", "--classes"]),
        # ends near the float range: the points are refused by value, not by a traceback
        (["--vary", "depth=-1.7e308:1.7e308:3"], ["depth=-", "at least 1"]),
        (["--vary", "depth=1e-300:1e300:3:log"], ["depth=0", "at least 1"]),
        (["--vary", "bias-var=-1.7e308:1.7e308:3"], ["bias-var=-1.7e+308", "non-negative"]),
        # a range too long to list is refused before it is listed
        (["--vary", "depth=2:4:100000000000000000000"], ["count", "at most 1,000,000"]),
        (["--vary", "residual-scale=1:2:100000000", "--yes"], ["count", "at most"]),
        (["--vary", "depth=2:4:" + "9" * 5000], ["count", "at most"]),  # past int()'s limit
        (["--vary", "depth=2:4:²"], ["count", "at least 2"]),  # a digit int() does not take
        (["--vary", "depth=2", "--jobs", "0"], ["--jobs"]),
        (["--vary", "depth=2", "--jobs", "2", "--scheduler", "tcp://h:1"], ["--jobs"]),
        (["--vary", "depth=2", "--resume"], ["--resume", "jsonl"]),
        (
            ["--vary", "depth=2", "--resume", "--output", "/dev/null", "--format", "jsonl"],
            ["--resume", "regular file"],
        ),
        (["--vary", "depth=2", "--variants", "pre,bad"], ["--variants"]),
        (["--vary", "depth=2", "--max-memory", "1K"], ["memory", "need about"]),
        (["--vary", "depth=2", "--output", "/nonexistent/x.json"], ["--output", "directory"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], words: list[str]) -> None:
    refused(sweep(*args, *TINY), *words)


def test_a_grid_too_large_to_list_is_refused_with_yes_too() -> None:
    """3,000,000 runs with --yes took minutes and gigabytes to plan; in a process of its own
    with a deadline, so that a regression fails here rather than holding up the suite."""
    args = ["sweep", "--vary", "bias-var=0:1:1000", "--vary", "skip-scale=0:1:1000", "--yes",
            *TINY]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "gradflow", *args], capture_output=True, text=True, timeout=20,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "gradflow: error: --vary: the grid holds 3,000,000 runs, over 1,000,000; split it\n"
    )


def test_a_missing_vary_says_what_to_give() -> None:
    refused(sweep(*TINY), "--vary: is required, e.g. --vary depth=10,20,50")


def test_a_refusal_that_names_a_varied_field_says_at_which_point() -> None:
    result = sweep("--vary", "batch=1,2", "--norm", "batch", "--width", "4")  # TINY sets batch
    refused(result, "--vary: batch=1 with plain: --norm", "batch ≥ 2")


def test_classes_set_for_a_grid_of_xent_points() -> None:
    """--classes with --vary loss=xent: every point has the head it sets."""
    result = sweep("--vary", "loss=xent", "--classes", "3", *TINY, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["config"]["classes"] == 3


def test_scheduler_without_the_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails
    refused(
        sweep("--vary", "depth=2", "--scheduler", "tcp://127.0.0.1:8786", *TINY),
        "pip install 'gradflow-cli[dask]'",
    )


def test_unreachable_scheduler_is_its_own_error(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed")
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", 0.3)
    refused(
        sweep("--vary", "depth=2", "--scheduler", "tcp://127.0.0.1:1", *TINY),
        "--scheduler",
        "cannot reach",
    )


# ---- a run is analyze -------------------------------------------------------------------------


def test_every_run_is_analyze_with_the_same_flags_and_seed() -> None:
    result = sweep(*GRID, "--seed", "5", "--activation", "tanh", "--jobs", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert len(document["runs"]) == 12
    for run in document["runs"]:
        spec = NetworkSpec(
            depth=run["values"]["depth"], width=4, batch=3, skip=run["variant"],
            activation="tanh", seed=run["seed"],
        )  # fmt: skip
        assert run["summary"] == summary_record(analyze(spec))
    assert [r["seed"] for r in document["runs"][:4]] == [5, 6, 5, 6]
    # and as the analyze command prints it
    one = document["runs"][3]
    shown = CliRunner().invoke(
        app, ["analyze", "--depth", "2", *TINY, "--skip", "post", "--activation", "tanh",
              "--seed", "6", "--format", "json"],
    )  # fmt: skip
    assert (one["variant"], one["seed"]) == ("post", 6)
    assert json.loads(shown.stdout)["runs"][0]["summary"] == one["summary"]


def test_points_are_median_min_max_over_the_runs() -> None:
    result = sweep(*GRID, "--seeds", "3", "--jobs", "1", "--format", "json")
    document = json.loads(result.stdout)
    for point in document["points"]:
        mine = [
            r["summary"] for r in document["runs"]
            if r["values"] == point["values"] and r["variant"] == point["variant"]
        ]  # fmt: skip
        assert len(mine) == 3
        for name in ("log10_weight_ratio", "log10_gain"):
            xs = [s[name] for s in mine]
            assert point["median"][name] == pytest.approx(float(np.median(xs)), abs=0)
            assert (point["min"][name], point["max"][name]) == (min(xs), max(xs))
        counted = {v: sum(s["verdict"] == v for s in mine) for v in point["verdicts"]}
        assert point["verdicts"] == counted and sum(counted.values()) == 3


def test_spread_of_infinities_and_nan() -> None:
    s = Spread.of([-math.inf, -math.inf, 2.0])
    assert (s.median, s.low, s.high) == (-math.inf, -math.inf, 2.0)
    assert Spread.of([-math.inf, -math.inf]).median == -math.inf  # not inf - inf
    assert Spread.of([math.nan, 1.0, 3.0]).median == 2.0  # nan: no number, left out
    assert math.isnan(Spread.of([math.nan]).median)


# ---- executors: the same bytes ----------------------------------------------------------------


def test_serial_and_two_jobs_give_the_same_bytes(tmp_path: Path) -> None:
    """jsonl (every run's summary, in grid order) and the reading of the aggregates."""
    serial = sweep(*GRID, "--jobs", "1", "--output", str(tmp_path / "serial.jsonl"))
    pooled = sweep(*GRID, "--jobs", "2", "--output", str(tmp_path / "pooled.jsonl"))
    assert serial.exit_code == pooled.exit_code == 0, pooled.output
    written = (tmp_path / "serial.jsonl").read_bytes()
    assert written == (tmp_path / "pooled.jsonl").read_bytes()
    assert serial.stdout == pooled.stdout
    lines = [json.loads(line) for line in written.splitlines()]  # in grid order
    assert [(r["values"]["depth"], r["variant"], r["seed"]) for r in lines[:3]] == [
        (2, "none", 0), (2, "none", 1), (2, "post", 0)
    ]  # fmt: skip


def test_in_order_releases_each_run_once_all_before_it_are_done() -> None:
    order = executors.InOrder()
    released = []
    for index in (2, 0, 3, 1):
        order.add(index, {"r": index})
        while (ready := order.ready()) is not None:
            assert ready[1] == {"r": ready[0]}
            released.append(ready[0])
            if len(released) == 1:
                assert order.ready() == ready  # next until taken
            order.taken()
        assert released == {2: [], 0: [0], 3: [0], 1: [0, 1, 2, 3]}[index]


def test_a_cluster_that_fails_under_a_run_is_one_line_and_a_run_s_bug_its_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cluster losing its scheduler (CommClosedError) or a worker (KilledWorker, as one out
    of memory) is not gradflow's bug: one line, exit 2. An error of the run itself still is
    (exit 70)."""
    distributed = pytest.importorskip("distributed")
    real = executors.run_summary

    def failing(error: BaseException) -> Any:
        def run(task: executors.Task) -> executors.Record:
            if task[0].depth == 4:
                raise error
            return real(task)

        return run

    with distributed.LocalCluster(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0"
    ) as cluster:
        address = cluster.scheduler_address
        monkeypatch.setattr(
            executors,
            "run_summary",
            failing(distributed.comm.core.CommClosedError("scheduler lost")),
        )
        lost = sweep(*GRID, "--scheduler", address, "-q")
        monkeypatch.setattr(executors, "run_summary", failing(ZeroDivisionError("a bug")))
        bug = sweep(*GRID, "--scheduler", address, "-q")
    refused(lost, "--scheduler: the Dask cluster failed during the sweep: CommClosedError")
    assert bug.exit_code == 70 and "ZeroDivisionError: a bug" in bug.stderr


def test_a_scheduler_address_that_never_answers_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that accepts and says nothing (the dashboard's port for the scheduler's) held
    the sweep for good: Dask's own timeout covers connecting only. Tried on a thread with a
    deadline of its own, so that a regression fails here rather than holding up the suite."""
    pytest.importorskip("distributed")
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", 1)
    outcome: list[object] = []

    def attempt(address: str) -> None:
        try:
            outcome.append(executors.Dask(address))
        except BadInput as refusal:
            outcome.append(refusal)

    with socket.create_server(("127.0.0.1", 0)) as server:
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        trying = threading.Thread(target=attempt, args=(address,), daemon=True)
        trying.start()
        trying.join(timeout=10)
        assert not trying.is_alive(), "no answer held the client"
    (refusal,) = outcome
    assert isinstance(refusal, BadInput)
    assert refusal.message.endswith("TimeoutError: no answer within 1 s")


def test_a_pool_worker_that_died_is_one_line() -> None:
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    died: Future[executors.Record] = Future()
    died.set_exception(BrokenProcessPool("a child process terminated abruptly"))
    with pytest.raises(BadInput, match="a worker process died"):
        executors._result(died)


def test_a_dask_local_cluster_gives_the_same_bytes() -> None:
    distributed = pytest.importorskip("distributed")
    serial = sweep(*GRID, "--jobs", "1", "--format", "json")
    with distributed.LocalCluster(  # over TCP, as a scheduler elsewhere is reached
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0",
        protocol="tcp",
    ) as cluster:  # fmt: skip
        remote = sweep(*GRID, "--scheduler", cluster.scheduler_address, "--format", "json")
    assert remote.exit_code == 0, remote.output
    assert remote.stdout_bytes == serial.stdout_bytes


# ---- jsonl: Ctrl-C keeps what finished; --resume completes it -------------------------------


class Counting:
    """run_summary that counts its calls and raises Ctrl-C at call ``stop``."""

    def __init__(self, stop: int | None = None) -> None:
        self.calls, self.stop = 0, stop
        self.real = executors.run_summary

    def __call__(self, task: executors.Task) -> executors.Record:
        self.calls += 1
        if self.calls == self.stop:
            raise KeyboardInterrupt
        return self.real(task)


def test_ctrl_c_exits_130_keeping_finished_runs_and_resume_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = tmp_path / "whole.jsonl"
    assert sweep(*GRID, "--jobs", "1", "--output", str(whole)).exit_code == 0
    part = tmp_path / "part.jsonl"
    stopping = Counting(stop=6)
    monkeypatch.setattr(executors, "run_summary", stopping)
    interrupted = sweep(*GRID, "--jobs", "1", "--output", str(part))
    assert interrupted.exit_code == 130
    assert interrupted.stderr.strip() == "gradflow: interrupted"  # no traceback
    assert part.read_bytes() == b"".join(whole.read_bytes().splitlines(keepends=True)[:5])

    # a line cut short, as a kill in mid-write leaves it
    part.write_bytes(part.read_bytes() + whole.read_bytes().splitlines(keepends=True)[5][:40])
    counting = Counting()
    monkeypatch.setattr(executors, "run_summary", counting)
    resumed = sweep(*GRID, "--jobs", "1", "--output", str(part), "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert counting.calls == 12 - 5  # only the runs not in the file
    assert part.read_bytes() == whole.read_bytes()
    again = sweep(*GRID, "--jobs", "1", "--output", str(whole))
    assert resumed.stdout == again.stdout  # the reading of the aggregates


def test_resume_aggregates_equal_an_uninterrupted_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The aggregates come from the runs read back from the file and those run now."""
    whole = tmp_path / "whole.jsonl"
    sweep(*GRID, "--jobs", "1", "--output", str(whole))
    lines = whole.read_bytes().splitlines(keepends=True)
    part = tmp_path / "part.jsonl"
    part.write_bytes(b"".join(lines[:7]))
    captured: list[list[PointResult]] = []
    real = aggregate

    def keep(*args: Any, **kwargs: Any) -> list[PointResult]:
        captured.append(real(*args, **kwargs))
        return captured[-1]

    monkeypatch.setattr("gradflow.cli.execute_sweep.aggregate", keep)
    sweep(*GRID, "--jobs", "1", "--output", str(part), "--resume")
    sweep(*GRID, "--jobs", "1", "--output", str(tmp_path / "fresh.jsonl"))
    assert len(captured) == 2 and captured[0] == captured[1]


def test_resume_refuses_a_file_of_another_sweep(tmp_path: Path) -> None:
    other = tmp_path / "other.jsonl"
    sweep("--vary", "depth=2,4", *TINY, "--jobs", "1", "--output", str(other))
    refused(
        sweep(*GRID, "--activation", "tanh", "--output", str(other), "--resume"),
        "another sweep",
    )


@pytest.mark.parametrize(
    "content",
    [b"not json\n", b"notes\n" + b"x" * 10, b"notes without a newline", b'{"a": 1}\n'],
    ids=["not-json", "text", "one-line", "other-json"],
)
def test_resume_refuses_a_file_that_is_no_sweeps_and_leaves_it(
    tmp_path: Path, content: bytes
) -> None:
    """Only a last line cut short (the start of a record) is taken for an interruption; any
    other file is refused, not emptied."""
    path = tmp_path / "notes.jsonl"
    path.write_bytes(content)
    refused(sweep(*GRID, "--jobs", "1", "--output", str(path), "--resume"), "--resume")
    assert path.read_bytes() == content


def test_resume_drops_a_record_cut_short_and_completes_the_file(tmp_path: Path) -> None:
    whole = tmp_path / "whole.jsonl"
    sweep(*GRID, "--jobs", "1", "--output", str(whole))
    lines = whole.read_bytes().splitlines(keepends=True)
    for cut in (3, 40):  # within '{"values": ' and after it
        part = tmp_path / f"part{cut}.jsonl"
        part.write_bytes(b"".join(lines[:5]) + lines[5][:cut])
        assert sweep(*GRID, "--jobs", "1", "--output", str(part), "--resume").exit_code == 0
        assert part.read_bytes() == whole.read_bytes()


@pytest.mark.parametrize("change", ["summary field dropped", "crlf", "compact", "field added"])
def test_resume_refuses_records_gradflow_did_not_write_and_leaves_them(
    tmp_path: Path, change: str
) -> None:
    """A record without its summary's warnings was taken, the rest of the runs appended, and
    the sweep then crashed (exit 70); CRLF or reformatted lines left a file whose bytes
    differ from the sweep's own. Each is refused before anything is written."""
    whole = tmp_path / "whole.jsonl"
    sweep(*GRID, "--jobs", "1", "--output", str(whole))
    lines = whole.read_text().splitlines()[:3]
    record = json.loads(lines[1])
    if change == "summary field dropped":
        del record["summary"]["warnings"]
        lines[1] = json.dumps(record)
    elif change == "field added":
        record["note"] = "mine"
        lines[1] = json.dumps(record)
    elif change == "compact":
        lines[1] = json.dumps(record, separators=(",", ":"))
    content = ("\r\n" if change == "crlf" else "\n").join(lines).encode() + b"\n"
    part = tmp_path / "part.jsonl"
    part.write_bytes(content)
    result = sweep(*GRID, "--jobs", "1", "--output", str(part), "--resume")
    refused(result, "--resume", "did not write (line ")
    assert part.read_bytes() == content


def test_resume_refuses_runs_judged_with_other_thresholds(tmp_path: Path) -> None:
    """A record holds its ratios and verdict, not the thresholds: its verdict is judged again
    with the thresholds given now, and a file whose verdicts they would change is refused."""
    whole = tmp_path / "whole.jsonl"
    sweep(*GRID, "--jobs", "1", "--output", str(whole))
    part = tmp_path / "part.jsonl"
    part.write_bytes(b"".join(whole.read_bytes().splitlines(keepends=True)[:5]))
    before = part.read_bytes()
    strict = ["--vanish-below", "0.9", "--gain-below", "0.9"]
    refused(sweep(*GRID, *strict, "--jobs", "1", "--output", str(part), "--resume"), "thresholds")
    assert part.read_bytes() == before
    assert sweep(*GRID, "--jobs", "1", "--output", str(part), "--resume").exit_code == 0
    assert part.read_bytes() == whole.read_bytes()


# ---- theory: analysis.theory.predict per point ----------------------------------------------


def test_theory_is_predict_at_each_point_and_null_where_none_applies() -> None:
    result = sweep(*GRID, "--theory", "--jobs", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    for point in json.loads(result.stdout)["points"]:
        spec = NetworkSpec(depth=point["values"]["depth"], width=4, batch=3,
                           skip=point["variant"])  # fmt: skip
        prediction = predict(spec)
        assert prediction is not None
        assert point["theory"]["log10_gain"] == prediction.log10_gain
        residual = point["median"]["log10_gain"] - prediction.log10_gain
        assert point["theory"]["measured_minus_theory"] == pytest.approx(residual, abs=1e-12)
    normalised = sweep(*GRID, "--norm", "layer", "--theory", "--jobs", "1", "--format", "json")
    assert all(p["theory"] is None for p in json.loads(normalised.stdout)["points"])


def test_theory_tracks_wide_tanh_networks_and_the_reading_quotes_its_slope(
    tmp_path: Path,
) -> None:
    """Width 256, 3 seeds: the prediction within 0.15 decades of the median, plain and pre."""
    written = tmp_path / "sweep.json"
    read = sweep("--vary", "depth=10,40", "--width", "256", "--activation", "tanh",
                 "--variants", "none,pre", "--seeds", "3", "--theory", "--jobs", "1",
                 "--output", str(written)).stdout  # the reading: stdout  # fmt: skip
    document = json.loads(written.read_text())
    for point in document["points"]:
        assert abs(point["theory"]["measured_minus_theory"]) <= 0.15, point
    for variant, unit, scale in (("none", "layer", 1), ("pre", "block", 2)):
        mine = [p for p in document["points"] if p["variant"] == variant]
        depths = [p["values"]["depth"] for p in mine]
        measured = np.polyfit(depths, [p["median"]["log10_gain"] for p in mine], 1)[0] * scale
        predicted = np.polyfit(depths, [p["theory"]["log10_gain"] for p in mine], 1)[0] * scale
        label = "plain" if variant == "none" else variant
        verb = "loses" if measured < 0 else "gains"
        expected = f"{label} {verb} {abs(measured):.2f} decades per {unit}"
        assert (measured < 0) == (predicted < 0)  # the theory's direction goes unsaid
        assert f"{expected} (theory {abs(predicted):.2f})" in read


def test_reading_of_one_value_gives_its_gain_not_a_slope_or_an_arrow() -> None:
    depth = Axis("depth", (4,), geometric=False)
    (line,) = sweep_view.reading(
        [depth], [result_at(4, Skip.NONE, -3.0, -3.0, -3.0)], NetworkSpec()
    )
    assert line == "plain: gain -3.00 at depth 4"  # not "no finite slope"
    loss = Axis("loss", ("mse",), geometric=False)
    result = dataclasses.replace(
        result_at(4, Skip.NONE, -1.0, -1.0, -1.0), values=(("loss", "mse"),)
    )
    (line,) = sweep_view.reading([loss], [result], NetworkSpec())
    assert line == "plain: gain -1.00 at loss mse"


def test_reading_says_so_where_the_theory_slope_goes_the_other_way() -> None:
    """The measured gain falls 0.5 decades a layer where the theory has it rise 0.1."""
    axis = Axis("depth", (2, 4, 8), geometric=False)
    results = [
        dataclasses.replace(result_at(d, Skip.NONE, -0.5 * d, -0.5 * d, -0.5 * d), theory=0.1 * d)
        for d in axis.values
    ]
    (line,) = sweep_view.reading([axis], results, NetworkSpec())
    assert "plain loses 0.50 decades per layer (theory gains 0.10)" in line


# ---- the chart and the reading ---------------------------------------------------------------


def result_at(depth: int, variant: Skip, median: float, low: float, high: float) -> PointResult:
    counts = dict.fromkeys(Verdict, 0)
    return PointResult(0, (("depth", depth),), variant, Spread(0, 0, 0),
                       Spread(median, low, high), counts, None)  # fmt: skip


def test_chart_puts_marks_at_their_values_on_a_log_x_axis() -> None:
    axis = Axis("depth", (10, 100, 1000), geometric=True)
    results = [
        result_at(10, Skip.NONE, 0.0, -1.0, 1.0),
        result_at(100, Skip.NONE, -7.0, -7.0, -7.0),
        result_at(1000, Skip.NONE, -14.0, -14.0, -14.0),
    ]
    lines = sweep_view.line_chart(axis, results, width=60)
    plot = [line.split("|", 1)[1] if "|" in line else "" for line in lines[:15]]
    columns = [[i for i, c in enumerate(row) if c == "o"] for row in plot]
    marks = [(r, c) for r, cols in enumerate(columns) for c in cols]
    # y: 15 rows from +1 (row 0) down to -14 (row 14), each value in its nearest row
    assert [r for r, _ in marks] == [round((1 - y) / 15 * 14) for y in (0.0, -7.0, -14.0)]
    xs = [c for _, c in marks]
    assert xs[0] == 0 and xs[1] - xs[0] == xs[2] - xs[1]  # log10 spacing: equal steps
    assert plot[0][0] == "|" and plot[2][0] == "|"  # the first point's min..max bar


@pytest.mark.parametrize(
    "values", [(-1e308, 0.0, 1e308), (0.0, 5e-324, 1e-323)], ids=["huge", "subnormal"]
)
def test_chart_spans_values_whose_difference_is_beyond_the_float_range(
    values: tuple[float, ...],
) -> None:
    """-1e308 to 1e308 (valid --residual-scale values) once crashed the chart: hi - lo = inf;
    halving every span to avoid it made 5e-324 / 2 = 0, and 0 and 5e-324 crashed it."""
    axis = Axis("residual_scale", values, geometric=False)
    spread, counts = Spread(-1.0, -1.0, -1.0), dict.fromkeys(Verdict, 0)
    results = [
        PointResult(0, (("residual_scale", x),), Skip.PRE, Spread(0, 0, 0), spread, counts, None)
        for x in axis.values
    ]
    lines = sweep_view.line_chart(axis, results, width=60)
    (plotted,) = [line.split("|", 1)[1] for line in lines if line.startswith("-1.0 |")]
    columns = [i for i, c in enumerate(plotted) if c != " "]
    assert len(columns) == 3 and columns[0] == 0
    assert abs((columns[1] - columns[0]) - (columns[2] - columns[1])) <= 1  # 0 halfway


@pytest.mark.parametrize("width", [60, 80, 100])
def test_the_chart_legend_wraps_whole_items_within_the_width(width: int) -> None:
    """A long flag name once ran the legend past 80 columns, where the terminal cut it."""
    axis = Axis("branch_weight_scale", (0.5, 1.0, 2.0), geometric=True)
    spread, counts = Spread(-1.0, -2.0, 0.0), dict.fromkeys(Verdict, 0)
    results = [
        PointResult(0, (("branch_weight_scale", x),), v, Spread(0, 0, 0), spread, counts, None)
        for x in axis.values
        for v in (Skip.NONE, Skip.POST, Skip.PRE)
    ]
    lines = sweep_view.line_chart(axis, results, width=width)
    assert max(len(line) for line in lines) <= width
    first = next(i for i, line in enumerate(lines) if "o plain" in line)
    legend = " ".join(line.strip() for line in lines[first:])
    assert "across: branch-weight-scale (log scale)" in legend
    assert "| min..max over seeds" in legend


def test_reading_quotes_the_least_squares_slope_per_layer_and_per_block() -> None:
    result = sweep("--vary", "depth=2,4,8", *TINY, "--seeds", "1", "--jobs", "1",
                   "--format", "json")  # fmt: skip
    document = json.loads(result.stdout)
    read = sweep("--vary", "depth=2,4,8", *TINY, "--jobs", "1", "--quiet").stdout
    for variant, unit, scale in (("none", "layer", 1), ("pre", "block", 2)):
        mine = [p for p in document["points"] if p["variant"] == variant]
        depths = [p["values"]["depth"] for p in mine]
        gains = [p["median"]["log10_gain"] for p in mine]
        fitted = float(np.polyfit(depths, gains, 1)[0]) * scale
        label = "plain" if variant == "none" else variant
        verb = "loses" if fitted < 0 else "gains"
        assert f"{label} {verb} {abs(fitted):.2f} decades per {unit}" in read


def test_csv_and_markdown_hold_every_point() -> None:
    rows = sweep(*GRID, "--jobs", "1", "--format", "csv").stdout.splitlines()
    assert rows[0].startswith("depth,variant,median_log10_weight_ratio")
    assert len(rows) == 1 + 6
    document = json.loads(sweep(*GRID, "--jobs", "1", "--format", "json").stdout)
    first = rows[1].split(",")
    assert float(first[5]) == document["points"][0]["median"]["log10_gain"]
    markdown = sweep(*GRID, "--jobs", "1", "--format", "markdown").stdout
    assert markdown.count("\n| 4 | ") == 3 and "```text" in markdown


def test_a_log10_that_is_not_a_number_says_why_in_json_and_csv() -> None:
    """ReLU at width 2 kills the gradient in most seeds: gain exactly 0, log10 −inf, which JSON
    cannot hold. Each point's statuses follow from its runs' own log10 gains."""
    args = ("--vary", "depth=6,10", "--width", "2", "--batch", "2", "--activation", "relu",
            "--seeds", "5", "--variants", "none", "--jobs", "1")  # fmt: skip
    document = json.loads(sweep(*args, "--format", "json").stdout)
    statuses = set()
    for point in document["points"]:
        gains = sorted(
            -math.inf if run["summary"]["gain_status"] == "zero" else run["summary"]["log10_gain"]
            for run in document["runs"]
            if run["values"] == point["values"]
        )
        for stat, expected in (("min", gains[0]), ("max", gains[-1]), ("median", gains[2])):
            value, status = point[stat]["log10_gain"], point[stat]["gain_status"]
            assert (value is None) == (status != "ok")
            assert (value if status == "ok" else {"zero": -math.inf}[status]) == expected
            statuses.add(status)
    assert statuses == {"ok", "zero"}  # both kinds occur, so both were checked
    rows = sweep(*args, "--format", "csv").stdout.splitlines()
    header = rows[0].split(",")
    for row, point in zip(rows[1:], document["points"], strict=True):
        cells = dict(zip(header, row.split(","), strict=True))
        assert cells["median_gain_status"] == point["median"]["gain_status"]
        assert cells["min_weight_ratio_status"] == point["min"]["weight_ratio_status"]


def test_median_matches_statistics_for_even_counts() -> None:
    xs = [-3.0, 1.0, 2.0, 10.0]
    assert Spread.of(xs).median == statistics.median(xs)


def test_one_chart_per_value_of_the_second_flag_and_no_negative_zero() -> None:
    markdown = sweep("--vary", "depth=2,4", "--vary", "width=3,5,7", "--batch", "2",
                     "--variants", "pre", "--jobs", "1", "--format", "markdown").stdout  # fmt: skip
    titles = re.findall(r"\*\*median log10 gain against depth \((width=\d)\)\*\*", markdown)
    assert titles == ["width=3", "width=5", "width=7"]
    assert markdown.count("```text") == 3
    assert sweep_view.decades(-0.001) == "+0.00" and sweep_view.decades(-0.005) == "-0.01"


def test_ctrl_c_under_a_pool_ends_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the main process takes in results from two workers: exit 130, the workers
    gone, and the file the sweep's first runs: those written, the one being written when it
    came, and those under way then, as far as they follow on."""
    whole = tmp_path / "whole.jsonl"
    assert sweep(*GRID, "--jobs", "1", "--output", str(whole)).exit_code == 0
    real = sweep_view.run_record
    calls: list[int] = []

    def stop_at_third(*args: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(sweep_view, "run_record", stop_at_third)
    part = tmp_path / "part.jsonl"
    result = sweep(*GRID, "--jobs", "2", "--output", str(part))
    assert result.exit_code == 130 and result.stderr.strip() == "gradflow: interrupted"
    written = part.read_bytes().splitlines(keepends=True)
    assert len(written) >= 3
    assert written == whole.read_bytes().splitlines(keepends=True)[: len(written)]
    assert multiprocessing.active_children() == []


def test_plot_draws_each_variant_median_band_and_theory(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    figure = tmp_path / "sweep.svg"
    result = sweep(*GRID, "--theory", "--jobs", "1", "--plot", str(figure), "--format", "json")
    assert result.exit_code == 0, result.output
    svg = figure.read_text()
    for variant in ("plain", "post", "pre"):
        for part in ("median", "band", "theory"):
            assert f'id="{part}:{variant}"' in svg
    # what is drawn: the JSON's medians, min, max and theory along depth, per variant
    points = json.loads(result.stdout)["points"]
    results = [
        PointResult(0, (("depth", p["values"]["depth"]),), Skip(p["variant"]),
                    Spread(0, 0, 0), Spread(p["median"]["log10_gain"], p["min"]["log10_gain"],
                                            p["max"]["log10_gain"]),
                    dict.fromkeys(Verdict, 0), p["theory"]["log10_gain"])
        for p in points
    ]  # fmt: skip
    drawn = {c.label: c for c in sweep_view.curves(results)}
    plain = [p for p in points if p["variant"] == "none"]
    assert drawn["plain"].median == [p["median"]["log10_gain"] for p in plain]
    assert drawn["plain"].theory == [p["theory"]["log10_gain"] for p in plain]
    refused(sweep("--vary", "activation=tanh,relu", *TINY, "--plot", str(figure)), "--plot")


def test_a_jsonl_file_that_cannot_be_written_is_exit_3_and_the_reading_still_shown() -> None:
    result = sweep(*GRID, "--jobs", "1", "--output", "/dev/full", "--format", "jsonl")
    assert result.exit_code == 3
    assert result.stderr.strip() == (
        "gradflow: error: --output: could not write '/dev/full': No space left on device"
    )
    assert result.stdout.startswith("plain loses")


@pytest.mark.parametrize(
    ("jobs", "scheduler", "runs", "threads", "each"),
    [
        (2, None, 10, 2, 1),  # two runs at once on two threads: one each
        (2, None, 10, 8, 4),
        (1, None, 10, 2, 2),  # one run at a time: its products take both
        (4, None, 1, 4, 4),  # a single run is made in this process, alone
        (1, "tcp://host:8786", 10, 8, 1),  # a cluster's workers run runs side by side
    ],
)
def test_the_runs_share_the_threads(
    jobs: int, scheduler: str | None, runs: int, threads: int, each: int
) -> None:
    assert executors.run_threads(jobs, scheduler, runs, threads) == each


def test_a_sweep_gives_the_same_bytes_on_any_thread_count() -> None:
    """--threads 1 and 2 on a width whose products are split in halves, with --jobs 1 (in this
    process, so that the pass's threads are what differ)."""
    grid = ["--vary", "depth=2,4", "--width", "512", "--batch", "128", "--jobs", "1"]
    one = sweep(*grid, "--threads", "1", "--format", "json")
    two = sweep(*grid, "--threads", "2", "--format", "json")
    assert one.exit_code == two.exit_code == 0, one.output + two.output
    assert one.stdout == two.stdout


def test_a_plot_over_values_near_the_float_limits_prints_no_warning(tmp_path: Path) -> None:
    """A log axis from 1e-300 to 1e300: matplotlib's margins overflow on the way (a NumPy
    RuntimeWarning on stderr), the figure is whole."""
    pytest.importorskip("matplotlib")
    figure = tmp_path / "wide.png"
    result = sweep("--vary", "residual-scale=1e-300,1,1e300", "--variants", "none", *TINY,
                   "--jobs", "1", "-q", "--plot", str(figure))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stderr == f"gradflow: wrote {figure}\n"
    assert figure.stat().st_size > 0


def test_a_jsonl_file_is_named_on_stderr_as_every_output_file(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    result = sweep("--vary", "depth=2,4", *TINY, "--jobs", "1", "--output", str(path))
    assert result.exit_code == 0 and result.stderr == f"gradflow: wrote {path}\n"
