"""Atomic file writes and a lock between processes.

A write goes to a temp file in the target folder, is fsynced, then renamed over the
target: a crash or Ctrl-C mid-write leaves the old file intact, never a half-written one.
``locked`` serialises read-merge-write cycles (two runs updating one baseline file).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8, LF) or leave it untouched on any failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LockTimeout(OSError):
    """Another process held the lock for longer than the caller would wait."""


@contextlib.contextmanager
def locked(lock_path: Path, timeout_s: float = 120.0) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (a small file, created if needed) for the block.

    An OS lock (flock; LockFileEx through msvcrt on Windows) between processes and between
    threads alike: it is released when the block ends or the holder dies, so it never goes
    stale. LockTimeout after ``timeout_s`` names the lock file.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a+b") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                _lock(handle)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise LockTimeout(
                        f"another process has held the lock {lock_path} for over {timeout_s:g} s"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            _unlock(handle)


if sys.platform == "win32":
    import msvcrt

    def _lock(handle: BinaryIO) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock(handle: BinaryIO) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(handle: BinaryIO) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(handle: BinaryIO) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
