"""Exit codes, and the one-line errors that lead to them.

Every refusal is one line on stderr: ``gradflow: error: --flag: what is wrong``.
"""

from __future__ import annotations

import os
import sys
from enum import IntEnum
from pathlib import Path
from typing import TextIO

import typer


class ExitCode(IntEnum):
    OK = 0
    CHECK_FAILED = 1  # a --fail-on check failed; the report was still written
    BAD_INPUT = 2  # one line on stderr; nothing was run
    WRITE_FAILED = 3  # the run finished but an output could not be written
    INTERNAL_ERROR = 70  # a bug (sysexits' EX_SOFTWARE): the traceback is on stderr
    INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells report a process stopped by it


MEANING = {
    ExitCode.OK: "success",
    ExitCode.CHECK_FAILED: "a --fail-on check failed",
    ExitCode.BAD_INPUT: "bad input (nothing was run)",
    ExitCode.WRITE_FAILED: "the run finished but an output could not be written",
    ExitCode.INTERNAL_ERROR: "a bug in gradflow (traceback on stderr)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}
EXIT_CODES = (
    "Exit codes: "
    + "; ".join(f"{code.value} {MEANING[code]}" for code in ExitCode)
    + ". A reader that closes the pipe early (gradflow compare | head) changes nothing: "
    "the rest of the output is dropped."
)

ECHO_LIMIT = 60  # characters of a path echoed back in an error


class BadInput(typer.BadParameter):
    """A flag's value (or a combination of flags) that cannot run: exit 2 with one line."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(message, param_hint=flag)


class WriteFailed(Exception):
    """An output that could not be written after the run: exit 3 with one line."""

    def __init__(self, flag: str, path: Path | None, error: OSError) -> None:
        reason = error.strerror or str(error)
        what = (
            f"could not write {flag}" if path is None else f"{flag}: could not write {quoted(path)}"
        )
        super().__init__(f"{what}: {reason}")


def shorten(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quoted(path: Path | str) -> str:
    """A path or value as an error line shows it: quoted and cut short."""
    return repr(shorten(str(path)))


def one_line(error: typer.TyperException) -> str:
    """``--flag: what is wrong (accepted values)`` on a single line."""
    hint = getattr(error, "param_hint", None)
    param = getattr(error, "param", None)
    if hint is None and param is not None:
        hint = max(param.opts, key=len) if param.opts else param.name
    message = error.format_message() if not hint else getattr(error, "message", str(error))
    text = message if not hint or message.startswith(hint) else f"{hint}: {message}"
    return " ".join(text.split())


def note(line: str) -> None:
    """One line on stderr; a closed stderr is no reason for a traceback."""
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except OSError:
        silence(sys.stderr)


def silence(stream: TextIO) -> None:
    """Point a broken stream at /dev/null: what is left in its buffer goes nowhere, instead of
    into an error when Python flushes it on the way out."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's buffer)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
