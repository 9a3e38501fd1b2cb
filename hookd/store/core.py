"""The connection and its writer: pending work, the batch spool and the delivery log.

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
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import orjson
import structlog

from hookd.clock import Clock, LoopClock
from hookd.models import Delivery, Item, Occurrence
from hookd.store.files import Identity, identity, release_lock, take_lock
from hookd.store.schema import (
    CONSUME_CHUNKS,
    DELETE_CONSUMED,
    INSERT_CHUNKS,
    INSERT_DELIVERIES,
    INSERT_OCCURRENCES,
    INSERT_PAYLOADS,
    MIGRATE_ITEMS,
    MIGRATE_PAYLOADS,
    SCHEMA,
    SCHEMA_VERSION,
    SEEN_OCCURRENCES,
    Packed,
    add_chunk_rows,
    add_delivery_row,
    chunk_items,
    delivery_from_row,
    text_params,
)

T = TypeVar("T")
# Under durability = "memory" the open transaction is committed at least this often, so
# the WAL and page cache stay bounded; the promise is still only "survives a clean stop".
MEMORY_COMMIT_SECONDS = 60.0
# Writes nobody waits for linger this long (or until this many are queued) for company.
LINGER_SECONDS = 0.005
LINGER_OPS = 64
MIN_SQLITE = (3, 38)
# A failed write is tried again after 0.1 s, then twice as long each time, up to 5 s.
RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 5.0
# How often the file at the store's path is checked to still be the one opened (the
# check also runs with every commit).
WATCH_SECONDS = 2.0
# Primary result codes (the low byte of an extended code) of errors that can pass by
# themselves or by an operator's hand: busy, locked, out of memory, read-only, I/O error,
# disk full, cannot open, lock protocol. Any other (a bad statement, a constraint,
# corruption) would fail the same way again.
TRANSIENT_CODES = frozenset({5, 6, 7, 8, 10, 13, 14, 15})
log = structlog.get_logger("hookd.store")


@dataclass(slots=True)
class Outcome:
    """What one attempt did to a delivery, as the log records it."""

    delivery: Delivery
    n: int
    started_at: float
    duration_ms: float
    status_code: int | None
    error: str | None
    manual: bool
    state: str  # the delivery's state after the attempt
    next_at: float | None
    lightweight: bool
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None


@dataclass(slots=True)
class _Outcomes:
    """Attempt rows and delivery updates written together, one statement each."""

    attempts: list[tuple[Any, ...]] = field(default_factory=list)
    # seq → (state, next_at, attempts, status, error, duration, finished_at, drop_body,
    # request, response); a later attempt of the same delivery folds into its entry.
    updates: dict[int, list[Any]] = field(default_factory=dict)

    def add(self, attempt: tuple[Any, ...], seq: int, update: list[Any]) -> None:
        self.attempts.append(attempt)
        earlier = self.updates.get(seq)
        if earlier is not None:  # keep the request and response an attempt without them left alone
            update[8] = update[8] if update[8] is not None else earlier[8]
            update[9] = update[9] if update[9] is not None else earlier[9]
        self.updates[seq] = update

    def __call__(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO attempts (delivery_seq, n, started_at, duration_ms, status_code, error, manual)"
            " SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6 FROM json_each(?)",
            (orjson.dumps(self.attempts),),
        )
        packed = Packed()
        for seq, u in self.updates.items():
            packed.add([seq, *u[:8]], u[8], u[9])
        conn.execute(
            "UPDATE deliveries SET state = u.value->>1, next_at = u.value->>2, attempts = u.value->>3,"
            " status_code = u.value->>4, error = u.value->>5, duration_ms = u.value->>6,"
            " finished_at = u.value->>7,"
            " request = coalesce(substr(?2, u.value->>9, u.value->>10), request),"
            " response = coalesce(substr(?2, u.value->>11, u.value->>12), response)"
            " FROM json_each(?1) AS u WHERE deliveries.seq = u.value->>0",
            packed.params(),
        )
        ended = [seq for seq, u in self.updates.items() if u[7]]
        if ended:  # lightweight logs: the body goes once the delivery has ended
            conn.execute(
                "UPDATE payloads SET body = NULL WHERE seq IN (SELECT value FROM json_each(?))", (orjson.dumps(ended),)
            )


@dataclass(slots=True)
class _NewDeliveries:
    """New deliveries (flushed batches, resends) and the batched items they took."""

    alone: bool = False  # joined by no other
    rows: Packed = field(default_factory=Packed)
    taken: dict[int, list[int]] = field(default_factory=dict)  # chunk seq → positions

    def __call__(self, conn: sqlite3.Connection) -> None:
        insert_deliveries(conn, self.rows)
        if self.taken:
            chunks = orjson.dumps([[seq, sorted(set(ps))] for seq, ps in self.taken.items()])
            conn.execute(CONSUME_CHUNKS, (chunks,))
            conn.execute(DELETE_CONSUMED, (chunks,))


@dataclass(slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any] | None
    keep: bool = True  # tried again until it lands; False: its waiter gets the error


class StorageLost(Exception):
    """The database file was deleted or replaced under the running daemon."""


def backoff(failures: int) -> float:
    """Seconds to wait after the ``failures``-th failed try in a row before the next."""
    return min(RETRY_FIRST_SECONDS * 2.0 ** min(failures - 1, 32), RETRY_MAX_SECONDS)


def transient(exc: BaseException) -> bool:
    """Whether a failed write may succeed when tried again unchanged."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF in TRANSIENT_CODES


