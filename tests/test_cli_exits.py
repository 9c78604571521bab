"""Exit codes of the ways a run can end that only a real process shows: a reader closing the pipe
early, Ctrl-C, a full stdout. Each runs ``python -m gradflow`` (or main() with the engine held up)
in a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gradflow.analysis import analyze as engine
from gradflow.cli.app import app
from gradflow.cli.errors import ExitCode

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
# a page longer than a pipe holds (74 kB, 64 KiB), so that writes go on after the reader has gone
LONG = ["--depth", "400", "--width", "2", "--batch", "2", "--all-rows"]


def gradflow(*args: str) -> list[str]:
    return [sys.executable, "-m", "gradflow", *args]


def close_early(args: list[str], lines: int) -> tuple[int, str]:
    """Run, read ``lines`` lines of stdout (0: none, before anything is written), then close
    the pipe as ``head`` does; the exit code and stderr."""
    with subprocess.Popen(
        gradflow(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        for _ in range(lines):
            assert child.stdout.readline()
        child.stdout.close()
        stderr = child.stderr.read().decode()
        return child.wait(timeout=120), stderr


@pytest.mark.parametrize(
    ("args", "lines"),
    [(["compare", *LONG], 0), (["compare", *LONG], 1), (["compare", *LONG, "--format", "csv"], 0)],
    ids=["table, none read", "table, one line read", "csv, none read"],
)
def test_a_reader_closing_the_pipe_is_no_error(args: list[str], lines: int) -> None:
    code, stderr = close_early(args, lines)
    assert code == ExitCode.OK
    assert stderr == ""


def test_a_closed_pipe_keeps_a_failed_check() -> None:
    code, stderr = close_early(
        ["analyze", *LONG, "--vanish-below", "0.99", "--fail-on", "vanishing"], 0
    )
    assert code == ExitCode.CHECK_FAILED
    (line,) = stderr.splitlines()
    assert line.startswith("gradflow: check failed: ")


def test_a_full_stdout_is_a_write_failure() -> None:
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            gradflow("analyze", *LONG), stdout=full, stderr=subprocess.PIPE, env=ENV, text=True
        )
    assert done.returncode == ExitCode.WRITE_FAILED
    (line,) = done.stderr.splitlines()
    assert line.startswith("gradflow: error: ") and "stdout" in line


@pytest.mark.parametrize("args", [["--help"], ["--version"], [], ["sweep", "--help"]])
def test_help_and_version_into_a_full_stdout_are_a_write_failure(args: list[str]) -> None:
    """Text click prints itself, and the --version answered before typer loads: one line and
    exit 3 too, not a traceback."""
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            gradflow(*args), stdout=full, stderr=subprocess.PIPE, env=ENV, text=True
        )
    assert done.returncode == ExitCode.WRITE_FAILED, done.stderr
    assert done.stderr == "gradflow: error: could not write stdout: No space left on device\n"


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["analyze", "--depth", "4", "-q"]])
def test_a_closed_stdout_is_a_write_failure(args: list[str]) -> None:
    """Started with stdout closed (``>&-``), Python has no sys.stdout at all: one line and
    exit 3, as for a full disk, not an AttributeError's traceback."""
    done = subprocess.run(
        gradflow(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, text=True,
        preexec_fn=lambda: os.close(1),
    )  # fmt: skip
    assert done.returncode == ExitCode.WRITE_FAILED, done.stderr
    assert done.stderr == "gradflow: error: could not write stdout: Bad file descriptor\n"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["analyze", "--depth", "4", "-q"], ExitCode.OK),
        (["analyze", "--depth", "4", "-q", "--output", os.devnull], ExitCode.OK),  # "wrote"
        (["analyze", "--depth", "20", "-q", "--fail-on", "vanishing"], ExitCode.CHECK_FAILED),
        (["analyze", "--depth", "0"], ExitCode.BAD_INPUT),
        (["analyze", "--depht", "4"], ExitCode.BAD_INPUT),
    ],
)
def test_a_closed_stderr_changes_no_exit_code(args: list[str], code: int) -> None:
    """Started with stderr closed (``2>&-``): the lines meant for it go nowhere; the exit code
    and stdout are as ever (not 70 or 1 with a traceback on stdout)."""
    done = subprocess.run(
        gradflow(*args), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=ENV, text=True,
        preexec_fn=lambda: os.close(2),
    )  # fmt: skip
    assert done.returncode == code
    assert "Traceback" not in done.stdout
    if code != ExitCode.BAD_INPUT:
        assert done.stdout.startswith("plain")


