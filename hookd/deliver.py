"""Delivery: per-webhook lanes under a global bound, attempts, retries and auto-disable.

Each webhook has a lane: a queue of deliveries ready to go and its own concurrency
limit, so a slow or dead receiver fills only its own lane. A retry is a new due time,
kept on a loop timer when short and in the store (the spool) when long, exactly the
choice the batcher makes for a batch window.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import random
from array import array
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from hookd import operator_events as op_events
from hookd.attempt_log import log_record
from hookd.clock import Clock
from hookd.config import Config, Webhook
from hookd.egress import Egress, egress_for
from hookd.http import Response, Transport
from hookd.lanes import WINDOW, Health, Lane, Seqs
from hookd.memory import TRIM_AFTER, malloc_trim
from hookd.metrics import Metrics
from hookd.models import Delivery
from hookd.payloads import RequestShape, query_params
from hookd.retry import decide, find_header, parse_retry_after
from hookd.store import OpenWork, Outcome, Storage
from hookd.tasks import TaskSet

log = structlog.get_logger("hookd.deliver")

PAGE_RETRY_SECONDS = 1.0  # a page read that failed is tried again this much later


class Dispatcher:
    """Runs attempts for every lane under the global concurrency bound."""

    def __init__(self, clock: Clock, store: Storage, sender: Transport, metrics: Metrics,
                 notify: op_events.Notify = op_events.nobody, window: int = WINDOW) -> None:  # fmt: skip
        self._clock = clock
        self._notify = notify
        self._store = store
        self._sender = sender
        self._metrics = metrics
        self._lanes: dict[str, Lane] = {}
        self._limit = 1
        self._inflight = 0
        self._starved: deque[Lane] = deque()  # lanes with work, waiting for a global slot
        self._tasks = TaskSet()
        self._window = window  # deliveries of a lane kept in memory (see lanes.WINDOW)
        self._pages = TaskSet()  # page reads under way, one per lane at most
        self._paged = 0  # deliveries read back from the store since the last memory trim
        self._spooled: list[tuple[float, int]] = []  # (due, delivery seq) of long retry waits
        self._spooled_seqs: dict[int, str] = {}  # the live entries of that heap → webhook id
        # Deliveries in an attempt now or with their outcome not yet committed, by webhook
        # then delivery id: shown as delivering, and not taken up again from the store meanwhile.
        self._active: dict[str, dict[str, Delivery]] = {}
        self._holds: dict[str, int] = {}  # delivery id → reasons it is in _active
        self._stopping = False
        # While a worker's attempt releases its slot: where the first attempt that release
        # starts is put, for that worker to run (see _work).
        self._taker: list[tuple[Lane, Delivery]] | None = None
        self._settings: Any = None
        self._rand: Callable[[], float] = random.random

    # -- configuration -----------------------------------------------------------------

    def configure(self, config: Config) -> None:
        """Apply a (re)loaded config: new lanes, changed ones updated, removed ones dropped."""
        self._settings = config.delivery
        self._spool_after = config.batching.spool_after_seconds
        self._limit = config.delivery.concurrency
        wanted = {w.id: w for w in config.webhooks}
        for wid in list(self._lanes):
            if wid not in wanted:
                self._remove(self._lanes.pop(wid))
        for w in config.webhooks:
            lane = self._lanes.get(w.id)
            if lane is None:
                lane = Lane(w.id, RequestShape(w), 1, False, False, 0, window=self._window)
                lane.refill = self._refill
                lane.auto_disabled, lane.failures = self._store.counters.webhook_state.get(w.id, (False, 0))
                self._lanes[w.id] = lane
            # Updated in place: attempts in flight hold this object and settle on it.
            self._apply(lane, w, config)
        for lane in list(self._lanes.values()):
            self._pump(lane)

    def _apply(self, lane: Lane, w: Webhook, config: Config) -> None:
        limit = w.per_webhook_concurrency or config.delivery.per_webhook_concurrency
        lane.shape = RequestShape(w)
        lane.egress = egress_for(w, config.delivery)
        lane.name = w.name
        lane.limit = 1 if w.ordered else limit
        lane.lightweight = w.lightweight_logs
        lane.auto_disable_after = w.auto_disable_after
        # Looked up once per lane and config, not per attempt.
        lane.log = log.bind(webhook=w.id)
        lane.meter = self._metrics.meter(w.id)
        if lane.ordered != w.ordered:
            # Everything queued goes to the store's list in the new order; pages bring it back.
            lane.fold(w.ordered)

    def _remove(self, lane: Lane) -> None:
        """Forget a webhook that left the config; its deliveries wait in the store."""
        for timer in lane.timers.values():
            timer.cancel()
        for seq in [s for s, wid in self._spooled_seqs.items() if wid == lane.webhook_id]:
            del self._spooled_seqs[seq]
        orphaned = lane.waiting() + len(lane.timers)
        # Removing a webhook is the operator's choice; deliveries left waiting in the store are worth a look.
        (log.warning if orphaned else log.info)("webhook_removed", webhook=lane.webhook_id, orphaned=orphaned)
        lane.timers.clear()
        lane.forget()

    # -- queueing ----------------------------------------------------------------------

    def submit(self, d: Delivery) -> None:
        """Hand over a delivery whose record is written (or queued for writing)."""
        lane = self._lanes.get(d.webhook_id)
        if lane is None:
            log.warning("orphaned_delivery", webhook=d.webhook_id, delivery=d.id)
            return
        lane.push(d)
        self._pump(lane)

    def _pump(self, lane: Lane) -> None:
        while not self._stopping:
            if self._inflight >= self._limit:
                if lane.waiting() and lane not in self._starved:
                    self._starved.append(lane)
                return
            d = lane.pop()
            if d is None:
                return
            lane.inflight += 1
            self._inflight += 1
            taker = self._taker
            if taker is not None and not taker:
                taker.append((lane, d))  # a worker whose attempt just ended runs it (see _work)
            else:
                self._tasks.spawn(self._work(lane, d))

    def _release(self, lane: Lane) -> None:
        lane.inflight -= 1
        self._inflight -= 1
        # Lanes that waited for a global slot go first, in the order they waited; this one,
        # if it has more, queues behind them. Taking the slot back first would let one busy
        # webhook hold every other one off until it drained.
        while self._starved and self._inflight < self._limit:
            self._pump(self._starved.popleft())
        self._pump(lane)

    # -- one attempt -------------------------------------------------------------------

    async def _work(self, lane: Lane, d: Delivery) -> None:
        """Run attempts for as long as each one's end frees a slot that a waiting delivery takes.

        The first attempt that a release starts (the common case under load: one ends, the
        next waiting one takes its slot) runs in this task rather than a new one. A task per
        attempt cost about 12 µs more per attempt than a task that goes on (a uvloop
        microbench; task, coroutine, done callback and TaskSet bookkeeping); which lane goes
        next is still _release's choice, in the same order.
        """
        while True:
            try:
                await self._attempt(lane, d)
            except BaseException:
                self._release(lane)  # cancelled at shutdown: the delivery stays pending in the store
                raise
            taken: list[tuple[Lane, Delivery]] = []
            self._taker = taken
            try:
                self._release(lane)
            finally:
                self._taker = None
            if not taken:
                return
            lane, d = taken[0]

    async def _attempt(self, lane: Lane, d: Delivery) -> None:
        """One attempt, settled; the caller releases its slot."""
        shape, egress = lane.shape, lane.egress
        n = d.attempts + 1
        self._hold(d)
        headers: dict[str, str] = {}
        own: dict[str, str] = {}  # the attempt's own headers (webhook-*), for the log
        params: dict[str, str] | None = None
        started = self._clock.now()
        try:
            if not d.loaded and not await self._load(lane, d):
                return
            started = self._clock.now()
            try:
                if shape.method == "GET":
                    body, params = b"", query_params(d.body)
                else:
                    body = d.body
                headers, own = shape.attempt(d.message_id, int(started), body)
            except Exception as exc:  # e.g. an old batch body after a switch to GET
                resp = Response(status=None, error="http", message=f"cannot build the request: {exc}")
            else:
                resp = await self._sender.send(shape.method, shape.url, headers, body or None, params, egress)
        finally:
            self._unhold(d)
        try:
            self._settle(lane, d, n, started, headers, own, params, resp)
        except Exception:  # a bug here must not wedge the lane; the log keeps it
            log.exception("settle_failed", webhook=lane.webhook_id, delivery=d.id)

    async def _load(self, lane: Lane, d: Delivery) -> bool:
        """Read a reloaded delivery's body; False when it cannot be sent now."""
        try:
            found = await self._store.load(d)
        except Exception:  # it stays pending in the store for the next start
            log.exception("load_failed", webhook=lane.webhook_id, delivery=d.id)
            return False
        if not found:
            log.warning("delivery_gone", webhook=lane.webhook_id, delivery=d.id)
        return found

    def _settle(
        self,
        lane: Lane,
        d: Delivery,
        n: int,
        started: float,
        headers: dict[str, str],
        own: dict[str, str],
        params: dict[str, str] | None,
        resp: Response,
    ) -> None:
        s = self._settings
        now = self._clock.now()
        # Only an answer that was not a success can ask for a later retry; a 2xx skips the lookup.
        status = resp.status
        asked = find_header(resp.headers, "Retry-After") if status is not None and status >= 300 else None
        retry_after = parse_retry_after(asked, now)
        decision = decide(resp.status, resp.error, n, s.retry_schedule, s.jitter, s.retry_on,
                          retry_after, self._rand)  # fmt: skip
        d.attempts = n
        # d.state stays what the log holds until the outcome is committed (see _saved).
        state = decision.state if decision.state != "retry" else "retrying"
        next_at = now + decision.delay if decision.state == "retry" else None
        request, response = log_record(lane.shape, headers, own, params, resp, lane.lightweight)
        saved = self._store.record(
            Outcome(
                delivery=d, n=n, started_at=started, duration_ms=round(resp.duration_ms, 3),
                status_code=resp.status, error=resp.error, manual=d.manual, state=state, next_at=next_at,
                lightweight=lane.lightweight, request=request, response=response,
            )
        )  # fmt: skip
        # Until the outcome is committed the log still says pending: the delivery stays
        # shown as delivering, and out of reach of a reload's take-up, however long the
        # store takes to write it (a held lock, a full disk).
        self._hold(d)
        saved.add_done_callback(functools.partial(self._saved, d, state))
        meter, lane_log = lane.meter, lane.log
        assert meter is not None
        assert lane_log is not None
        meter.attempt(resp.status, resp.error, resp.duration_ms)
        # A delivery failed for good needs an operator's look; one to be retried not yet.
        # The lane's logger has the webhook bound: the same line, one keyword fewer per call.
        (lane_log.warning if state == "failed" else lane_log.info)(
            "attempt",
            delivery=d.id,
            attempt=n,
            status=resp.status,
            error=resp.error,
            duration_ms=round(resp.duration_ms, 1),
            outcome=state,
            items=len(d.item_ids),
        )
        # The webhook may have been removed (and maybe re-added) during the attempt: what
        # happens next belongs to the lane configured now, if any; the store has the state.
        current = self._lanes.get(d.webhook_id)
        if decision.state == "retry":
            assert next_at is not None
            if current is not None:
                self._schedule_retry(current, d, next_at)
            return
        meter.delivery(state)
        # Only a failure is told of, and never one of a delivery of hookd's own events (no loops).
        tell = state == "failed" and not op_events.quiet(d.events)
        if tell:
            obj = op_events.delivery_failed(d, lane.name, lane.shape.shown_url, resp.status, resp.error)
            self._notify(op_events.DELIVERY_FAILED, obj)
        if current is None:
            return
        lane = current
        if lane.holding is d:
            lane.holding = None
        if state == "succeeded":
            if lane.failures:
                lane.failures = 0
                self._store.set_webhook_state(lane.webhook_id, lane.auto_disabled, 0, now)
        else:
            lane.failures += 1
            if lane.auto_disable_after and lane.failures >= lane.auto_disable_after and not lane.auto_disabled:
                lane.auto_disabled = True
                log.warning("webhook_auto_disabled", webhook=lane.webhook_id, failures=lane.failures)
                if tell:
                    obj = op_events.webhook_disabled(lane.webhook_id, lane.name, lane.failures, lane.shape.shown_url)
                    self._notify(op_events.WEBHOOK_DISABLED, obj)
            self._store.set_webhook_state(lane.webhook_id, lane.auto_disabled, lane.failures, now)

    def _hold(self, d: Delivery) -> None:
        self._active.setdefault(d.webhook_id, {})[d.id] = d
        self._holds[d.id] = self._holds.get(d.id, 0) + 1

    def _unhold(self, d: Delivery) -> None:
        left = self._holds.pop(d.id, 1) - 1
        if left:
            self._holds[d.id] = left
            return
        held = self._active.get(d.webhook_id)
        if held is not None:
            held.pop(d.id, None)
            if not held:
                del self._active[d.webhook_id]

    def _saved(self, d: Delivery, state: str, fut: asyncio.Future[Any]) -> None:
        """An outcome's write has ended: committed (the usual case) or given up at a stop."""
        if not fut.cancelled() and fut.exception() is None:
            d.state = state
        self._unhold(d)

    def _schedule_retry(self, lane: Lane, d: Delivery, due: float) -> None:
        if lane.ordered:
            lane.holding = d
        delay = due - self._clock.now()
        log.debug("retry_scheduled", webhook=lane.webhook_id, delivery=d.id, next_attempt=d.attempts + 1,
                  delay_seconds=round(delay, 3), spooled=delay > self._spool_after)  # fmt: skip
        # A long wait, or a lane whose retries already fill its window: the delivery's row
        # holds everything; free the memory. Without the second, a receiver failing fast
        # (an outage answered 503) pulled the whole queue into short retry timers, a
        # Delivery with its body each, past the window the queue itself keeps to.
        if delay > self._spool_after or len(lane.timers) >= lane.window:
            heapq.heappush(self._spooled, (due, d.seq))
            self._spooled_seqs[d.seq] = d.webhook_id
            return
        old = lane.timers.pop(d.seq, None)
        if old is not None:
            old.cancel()
        timer = self._clock.call_at(due, lambda: self._retry_due(d))
        lane.timers[d.seq] = timer

    def _retry_due(self, d: Delivery) -> None:
        lane = self._lanes.get(d.webhook_id)
        if lane is None:
            return
        lane.timers.pop(d.seq, None)
        if lane.holding is d:
            lane.holding = None
        self.submit(d)

    def trim_memory(self) -> bool:
        """After a big backlog has drained (every lane idle), give the freed memory back to
        the system; True when it did. Called now and then (with the spool poll)."""
        if self._paged < TRIM_AFTER or self._inflight or any(lane.waiting() for lane in self._lanes.values()):
            return False
        self._paged = 0
        trim = malloc_trim()
        if trim is not None:
            trim()
        log.debug("memory_trimmed", available=trim is not None)
        return trim is not None

    async def poll_spool(self) -> None:
        """Bring back spooled retries whose time has come: to a lane past its window as
        seqs, to the others read back in one statement (bodies up to a page's limit)."""
        now = self._clock.now()
        if not self._spooled or self._spooled[0][0] > now:
            return
        # The rows are read back: an attempt's outcome still queued for writing would come
        # back as the attempt before it (its number, its state) without this.
        await self._store.drain()
        reads: list[int] = []
        room: dict[str, int] = {}  # per unordered lane: how many more it holds as objects
        as_seqs: dict[Lane, int] = {}
        while self._spooled and self._spooled[0][0] <= now:
            _, seq = heapq.heappop(self._spooled)
            wid = self._spooled_seqs.pop(seq, None)
            if wid is None:
                continue  # its webhook was removed meanwhile
            lane = self._lanes.get(wid)
            if lane is not None and not lane.ordered:
                left = room.get(wid)
                if left is None:
                    left = 0 if lane.takes_seq_only() else lane.window - lane.in_memory()
                room[wid] = left - 1
                if left <= 0:  # past the window it would be kept as a seq anyway: no read
                    lane.stored.append(seq)
                    as_seqs[lane] = as_seqs.get(lane, 0) + 1
                    continue
            reads.append(seq)
        for lane in as_seqs:
            self._pump(lane)
        # One statement, where each retry used to be a read of its own (a window's worth
        # per lane and poll, one after the other, holding up the batches' spool poll).
        found = await self._store.page(reads) if reads else []
        for d in found:
            lane = self._lanes.get(d.webhook_id)
            if lane is not None and lane.holding is not None and lane.holding.seq == d.seq:
                lane.holding = None
            self.submit(d)
        due = sum(as_seqs.values()) + len(found)
        if due:
            log.debug("spool_retries_due", deliveries=due, still_spooled=len(self._spooled_seqs))

    def restore(self, work: OpenWork) -> int:
        """Queue the pending work found in the store at start-up (or when a webhook
        returns): what is due now as seqs, read back page by page as the lanes drain;
        retries still to come on their timer or in the spool. Returns how many were taken."""
        count = 0
        now = self._clock.now()
        for wid, seqs in work.queued.items():
            lane = self._lanes.get(wid)
            if lane is None or not seqs:
                continue
            here = self._here(lane)
            fresh = seqs if not here else array("q", (s for s in seqs if s not in here))
            count += len(fresh)
            if lane.in_memory() or lane.stored:
                lane.fold(lane.ordered, fresh)
            else:
                lane.stored = Seqs(fresh)
            self._pump(lane)
        for d in work.later:
            lane = self._lanes.get(d.webhook_id)
            if lane is None or d.seq in self._here(lane):
                continue
            count += 1
            if d.next_at > now:
                self._schedule_retry(lane, d, d.next_at)
            else:
                self.submit(d)
        return count

    def _here(self, lane: Lane) -> set[int]:
        """Seqs of the lane's deliveries held here out of its queue: in an attempt, with an
        outcome not yet committed, or waiting out a retry (on a timer or in the spool)."""
        held = {d.seq for d in self._active.get(lane.webhook_id, {}).values()}
        held.update(lane.timers)
        held.update(seq for seq, wid in self._spooled_seqs.items() if wid == lane.webhook_id)
        return held

    # -- paging: a lane's queue beyond its window waits in the store ----------------------

    def _refill(self, lane: Lane) -> None:
        """The lane's window ran low and the store holds more of its queue: read a page."""
        if self._stopping:
            return
        seqs = lane.take_page()
        if seqs:
            self._pages.spawn(self._page_in(lane, seqs), name=f"page-{lane.webhook_id}")

    async def _page_in(self, lane: Lane, seqs: list[int]) -> None:
        """Read ``seqs`` back from the store (one statement) and queue them.

        The lane kept exactly the seqs it was handed, so the read cannot take one twice
        nor one handed over while it runs. Every delivery is handed over once its record
        is written or queued for writing; the drain first makes sure those queued are
        committed, so none is missed (a row not found is no longer open: ended or pruned).
        """
        while True:
            try:
                await self._store.drain()
                found = await self._store.page(seqs)
                break
            except asyncio.CancelledError:
                raise
            except Exception:  # the seqs stay marked as being read; the lane waits for them
                log.exception("page_read_failed", webhook=lane.webhook_id, deliveries=len(seqs))
                await self._clock.sleep(PAGE_RETRY_SECONDS)
                if self._lanes.get(lane.webhook_id) is not lane or lane.reading is not seqs:
                    return
        # A lane removed meanwhile (maybe re-added: it read the store itself) or folded
        # (reordered) no longer waits for this page.
        if self._lanes.get(lane.webhook_id) is not lane or not lane.paged(seqs, found):
            return
        if len(found) < len(seqs):
            log.warning("deliveries_gone", webhook=lane.webhook_id, deliveries=len(seqs) - len(found))
        log.debug("page_read", webhook=lane.webhook_id, deliveries=len(found), stored=len(lane.stored))
        self._paged += len(found)
        self._pump(lane)

    # -- operator actions ----------------------------------------------------------------

    def enable(self, webhook_id: str) -> bool:
        """Re-enable an auto-disabled webhook; False when it is not configured."""
        lane = self._lanes.get(webhook_id)
        if lane is None:
            return False
        if lane.auto_disabled or lane.failures:
            was_disabled = lane.auto_disabled
            lane.auto_disabled = False
            lane.failures = 0
            self._store.set_webhook_state(webhook_id, False, 0, self._clock.now())
            log.info("webhook_enabled", webhook=webhook_id)
            if was_disabled:
                obj = op_events.webhook_enabled(webhook_id, lane.name, lane.shape.shown_url)
                self._notify(op_events.WEBHOOK_ENABLED, obj)
        self._pump(lane)
        return True

    # -- shutdown ----------------------------------------------------------------------

    async def stop(self, grace: float) -> int:
        """Start nothing new; give in-flight attempts ``grace`` seconds; return how many were cut."""
        self._stopping = True
        self._pages.cancel()  # what they would read stays pending in the store
        await self._pages.wait()
        for lane in self._lanes.values():
            for timer in lane.timers.values():
                timer.cancel()
            lane.timers.clear()
        unfinished = await self._tasks.wait(grace)
        if unfinished:
            self._tasks.cancel()
            await self._tasks.wait()
        return unfinished

    # -- what the API, the metrics and STATUS= read ---------------------------------------

    def health(self, webhook_id: str) -> Health:
        """One webhook as the dispatcher sees it now (defaults for one it has no lane for)."""
        held = self._active.get(webhook_id, {})
        delivering = {delivery_id: d.state for delivery_id, d in held.items()}
        lane = self._lanes.get(webhook_id)
        if lane is None:
            return Health(delivering=delivering)
        return Health(
            auto_disabled=lane.auto_disabled,
            failures=lane.failures,
            queued=lane.waiting(),
            inflight=lane.inflight,
            delivering=delivering,
        )

    def delivering(self, delivery_id: str) -> bool:
        """True while the delivery is in an attempt or its outcome is not yet committed."""
        return delivery_id in self._holds

    def destinations(self) -> set[tuple[str, Egress]]:
        """Where the lanes configured now send: each one's URL and egress."""
        return {(lane.shape.url, lane.egress) for lane in self._lanes.values()}

    def webhook_ids(self) -> set[str]:
        """The webhooks with a lane: those of the config applied last."""
        return set(self._lanes)

    def queued(self) -> dict[str, int]:
        """Deliveries waiting (not in flight) per webhook."""
        return {wid: lane.waiting() for wid, lane in self._lanes.items()}

    @property
    def inflight(self) -> int:
        """Attempts in flight, all webhooks together."""
        return self._inflight
