"""Output files: each output flag's target is checked before the run and written after it.

``OutputTarget.check(path, flag)`` refuses, before any work and with one line, whatever could not
be written: a missing directory, a directory, a read-only file (judged by its mode bits, so also
when running as root), a name too long for the file system, a socket. ``target.write(data)`` then
writes according to what the path is:

    a regular file, or none yet   a temporary file beside it (a short name, ``.gf-XXXXXXXX.tmp``),
                                  fsync, rename over it: a reader sees the old file or the new
                                  one, never half of one; the old file's mode and owner are kept
    a regular file with other     rewritten in place, so that all its names still show one file;
      hard links                  its space is reserved first (a full disk leaves it as it was)
                                  and Ctrl-C waits until the rewrite is done
    a symlink                     the file it points to, by these rules; the link stays
    ``-``, or the file or pipe    written through our own stdout (or stderr): ``/dev/stdout``
      our stdout goes to          redirected to a file is that file, not a name to replace
    a device or a FIFO            opened and written: ``/dev/null`` is not a file to replace
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import IO, BinaryIO

from gradflow.cli.errors import BadInput, WriteFailed, quoted
from gradflow.cli.interrupts import interrupts_held

Writer = Callable[[IO[bytes]], object]  # writes the whole output into a binary file
TEMP_PREFIX, TEMP_SUFFIX = ".gf-", ".tmp"  # with mkstemp's 8 random characters: 16 in all
STREAMS = (1, 2)  # stdout, stderr


class Kind(Enum):
    REPLACE = "replace"  # a temporary file renamed over the (regular or new) file
    IN_PLACE = "in place"  # a regular file with other hard links: rewritten, not replaced
    STREAM = "stream"  # our own stdout or stderr
    DEVICE = "device"  # a character or block device, or a FIFO


@dataclass(frozen=True)
class OutputTarget:
    """Where one output flag's bytes go; made by ``check`` before the run."""

    path: Path  # as the user gave it, for messages
    flag: str
    kind: Kind
    final: Path  # where the bytes land: a symlink's target, else ``path``
    key: tuple[int, int] | str  # (device, inode) of an existing file, else its resolved path
    fd: int | None = None  # a stream's descriptor: 1 (stdout) or 2 (stderr)

    @classmethod
    def check(cls, path: Path | str, flag: str) -> OutputTarget:
        """The target ``path`` names, or BadInput (exit 2) when it cannot be written."""
        path = Path(path)
        if str(path) == "-":
            return cls(path, flag, Kind.STREAM, path, "fd 1", fd=1)
        final = Path(os.path.realpath(path))
        try:
            info = os.stat(path)  # follows symlinks: what the bytes would land in
        except FileNotFoundError:  # none yet, or a dangling symlink: created at ``final``
            _check_new(final, flag)
            return cls(path, flag, Kind.REPLACE, final, str(final))
        except OSError as error:  # a name too long, a symlink loop, a file used as a directory
            raise BadInput(flag, f"cannot use {quoted(path)}: {error.strerror}") from None
        key, mode = (info.st_dev, info.st_ino), info.st_mode
        for fd in STREAMS:  # /dev/stdout, /proc/self/fd/1: the file or pipe stdout writes to
            if not stat.S_ISCHR(mode) and _same_file(fd, key):  # (a terminal or /dev/null: open it)
                return cls(path, flag, Kind.STREAM, path, f"fd {fd}", fd=fd)
        if stat.S_ISDIR(mode):
            raise BadInput(flag, f"{quoted(path)} is a directory; give a file name")
        if not stat.S_ISREG(mode) and not _is_stream_node(mode):
            raise BadInput(flag, f"{quoted(path)} is not a file, a device or a FIFO")
        if not mode & 0o222 or not os.access(final, os.W_OK):  # root ignores the mode: we don't
            raise BadInput(flag, f"{quoted(path)} is read-only; make it writable or choose another")
        if _is_stream_node(mode):
            return cls(path, flag, Kind.DEVICE, final, key)
        if info.st_nlink > 1:
            return cls(path, flag, Kind.IN_PLACE, final, key)
        _probe(final.parent, flag)
        return cls(path, flag, Kind.REPLACE, final, key)

    @property
    def is_stream(self) -> bool:
        """Bytes written here go to our own stdout or stderr."""
        return self.kind is Kind.STREAM

    def same_as(self, other: OutputTarget) -> bool:
        return self.key == other.key

    def write(self, data: bytes | Writer) -> None:
        """Write the whole output, by the rules of its kind.

        Raises WriteFailed (exit 3) when it cannot, with the file as it was before (but for a
        device or a FIFO, which may hold part of it), also when a FIFO's reader closed it
        before the end. Where the target is stdout or stderr itself, a reader that has gone
        raises BrokenPipeError, left to the caller (``| head`` is no error).
        """
        write: Writer = data if callable(data) else (lambda file: file.write(data))
        try:
            if self.kind is Kind.REPLACE:
                _replace(self.final, write)
            elif self.kind is Kind.IN_PLACE:
                _rewrite(self.final, write)
            elif self.fd is not None:
                _to_stream(self.fd, write)
            else:
                with open(self.final, "wb") as file:
                    write(file)
        except BrokenPipeError as error:
            if self.fd is not None:
                raise
            raise WriteFailed(self.flag, self.path, error) from None
        except OSError as error:
            raise WriteFailed(self.flag, self.path, error) from None