@pytest.mark.parametrize(
    "args",
    [
        ["analyze", "--depth", "4", "--format", "json"],
        ["train", "--depth", "2", "--steps", "2", "--format", "json"],
        ["paths", "--depth", "4", "--format", "json"],
        ["sweep", "--vary", "depth=2,4", "--format", "jsonl"],
    ],
    ids=lambda args: args[0],
)
def test_dev_stdout_is_the_stdout_file_not_replaced(tmp_path: Path, args: list[str]) -> None:
    """/dev/stdout, redirected to a file, is that file, and holds the report alone, as with
    ``--output -`` (the summary lines after it made its JSON invalid). (A link of our own to
    /proc/self/fd/1, as /dev/stdout is: a broken version of this rule would replace the
    machine's /dev/stdout.)"""
    stdout = tmp_path / "stdout"
    stdout.symlink_to("/proc/self/fd/1")
    target = tmp_path / "out.txt"
    with open(target, "wb") as out:
        inode = os.fstat(out.fileno()).st_ino
        done = subprocess.run(
            gradflow(*args, "--width", "4", "--batch", "2", "--output", str(stdout)),
            stdout=out, stderr=subprocess.PIPE, env=ENV, text=True,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert target.stat().st_ino == inode  # the same file, written through, not replaced
    assert stdout.is_symlink()
    text = target.read_text()
    if args[0] == "sweep":  # a record a line
        assert all("variant" in json.loads(line) for line in text.splitlines())
    else:
        assert "schema_version" in json.loads(text)
    assert "wrote" not in done.stderr


def test_a_jsonl_sweep_to_dev_stderr_leaves_stderr_open() -> None:
    """Its records go to stderr, and the lines after them too: closing it as a file of our own
    made the first of them exit 1 with "lost sys.stderr"."""
    done = subprocess.run(
        gradflow("sweep", "--vary", "weight-var=1e30,1e60", "--depth", "40", "--width", "4",
                 "--batch", "2", "--activation", "linear", "--variants", "none", "--format",
                 "jsonl", "--output", "/dev/stderr"),
        capture_output=True, env=ENV, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    *records, warning = done.stderr.splitlines()
    assert [json.loads(line)["values"]["weight_var"] for line in records] == [1e30, 1e60]
    assert warning.startswith("gradflow: warning: 2 of 2 runs met numerical trouble")
    assert done.stdout.startswith("plain")


HELD_UP = """
import sys, time
from gradflow.analysis import analyze as engine

def held_up(*args, **kwargs):
    print("started", file=sys.stderr, flush=True)
    time.sleep(60)

engine.analyze = held_up
sys.argv = ["gradflow", "analyze", "--depth", "4", "--width", "4", "--batch", "2"]
from gradflow.cli.app import main
main()
"""


def test_ctrl_c_is_one_line_and_130() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", HELD_UP], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV
    ) as child:
        assert child.stderr is not None
        assert child.stderr.readline() == b"started\n"
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == ExitCode.INTERRUPTED
    assert stderr.decode().splitlines() == ["gradflow: interrupted"]
    assert stdout == b""


HELD_IN_SAVE = """
import sys, time
import numpy as np

def slow_savez(file, **arrays):
    file.write(b"part of an npz")
    print("started", file=sys.stderr, flush=True)
    time.sleep(60)

np.savez = slow_savez
sys.argv = ["gradflow", "analyze", "--depth", "4", "--width", "4", "--batch", "2", "-q",
            "--save-arrays", sys.argv[1]]
from gradflow.cli.app import main
main()
"""


def test_sigterm_removes_the_half_written_file_and_ends_by_the_signal(tmp_path: Path) -> None:
    """``timeout`` and a cancelled CI job send SIGTERM: the file being written is removed (the
    one it was to replace is as it was), one line says so, and the process ends by SIGTERM."""
    target = tmp_path / "arrays.npz"
    target.write_bytes(b"before")
    with subprocess.Popen(
        [sys.executable, "-c", HELD_IN_SAVE, str(target)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
    ) as child:  # fmt: skip
        assert child.stderr is not None
        assert child.stderr.readline() == b"started\n"
        assert len(list(tmp_path.iterdir())) == 2  # the target and the file being written
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGTERM
    assert stderr.decode().splitlines() == ["gradflow: terminated"]
    assert list(tmp_path.iterdir()) == [target]
    assert target.read_bytes() == b"before"


def test_ctrl_c_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "compare", interrupted)
    result = CliRunner().invoke(app, ["compare", "--depth", "4", "--width", "4", "--batch", "2"])
    assert result.exit_code == ExitCode.INTERRUPTED
    assert result.stderr.splitlines() == ["gradflow: interrupted"]


def test_exit_codes_do_not_collide() -> None:
    codes = [code.value for code in ExitCode]
    assert len(set(codes)) == len(codes)
    assert ExitCode.INTERRUPTED == 128 + signal.SIGINT


def test_a_bug_is_not_a_failed_check(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(engine, "analyze", broken)
    result = CliRunner().invoke(app, ["analyze", "--depth", "4", "--width", "4", "--batch", "2"])
    assert result.exit_code == ExitCode.INTERNAL_ERROR
    assert "RuntimeError: a bug" in result.stderr  # the traceback, for a bug report


@pytest.mark.parametrize("command", ["analyze", "compare", "paths", "train", "sweep"])
def test_help_lists_exit_code_1_only_where_the_command_has_fail_on(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    has_flag = "--fail-on" in result.output.split("Exit codes:")[0]
    assert has_flag == (command in ("analyze", "train"))
    assert ("1 a --fail-on check failed" in result.output) == has_flag
    assert "2 bad input" in result.output and "143 in a shell" in result.output


# two runs of some 7 s each, side by side, in about 100 MB each (a stack of width-1024 weights
# too large to hold is drawn as the pass reads it): longer than any of the waits below
SLOW_GRID = ["sweep", "--vary", "depth=300,302", "--width", "1024", "--batch", "16",
             "--variants", "none", "--jobs", "2", "-q"]  # fmt: skip


# runs of a fraction of a second: an interrupt's graceful end is quick
QUICK_GRID = ["sweep", "--vary", "depth=200,300,400", "--width", "384", "--batch", "128",
              "--block-size", "1", "--jobs", "2", "-q"]  # fmt: skip


def _pool_sweep(tmp_path: Path, grid: list[str] = SLOW_GRID) -> subprocess.Popen[bytes]:
    """A sweep in a session of its own, so that signals can go to its process group, as a
    terminal sends Ctrl-C."""
    return subprocess.Popen(
        gradflow(*grid, "--output", str(tmp_path / "s.jsonl")),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, start_new_session=True,
    )  # fmt: skip


def _ended(child: subprocess.Popen[bytes]) -> tuple[int, str, float]:
    """Its exit code, stderr, and the seconds it took to end from now (killed if over 30)."""
    assert child.stderr is not None
    start = time.perf_counter()
    try:
        code = child.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
    return code, child.stderr.read().decode(), time.perf_counter() - start


def _send(child: subprocess.Popen[bytes], number: int) -> None:
    """As it comes: Ctrl-C from a terminal, to the process group; SIGTERM from ``kill PID`` or
    ``timeout``, to the process alone (to the group it would end the workers itself)."""
    if number == signal.SIGINT:
        os.killpg(child.pid, number)
    else:
        os.kill(child.pid, number)


@pytest.mark.parametrize(
    ("first", "second"),
    [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGTERM),
     (signal.SIGINT, signal.SIGTERM), (signal.SIGTERM, signal.SIGINT)],
    ids=["int-int", "term-term", "int-term", "term-int"],
)  # fmt: skip
def test_a_second_signal_ends_a_pool_sweep_at_once(first: int, second: int, tmp_path: Path) -> None:
    """The first lets the runs under way finish; a second ends the workers now. Two Ctrl-Cs
    once hung the process for good, and a second SIGTERM waited for the runs."""
    with _pool_sweep(tmp_path) as child:
        time.sleep(1.5)  # both workers busy with a run
        _send(child, first)
        time.sleep(0.3)
        _send(child, second)
        code, stderr, took = _ended(child)
    assert took < 4, took  # not the seconds the runs under way still had
    if signal.SIGTERM in (first, second):
        assert code == -signal.SIGTERM and stderr == "gradflow: terminated\n", stderr
    else:
        assert code == ExitCode.INTERRUPTED and stderr == "gradflow: interrupted\n", stderr


# two runs of some 2 s each, side by side
MEDIUM_GRID = ["sweep", "--vary", "depth=300,302", "--width", "512", "--batch", "16",
               "--variants", "none", "--jobs", "2", "-q"]  # fmt: skip


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["int", "term"])
def test_a_pool_sweep_stopped_keeps_the_runs_under_way(number: int, tmp_path: Path) -> None:
    """One Ctrl-C (or SIGTERM) lets the runs under way finish, and they are in the file: it
    waited for them, then dropped them."""
    with _pool_sweep(tmp_path, MEDIUM_GRID) as child:
        deadline = time.perf_counter() + 20  # both workers up (slower on a busy machine)
        busy: list[int] = []
        while len(busy) < 2 and time.perf_counter() < deadline:  # both runs under way
            busy = [pid for pid in _workers(child.pid) if _cpu_seconds(pid) >= 0.2]
            time.sleep(0.02)
        assert len(busy) == 2, busy
        _send(child, number)
        code, stderr, _ = _ended(child)
    name = "terminated" if number == signal.SIGTERM else "interrupted"
    assert stderr == f"gradflow: {name}\n"
    assert code == (-signal.SIGTERM if number == signal.SIGTERM else ExitCode.INTERRUPTED)
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    assert [json.loads(line)["values"]["depth"] for line in lines] == [300, 302]


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["int", "term"])
def test_a_signal_as_a_pool_sweep_starts_ends_it_with_one_line(number: int, tmp_path: Path) -> None:
    """One at the pool's start printed a traceback from a half-started worker."""
    with _pool_sweep(tmp_path, QUICK_GRID) as child:
        deadline = time.perf_counter() + 20  # the pool's first process (its fork server) is up
        while not _processes(child.pid, parent=child.pid) and time.perf_counter() < deadline:
            time.sleep(0.01)
        _send(child, number)
        code, stderr, _ = _ended(child)
    if number == signal.SIGTERM:
        assert code == -signal.SIGTERM and stderr == "gradflow: terminated\n", stderr
    else:
        assert code == ExitCode.INTERRUPTED and stderr == "gradflow: interrupted\n", stderr


