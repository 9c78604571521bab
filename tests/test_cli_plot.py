"""``--plot FILE``: a figure file beside the normal output, for analyze, compare and paths; the
same command writes the same bytes; a bad suffix or a missing matplotlib is exit 2 before the
run."""

from __future__ import annotations

import struct
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from test_cli import one_line_error, run

from gradflow.analysis import analyze as analysis
from gradflow.render.figures import INSTALL

TINY = ["--depth", "4", "--width", "4", "--batch", "2"]


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG signature and its IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def check_png(data: bytes) -> None:
    width, _ = png_size(data)
    assert width >= 1600
    assert b"Software" not in data  # no version stamped in


def check_svg(data: bytes) -> None:
    root = ElementTree.fromstring(data)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert b"<dc:date>" not in data


def check_pdf(data: bytes) -> None:
    assert data.startswith(b"%PDF-")
    assert data.rstrip().endswith(b"%%EOF")
    assert b"/CreationDate" not in data and b"/ModDate" not in data


CASES = [  # each command once, each format once; the suffix in any case
    ("analyze", ["--skip", "pre"], "figure.PNG", check_png),
    ("compare", [], "figure.svg", check_svg),
    ("paths", ["--variants", "post,pre"], "figure.Pdf", check_pdf),
    ("train", ["--steps", "3", "--samples", "4"], "figure.png", check_png),
]


@pytest.mark.parametrize(("command", "extra", "name", "check"), CASES)
def test_the_figure_is_written_beside_the_output_and_twice_the_same(
    tmp_path: Path, command: str, extra: list[str], name: str, check: object
) -> None:
    written = []
    for attempt in ("first", "second"):
        target = tmp_path / attempt / name
        target.parent.mkdir()
        result = run(command, *TINY, *extra, "--plot", str(target), "--format", "json")
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("{")  # the normal output is still there
        assert f"gradflow: wrote {target}" in result.stderr
        written.append(target.read_bytes())
    assert callable(check)
    check(written[0])
    assert written[0] == written[1]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("figure.jpg", "no figure format for suffix"),
        ("figure", "no figure format for suffix"),
        ("figure.png.txt", "no figure format for suffix"),
        ("-", "stdout carries the report; give a file name"),
    ],
)
def test_a_suffix_that_names_no_figure_format_is_refused_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, message: str
) -> None:
    monkeypatch.setattr(analysis, "analyze", _must_not_run)
    result = run("analyze", *TINY, "--plot", str(tmp_path / name) if name != "-" else name)
    assert f"--plot: {message}" in one_line_error(result)
    assert list(tmp_path.iterdir()) == []


def test_without_matplotlib_plot_is_refused_before_the_run_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    monkeypatch.setattr(analysis, "compare", _must_not_run)
    result = run("compare", *TINY, "--plot", str(tmp_path / "figure.png"))
    line = one_line_error(result)
    assert "--plot" in line and INSTALL in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("other", ["--output", "--save-arrays"])
def test_the_figure_cannot_share_a_file_with_another_output(tmp_path: Path, other: str) -> None:
    target = tmp_path / "figure.png"
    result = run("analyze", *TINY, other, str(target), "--format", "json", "--plot", str(target))
    assert f"is also {other}" in one_line_error(result)


def test_a_read_only_figure_is_refused_as_output_is(tmp_path: Path) -> None:
    target = tmp_path / "figure.svg"
    target.write_bytes(b"old")
    target.chmod(0o444)
    result = run("analyze", *TINY, "--plot", str(target))
    assert "--plot" in one_line_error(result) and "read-only" in result.stderr
    assert target.read_bytes() == b"old"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_figure_that_cannot_be_written_is_exit_3_and_the_report_stands(tmp_path: Path) -> None:
    target = tmp_path / "figure.svg"  # the quickest format to draw
    target.symlink_to("/dev/full")  # every write: no space left on device
    result = run("analyze", *TINY, "--format", "json", "--plot", str(target))
    assert result.exit_code == 3, result.output
    assert result.stdout.startswith("{")
    (line,) = [x for x in result.stderr.splitlines() if "error" in x]
    assert line.startswith("gradflow: error: --plot: could not write ")
    assert line.endswith(": No space left on device")


def test_analyze_without_plot_never_imports_matplotlib() -> None:
    code = (
        "import sys\n"
        "from gradflow.cli.app import main\n"
        f"sys.argv = ['gradflow', 'analyze', *{TINY!r}, '-q']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "print('gradflow.analysis.analyze' in sys.modules, 'matplotlib' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[-1] == "True False"  # the run happened, matplotlib stayed out


def _must_not_run(*args: object, **kwargs: object) -> None:
    raise AssertionError("the run started")
