"""Output files: what --output and --save-arrays do with each kind of path, checked before the
run and written after it. The tests run as root: read-only means the mode bits, not os.access."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from gradflow.analysis import analyze as engine
from gradflow.cli.app import app
from gradflow.cli.errors import ExitCode
from gradflow.cli.files import Kind, OutputTarget
from gradflow.cli.interrupts import interrupts_held
from gradflow.engine.network import build
from gradflow.engine.spec import NetworkSpec

SMALL = ["analyze", "--depth", "4", "--width", "4", "--batch", "2"]
SPEC = NetworkSpec(depth=4, width=4, batch=2)


def run(*args: str, env: Mapping[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "100", **(env or {})})


def report(*args: str) -> dict[str, object]:
    """The JSON report of SMALL with ``args``, as printed to stdout."""
    result = run(*SMALL, "--format", "json", *args)
    assert result.exit_code == 0, result.stderr
    document: dict[str, object] = json.loads(result.stdout)
    return document


def refused(result: Result, flag: str) -> str:
    """Exit 2, one line on stderr naming the flag, nothing on stdout."""
    assert result.exit_code == ExitCode.BAD_INPUT, (result.stdout, result.stderr)
    (line,) = result.stderr.splitlines()
    assert line.startswith("gradflow: error: ") and flag in line
    assert result.stdout == ""
    return line


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine must not be reached: a refusal comes before any work."""

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the engine ran")

    monkeypatch.setattr(engine, "analyze", never)
    monkeypatch.setattr(engine, "compare", never)