# ---- checks ----------------------------------------------------------------------------------


def _is_stream_node(mode: int) -> bool:
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)


def _same_file(fd: int, key: tuple[int, int]) -> bool:
    try:
        info = os.fstat(fd)
    except OSError:  # closed
        return False
    return (info.st_dev, info.st_ino) == key


def _check_new(final: Path, flag: str) -> None:
    """A file to create: its directory must exist and take files, its name must fit."""
    directory = final.parent
    if not directory.is_dir():
        raise BadInput(flag, f"directory {quoted(directory)} does not exist")
    size, limit = len(os.fsencode(final.name)), _name_max(directory)
    if size > limit:
        raise BadInput(flag, f"file name too long ({size} bytes; at most {limit} here)")
    _probe(directory, flag)


def _name_max(directory: Path) -> int:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):  # not known here: the common limit
        return 255


def _probe(directory: Path, flag: str) -> None:
    """Create and remove a temporary file where the real one will go: a read-only file system,
    a directory without write permission or a full inode table shows now, not after the run."""
    try:
        handle, name = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
    except OSError as error:
        raise BadInput(
            flag, f"cannot create files in {quoted(directory)}: {error.strerror}"
        ) from None
    os.close(handle)
    os.unlink(name)


# ---- writers ---------------------------------------------------------------------------------


def _replace(final: Path, write: Writer) -> None:
    """A temporary file beside ``final``, synced, then renamed over it: all or nothing."""
    directory = final.parent
    handle, temp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        _take_over_attributes(temp, final)
        os.replace(temp, final)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _sync_directory(directory)


def _take_over_attributes(temp: str, final: Path) -> None:
    """The mode (and, where allowed, the owner) of the file being replaced; a new file gets
    the usual 0666 less the umask (mkstemp made it 0600)."""
    try:
        old = os.stat(final)
    except FileNotFoundError:
        os.chmod(temp, 0o666 & ~_umask())
        return
    if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
        with contextlib.suppress(PermissionError):
            os.chown(temp, old.st_uid, old.st_gid)
    os.chmod(temp, stat.S_IMODE(old.st_mode))  # after chown, which clears set-id bits


def _sync_directory(directory: Path) -> None:
    """The rename survives a crash once its directory is synced too (where that is possible)."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _rewrite(final: Path, write: Writer) -> None:
    """Overwrite a hard-linked file in place: every link sees the new contents.

    The bytes are made first and their space reserved, so that a full disk fails before the
    file is touched; Ctrl-C is held back until the file is whole again.
    """
    buffer = io.BytesIO()
    write(buffer)
    data = buffer.getbuffer()
    handle = os.open(final, os.O_WRONLY)
    try:
        if data.nbytes:
            _reserve(handle, data.nbytes)
        with interrupts_held():
            written = 0
            while written < data.nbytes:
                written += os.pwrite(handle, data[written:], written)
            os.ftruncate(handle, data.nbytes)
        os.fsync(handle)
    finally:
        os.close(handle)


def _reserve(handle: int, size: int) -> None:
    if not hasattr(os, "posix_fallocate"):  # macOS: no reservation, the rewrite goes ahead
        return
    try:
        os.posix_fallocate(handle, 0, size)
    except OSError as error:
        if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise  # ENOSPC, EFBIG, EDQUOT: the file is as it was


def _to_stream(fd: int, write: Writer) -> None:
    text = sys.stdout if fd == 1 else sys.stderr
    text.flush()  # what was printed before comes first
    stream: BinaryIO = text.buffer
    write(stream)
    stream.flush()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
