"""The SQLite storage: the operations of ``ops``, queued on the group-committing ``writer``."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

from hookd.clock import Clock, LoopClock
from hookd.models import Delivery, Item, Occurrence
from hookd.store import bodies, failed, ops
from hookd.store.connection import Connection, Reads
from hookd.store.interface import Counters, Failed, OpenBatch, OpenWork, Outcome, StorageLost, StoredWebhook
from hookd.store.log import LogReader
from hookd.store.schema import Attempt, DeliveryUpdate, migrate, new_delivery
from hookd.store.writer import Writer

T = TypeVar("T")
# A page read back into a lane's window brings the bodies up to this size with it: read
# one by one at each attempt (``load``), a body costs about 50 µs of CPU (a trip to the
# connection thread), in the page about 5 µs per delivery all told (measured, 4,000
# deliveries of 420 bytes); batches' large bodies are still read when their attempt comes,
# so a window of 2,000 holds at most 16 MiB of bodies.
PAGE_BODY_BYTES = 8192


class Store:
    """SQLite behind one connection thread, with a group-committing writer (a ``Storage``)."""

    def __init__(self, path: Path, durability: str, clock: Clock | None = None, busy_timeout: float = 5.0) -> None:
        self.path = path
        self.durability = durability
        self.busy_timeout = busy_timeout  # seconds a write waits for another process's lock
        clock = clock or LoopClock()
        self._conn = Connection(path, clock)
        self._writer = Writer(self._conn, durability, clock)
        self._counters = Counters()
        self._reads = Reads(self._conn)
        self._log = LogReader(self._reads, self.unsaved)

    @property
    def lost(self) -> bool:
        """The file at the path is no longer the one open."""
        return self._conn.lost

    @property
    def failures(self) -> int:
        """Failed tries in a row of the writes queued now."""
        return self._writer.failures

    @property
    def flushes(self) -> int:
        """Group commits made."""
        return self._writer.flushes

    @property
    def counters(self) -> Counters:
        """The sequence counters and the webhooks' stored state."""
        return self._counters

    @property
    def log(self) -> LogReader:
        """The delivery log's reads, on this store's connection."""
        return self._log

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Open (creating) the file and read the counters."""

        def setup(conn: sqlite3.Connection) -> None:
            migrate(conn, self.path)
            ops.read_counters(conn, self._counters)

        await self._writer.open(self.busy_timeout, setup)
        try:
            await self._reads.open(self.busy_timeout)
        except BaseException:
            await self._writer.close()
            raise

    async def close(self) -> None:
        """Flush what is queued, then close the connections (see Writer.close)."""
        await self._reads.close()
        await self._writer.close()

    async def writer(self) -> None:
        """The group-commit loop; runs until cancelled, then flushes what is left."""
        await self._writer.loop()

    async def watch(self) -> None:
        """Check every few seconds that the file is still the one open (see Connection.watch)."""
        await self._conn.watch()

    async def drain(self) -> None:
        """Wait until everything queued so far (and the flush under way) is committed."""
        await self._writer.drain()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the connection thread (reads, and start-up work)."""
        return await self._conn.run(fn)

    def submit(
        self, fn: Callable[[sqlite3.Connection], Any], wait: bool = False, keep: bool = True
    ) -> asyncio.Future[Any] | None:
        """Queue a write (see Writer.submit)."""
        return self._writer.submit(fn, wait=wait, keep=keep)

    # -- writes ------------------------------------------------------------------------

    def next_item_seq(self) -> int:
        """A new item sequence number (store order)."""
        self._counters.item_seq += 1
        return self._counters.item_seq

    def next_delivery_seq(self) -> int:
        """A new delivery sequence number (log order, newest last)."""
        self._counters.delivery_seq += 1
        return self._counters.delivery_seq

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
        # Not kept: the client is answered 503 and sends again, rather than wait.
        fut = self._writer.submit(
            lambda conn: ops.ingest(conn, occurrences, received_at, deliveries, items), wait=True, keep=False
        )
        assert fut is not None
        result: set[int] = await fut
        return result

    def add_delivery(
        self,
        d: Delivery,
        lightweight: bool,
        consumed: Iterable[Item] = (),
        alone: bool = False,
        body_items: Sequence[Item] = (),
    ) -> asyncio.Future[None]:
        """Record a new delivery (a flushed batch, a resend) and mark the batched items it
        took as gone from the spool; the future resolves once that is committed.

        ``body_items``: the items whose bodies, in this order, make the batch body ``d.body``:
        its payload then refers to their chunks' bytes instead of holding a copy (bodies).

        New deliveries queued back to back share one op (and its future), so a spool
        round of 10,000 batches is a few statements; only the queue's tail is joined.
        ``alone`` keeps one (a resend somebody waits on) out of other deliveries' fate.
        """
        tail = self._writer.tail()
        if not alone and tail is not None and isinstance(tail.fn, ops.NewDeliveries) and not tail.fn.alone:
            op, fut = tail.fn, tail.future
        else:
            op = ops.NewDeliveries(alone=alone)
            fut = self._writer.submit(op, wait=True)
        assert fut is not None
        parts = bodies.runs(body_items) if body_items else None
        op.rows.append(new_delivery(d, lightweight, parts))
        if parts is not None:
            op.refs += [(c, d.seq) for c in dict.fromkeys([i.seq for i in body_items])]
        if d.coalesced:
            op.coalesced.append((orjson.dumps(list(d.coalesced)), d.seq))
        for item in consumed:
            op.taken.setdefault(item.seq, []).append(item.pos)
        return fut

    def record(self, o: Outcome) -> asyncio.Future[Any]:
        """Log an attempt and the delivery's new state; the future resolves once that is committed."""
        d = o.delivery
        final = o.state in ("succeeded", "failed")
        attempt = Attempt(
            delivery_seq=d.seq, n=o.n, started_at=o.started_at, duration_ms=o.duration_ms,
            status_code=o.status_code, error=o.error, manual=int(o.manual),
            response=orjson.dumps(o.response) if o.response is not None else None,
        )  # fmt: skip
        update = DeliveryUpdate(
            seq=d.seq, state=o.state, next_at=o.next_at, attempts=o.n, status_code=o.status_code, error=o.error,
            duration_ms=o.duration_ms, finished_at=o.started_at if final else None,
            drop_body=1 if (final and o.lightweight) else 0,
            request=o.request if o.request is None or isinstance(o.request, bytes) else orjson.dumps(o.request),
        )  # fmt: skip

        # Outcomes queued back to back share one op. Only the queue's tail is joined: an
        # outcome must never be applied ahead of its delivery's insert.
        tail = self._writer.tail()
        if tail is not None and isinstance(tail.fn, ops.Outcomes) and tail.future is not None:
            tail.fn.add(attempt, update)
            return tail.future
        op = ops.Outcomes()
        op.add(attempt, update)
        # A future nobody hurries: outcomes still linger for company (see Writer.loop).
        fut = self._writer.submit(op, wait=True, linger=True)
        assert fut is not None
        return fut

    def set_webhook_state(self, webhook_id: str, disabled: bool, failures: int, now: float) -> None:
        """Persist a webhook's auto-disable state and failure streak."""
        row = (webhook_id, int(disabled), failures, now)
        self._counters.webhook_state[webhook_id] = (disabled, failures)
        self._writer.submit(lambda c: ops.save_webhook_state(c, row))

    def prune(self, cutoff: float, configured: set[str], limit: int = 5000) -> asyncio.Future[int]:
        """Delete deliveries, their attempts, and occurrences older than ``cutoff``.

        Deliveries still to be made are kept while their webhook is configured (an
        auto-disabled webhook keeps its work); those of removed webhooks (orphans), and
        their waiting items, expire with the same cutoff. At most ``limit`` deliveries per
        call, so one call never holds the writer long; the caller repeats while it
        returns ``limit``.
        """
        kept = orjson.dumps(sorted(configured))  # webhooks whose open work is kept
        # Not kept: the next round prunes what this one could not.
        fut = self._writer.submit(lambda c: ops.prune(c, cutoff, kept, limit), wait=True, keep=False)
        assert fut is not None
        return fut

    def unsaved(self) -> dict[int, str]:
        """New deliveries (flushed batches, resends) queued or being written but not yet
        committed, as delivery seq → webhook id: the log counts them as pending meanwhile."""
        out: dict[int, str] = {}
        for fn in self._writer.queued():
            if isinstance(fn, ops.NewDeliveries):
                for row in fn.rows:
                    out[row.seq] = row.webhook_id
        return out

    async def put_webhook(self, w: StoredWebhook) -> None:
        """Create or replace an API webhook; returns once committed."""
        await self._committed(lambda c: ops.put_webhook(c, w))

    async def delete_webhook(self, webhook_id: str) -> None:
        """Remove an API webhook; returns once committed."""
        await self._committed(lambda c: ops.delete_webhook(c, webhook_id))

    async def _committed(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        if self.lost:
            raise StorageLost(f"{self.path} was deleted or replaced")
        # Not kept: the caller is answered with the error and may try again.
        fut = self._writer.submit(fn, wait=True, keep=False)
        assert fut is not None
        await fut

    # -- reads -------------------------------------------------------------------------

    async def api_webhooks(self) -> list[StoredWebhook]:
        """Every API webhook, oldest first."""
        return await self.run(ops.api_webhooks)

    async def open_deliveries(self, webhook_ids: Iterable[str]) -> list[Delivery]:
        """Deliveries still to be made (pending or retrying) for these webhooks, oldest first.

        Bodies stay in the store (``loaded=False``) until each one's attempt comes.
        """
        wanted = list(webhook_ids)
        return await self.run(lambda c: ops.open_deliveries(c, wanted)) if wanted else []

    async def open_work(self, webhook_ids: Iterable[str], now: float) -> OpenWork:
        """Deliveries still to be made for these webhooks: those due by ``now`` as seqs,
        the retries still to come as deliveries without their bodies."""
        wanted = list(webhook_ids)
        return await self.run(lambda c: ops.open_work(c, wanted, now)) if wanted else OpenWork()

    async def page(self, seqs: Sequence[int]) -> list[Delivery]:
        """Those of the deliveries ``seqs`` still open, in sequence order, bodies of at most
        PAGE_BODY_BYTES with them (see there)."""
        packed = orjson.dumps(list(seqs))
        return await self.run(lambda c: ops.page(c, packed, PAGE_BODY_BYTES)) if seqs else []

    async def load(self, d: Delivery) -> bool:
        """Fill in the body, item ids and event types of a delivery reloaded at start-up
        (the event types tell whether its failure may cause an operator event).

        False when the row is no longer open (pruned, or ended meanwhile): not to be sent.
        """
        row = await self.run(lambda c: ops.body_of(c, d.seq))
        if row is None:
            return False
        d.body, d.item_ids, d.events = row[0], orjson.loads(row[1]), orjson.loads(row[2])
        d.loaded = True
        return True

    async def delivery_by_seq(self, seq: int) -> Delivery | None:
        """One open delivery with its body (a spooled retry coming due)."""
        return await self.run(lambda c: ops.delivery_by_seq(c, seq))

    async def open_batches(self) -> list[OpenBatch]:
        """Every open batch in the spool, with its original deadline."""
        return await self.run(ops.open_batches)

    async def batch_items_many(self, batches: Sequence[tuple[str, str, int]]) -> list[list[Item]]:
        """For each (webhook, key, limit), that batch's oldest items; all in one trip."""
        return await self.run(lambda c: ops.batch_items_many(c, batches))

    async def seen_event_types(self, since: float) -> dict[str, tuple[int, float]]:
        """Each event type ingested since ``since``: (count, last ingest time), by the hour."""
        return await self.run(lambda c: ops.seen_event_types(c, since))

    async def window_seqs(self, since: float, until: float | None) -> tuple[int, int]:
        """A delivery sequence range [lo, hi) holding every delivery created in [since, until)."""
        return await self.run(lambda c: failed.window_seqs(c, since, until))

    async def failed(
        self, webhook_id: str, since: float, until: float | None, after: int, before: int, limit: int, bodies: bool
    ) -> list[Failed]:
        """A page of the webhook's failed deliveries created in [since, until), oldest first."""
        return await self.run(lambda c: failed.page(c, webhook_id, since, until, after, before, limit, bodies))
