"""A SweepPlan carried out: memory guarded, a resumed file read back, the runs handed to an
executor, each run's record written as soon as it and those before it are done, and the
aggregates shown.

jsonl is the one output written while the sweep runs (a line per run, flushed, in grid order
whatever the executor), so that Ctrl-C keeps every finished run and ``--resume`` can complete
the file; the other formats are written whole, through ``OutputTarget``, once every run is in.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.console import Group as Stack

from gradflow.analysis.analyze import estimate_bytes
from gradflow.analysis.sweep import PointResult, Run, aggregate, flag_name, point_spec, run_spec
from gradflow.analysis.theory import predict
from gradflow.analysis.verdict import Quantity, Thresholds, Verdict, judge
from gradflow.cli.errors import BadInput, ExitCode, WriteFailed, note, quoted, silence
from gradflow.cli.execute import (
    FILE_WIDTH,
    bytes_text,
    page_console,
    summary_after,
    to_stdout,
    write_text,
)
from gradflow.cli.executors import InOrder, Task, make_executor, run_threads
from gradflow.cli.figure_files import write_figure
from gradflow.cli.interrupts import interrupts_held
from gradflow.cli.options import SweepFormat
from gradflow.cli.sweep_plan import SweepPlan
from gradflow.engine import memory
from gradflow.engine.heap import keep_freed_memory
from gradflow.render import sweep_view
from gradflow.render.formats import SUMMARY_KEYS
from gradflow.render.table import LaidOutTable, Lines, prose

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Record = dict[str, Any]


def execute_sweep(plan: SweepPlan) -> ExitCode:
    """Run every run not already in a resumed file; show and write the results."""
    guard_memory(plan)
    keep_freed_memory()  # for the runs made in this process (serial, or --jobs 1)
    records: list[Record | None] = [None] * len(plan.runs)
    kept = read_resumed(plan) if plan.resume else []
    records[: len(kept)] = kept
    theory = _theory(plan) if plan.theory else None
    todo = list(range(len(kept), len(plan.runs)))
    each = run_threads(plan.jobs, plan.scheduler, len(todo), plan.threads)
    tasks: list[Task] = [(run_spec(plan.base, plan.runs[i]), plan.thresholds, each) for i in todo]
    executor = make_executor(plan.jobs, plan.scheduler, len(tasks))  # Dask connects here
    sink = _JsonlSink(plan, len(kept))
    order = InOrder()
    with sink as write, _Progress(len(plan.runs), len(kept)) as advance:

        def take(finished: Iterable[tuple[int, Record]]) -> None:
            """Each run as the runs before it are in: recorded, written and counted whole, a
            Ctrl-C held until it is (the jsonl stays the sweep's first runs, for --resume)."""
            for index, summary in finished:
                order.add(index, summary)
                while (ready := order.ready()) is not None:
                    with interrupts_held():
                        local, summary = ready
                        i = todo[local]
                        record = sweep_view.run_record(plan.runs[i], tasks[local][0], summary)
                        write(record)
                        records[i] = record
                        order.taken()
                        advance()

        try:
            try:
                take(executor.run(tasks))
            except KeyboardInterrupt:  # (SIGTERM too) the runs under way finish and are kept
                take(executor.under_way())
                raise
        except MemoryError:  # the estimate is an estimate: one line, the finished runs kept
            raise BadInput("memory", "a run ran out of memory; try fewer --jobs") from None
        finally:  # runs not started are dropped, the workers end
            executor.close()
    if plan.format is SweepFormat.JSONL and sink.path and not sink.failures:  # named, as others are
        note(f"gradflow: wrote {sink.path}")
    done = [r for r in records if r is not None]  # every run, unless one was interrupted
    results = aggregate(plan.runs, [sweep_view.outcome(r["summary"]) for r in done], theory)
    troubled = sum(bool(r["summary"]["warnings"]) for r in done)
    if troubled:
        note(f"gradflow: warning: {troubled} of {len(done)} runs met numerical trouble "
             "(their summaries' warnings say which)")  # fmt: skip
    failures = sink.failures + _show(plan, results, done) + _figure(plan, results)
    for failure in failures:
        note(f"gradflow: error: {failure}")
    return ExitCode.WRITE_FAILED if failures else ExitCode.OK


# ---- before the runs --------------------------------------------------------------------------


def guard_memory(plan: SweepPlan) -> None:
    """The largest grid point's pass, times the passes held at once, against the free memory
    (or --max-memory). A cluster's workers have their own memory: not guarded here."""
    if plan.scheduler is not None:
        return
    largest = max(
        estimate_bytes(point_spec(plan.base, run.values, run.variant))
        for run in plan.runs
        if run.seed == plan.base.seed
    )
    concurrent = min(plan.jobs, len(plan.runs))
    need = largest * concurrent
    limit = plan.max_memory if plan.max_memory is not None else memory.available_bytes()
    if need <= limit:
        return
    where = "--max-memory allows" if plan.max_memory is not None else "the machine has free"
    raise BadInput(
        "memory",
        f"{concurrent} runs at once need about {bytes_text(need)} but {where} "
        f"{bytes_text(limit)}; try fewer --jobs or a smaller grid",
    )


def read_resumed(plan: SweepPlan) -> list[Record]:
    """The runs a jsonl file already holds: a prefix of the grid, in grid order (as written).

    A last line cut short by an interruption (the start of a record, with no newline) is
    dropped, and cut from the file when the sweep writes to it again. Anything else that is not
    this sweep's records, in order, is refused: the file is left as it is."""
    assert plan.output is not None
    name = quoted(plan.output.path)
    try:
        data = plan.output.final.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as error:
        raise BadInput("--resume", f"cannot read {name}: {error.strerror}") from None
    *lines, cut = data.split(b"\n")
    if not (RECORD_START.startswith(cut) or cut.startswith(RECORD_START)):
        raise BadInput("--resume", f"{name} is not a sweep's jsonl (its last line)")
    kept: list[Record] = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise BadInput("--resume", f"{name} is not a sweep's jsonl (line {number})") from None
        # the bytes gradflow writes, with every field (a line rewritten, or a record cut down,
        # would leave a file other than the sweep's own, or fail once the runs are done)
        if not _as_written(record, line):
            raise BadInput(
                "--resume", f"{name} holds a line gradflow sweep did not write (line {number})"
            )
        if len(kept) == len(plan.runs):
            raise BadInput("--resume", f"{name} holds more runs than the grid")
        if not _same_run(record, plan.runs[len(kept)], plan):
            raise BadInput("--resume", f"{name} holds runs of another sweep (line {number})")
        if not _same_verdict(record, plan.thresholds):
            raise BadInput(
                "--resume",
                f"{name} was judged with other thresholds (line {number}); give the ones it "
                "was run with",
            )
        kept.append(record)
    return kept


def _as_written(record: Any, line: bytes) -> bool:
    """Whether ``line`` is exactly what ``sweep_view.jsonl_line`` writes for a whole record."""
    try:
        whole = tuple(record) == RECORD_KEYS and tuple(record["summary"]) == SUMMARY_KEYS
        sweep_view.outcome(record["summary"])  # its ratios and verdict read back
        return whole and (line + b"\n") == sweep_view.jsonl_line(record).encode()
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


def _same_verdict(record: Record, thresholds: Thresholds) -> bool:
    """Whether the record's verdict is the one ``thresholds`` give its judged ratios (a record
    holds its log10 ratios, not the thresholds it was judged with)."""
    summary = record["summary"]
    log10s: dict[Quantity, float | None] = {}
    try:
        for name in summary["judged"]:
            log10 = summary[f"log10_{name}"]
            if log10 is None:  # strict JSON: ±inf as null, told apart by the status
                log10 = -math.inf if summary[f"{name}_status"] == "zero" else math.inf
            log10s[Quantity(name)] = float(log10)
        finite = summary["verdict"] != Verdict.NONFINITE.value
        return bool(judge(log10s, finite, thresholds).verdict.value == summary["verdict"])
    except (KeyError, TypeError, ValueError):
        return False


RECORD_START = b'{"values": '  # how every record's line begins (``sweep_view.jsonl_line``)
RECORD_KEYS = ("values", "variant", "seed", "spec", "summary")  # ``sweep_view.run_record``


def _same_run(record: Any, run: Run, plan: SweepPlan) -> bool:
    try:
        return bool(
            sweep_view.record_key(record) == run.key
            and record["spec"] == run_spec(plan.base, run).to_dict()
            and isinstance(record["summary"], dict)
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


def _theory(plan: SweepPlan) -> Callable[[Run], float | None]:
    """The mean-field prediction of each point's log10 gain; None where none applies."""

    def theory(run: Run) -> float | None:
        prediction = predict(point_spec(plan.base, run.values, run.variant))
        return None if prediction is None else float(prediction.log10_gain)

    return theory


# ---- while the runs run -----------------------------------------------------------------------


class _JsonlSink:
    """Each finished run's line, written and flushed; for other formats, nothing. A reader that
    has gone ends the writing quietly, a full disk with one error at the end (exit 3): the runs
    go on either way, and the table's aggregates still come out."""

    def __init__(self, plan: SweepPlan, kept: int) -> None:
        target = plan.output
        streamed = target is None or target.is_stream
        stderr = target is not None and target.fd == 2
        self.flag = ("stderr" if stderr else "stdout") if streamed else "--output"
        self.path: Path | None = None if target is None or streamed else target.path
        self.file: TextIO | None = None
        self.opened = False  # a file of our own, to close; never stdout or stderr
        self.failures: list[WriteFailed] = []
        if plan.format is SweepFormat.JSONL:
            self.file = (sys.stderr if stderr else sys.stdout) if streamed else None
            if self.file is None:
                self.file, self.opened = _open_jsonl(plan, kept), True

    def __enter__(self) -> Callable[[Record], None]:
        return self.write

    def write(self, record: Record) -> None:
        if self.file is None:
            return
        try:
            self.file.write(sweep_view.jsonl_line(record))
            self.file.flush()
        except BrokenPipeError as error:  # the reader has gone: | head is no error, but a
            silence(self.file)  # FIFO --output whose reader left is not whole
            if self.opened:
                self.failures.append(WriteFailed(self.flag, self.path, error))
                with contextlib.suppress(OSError):
                    self.file.close()  # what is still buffered goes to /dev/null
            self.file = None
        except OSError as error:
            self.failures.append(WriteFailed(self.flag, self.path, error))
            if not self.opened:
                silence(self.file)  # what is still buffered cannot go either
            else:
                with contextlib.suppress(OSError):
                    self.file.close()
            self.file = None

    def __exit__(self, *exc: object) -> None:
        if self.file is not None and self.opened:
            self.file.close()


def _open_jsonl(plan: SweepPlan, kept: int) -> TextIO:
    """The file, opened to continue after its ``kept`` whole lines (a resume) or emptied."""
    assert plan.output is not None
    path = plan.output.final
    if plan.resume and kept and path.is_file():
        data = path.read_bytes()
        end = 0
        for _ in range(kept):
            end = data.index(b"\n", end) + 1
        file = open(path, "r+", encoding="utf-8")  # noqa: SIM115 (closed by the sink)
        file.truncate(end)  # drops a line cut short by the interruption
        file.seek(end)
        return file
    return open(path, "w", encoding="utf-8")


class _Progress:
    """Runs done, total and ETA on stderr, on a terminal only; otherwise nothing."""

    def __init__(self, total: int, done: int) -> None:
        self.total, self.done = total, done
        self.bar: Any = None

    def __enter__(self) -> Callable[[], None]:
        if not sys.stderr.isatty() or self.done >= self.total:
            return lambda: None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        bar = self.bar = Progress(
            TextColumn("runs"), BarColumn(), MofNCompleteColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=Console(stderr=True), transient=True,
        )  # fmt: skip
        bar.start()
        task = bar.add_task("runs", total=self.total, completed=self.done)
        return lambda: bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


# ---- after the runs ---------------------------------------------------------------------------


def _show(plan: SweepPlan, results: list[PointResult], records: list[Record]) -> list[WriteFailed]:
    """The page (or the chosen format) to stdout, or to --output with the reading to stdout."""
    read = sweep_view.reading(plan.axes, results, plan.base)
    console = page_console()
    if plan.quiet and plan.output is None:
        return to_stdout(lambda: _print_lines(console, read))
    if plan.format is SweepFormat.JSONL:  # already written, run by run
        return (
            []
            if plan.output is None
            else summary_after(plan.output, lambda: _print_lines(console, read))
        )
    if plan.output is None:
        if plan.format is SweepFormat.TABLE:
            return to_stdout(lambda: console.print(Stack(*_page(plan, results, console.width))))
        text = _text(plan, results, records, FILE_WIDTH)
        return to_stdout(lambda: sys.stdout.write(text))
    failures = write_text(plan.output, _text(plan, results, records, FILE_WIDTH))
    return failures + summary_after(plan.output, lambda: _print_lines(console, read))


def _figure(plan: SweepPlan, results: list[PointResult]) -> list[WriteFailed]:
    """--plot: the median gain along the first varied flag, per variant, band and theory."""

    def draw() -> Figure:
        import numpy as np

        from gradflow.render.figures.sweep import SweepSeries, sweep_figure

        first = plan.axes[0]
        series = {
            c.label: SweepSeries(np.array(c.median), np.array(c.low), np.array(c.high),
                                 None if c.theory is None else np.array(c.theory))
            for c in sweep_view.curves(results)
        }  # fmt: skip
        x = np.array([float(v) for v in first.values])
        header = sweep_view.header_line(plan.axes, plan.variants, plan.seeds, plan.base)
        return sweep_figure(flag_name(first.field), x, first.geometric, series, header)

    return write_figure(plan.plot, draw)


def _print_lines(console: Console, lines: list[str]) -> None:
    for line in lines:
        console.print(line, markup=False, soft_wrap=True)


def _page(plan: SweepPlan, results: list[PointResult], width: int) -> list[Any]:
    read = sweep_view.reading(plan.axes, results, plan.base)
    if plan.quiet:
        return [Lines(read)]  # a file: unwrapped, as on stdout
    header = sweep_view.header_line(plan.axes, plan.variants, plan.seeds, plan.base)
    grid = sweep_view.sweep_grid(plan.axes, results, plan.thresholds, plan.theory)
    parts: list[Any] = [prose(header, width, "bold"), Lines([""])]
    parts.append(LaidOutTable(grid.arrange(width), width))
    for chart in sweep_view.charts(plan.axes, results, width):
        parts += [Lines([""]), prose(chart.title, width, "bold"), Lines(chart.lines)]
    parts += [Lines([""]), *(prose(line, width, "bold") for line in read)]
    return parts


def _text(plan: SweepPlan, results: list[PointResult], records: list[Record], width: int) -> str:
    """The sweep in the chosen format as text (a table without colour)."""
    if plan.format is SweepFormat.JSON:
        config = sweep_view.config_record(
            plan.base, plan.axes, plan.variants, plan.seeds, plan.thresholds, plan.theory
        )
        return sweep_view.to_json(config, results, records)
    if plan.format is SweepFormat.CSV:
        return sweep_view.to_csv(plan.axes, results)
    if plan.format is SweepFormat.MARKDOWN:
        header = sweep_view.header_line(plan.axes, plan.variants, plan.seeds, plan.base)
        grid = sweep_view.sweep_grid(plan.axes, results, plan.thresholds, plan.theory)
        drawn = sweep_view.charts(plan.axes, results, width)
        read = sweep_view.reading(plan.axes, results, plan.base)
        return sweep_view.to_markdown(header, grid, drawn, read, width)
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, emoji=False)
    console.print(Stack(*_page(plan, results, width)))
    return buffer.getvalue()