def _processes(session: int, parent: int | None = None) -> dict[int, int]:
    """The processes of a session (pid: parent pid), or those of one parent in it."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == session and parent in (None, int(fields[1])):
                    found[int(entry.name)] = int(fields[1])
    return found


def _cpu_seconds(pid: int) -> float:
    """The CPU time a process has used (0 if it has gone): a pool worker's shows it at a run."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _workers(session: int) -> list[int]:
    """The pool's worker processes: in the session, children of its fork server."""
    mine = _processes(session)
    return [pid for pid, up in mine.items() if up in mine and up != session]


def test_a_pool_worker_that_dies_ends_the_sweep_with_one_line(tmp_path: Path) -> None:
    """Killed (as the OOM killer does): one line, exit 2, and the other worker ended too rather
    than waited for (it ignored the pool's SIGTERM while starting with signals blocked)."""
    with _pool_sweep(tmp_path) as child:
        deadline = time.perf_counter() + 20  # both workers up (slower on a busy machine)
        while len(workers := _workers(child.pid)) < 2 and time.perf_counter() < deadline:
            time.sleep(0.1)
        assert len(workers) == 2, workers
        time.sleep(0.5)  # into their runs
        os.kill(workers[0], signal.SIGKILL)
        code, stderr, took = _ended(child)
    assert took < 4, took
    assert code == ExitCode.BAD_INPUT
    died = "a worker process died (killed, or out of memory); try fewer --jobs"
    assert stderr == f"gradflow: error: --jobs: {died}\n"
