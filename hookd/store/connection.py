"""The SQLite connection: opened on a locked file, functions run on its thread, and a
watch that the file at the path is still the one opened."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import aiosqlite
import structlog

from hookd.clock import Clock
from hookd.store.files import Identity, identity, release_lock, take_lock

T = TypeVar("T")
MIN_SQLITE = (3, 38)
# How often the file at the store's path is checked to still be the one opened (the
# check also runs with every commit).
WATCH_SECONDS = 2.0
log = structlog.get_logger("hookd.store")


class Connection:
    """One SQLite connection on aiosqlite's thread, and the file it was opened on."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self._clock = clock
        self._lock: int | None = None
        self._identity: Identity | None = None
        self._db: aiosqlite.Connection | None = None
        self.lost = False  # the file at path is no longer the one open

    @property
    def is_open(self) -> bool:
        """Open, and not closed since."""
        return self._db is not None

    async def open(self, init: Callable[[sqlite3.Connection], None]) -> None:
        """Open (creating) the file, then run ``init(connection)`` on it."""
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            # The packed writes use the ->> operator (3.38). An environment problem,
            # reported like a missing file rather than as a crash.
            need = ".".join(map(str, MIN_SQLITE))
            raise OSError(f"SQLite {sqlite3.sqlite_version} is too old: hookd needs {need} or newer")
        on_disk = str(self.path) != ":memory:"
        if on_disk:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Before the file is opened: two daemons on one file would both deliver.
            self._lock = take_lock(self.path)
        try:
            self._db = await aiosqlite.connect(str(self.path), isolation_level=None)
            await self.run(init)
            if on_disk:
                self._identity = identity(self.path)
        except BaseException:
            # The connection's thread is not a daemon: left open, it would keep the
            # process from exiting after the error is reported.
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection (if open) and let go of the file's lock."""
        if self._db is not None:
            await self._db.close()
            self._db = None
        if self._lock is not None:
            release_lock(self._lock)
            self._lock = None

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the connection thread."""
        db = self._db
        assert db is not None, "store is not open"
        return await run_on(db, fn)

    def moved(self) -> bool:
        """True when the path no longer names the file opened (deleted, or replaced); a stat,
        cheap enough to make on the connection thread with every commit."""
        if self._identity is None:
            return False
        try:
            return identity(self.path) != self._identity
        except OSError:  # cannot tell (a permission changed): not proof of a lost file
            return False

    async def watch(self) -> None:
        """Check every few seconds that the file at the path is still the one open (runs until
        cancelled, or until the file is gone: nothing brings it back but a restart)."""
        if self._identity is None:
            return
        while not self.lost:
            await self._clock.sleep(WATCH_SECONDS)
            if self.moved():
                self.lose()

    def lose(self) -> None:
        """Take the file as gone: say so once; nothing is accepted any more."""
        if not self.lost:
            self.lost = True
            hint = "the database file was deleted or replaced; restart hookd"
            log.error("storage_lost", path=str(self.path), hint=hint)


async def run_on(db: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn(connection)`` on ``db``'s thread."""
    # aiosqlite's public API is one thread hop per statement; its _execute runs a
    # whole function per hop, which is what makes group commit cheap (SPEC §10).
    result: T = await db._execute(fn, db._conn)  # type: ignore[no-untyped-call]
    return result


class Reads:
    """Where the admin API's reads of the log run: a read-only connection of their own on
    its own thread, so that a search or the activity chart (which may read for a second
    under heavy load) never holds up a group commit. WAL lets it read beside the writer;
    it sees what is committed, as the writer's own thread would between two commits. A
    store in memory has no file to open twice: there the reads share the writer's."""

    def __init__(self, writer: Connection) -> None:
        self._writer = writer
        self._db: aiosqlite.Connection | None = None

    async def open(self, busy_timeout: float) -> None:
        """Open the read connection on the writer's file (after the writer made the schema)."""
        if str(self._writer.path) == ":memory:":
            return
        uri = self._writer.path.resolve().as_uri() + "?mode=ro"
        self._db = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        try:

            def setup(conn: sqlite3.Connection) -> None:
                conn.execute("PRAGMA query_only=ON")
                conn.execute(f"PRAGMA busy_timeout={round(busy_timeout * 1000)}")

            await run_on(self._db, setup)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the read connection, if open."""
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the read connection's thread (the writer's, in memory)."""
        if self._db is None:
            return await self._writer.run(fn)
        return await run_on(self._db, partial(_snapshot, fn))


def _snapshot(fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    """``fn(conn)`` inside one read transaction: its statements see one snapshot, as they
    did on the writer's thread, where no commit could land between two of them."""
    conn.execute("BEGIN")
    try:
        return fn(conn)
    finally:
        conn.execute("COMMIT")  # a read transaction: nothing to keep or undo