def device_node(path: Path, minor: int) -> Path:
    """A private copy of a memory device (3: null, 7: full), so that no test can replace the
    machine's own."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except PermissionError:
        pytest.skip("cannot make device nodes here")
    return path


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".gf-"))


# ---- regular files ----------------------------------------------------------------------------


def test_new_file_is_written_whole_and_follows_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    old = os.umask(0o022)
    try:
        result = run(*SMALL, "--output", str(target))
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.stderr
    assert json.loads(target.read_text()) == report()
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert leftovers(tmp_path) == []


def test_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    target.write_text("old\n")
    target.chmod(0o640)
    assert run(*SMALL, "--output", str(target)).exit_code == 0
    assert json.loads(target.read_text()) == report()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_symlink_is_kept_and_its_target_written(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "r.json"
    target.write_text("old\n")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert run(*SMALL, "--output", str(link)).exit_code == 0
    assert link.is_symlink() and link.resolve() == target
    assert json.loads(target.read_text()) == report()
    assert leftovers(tmp_path) == leftovers(tmp_path / "real") == []


def test_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "new.json")
    assert run(*SMALL, "--output", str(link)).exit_code == 0
    assert link.is_symlink()
    assert json.loads((tmp_path / "new.json").read_text()) == report()


def test_hard_links_stay_one_file(tmp_path: Path) -> None:
    """A file with other names is rewritten in place: every name shows the new report."""
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text("old contents, longer than nothing\n" * 400)  # longer than the report
    os.link(first, second)
    inode = first.stat().st_ino
    assert run(*SMALL, "--output", str(first)).exit_code == 0
    assert first.stat().st_ino == second.stat().st_ino == inode
    assert first.stat().st_nlink == 2
    assert json.loads(second.read_text()) == report()  # nothing of the old tail left


def test_read_only_file_is_refused_before_the_run(tmp_path: Path, no_run: None) -> None:
    target = tmp_path / "r.json"
    target.write_text("old\n")
    target.chmod(0o444)
    refused(run(*SMALL, "--output", str(target)), "--output")
    refused(run(*SMALL, "--save-arrays", str(target)), "--save-arrays")
    assert target.read_text() == "old\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o444


@pytest.mark.parametrize("length", [256, 300, 5000])
def test_over_long_names_are_refused_before_the_run(
    tmp_path: Path, no_run: None, length: int
) -> None:
    name = "a" * (length - 5) + ".json"
    line = refused(run(*SMALL, "--output", str(tmp_path / name)), "--output")
    assert len(line) < 200
    assert list(tmp_path.iterdir()) == []


def test_a_name_near_the_limit_is_written(tmp_path: Path) -> None:
    """250 characters fit the file system; the temporary name must fit too."""
    target = tmp_path / ("a" * 245 + ".json")
    result = run(*SMALL, "--output", str(target))
    assert result.exit_code == 0, result.stderr
    assert json.loads(target.read_text()) == report()
    assert leftovers(tmp_path) == []


def test_directory_and_missing_directory_are_refused(tmp_path: Path, no_run: None) -> None:
    refused(run(*SMALL, "--output", str(tmp_path)), "--output")
    refused(run(*SMALL, "--output", str(tmp_path / "missing" / "r.json")), "--output")
    refused(run(*SMALL, "--save-arrays", str(tmp_path / "missing" / "a.npz")), "--save-arrays")


@pytest.mark.parametrize("suffix", ["/", "/.", "/.."])
@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (SMALL, "--output"),
        (SMALL, "--save-arrays"),
        (SMALL, "--plot"),
        (["train", "--depth", "2", "--width", "4", "--batch", "2"], "--save-arrays"),
        (["sweep", "--vary", "depth=2,3", "--width", "4", "--batch", "2"], "--output"),
    ],
)
def test_a_name_that_ends_as_a_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], flag: str, suffix: str
) -> None:
    """'r.json/' names a directory, though Path('r.json/') is 'r.json': no file r.json."""
    monkeypatch.chdir(tmp_path)
    line = refused(run(*command, flag, "r.json" + suffix), flag)
    assert "names a directory" in line
    assert "empty; give a file name" in refused(run(*command, flag, ""), flag)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("how", ["same name", "symlink", "hard link"])
def test_output_and_save_arrays_must_be_different_files(
    tmp_path: Path, no_run: None, how: str
) -> None:
    target = tmp_path / "r.json"
    target.write_text("old\n")
    other = tmp_path / "other.json"
    if how == "same name":
        other = target
    elif how == "symlink":
        other.symlink_to(target)
    else:
        os.link(target, other)
    refused(run(*SMALL, "--output", str(target), "--save-arrays", str(other)), "--save-arrays")
    assert target.read_text() == "old\n"


# ---- writes that fail after the run -----------------------------------------------------------


def no_space(*args: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "r.json"
    target.write_text("old\n")
    monkeypatch.setattr(os, "fsync", no_space)
    result = run(*SMALL, "--output", str(target))
    assert result.exit_code == ExitCode.WRITE_FAILED
    (line,) = result.stderr.splitlines()
    assert "--output" in line and os.strerror(errno.ENOSPC) in line
    assert target.read_text() == "old\n"
    assert leftovers(tmp_path) == []
    assert result.stdout  # the run finished: its summary is still shown


def test_full_disk_keeps_a_hard_linked_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text("old\n")
    os.link(first, second)
    monkeypatch.setattr(os, "posix_fallocate", no_space)
    result = run(*SMALL, "--output", str(first))
    assert result.exit_code == ExitCode.WRITE_FAILED
    assert first.read_text() == second.read_text() == "old\n"


def test_full_disk_for_arrays_still_writes_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = tmp_path / "a.npz"
    arrays.write_bytes(b"old")

    def full_for_npz(path: object, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", full_for_npz)
    result = run(*SMALL, "--save-arrays", str(arrays), "--output", str(tmp_path / "r.json"))
    assert result.exit_code == ExitCode.WRITE_FAILED
    assert arrays.read_bytes() == b"old"
    assert json.loads((tmp_path / "r.json").read_text()) == report()


def test_a_failed_write_leaves_the_old_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "r.txt"
    target.write_text("old\n")
    written = OutputTarget.check(target, "--output")

    def fail_halfway(file: object) -> None:
        assert hasattr(file, "write")
        file.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        written.write(fail_halfway)
    assert target.read_text() == "old\n"
    assert leftovers(tmp_path) == []
    written.write(b"new\n")
    assert target.read_text() == "new\n"


# ---- streams, devices and pipes ---------------------------------------------------------------


def test_dash_is_stdout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(*SMALL, "--format", "json", "--output", "-")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == report()
    assert list(tmp_path.iterdir()) == []


def test_save_arrays_cannot_share_stdout(tmp_path: Path, no_run: None) -> None:
    refused(run(*SMALL, "--save-arrays", "-"), "--save-arrays")


def test_null_device_is_written_not_replaced(tmp_path: Path) -> None:
    null = device_node(tmp_path / "null", 3)
    for flag in ("--output", "--save-arrays"):
        result = run(*SMALL, flag, str(null))
        assert result.exit_code == 0, result.stderr
        assert stat.S_ISCHR(null.stat().st_mode)
    assert leftovers(tmp_path) == []


def test_full_device_is_a_write_failure_not_replaced(tmp_path: Path) -> None:
    full = device_node(tmp_path / "full", 7)
    result = run(*SMALL, "--output", str(full))
    assert result.exit_code == ExitCode.WRITE_FAILED
    assert stat.S_ISCHR(full.stat().st_mode)
    assert leftovers(tmp_path) == []


def test_fifo_is_written_directly(tmp_path: Path) -> None:
    path = tmp_path / "pipe.json"
    os.mkfifo(path)
    received: list[bytes] = []

    def read() -> None:
        with open(path, "rb") as pipe:
            received.append(pipe.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        result = run(*SMALL, "--output", str(path))
    finally:
        reader.join(timeout=10)
        if reader.is_alive():  # the run never opened the pipe: free the reader
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISFIFO(path.stat().st_mode)
    assert json.loads(received[0]) == report()


LONG = ["--depth", "2000", "--width", "8", "--batch", "2"]  # more than a pipe's buffer holds


@pytest.mark.parametrize(
    ("flag", "args"),
    [
        ("--output", ["analyze", *LONG, "--format", "json", "-q"]),
        ("--save-arrays", ["analyze", *LONG, "-q"]),
        ("--output", ["sweep", "--vary", "depth=2:400:200", "--width", "4", "--format", "jsonl"]),
    ],
)
def test_fifo_whose_reader_leaves_early_is_a_failed_write(
    tmp_path: Path, flag: str, args: list[str]
) -> None:
    """The output did not arrive whole: exit 3 and one line, as for a full disk, while the
    summary still reaches stdout (which is no pipe that has gone)."""
    path = tmp_path / "pipe"
    os.mkfifo(path)

    def read_a_little() -> None:
        with open(path, "rb") as pipe:
            pipe.read(10)

    reader = threading.Thread(target=read_a_little, daemon=True)
    reader.start()
    try:
        result = run(*args, flag, str(path))
    finally:
        reader.join(timeout=10)
        if reader.is_alive():
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    assert result.exit_code == ExitCode.WRITE_FAILED, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"gradflow: error: {flag}: could not write '") and line.endswith(
        "': Broken pipe"
    )
    assert result.stdout.startswith("plain") or "Sweep" in result.stdout


def test_npz_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "real.npz"
    link = tmp_path / "a.npz"
    link.symlink_to(target)
    assert run(*SMALL, "--save-arrays", str(link), "--quiet").exit_code == 0
    assert link.is_symlink()
    expected = build(SPEC).arrays(SPEC)
    with np.load(target) as saved:
        assert set(saved.files) == set(expected)
        for key, value in expected.items():
            np.testing.assert_array_equal(saved[key], value)


def test_kinds(tmp_path: Path) -> None:
    """What check makes of each kind of path."""
    regular = tmp_path / "r.json"
    regular.write_text("x")
    linked = tmp_path / "l.json"
    linked.write_text("x")
    os.link(linked, tmp_path / "l2.json")
    os.mkfifo(tmp_path / "p")
    assert OutputTarget.check(tmp_path / "new.json", "--output").kind is Kind.REPLACE
    assert OutputTarget.check(regular, "--output").kind is Kind.REPLACE
    assert OutputTarget.check(linked, "--output").kind is Kind.IN_PLACE
    assert OutputTarget.check(tmp_path / "p", "--output").kind is Kind.DEVICE
    assert OutputTarget.check("-", "--output").kind is Kind.STREAM


def test_interrupts_are_held_while_other_threads_run() -> None:
    """A rewrite in place holds Ctrl-C back until the file is whole, also while a pass's helper
    threads are alive: the kernel hands a process's signal to a thread that does not block it,
    and Python runs the handler in the main thread all the same."""
    done = threading.Event()
    helper = threading.Thread(target=done.wait)
    helper.start()
    steps: list[str] = []
    try:
        with pytest.raises(KeyboardInterrupt), interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # where the handler would run, were it not held
            steps.append("whole")
        assert steps == ["whole"]
    finally:
        done.set()
        helper.join()
