"""The user's files: bounded reads that never block, writes that never lose the old file.

Every file virtio_lab reads from the user (an lspci dump for ``explain``, a saved session)
goes through :func:`read_input`, and every file it writes (a report, a session, kit and
capture files) through :func:`write_atomic`. Standard library only; below every layer.
"""

from __future__ import annotations

import os
import secrets
import stat
import sys
from pathlib import Path
from typing import Any, BinaryIO

from .errors import VirtioLabError, VirtioLabTypeError, shown, type_name

__all__ = ["MAX_INPUT", "read_input", "read_stream", "write_atomic", "size_text"]

#: What ``explain`` reads at most: an ``lspci -xxxx`` of a large machine is a few MiB.
MAX_INPUT = 16 << 20

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def size_text(n: int) -> str:
    """``n`` bytes for a message: 812 bytes, 3.5 KiB, 100.0 MiB."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} byte{'s' if n != 1 else ''}"


def _check_path(path: Any, what: str) -> str:
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise VirtioLabTypeError(f"{what}: a file name is a str or a Path, not {type_name(path)}")
    path = os.fspath(path)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    if not path:
        raise VirtioLabError(f"{what}: no file name given")
    if "\0" in path:
        raise VirtioLabError(f"{what}: the file name {shown(path, tail=True)} contains a NUL byte")
    return path


def _too_big(what: str, where: str, size: int | None, limit: int) -> VirtioLabError:
    have = f"is {size_text(size)}" if size is not None else f"holds more than {size_text(limit)}"
    return VirtioLabError(f"{what} {where} {have}; at most {size_text(limit)} is read")


def read_stream(stream: BinaryIO | None, limit: int, what: str, where: str = "on stdin") -> bytes:
    """At most ``limit`` bytes of an open binary stream (stdin, a pipe); more is refused, and
    a stream that cannot be read (closed, none at all) is one line too."""
    try:
        if stream is None:
            raise OSError("there is none")
        data = stream.read(limit + 1)
    except (OSError, ValueError) as err:  # ValueError: a closed file
        raise VirtioLabError(f"cannot read {what} {where}: {getattr(err, 'strerror', None) or err}") from None
    if len(data) > limit:
        raise _too_big(what, where, None, limit)
    return data


def read_input(path: Any, limit: int = MAX_INPUT, what: str = "input") -> bytes:
    """The bytes of a regular file (``-``: stdin), at most ``limit`` of them.

    The file is opened without blocking (``O_NONBLOCK``: a FIFO without a writer or a
    device opens at once) and must be a regular file: a directory, FIFO, device or
    socket is refused with one line, a file over ``limit`` by its size before any read."""
    path = _check_path(path, f"cannot read {what}")
    if path == "-":
        return read_stream(getattr(sys.stdin, "buffer", None), limit, what)
    where = shown(path, limit=100, tail=True)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise VirtioLabError(f"cannot read {what} {where}: {err.strerror or err}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a regular file")
            raise VirtioLabError(f"cannot read {what} {where}: it is {kind}, not a regular file"
                                 + ("" if kind == "a directory" else
                                    " (save it to a file, or pipe it in as -)"))
        if st.st_size > limit:
            raise _too_big(what, where, st.st_size, limit)
        chunks, total = [], 0
        while total <= limit:  # the file may grow while it is read
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as err:
        raise VirtioLabError(f"cannot read {what} {where}: {err.strerror or err}") from None
    finally:
        os.close(fd)
    if total > limit:
        raise _too_big(what, where, None, limit)
    return b"".join(chunks)


def write_atomic(path: Any, data: bytes | str, what: str = "the file") -> Path:
    """Write ``data`` to ``path`` so that a failure leaves the old file as it was.

    The bytes go to a temporary file in the same directory, are flushed to disk
    (``fsync``) and renamed over ``path``; any error removes the temporary file and raises
    one VirtioLabError line. A ``str`` is written as UTF-8 (a lone surrogate, a non-UTF-8
    byte from the command line, as its backslash escape). A symlink is written through
    (its target is replaced); an existing FIFO or device (``/dev/null``, ``/dev/stdout``)
    is a stream with nothing to lose and is written directly. A new file gets the usual
    permissions (0666 less the umask), a replaced one keeps its own."""
    name = _check_path(path, f"cannot write {what}")
    if isinstance(data, str):
        data = data.encode("utf-8", "backslashreplace")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise VirtioLabTypeError(f"cannot write {what}: the data is bytes or str, not "
                                 f"{type_name(data)}")
    where = shown(name, limit=100, tail=True)
    try:
        try:
            st = os.stat(name)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise VirtioLabError(f"cannot write {what} to {where}: it is a directory")
        if st is not None and not stat.S_ISREG(st.st_mode):
            with open(name, "wb") as stream:
                stream.write(data)
            return Path(name)
        _replace(os.path.realpath(name), bytes(data), st)
    except OSError as err:
        raise VirtioLabError(f"cannot write {what} to {where}: {err.strerror or err}") from None
    return Path(name)


def _replace(target: str, data: bytes, old: os.stat_result | None) -> None:
    folder, base = os.path.split(target)
    tmp = os.path.join(folder, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        try:
            if old is not None:
                os.fchmod(fd, stat.S_IMODE(old.st_mode))
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # the rename itself reaches the disk with the directory
        dfd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
