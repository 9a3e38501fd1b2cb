"""The database file itself: one daemon per file (a lock beside it), and knowing it is still there."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

# (st_dev, st_ino): what makes "the file at this path" the one we opened.
Identity = tuple[int, int]


class StoreLocked(OSError):
    """Another process holds the database's lock file."""


def lock_path(db: Path) -> Path:
    """The lock file of a database: ``<db>.lock`` beside it."""
    return db.with_name(db.name + ".lock")


def take_lock(db: Path) -> int:
    """Hold ``<db>.lock`` exclusively for as long as the returned descriptor stays open.

    flock, not the fcntl locks SQLite uses: those belong to the process and vanish when any
    descriptor of the file is closed, while this one lives exactly as long as its descriptor,
    and the kernel drops it when the holder dies however it dies (a stale file is harmless).
    """
    path = lock_path(db)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        who = f"pid {holder}" if holder else "a process that has not written its pid yet"
        raise StoreLocked(
            f"{db} is in use by another hookd ({who}, holding {path}); stop it or give this one another storage.path"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def release_lock(fd: int) -> None:
    """Let go of a lock from take_lock. The file stays: removing it could let two processes
    each lock a file of their own at the same path."""
    with contextlib.suppress(OSError):
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def identity(path: Path) -> Identity | None:
    """The file now at ``path``, or None when there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)
