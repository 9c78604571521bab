"""Exit codes, and the one-line errors that lead to them.

Every refusal is one short line on stderr: ``gradflow: error: --flag: what is wrong``. Values
echoed back are cut to a few dozen characters, so that a 100,000-character argument still gives
a line that fits a terminal.
"""

from __future__ import annotations

import difflib
import errno
import os
import re
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


def exit_codes(checks: str | None) -> str:
    """A command's --help epilog: its exit codes (1 only where ``checks`` names the commands
    with --fail-on, or "" for the command itself)."""
    meaning = dict(MEANING)
    if checks is None:
        del meaning[ExitCode.CHECK_FAILED]
    elif checks:
        meaning[ExitCode.CHECK_FAILED] += f" ({checks})"
    return (
        "Exit codes: "
        + "; ".join(f"{code.value} {text}" for code, text in meaning.items())
        + "; SIGTERM ends it by that signal, after the same clean-up (143 in a shell). A reader"
        " that closes the pipe early (gradflow compare | head) changes nothing: the rest of the"
        " output is dropped."
    )


EXIT_CODES = exit_codes("")  # analyze and train, which have --fail-on
EXIT_CODES_NO_CHECKS = exit_codes(None)
ALL_EXIT_CODES = exit_codes("analyze, train")

ECHO_LIMIT = 60  # characters of a user's value echoed back in an error
LINE_LIMIT = 400  # characters of a whole error line, whatever it echoes
CLOSE_MATCH = 0.8  # difflib ratio above which an unknown flag or command gets a suggestion


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


VALUE = re.compile(r"'[^']*'|\"[^\"]*\"|[^\s'\"]+")  # a quoted value, or a run without spaces


def _cut_values(text: str) -> str:
    """Every value (quoted, or a run without spaces) cut to ``ECHO_LIMIT`` characters."""

    def cut(match: re.Match[str]) -> str:
        value = match.group()
        if len(value) <= ECHO_LIMIT + 2:
            return value
        if value[0] in "'\"":
            return value[0] + shorten(value[1:-1]) + value[-1]
        return shorten(value)

    return VALUE.sub(cut, text)


def one_line(error: typer.TyperException) -> str:
    """``--flag: what is wrong (accepted values)`` on a single short line."""
    hint = getattr(error, "param_hint", None)
    param = getattr(error, "param", None)
    if hint is None and param is not None:
        hint = max(param.opts, key=len) if param.opts else param.name
    message = getattr(error, "message", str(error))
    if type(error).__name__ == "NoSuchOption":
        name = getattr(error, "option_name", "")
        message = _no_such_option(name, getattr(error, "possibilities", None))
        elsewhere = getattr(error, "elsewhere", None)
        if elsewhere and not message.endswith("?)"):  # no close match here: where it is
            message += f" ({_commands_text(elsewhere)})"
    elif type(error).__name__ == "MissingParameter":  # click leaves its message empty
        message = "is required" + REQUIRED_EXAMPLE.get(str(hint), "")
    text = message if not hint or message.startswith(hint) else f"{hint}: {message}"
    return shorten(_cut_values(" ".join(text.split())), LINE_LIMIT)


# what a required flag's refusal shows, beside "is required"
REQUIRED_EXAMPLE = {"--vary": ", e.g. --vary depth=10,20,50"}


def _commands_text(names: list[str]) -> str:
    """``only sweep takes it``, ``only analyze and train take it``, ``a, b, c take it``."""
    if len(names) == 1:
        return f"only {names[0]} takes it"
    if len(names) == 2:
        return f"only {names[0]} and {names[1]} take it"
    return f"{', '.join(names)} take it"


def _no_such_option(name: str, possibilities: object) -> str:
    """click suggests loosely (``--dept``: --depth, --help, --width); keep one close match."""
    known = [str(p) for p in possibilities] if isinstance(possibilities, list | tuple) else []
    close = difflib.get_close_matches(name, known, n=1, cutoff=CLOSE_MATCH)
    suggestion = f" (did you mean {close[0]}?)" if close else ""
    return f"no such option {name}{suggestion}"


def close_command(name: str, commands: list[str]) -> str | None:
    """The command ``name`` was probably meant to be, when one is a close match."""
    close = difflib.get_close_matches(name, commands, n=1, cutoff=CLOSE_MATCH)
    return close[0] if close else None


def note(line: str) -> None:
    """One line on stderr; a closed stderr is no reason for a traceback."""
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except OSError:
        silence(sys.stderr)


# what a write to a full, broken or closed stdout raises
WRITE_ERRORS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EPIPE, errno.EBADF}
)


def stdout_broken(error: OSError) -> bool:
    """Whether an error that escaped a command is a write to stdout failing (a full disk, a
    reader gone), not a bug's: a stream's write error names no file. (The commands turn their
    own files' errors into WriteFailed; a flush cannot tell, for a failed write's bytes are
    dropped from the buffer.)"""
    return error.errno in WRITE_ERRORS and error.filename is None


def stdout_failed(error: OSError) -> ExitCode:
    """Text click printed itself (--help, --version) could not go to stdout: a reader that has
    gone is no error (as ``| head`` elsewhere), a full disk is exit 3 with one line."""
    silence(sys.stdout)
    if error.errno == errno.EPIPE:
        return ExitCode.OK
    note(f"gradflow: error: could not write stdout: {error.strerror or error}")
    return ExitCode.WRITE_FAILED


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