@dataclass(slots=True)
class OpenBatch:
    """An open batch as found in the store at start-up."""

    webhook_id: str
    batch_key: str
    deadline: float
    count: int


@dataclass
class Counters:
    """Sequence numbers the store hands out; kept in memory, seeded from the file."""

    item_seq: int = 0
    delivery_seq: int = 0
    webhook_state: dict[str, tuple[bool, int]] = field(default_factory=dict)


class Store:
    """SQLite behind one connection thread, with a group-committing writer."""

    def __init__(self, path: Path, durability: str, clock: Clock | None = None, busy_timeout: float = 5.0) -> None:
        self.path = path
        self.durability = durability
        self.busy_timeout = busy_timeout  # seconds a write waits for another process's lock
        self._clock = clock or LoopClock()
        self._db: aiosqlite.Connection | None = None
        self._ops: deque[_Op] = deque()
        self._inflight: list[_Op] = []  # taken by the flush running now
        self.failures = 0  # failed tries in a row
        self._failing_since = 0.0
        self.lost = False  # the file at path is no longer the one open
        self._identity: Identity | None = None
        self._lock: int | None = None
        self._commit_error: tuple[str, bool] | None = None  # durability = "memory": (error, still open)
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()  # a queued write has a waiter
        self._closing = False
        self.counters = Counters()
        self.flushes = 0
        self.lazy = durability == "memory"
        self._began = 0.0

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Open (creating) the file and read the counters."""
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
        sync = {"process": "NORMAL", "machine": "FULL", "memory": "OFF"}[self.durability]
        try:
            self._db = await aiosqlite.connect(str(self.path), isolation_level=None)
            await self.run(lambda c: self._init(c, sync))
            if on_disk:
                self._identity = identity(self.path)
        except BaseException:
            # The connection's thread is not a daemon: left open, it would keep the
            # process from exiting after the error is reported.
            if self._db is not None:
                await self._db.close()
                self._db = None
            self._unlock()
            raise

    def _init(self, conn: sqlite3.Connection, sync: str) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={sync}")
        conn.execute(f"PRAGMA busy_timeout={round(self.busy_timeout * 1000)}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise OSError(
                f"{self.path} has schema version {version}, written by a newer hookd (this one: {SCHEMA_VERSION})"
            )
        conn.executescript(SCHEMA)
        # Each step checks for the old shape itself, so a file of any older version takes
        # only the steps it needs, all in one transaction; the checks are cheap enough to
        # make every time.
        steps = []
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'items'").fetchone():
            steps.append(MIGRATE_ITEMS)
        if any(r[1] == "body" for r in conn.execute("PRAGMA table_info(deliveries)")):
            steps.append(MIGRATE_PAYLOADS)
        if steps:  # dropping columns rewrites the deliveries table: say so before it starts
            log.info("store_migrating", from_version=version, to_version=SCHEMA_VERSION)
        try:
            conn.executescript("BEGIN;" + "".join(steps) + f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        except BaseException:
            if conn.in_transaction:  # executescript leaves a failed transaction open
                conn.execute("ROLLBACK")
            raise
        if steps:
            log.info("store_migrated", to_version=SCHEMA_VERSION)
        c = self.counters
        c.item_seq = conn.execute("SELECT coalesce(max(seq), 0) FROM chunks").fetchone()[0]
        c.delivery_seq = conn.execute("SELECT coalesce(max(seq), 0) FROM deliveries").fetchone()[0]
        for wid, disabled, failures in conn.execute("SELECT webhook_id, disabled, failures FROM webhook_state"):
            c.webhook_state[wid] = (bool(disabled), failures)

    async def close(self) -> None:
        """Flush what is queued, then close the connection.

        Writes still failing are given up (and logged): what they carried is either still
        in the store (a batch's items, a delivery not yet marked done) or was never
        acknowledged, so the next start takes it up again.
        """
        if self._db is None:
            self._unlock()
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
            await self.run(lambda c: c.in_transaction and c.execute("COMMIT"))
        except Exception as exc:  # a full disk under durability = "memory": say so, still close
            log.error("store_commit_failed", error=str(exc))
        await self._db.close()
        self._db = None
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            release_lock(self._lock)
            self._lock = None

    async def watch(self) -> None:
        """Check every few seconds that the file at the path is still the one open (runs until
        cancelled, or until the file is gone: nothing brings it back but a restart)."""
        if self._identity is None:
            return
        while not self.lost:
            await self._clock.sleep(WATCH_SECONDS)
            if self._moved():
                self._lose()

    def _moved(self) -> bool:
        """True when the path no longer names the file opened (deleted, or replaced)."""
        if self._identity is None:
            return False
        try:
            return identity(self.path) != self._identity
        except OSError:  # cannot tell (a permission changed): not proof of a lost file
            return False

    def _lose(self) -> None:
        if not self.lost:
            self.lost = True
            hint = "the database file was deleted or replaced; restart hookd"
            log.error("storage_lost", path=str(self.path), hint=hint)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the connection thread (reads, and start-up work)."""
        db = self._db
        assert db is not None, "store is not open"
        # aiosqlite's public API is one thread hop per statement; its _execute runs a
        # whole function per hop, which is what makes group commit cheap (SPEC §10).
        result: T = await db._execute(fn, db._conn)  # type: ignore[no-untyped-call]
        return result

    # -- the writer --------------------------------------------------------------------

    def submit(
        self, fn: Callable[[sqlite3.Connection], Any], wait: bool = False, keep: bool = True
    ) -> asyncio.Future[Any] | None:
        """Queue a write; with ``wait``, a future resolved after its commit.

        A ``keep`` write that fails for a passing reason is tried again until it lands;
        otherwise its future gets the error.
        """
        fut = asyncio.get_running_loop().create_future() if wait else None
        self._ops.append(_Op(fn, fut, keep))
        self._wake.set()
        if wait:
            self._urgent.set()
        return fut

    async def writer(self) -> None:
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
            if self._ops and self._db is not None:
                await asyncio.shield(self._flush())

    async def drain(self) -> None:
        """Wait until everything queued so far (and the flush under way) is committed."""
        if self._ops or self._inflight:
            fut = self.submit(lambda c: None, wait=True)
            assert fut is not None
            await fut

    async def _flush(self) -> None:
        ops = list(self._ops)
        self._ops.clear()
        self._inflight = ops
        try:
            job, cancelled = await _finish(self.run(lambda c: self._commit(c, ops)))
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

    async def _flush_each(self, ops: list[_Op], exc: BaseException) -> bool:
        # One bad write must not take the others down with it: try each alone.
        log.error("store_write_failed", error=str(exc), operations=len(ops))
        job, cancelled = await _finish(self.run(lambda c: self._commit_each(c, ops)))
        error = job.exception()
        outcomes, moved = job.result() if error is None else ([(False, error)] * len(ops), False)
        if moved:
            self._lose()
        kept: list[_Op] = []
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

    def _commit(self, conn: sqlite3.Connection, ops: list[_Op]) -> tuple[list[Any], bool]:
        """On the connection thread: apply ``ops`` in one transaction, then check the file
        (one stat per group commit, so an acknowledgement never goes out of a deleted file)."""
        return self._apply(conn, ops), self._moved()

    def _commit_each(self, conn: sqlite3.Connection, ops: list[_Op]) -> tuple[list[tuple[bool, Any]], bool]:
        return self._apply_each(conn, ops), self._moved()

    def _landed(self, ops: list[_Op], results: list[Any], moved: bool) -> None:
        self.flushes += 1
        if self.failures:
            self._recovered()
        if self._commit_error is not None:
            error, still_open = self._commit_error
            log.error("store_commit_failed", error=error, retried_at_next_flush=still_open)
            self._commit_error = None
        if moved:
            self._lose()
        for op, result in zip(ops, results, strict=True):
            if op.future is not None and not op.future.done():
                if moved and not op.keep:  # an ingest: no 202 for work committed into a deleted file
                    op.future.set_exception(StorageLost(f"{self.path} was deleted or replaced"))
                else:
                    op.future.set_result(result)

    def _retry(self, exc: BaseException, ops: list[_Op]) -> None:
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

    def _apply_each(self, conn: sqlite3.Connection, ops: list[_Op]) -> list[tuple[bool, Any]]:
        out: list[tuple[bool, Any]] = []
        for op in ops:
            try:
                out.append((True, self._apply(conn, [op])[0]))
            except Exception as exc:
                out.append((False, exc))
        return out

    def _apply(self, conn: sqlite3.Connection, ops: list[_Op]) -> list[Any]:
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

    # -- writes ------------------------------------------------------------------------

    def next_item_seq(self) -> int:
        """A new item sequence number (store order)."""
        self.counters.item_seq += 1
        return self.counters.item_seq

    def next_delivery_seq(self) -> int:
        """A new delivery sequence number (log order, newest last)."""
        self.counters.delivery_seq += 1
        return self.counters.delivery_seq

    async def ingest(
        self,
        occurrences: Sequence[Occurrence],
        received_at: float,
        deliveries: Sequence[tuple[int, Delivery, bool]],
        items: Sequence[tuple[int, Item]],
    ) -> set[int]:
        """Commit one request's work; return the indexes of duplicate occurrences.

        ``deliveries`` and ``items`` carry the index of the occurrence they came from,
        so the work of a duplicate is dropped inside the same transaction that found it.
        """

        if self.lost:
            raise StorageLost(f"{self.path} was deleted or replaced")

        def apply(conn: sqlite3.Connection) -> set[int]:
            dupes = find_duplicates(conn, occurrences)
            fresh = [o.id for i, o in enumerate(occurrences) if o.client_id and i not in dupes]
            if fresh:
                conn.execute(INSERT_OCCURRENCES, (*text_params(fresh), received_at))
            if deliveries:
                packed = Packed()
                for i, d, lw in deliveries:
                    if i not in dupes:
                        add_delivery_row(packed, d, lw)
                insert_deliveries(conn, packed)
            if items:
                packed = Packed()
                add_chunk_rows(packed, [it for i, it in items if i not in dupes])
                conn.execute(INSERT_CHUNKS, packed.params())
            return dupes

        # Not kept: the client is answered 503 and sends again, rather than wait.
        fut = self.submit(apply, wait=True, keep=False)
        assert fut is not None
        result: set[int] = await fut
        return result

    def add_delivery(
        self, d: Delivery, lightweight: bool, consumed: Iterable[Item] = (), alone: bool = False
    ) -> asyncio.Future[None]:
        """Record a new delivery (a flushed batch, a resend) and mark the batched items it
        took as gone from the spool; the future resolves once that is committed.

        New deliveries queued back to back share one op (and its future), so a spool
        round of 10,000 batches is a few statements; only the queue's tail is joined.
        ``alone`` keeps one (a resend somebody waits on) out of other deliveries' fate.
        """
        tail = self._ops[-1] if self._ops else None
        if not alone and tail is not None and isinstance(tail.fn, _NewDeliveries) and not tail.fn.alone:
            op, fut = tail.fn, tail.future
        else:
            op = _NewDeliveries(alone=alone)
            fut = self.submit(op, wait=True)
        assert fut is not None
        add_delivery_row(op.rows, d, lightweight)
        for item in consumed:
            op.taken.setdefault(item.seq, []).append(item.pos)
        return fut

    def record(self, o: Outcome) -> asyncio.Future[Any]:
        """Log an attempt and the delivery's new state; the future resolves once that is committed."""
        d = o.delivery
        final = o.state in ("succeeded", "failed")
        request = orjson.dumps(o.request) if o.request is not None else None
        response = orjson.dumps(o.response) if o.response is not None else None
        attempt = (d.seq, o.n, o.started_at, o.duration_ms, o.status_code, o.error, int(o.manual))
        update = [
            o.state, o.next_at, o.n, o.status_code, o.error, o.duration_ms, o.started_at if final else None,
            1 if (final and o.lightweight) else 0, request, response,
        ]  # fmt: skip

        # Outcomes queued back to back share one op. Only the queue's tail is joined: an
        # outcome must never be applied ahead of its delivery's insert.
        tail = self._ops[-1] if self._ops else None
        if tail is not None and isinstance(tail.fn, _Outcomes) and tail.future is not None:
            tail.fn.add(attempt, d.seq, update)
            return tail.future
        op = _Outcomes()
        op.add(attempt, d.seq, update)
        # A future nobody hurries: outcomes still linger for company (see writer).
        fut = asyncio.get_running_loop().create_future()
        self._ops.append(_Op(op, fut))
        self._wake.set()
        return fut

    def set_webhook_state(self, webhook_id: str, disabled: bool, failures: int, now: float) -> None:
        """Persist a webhook's auto-disable state and failure streak."""
        row = (webhook_id, int(disabled), failures, now)
        self.counters.webhook_state[webhook_id] = (disabled, failures)
        self.submit(
            lambda c: c.execute(
                "INSERT INTO webhook_state VALUES (?,?,?,?) ON CONFLICT(webhook_id) DO UPDATE"
                " SET disabled=excluded.disabled, failures=excluded.failures,"
                " changed_at=excluded.changed_at",
                row,
            )
        )

    def prune(self, cutoff: float, configured: set[str], limit: int = 5000) -> asyncio.Future[int]:
        """Delete deliveries, their attempts, and occurrences older than ``cutoff``.

        Deliveries still to be made are kept while their webhook is configured (an
        auto-disabled webhook keeps its work); those of removed webhooks (orphans), and
        their waiting items, expire with the same cutoff. At most ``limit`` deliveries per
        call, so one call never holds the writer long; the caller repeats while it
        returns ``limit``.
        """
        kept = orjson.dumps(sorted(configured))  # webhooks whose open work is kept

        def apply(conn: sqlite3.Connection) -> int:
            # Sequence order is creation order, so the oldest rows come first in the
            # table's own order and the scan stops at the first row inside the window
            # (no index on created_at to keep up on the hot path). Each step is one
            # statement: a row-by-row loop here would wait for the GIL at every row.
            (found,) = conn.execute(
                "SELECT json_group_array(seq) FROM (SELECT seq FROM deliveries WHERE seq < coalesce("
                " (SELECT seq FROM deliveries WHERE created_at >= ?1 ORDER BY seq LIMIT 1), 1 << 62)"
                " AND (state IN ('succeeded', 'failed') OR webhook_id NOT IN (SELECT value FROM json_each(?2)))"
                " ORDER BY seq LIMIT ?3)",
                (cutoff, kept, limit),
            ).fetchone()
            seqs = orjson.loads(found)
            conn.execute("DELETE FROM attempts WHERE delivery_seq IN (SELECT value FROM json_each(?))", (found,))
            conn.execute("DELETE FROM deliveries WHERE seq IN (SELECT value FROM json_each(?))", (found,))
            conn.execute("DELETE FROM payloads WHERE seq IN (SELECT value FROM json_each(?))", (found,))
            conn.execute("DELETE FROM occurrences WHERE received_at < ?", (cutoff,))
            conn.execute(
                "DELETE FROM chunks WHERE deadline < ? AND webhook_id NOT IN (SELECT value FROM json_each(?))",
                (cutoff, kept),
            )
            return len(seqs)

        fut = self.submit(apply, wait=True, keep=False)  # the next round prunes what this one could not
        assert fut is not None
        return fut

    def unsaved(self) -> dict[int, str]:
        """New deliveries (flushed batches, resends) queued or being written but not yet
        committed, as delivery seq → webhook id: the log counts them as pending meanwhile."""
        out: dict[int, str] = {}
        for op in itertools.chain(self._inflight, self._ops):
            if isinstance(op.fn, _NewDeliveries):
                for row in op.fn.rows.rows:  # the fields of add_delivery_row
                    out[row[0]] = row[3]
        return out

    # -- reads -------------------------------------------------------------------------

    async def open_deliveries(self, webhook_ids: Iterable[str]) -> list[Delivery]:
        """Deliveries still to be made (pending or retrying) for these webhooks, oldest first.

        Bodies stay in the store (``loaded=False``) until each one's attempt comes.
        """
        wanted = list(webhook_ids)

        def read(conn: sqlite3.Connection) -> list[Delivery]:
            marks = ",".join("?" * len(wanted))
            rows = conn.execute(
                "SELECT seq, id, message_id, webhook_id, created_at, state, attempts, next_at, manual,"
                " resend_of FROM deliveries"
                f" WHERE webhook_id IN ({marks}) AND state IN ('pending', 'retrying') ORDER BY seq",
                wanted,
            )
            # fmt: off
            return [
                Delivery(
                    seq=r[0], id=r[1], message_id=r[2], webhook_id=r[3], body=b"", item_ids=(), events=(),
                    triggers=(), created_at=r[4], state=r[5], attempts=r[6], next_at=r[7] or 0.0,
                    manual=bool(r[8]), resend_of=r[9], loaded=False,
                )
                for r in rows
            ]
            # fmt: on

        return await self.run(read) if wanted else []

    async def load(self, d: Delivery) -> bool:
        """Fill in the body and item ids of a delivery reloaded at start-up.

        False when the row is no longer open (pruned, or ended meanwhile): not to be sent.
        """

        def read(conn: sqlite3.Connection) -> tuple[bytes, str] | None:
            row: tuple[bytes, str] | None = conn.execute(
                "SELECT p.body, p.item_ids FROM deliveries d JOIN payloads p ON p.seq = d.seq"
                " WHERE d.seq = ? AND d.state IN ('pending', 'retrying') AND p.body IS NOT NULL",
                (d.seq,),
            ).fetchone()
            return row

        row = await self.run(read)
        if row is None:
            return False
        d.body, d.item_ids = row[0], orjson.loads(row[1])
        d.loaded = True
        return True

    async def delivery_by_seq(self, seq: int) -> Delivery | None:
        """One open delivery with its body (a spooled retry coming due)."""

        def read(conn: sqlite3.Connection) -> Delivery | None:
            r = conn.execute(
                "SELECT d.seq, id, message_id, webhook_id, p.body, p.item_ids, events, triggers,"
                " created_at, state, attempts, next_at, manual, resend_of"
                " FROM deliveries d JOIN payloads p ON p.seq = d.seq"
                " WHERE d.seq = ? AND state IN ('pending', 'retrying')",
                (seq,),
            ).fetchone()
            return delivery_from_row(r) if r else None

        return await self.run(read)

    async def open_batches(self) -> list[OpenBatch]:
        """Every open batch in the spool, with its original deadline."""

        def read(conn: sqlite3.Connection) -> list[OpenBatch]:
            return [
                OpenBatch(*r)
                for r in conn.execute(
                    "SELECT webhook_id, batch_key, min(deadline), sum(left) FROM chunks GROUP BY webhook_id, batch_key"
                )
            ]

        return await self.run(read)

    async def batch_items_many(self, batches: Sequence[tuple[str, str, int]]) -> list[list[Item]]:
        """For each (webhook, key, limit), that batch's oldest items; all in one trip."""

        def read(conn: sqlite3.Connection) -> list[list[Item]]:
            out: list[list[Item]] = []
            for webhook_id, batch_key, limit in batches:
                got: list[Item] = []
                rows = conn.execute(
                    "SELECT seq, done, meta, bodies FROM chunks WHERE webhook_id = ? AND batch_key = ? ORDER BY seq",
                    (webhook_id, batch_key),
                )
                for seq, done, meta, bodies in rows:
                    got += chunk_items(webhook_id, batch_key, seq, done, meta, bodies)
                    if len(got) >= limit:
                        break
                out.append(got[:limit])
            return out

        return await self.run(read)


def insert_deliveries(conn: sqlite3.Connection, packed: Packed) -> None:
    """Write new deliveries gathered by add_delivery_row: their rows and their payloads."""
    rows, bodies = packed.params()
    conn.execute(INSERT_DELIVERIES, (rows,))
    conn.execute(INSERT_PAYLOADS, (rows, bodies))


def find_duplicates(conn: sqlite3.Connection, occurrences: Sequence[Occurrence]) -> set[int]:
    """Indexes of occurrences whose application-chosen id was seen before (or earlier in the list)."""
    ids = [o.id for o in occurrences if o.client_id]
    if not ids:
        return set()
    # One statement for the whole request; only ids seen before come back as rows.
    seen: set[str] = {r[0] for r in conn.execute(SEEN_OCCURRENCES, text_params(ids))}
    dupes = set()
    for i, o in enumerate(occurrences):
        if not o.client_id:
            continue
        if o.id in seen:
            dupes.add(i)
        else:
            seen.add(o.id)
    return dupes


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
