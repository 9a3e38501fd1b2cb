"""Batching (SPEC §5): items that share a batch key travel in one delivery.

A key's first item opens a batch whose deadline is fixed (arrival + wait, not sliding).
Short waits keep the batch in memory behind one loop timer; long waits keep only the
key's deadline and count in memory, and the items stay in the SQLite spool until the
poller finds the deadline passed. Every item is already committed when it arrives
here, so a batch of either kind survives a restart.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from hookd.clock import Clock, Timer
from hookd.coalesce import coalesce
from hookd.config import Webhook
from hookd.models import Delivery, IdFactory, Item, new_delivery
from hookd.payloads import batch_body
from hookd.store import OpenBatch as StoredBatch
from hookd.store import Storage
from hookd.tasks import TaskSet

log = structlog.get_logger("hookd.batcher")
# Keys the spool task remembers as read but perhaps not yet settled, before it drains anyway.
UNSETTLED_KEYS = 100_000


def batch_key(mode: str, trigger: str, event: str) -> str | None:
    """The key items must share to travel together; None for one delivery per item."""
    if mode == "per_occurrence":
        return None
    if mode == "same_event":
        return "t:" + trigger
    if mode == "same_event_type":
        return "e:" + event
    return "*"


@dataclass(slots=True)
class Policy:
    """One webhook's batching settings."""

    wait: float
    max_items: int
    spooled: bool  # the wait is long: items stay in SQLite, not in memory
    lightweight: bool
    coalesce: bool  # the latest item of an object replaces earlier ones (SPEC §13)


@dataclass(slots=True)
class OpenBatch:
    """A batch still collecting items."""

    webhook_id: str
    key: str
    deadline: float
    spooled: bool
    opened_at: float  # the first item's arrival: the deadline less the wait
    count: int = 0  # items that arrived, before any coalescing
    items: list[Item] = field(default_factory=list)  # empty when spooled
    timer: Timer | None = None


def policies(webhooks: Iterable[Webhook], spool_after: float) -> dict[str, Policy]:
    """The batching settings of each batching webhook."""
    return {
        w.id: Policy(
            w.batch_wait_seconds,
            w.max_items_per_batch,
            w.batch_wait_seconds > spool_after,
            w.lightweight_logs,
            w.coalesce,
        )
        for w in webhooks
        if w.batching != "per_occurrence"
    }


