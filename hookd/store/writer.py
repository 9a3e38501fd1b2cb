"""The store's writer: the queue of writes, its group commit, the durability modes and
the retries of failed writes.

All writes go through one writer task that drains a queue and applies everything
queued so far in one transaction (group commit): many concurrent ingest requests and
delivery outcomes share one commit. Each flush runs as one plain function on
aiosqlite's connection thread, so a flush costs one thread hop however many
statements it holds.

A write that fails for a reason that can pass (another process holding the write lock
past the busy timeout, a full disk) is kept and tried again, with a growing wait, until
it lands: only an ingest, whose client is answered 503 and sends again, is failed at
once. The file is checked to still be the one opened, so a deleted database is noticed
rather than written into until the next start loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from hookd.clock import Clock
from hookd.store.connection import Connection
from hookd.store.interface import StorageLost

T = TypeVar("T")
# Under durability = "memory" the open transaction is committed at least this often, so
# the WAL and page cache stay bounded; the promise is still only "survives a clean stop".
MEMORY_COMMIT_SECONDS = 60.0
# Writes nobody waits for linger this long (or until this many are queued) for company.
LINGER_SECONDS = 0.005
LINGER_OPS = 64
# A failed write is tried again after 0.1 s, then twice as long each time, up to 5 s.
RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 5.0
# Primary result codes (the low byte of an extended code) of errors that can pass by
# themselves or by an operator's hand: busy, locked, out of memory, read-only, I/O error,
# disk full, cannot open, lock protocol. Any other (a bad statement, a constraint,
# corruption) would fail the same way again.
TRANSIENT_CODES = frozenset({5, 6, 7, 8, 10, 13, 14, 15})
log = structlog.get_logger("hookd.store")


@dataclass(slots=True)
class Op:
    """A queued write: a function applied on the connection thread inside the flush's transaction."""

    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any] | None
    keep: bool = True  # tried again until it lands; False: its waiter gets the error


def backoff(failures: int) -> float:
    """Seconds to wait after the ``failures``-th failed try in a row before the next."""
    return min(RETRY_FIRST_SECONDS * 2.0 ** min(failures - 1, 32), RETRY_MAX_SECONDS)