class Batcher:
    """Open batches by key, their timers, and the spool poller."""

    def __init__(
        self,
        clock: Clock,
        store: Storage,
        ids: IdFactory,
        deliver: Callable[[Delivery], None],
    ) -> None:
        self._clock = clock
        self._store = store
        self._ids = ids
        self._deliver = deliver
        self._policies: dict[str, Policy] = {}
        self.open: dict[tuple[str, str], OpenBatch] = {}
        self._tasks = TaskSet()
        self._spool_due: list[OpenBatch] = []
        self._spool_reading: list[OpenBatch] = []  # taken by the spool flush under way
        self._spool_task = False
        # Items of flushed batches whose delivery row is not committed yet, per webhook:
        # still pending, and counted so (a write may wait long for a lock or a full disk).
        self._recording: dict[str, int] = {}
        # Keys the spool task read since its last drain: their deletes may not be committed.
        self._unsettled: set[tuple[str, str]] = set()

    def configure(self, webhooks: Iterable[Webhook], spool_after: float) -> None:
        """Take the batching settings of a (re)loaded config."""
        webhooks = list(webhooks)
        # A removed webhook's open batches leave memory; their items wait in the store
        # and restore() brings them back if the webhook returns.
        present = {w.id for w in webhooks}
        for k in [k for k in self.open if k[0] not in present]:
            b = self.open.pop(k)
            if b.timer is not None:
                b.timer.cancel()
            log.warning("orphaned_batch", webhook=b.webhook_id, key=b.key, items=b.count)
        self._policies = policies(webhooks, spool_after)
        self._lightweight = {w.id: w.lightweight_logs for w in webhooks}

    def deadline_for(self, webhook_id: str, key: str, now: float) -> float:
        """The deadline an item arriving now will be stored with."""
        b = self.open.get((webhook_id, key))
        if b is not None and b.count < self._policies[webhook_id].max_items:
            return b.deadline
        return now + self._policies[webhook_id].wait

    def add(self, item: Item) -> None:
        """Put a committed item into its key's open batch, flushing when full."""
        assert item.batch_key is not None
        self.add_run(item.webhook_id, item.batch_key, [item])

    def add_run(self, webhook_id: str, key: str, items: list[Item]) -> None:
        """Put committed items of one webhook and key, in arrival order, into the key's open
        batch, flushing each time one fills (a request's chunk arrives so, whole)."""
        policy = self._policies.get(webhook_id)
        if policy is None:
            if webhook_id in self._lightweight:  # configured, no longer batching: each sent alone
                for item in items:
                    self._emit(webhook_id, [item])
            return  # removed: the items wait in the store until the webhook returns
        k = (webhook_id, key)
        at, n = 0, len(items)
        while at < n:
            b = self.open.get(k)
            if b is None:
                b = self._open(k, items[at].deadline, policy)
            take = min(policy.max_items - b.count, n - at)
            if take <= 0:  # over-full (max_items shrank on a reload): close it, open the next
                self.flush(k)
                continue
            b.count += take
            if not b.spooled:
                b.items += items if take == n else items[at : at + take]
            at += take
            if b.count >= policy.max_items:
                self.flush(k)

    def _open(self, k: tuple[str, str], deadline: float, policy: Policy) -> OpenBatch:
        spooled = policy.spooled
        b = OpenBatch(k[0], k[1], deadline, spooled, deadline - policy.wait)
        if not spooled:
            b.timer = self._clock.call_at(deadline, lambda: self._due(k, b))
            log.debug(
                "batch_timer_armed", webhook=k[0], key=k[1], due_in_seconds=round(deadline - self._clock.now(), 3)
            )
        self.open[k] = b
        return b

    def _due(self, k: tuple[str, str], b: OpenBatch) -> None:
        if self.open.get(k) is b:
            late_ms = (self._clock.now() - b.deadline) * 1000
            log.debug("batch_timer_fired", webhook=b.webhook_id, key=b.key, items=b.count, late_ms=round(late_ms, 1))
            self.flush(k)

    def flush(self, k: tuple[str, str]) -> None:
        """Close the key's batch now and hand its delivery on."""
        b = self.open.pop(k, None)
        if b is None:
            return
        if b.timer is not None:
            b.timer.cancel()
        if b.spooled:
            self._spool([b])
            return
        self._emit(b.webhook_id, b.items)

    def _spool(self, due: list[OpenBatch]) -> None:
        """Hand closed spooled batches to the spool task (started if none runs)."""
        self._spool_due += due
        if not self._spool_task:
            self._spool_task = True
            self._tasks.spawn(self._flush_spooled())

    def _emit(self, webhook_id: str, items: list[Item]) -> None:
        policy = self._policies.get(webhook_id)
        if policy is None:
            # No longer batching (a reload): each item in a delivery of its own, carrying
            # its own body rather than an array; a spooled batch may hold many.
            for item in items:
                self._record(self._delivery(webhook_id, [item], item.body), [item])
            return
        if not policy.coalesce:
            self._record(self._delivery(webhook_id, items, batch_body([i.body for i in items])), items, items)
            return
        # The delivery carries the surviving items; it takes every item out of the store.
        sent, replaced = coalesce(items)
        d = self._delivery(webhook_id, sent, batch_body([i.body for i in sent]))
        d.coalesced = replaced
        if replaced:
            log.debug("batch_coalesced", webhook=webhook_id, items=len(items), sent=len(sent))
        self._record(d, items, sent)

    def _delivery(self, webhook_id: str, items: list[Item], body: bytes) -> Delivery:
        return new_delivery(
            self._ids,
            self._store.next_delivery_seq(),
            webhook_id,
            body,
            [i.id for i in items],
            list(dict.fromkeys(i.event for i in items)),
            list(dict.fromkeys(i.trigger for i in items)),
            self._clock.now(),
            event_ids=[i.occurrence_id for i in items],
            object_ids=[i.object_id for i in items],
        )

    def _record(self, d: Delivery, items: list[Item], body_items: list[Item] | None = None) -> None:
        # body_items: a batch body's items, whose stored bytes its payload refers to.
        webhook_id = d.webhook_id
        committed = self._store.add_delivery(
            d, self._lightweight.get(webhook_id, False), items, body_items=body_items or ()
        )
        recording = self._recording
        recording[webhook_id] = recording.get(webhook_id, 0) + len(items)

        # Sent only once its row is committed: a crash before that leaves the items to
        # be batched again, never a delivery the receiver saw under a webhook-id we lost.
        # The store keeps trying a write that fails, so this waits as long as that takes.
        def send(fut: asyncio.Future[Any]) -> None:
            left = recording[webhook_id] - len(items)
            if left:
                recording[webhook_id] = left
            else:
                del recording[webhook_id]
            if fut.cancelled() or fut.exception() is not None:
                log.error("batch_not_recorded", webhook=webhook_id, items=len(items))
                return
            self._deliver(d)

        committed.add_done_callback(send)

    async def _flush_spooled(self) -> None:
        # One task reads every due spooled batch: one commit wait and one trip to the
        # connection thread per round, however many keys came due (10,000 at once, say).
        # The read takes each key's oldest items, so the deletes queued by an earlier round
        # must be committed first: hence the drain, when a key read since the last one
        # comes round again (waiting for the writer each round made small rounds slow), or
        # when the keys so remembered grow many.
        unsettled = self._unsettled
        try:
            while self._spool_due:
                due, self._spool_due = self._spool_due, []
                self._spool_reading = due
                # One key may have filled several batches since the last round: read its
                # items once and cut them up in arrival order.
                by_key: dict[tuple[str, str], list[OpenBatch]] = {}
                for b in due:
                    by_key.setdefault((b.webhook_id, b.key), []).append(b)
                if len(unsettled) > UNSETTLED_KEYS or not unsettled.isdisjoint(by_key):
                    await self._store.drain()
                    unsettled.clear()
                unsettled.update(by_key)
                found = await self._store.batch_items_many(
                    [(wid, key, sum(b.count for b in bs)) for (wid, key), bs in by_key.items()]
                )
                log.debug("spool_round", batches=len(due), keys=len(by_key), items=sum(map(len, found)))
                for bs, items in zip(by_key.values(), found, strict=True):
                    start = 0
                    for b in bs:
                        if items[start : start + b.count]:
                            self._emit(b.webhook_id, items[start : start + b.count])
                        start += b.count
        except Exception:
            # Put the batches back: the next poll tries again, oldest items first.
            log.exception("spool_flush_failed", batches=len(due))
            for b in due:
                k = (b.webhook_id, b.key)
                b.timer = None  # it fired or was cancelled; the next poll takes the batch
                cur = self.open.get(k)
                if cur is None:
                    self.open[k] = b
                else:
                    cur.count += b.count
                    cur.deadline = min(cur.deadline, b.deadline)
        finally:
            self._spool_reading = []
            self._spool_task = False

    def poll(self, ahead: float = 0.0) -> None:
        """Flush spooled batches whose deadline has passed (called every spool_poll_seconds,
        with ``ahead`` that interval), and give those due before the next poll a timer.

        Without the timers a batch left up to a whole interval after its deadline, and the
        read and the deliveries' commit came on top: 10,000 keys due over a second fired
        p99 1.3 s late. A timer lives only for the last interval of a long wait, so memory
        still holds no timer per spooled key; the spool task gathers the batches that come
        due while it reads into its next round.
        """
        now = self._clock.now()
        soon = now + ahead
        due = []
        for k, b in self.open.items():
            if not b.spooled or b.deadline > soon:
                continue
            if b.deadline <= now:
                due.append(k)
            elif b.timer is None:
                b.timer = self._clock.call_at(b.deadline, functools.partial(self._due, k, b))
        if due:
            # All of them in one step: one list for the spool task, whose one read takes them.
            taken = [self.open.pop(k) for k in due]
            for b in taken:
                if b.timer is not None:
                    b.timer.cancel()
            self._spool(taken)

    async def read_open(
        self, webhook_ids: set[str] | None, webhooks: Iterable[Webhook], spool_after: float
    ) -> list[tuple[StoredBatch, list[Item]]]:
        """The open batches in the store (of ``webhook_ids``, or all), with the items that
        the given config keeps in memory; read before that config goes live."""
        coming = policies(webhooks, spool_after)
        found = [ob for ob in await self._store.open_batches() if webhook_ids is None or ob.webhook_id in webhook_ids]
        # Items are read for the batches the config keeps in memory, all in one trip.
        in_memory = [ob for ob in found if not ((p := coming.get(ob.webhook_id)) and p.spooled)]
        read = await self._store.batch_items_many([(ob.webhook_id, ob.batch_key, ob.count) for ob in in_memory])
        items = {id(ob): got for ob, got in zip(in_memory, read, strict=True)}
        return [(ob, items.get(id(ob), [])) for ob in found]

    def restore(self, found: list[tuple[StoredBatch, list[Item]]]) -> int:
        """Re-open batches read by ``read_open`` with their original deadlines."""
        restored = 0
        for ob, items in found:
            if ob.webhook_id not in self._lightweight:
                log.warning("orphaned_batch", webhook=ob.webhook_id, key=ob.batch_key, items=ob.count)
                continue
            restored += ob.count
            policy = self._policies.get(ob.webhook_id)
            k = (ob.webhook_id, ob.batch_key)
            if policy is not None and policy.spooled:
                # Counts beyond max_items (the setting shrank) leave in several batches;
                # one spool round reads a key's items once and cuts them in order.
                remaining = ob.count
                while remaining > 0:
                    take = min(remaining, policy.max_items)
                    b = self._open(k, ob.deadline, policy)
                    b.count = take
                    remaining -= take
                    if take >= policy.max_items or ob.deadline <= self._clock.now():
                        self.flush(k)
                continue
            for item in items:  # add() sends them alone if the webhook stopped batching
                item.deadline = ob.deadline
                self.add(item)
        return restored

    async def stop(self) -> None:
        """Cancel the timers; the batches stay in the store for the next start."""
        for b in self.open.values():
            if b.timer is not None:
                b.timer.cancel()
        self.open.clear()
        await self._tasks.wait()

    def pending(self) -> dict[str, int]:
        """Items in batches not yet handed on (open, being read from the spool, or waiting
        for their delivery's row to be committed), per webhook."""
        out = self.waiting()
        for wid, n in self._recording.items():
            out[wid] = out.get(wid, 0) + n
        return out

    def waiting(self) -> dict[str, int]:
        """Items not yet in a delivery (open batches, and those being read from the spool),
        per webhook: the API's ``batched`` count. Items whose delivery row is queued are left
        out, as the log already counts that delivery as pending."""
        out: dict[str, int] = {}
        for b in itertools.chain(self.open.values(), self._spool_due, self._spool_reading):
            out[b.webhook_id] = out.get(b.webhook_id, 0) + b.count
        return out

    def batches(self, webhook_id: str) -> list[OpenBatch]:
        """The webhook's open batches, the one due first first."""
        return sorted((b for b in self.open.values() if b.webhook_id == webhook_id), key=lambda b: b.deadline)

    async def flush_webhook(self, webhook_id: str) -> int:
        """Close every open batch of the webhook now; return how many deliveries that makes.
        Returns once the spooled ones are read from the store and every delivery is queued
        for writing."""
        keys = [k for k in self.open if k[0] == webhook_id]
        # One delivery per batch; one per item if the webhook no longer batches (a reload).
        made = len(keys) if webhook_id in self._policies else sum(self.open[k].count for k in keys)
        for k in keys:
            self.flush(k)
        if keys:
            log.info("batches_flushed", webhook=webhook_id, batches=len(keys), deliveries=made)
        # The spool task reads the spooled ones; the one running now takes them too.
        await self._tasks.wait()
        return made