def transient(exc: BaseException) -> bool:
    """Whether a failed write may succeed when tried again unchanged."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF in TRANSIENT_CODES


class Writer:
    """The write queue of one connection, and its group commit."""

    def __init__(self, conn: Connection, durability: str, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock
        self._ops: deque[Op] = deque()
        self._inflight: list[Op] = []  # taken by the flush running now
        self.failures = 0  # failed tries in a row
        self._failing_since = 0.0
        self._commit_error: tuple[str, bool] | None = None  # durability = "memory": (error, still open)
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()  # a queued write has a waiter
        self._closing = False
        self.flushes = 0
        self._sync = {"process": "NORMAL", "machine": "FULL", "memory": "OFF"}[durability]
        self.lazy = durability == "memory"
        self._began = 0.0

    # -- lifecycle -------------------------------------------------------------------

    async def open(self, busy_timeout: float, setup: Callable[[sqlite3.Connection], None]) -> None:
        """Open (creating) the file, then run ``setup(connection)`` (the schema, the counters)."""

        def init(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._sync}")
            conn.execute(f"PRAGMA busy_timeout={round(busy_timeout * 1000)}")
            setup(conn)

        await self._conn.open(init)

    async def close(self) -> None:
        """Flush what is queued, then close the connection.

        Writes still failing are given up (and logged): what they carried is either still
        in the store (a batch's items, a delivery not yet marked done) or was never
        acknowledged, so the next start takes it up again.
        """
        if not self._conn.is_open:
            await self._conn.close()
            return
        self._closing = True
        if self._ops and not self.failures:  # when failing, the writer has just tried
            await self._flush()
        if self._ops:
            log.error("store_writes_abandoned", operations=len(self._ops), failures=self.failures)
            for op in self._ops:
                if op.future is not None and not op.future.done():
                    op.future.set_exception(StorageLost("hookd stopped before this write could be made"))
            self._ops.clear()
        try:
            await self._conn.run(lambda c: c.in_transaction and c.execute("COMMIT"))
        except Exception as exc:  # a full disk under durability = "memory": say so, still close
            log.error("store_commit_failed", error=str(exc))
        await self._conn.close()

    # -- the queue ---------------------------------------------------------------------

    def submit(
        self, fn: Callable[[sqlite3.Connection], Any], wait: bool = False, keep: bool = True, linger: bool = False
    ) -> asyncio.Future[Any] | None:
        """Queue a write; with ``wait``, a future resolved after its commit.

        A waited-for write is committed at once, unless ``linger``: then it may wait for
        company like a write nobody waits for. A ``keep`` write that fails for a passing
        reason is tried again until it lands; otherwise its future gets the error.
        """
        fut = asyncio.get_running_loop().create_future() if wait else None
        self._ops.append(Op(fn, fut, keep))
        self._wake.set()
        if wait and not linger:
            self._urgent.set()
        return fut

    def tail(self) -> Op | None:
        """The last write queued, if any: a write of the same kind may join it (only the
        tail, so that no write is ever applied ahead of one queued before it)."""
        return self._ops[-1] if self._ops else None

    def queued(self) -> Iterator[Callable[[sqlite3.Connection], Any]]:
        """The writes being flushed now or queued, not yet committed, oldest first."""
        return (op.fn for op in itertools.chain(self._inflight, self._ops))

    async def loop(self) -> None:
        """The group-commit loop; runs until cancelled, then flushes what is left.

        Work somebody waits for (an ingest's 202) is committed at once. Work nobody
        waits for (attempt outcomes, new batch deliveries) may wait up to
        ``LINGER_SECONDS`` for company: small commits each rewrite whole WAL pages, and
        one commit per delivery cost more than the delivery itself (bench/ profiles).
        After a failed try the kept writes wait ``backoff`` (on the injected clock), or
        until an ingest comes, whose client should not wait that long for its answer.
        """
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if not self._urgent.is_set() and len(self._ops) < LINGER_OPS and not self._closing:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(LINGER_SECONDS):
                            await self._urgent.wait()
                self._urgent.clear()
                if self._ops:
                    await self._flush()
                if self.failures and self._ops:
                    await _first(self._clock.sleep(backoff(self.failures)), self._urgent.wait())
                    self._wake.set()
        finally:
            # One last try; close() gives up what still fails rather than hold the stop.
            if self._ops and self._conn.is_open:
                await asyncio.shield(self._flush())

    async def drain(self) -> None:
        """Wait until everything queued so far (and the flush under way) is committed."""
        if self._ops or self._inflight:
            fut = self.submit(lambda c: None, wait=True)
            assert fut is not None
            await fut

    # -- the flush ---------------------------------------------------------------------

    async def _flush(self) -> None:
        ops = list(self._ops)
        self._ops.clear()
        self._inflight = ops
        try:
            job, cancelled = await _finish(self._conn.run(lambda c: self._commit(c, ops)))
            exc = job.exception()
            if exc is None:
                results, moved = job.result()
                self._landed(ops, results, moved)
            elif transient(exc):
                self._retry(exc, ops)
            elif cancelled:  # no time to sort the good from the bad: close() reports them
                self._ops.extendleft(reversed(ops))
            else:
                cancelled = await self._flush_each(ops, exc)
        finally:
            self._inflight = []
        if cancelled:
            raise asyncio.CancelledError

    async def _flush_each(self, ops: list[Op], exc: BaseException) -> bool:
        # One bad write must not take the others down with it: try each alone.
        log.error("store_write_failed", error=str(exc), operations=len(ops))
        job, cancelled = await _finish(self._conn.run(lambda c: self._commit_each(c, ops)))
        error = job.exception()
        outcomes, moved = job.result() if error is None else ([(False, error)] * len(ops), False)
        if moved:
            self._conn.lose()
        kept: list[Op] = []
        for op, (ok, value) in zip(ops, outcomes, strict=True):
            if not ok and op.keep and transient(value):
                kept.append(op)
                continue
            if not ok:
                log.error("store_write_dropped", error=str(value))
            if op.future is not None and not op.future.done():
                if ok:
                    op.future.set_result(value)
                else:
                    op.future.set_exception(value)
        if kept:
            self._retry(next(v for ok, v in outcomes if not ok and transient(v)), kept)
        elif self.failures and any(ok for ok, _ in outcomes):
            self._recovered()
        return cancelled

    def _commit(self, conn: sqlite3.Connection, ops: list[Op]) -> tuple[list[Any], bool]:
        """On the connection thread: apply ``ops`` in one transaction, then check the file
        (one stat per group commit, so an acknowledgement never goes out of a deleted file)."""
        return self._apply(conn, ops), self._conn.moved()

    def _commit_each(self, conn: sqlite3.Connection, ops: list[Op]) -> tuple[list[tuple[bool, Any]], bool]:
        return self._apply_each(conn, ops), self._conn.moved()

    def _landed(self, ops: list[Op], results: list[Any], moved: bool) -> None:
        self.flushes += 1
        if self.failures:
            self._recovered()
        if self._commit_error is not None:
            error, still_open = self._commit_error
            log.error("store_commit_failed", error=error, retried_at_next_flush=still_open)
            self._commit_error = None
        if moved:
            self._conn.lose()
        for op, result in zip(ops, results, strict=True):
            if op.future is not None and not op.future.done():
                if moved and not op.keep:  # an ingest: no 202 for work committed into a deleted file
                    op.future.set_exception(StorageLost(f"{self._conn.path} was deleted or replaced"))
                else:
                    op.future.set_result(result)

    def _retry(self, exc: BaseException, ops: list[Op]) -> None:
        """Fail what its waiter answers for itself; put the rest back at the head of the queue."""
        self.failures += 1
        kept = [op for op in ops if op.keep]
        if self.failures == 1:  # once per streak: a held lock fails every try alike
            self._failing_since = time.monotonic()
            log.error("store_write_failed", error=str(exc), operations=len(ops), retrying=len(kept))
        for op in ops:
            if not op.keep and op.future is not None and not op.future.done():
                op.future.set_exception(exc)
        self._ops.extendleft(reversed(kept))

    def _recovered(self) -> None:
        log.info(
            "store_write_recovered", failures=self.failures,
            seconds=round(time.monotonic() - self._failing_since, 3),
        )  # fmt: skip
        self.failures = 0

    def _apply_each(self, conn: sqlite3.Connection, ops: list[Op]) -> list[tuple[bool, Any]]:
        out: list[tuple[bool, Any]] = []
        for op in ops:
            try:
                out.append((True, self._apply(conn, [op])[0]))
            except Exception as exc:
                out.append((False, exc))
        return out

    def _apply(self, conn: sqlite3.Connection, ops: list[Op]) -> list[Any]:
        if not self.lazy:
            conn.execute("BEGIN")
            try:
                results = [op.fn(conn) for op in ops]
                conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (a full disk) can leave the transaction open, and every
                # later BEGIN would fail on it.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return results
        # durability = "memory": one long transaction, committed now and then and at a
        # clean stop; a savepoint per flush keeps a failed flush from undoing the others.
        fresh = not conn.in_transaction
        if fresh:
            conn.execute("BEGIN")
            self._began = time.monotonic()
        conn.execute("SAVEPOINT flush")
        try:
            results = [op.fn(conn) for op in ops]
        except BaseException:
            if fresh and conn.in_transaction:
                # Nothing else is in it, and a transaction that read before it failed to
                # write keeps a stale snapshot that no retry inside it could get past.
                conn.execute("ROLLBACK")
            elif conn.in_transaction:
                conn.execute("ROLLBACK TO flush")
                conn.execute("RELEASE flush")
            raise
        conn.execute("RELEASE flush")
        if self._closing or time.monotonic() - self._began >= MEMORY_COMMIT_SECONDS:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                # The flush's writes are in the open transaction: trying them again would
                # make them twice. The commit is tried again at the next flush (unless
                # SQLite rolled the transaction back, which the log then says).
                self._commit_error = (str(exc), conn.in_transaction)
        return results


async def _finish(aw: Awaitable[T]) -> tuple[asyncio.Future[T], bool]:
    """Await ``aw`` to its end even when cancelled meanwhile; return it (done) and whether
    cancellation came. The connection thread finishes a flush whatever happens here: the
    writer must learn how it ended before it goes, or its writes are lost or made twice."""
    job = asyncio.ensure_future(aw)
    cancelled = False
    while not job.done():
        try:
            await asyncio.shield(job)
        except asyncio.CancelledError:
            cancelled = True
        except Exception:  # read from the job by the caller
            break
    return job, cancelled


async def _first(*aws: Awaitable[Any]) -> None:
    """Wait until one of ``aws`` is done; cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
