"""hookd's own events (SPEC §12), ingested as the application's are: planned by
``ingest.plan`` with the routing in force, committed by the store, then handed to the
batcher and the dispatcher. So an operator event is durable, logged, shown on the page
and delivered with retries like any other, through whatever webhook subscribed to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from hookd.batcher import Batcher
from hookd.clock import Clock
from hookd.ingest import Routing, Unencodable, hand_on, plan
from hookd.metrics import Metrics
from hookd.models import Delivery, IdFactory, Occurrence, format_timestamp
from hookd.store import Storage, StorageLost
from hookd.tasks import TaskSet

log = structlog.get_logger("hookd.operator")

# An application's ingest that the store cannot commit is answered 503 and sent again by
# the application; here hookd is the sender, so it tries again itself, a few times.
RETRY_DELAYS = (0.1, 0.5, 2.0, 5.0)


class InternalIngest:
    """The ingest entry point for operator events; ``emit`` is safe to call from any
    callback on the loop (it only starts a task)."""

    def __init__(
        self,
        routing: Callable[[], Routing],
        store: Storage,
        batcher: Batcher,
        submit: Callable[[Delivery], None],
        ids: IdFactory,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._routing = routing
        self._store = store
        self._batcher = batcher
        self._submit = submit
        self._ids = ids
        self._clock = clock
        self._metrics = metrics
        self._tasks = TaskSet()

    def emit(self, event: str, obj: dict[str, Any]) -> None:
        """Ingest operator event ``event`` with ``obj`` as its object, as of now."""
        now = self._clock.now()
        occ = Occurrence(self._ids.make("evt"), event, format_timestamp(now), obj, None, None, False)
        self._tasks.spawn(self._ingest(occ, now), name=f"operator-event-{occ.id}")

    async def _ingest(self, occ: Occurrence, now: float) -> None:
        store = self._store
        for delay in (*RETRY_DELAYS, None):
            try:
                p = plan([occ], self._routing(), now, self._ids, store.next_item_seq, store.next_delivery_seq,
                         self._batcher.deadline_for)  # fmt: skip
            except Unencodable as exc:  # pragma: no cover - hookd builds these objects from plain values
                log.error("operator_event_lost", event_type=occ.event, event_id=occ.id, error=str(exc))
                return
            if not p.deliveries and not p.items:
                # Nothing subscribed: a generated id is never stored (no idempotency to
                # keep), so the store would have nothing to write.
                log.info("operator_event", event_type=occ.event, event_id=occ.id, items=0, object=occ.object)
                return
            try:
                dupes = await store.ingest([occ], now, p.deliveries, p.items)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if delay is None or isinstance(exc, StorageLost):
                    log.error("operator_event_lost", event_type=occ.event, event_id=occ.id, error=str(exc))
                    return
                log.warning("operator_event_retry", event_type=occ.event, event_id=occ.id, error=str(exc), delay=delay)
                await self._clock.sleep(delay)
                continue
            per_webhook = hand_on(p, dupes, self._submit, self._batcher, self._metrics)
            log.info("operator_event", event_type=occ.event, event_id=occ.id, items=sum(per_webhook.values()),
                     webhooks=per_webhook, object=occ.object)  # fmt: skip
            return

    async def stop(self, grace: float) -> int:
        """Let events on their way into the store land within ``grace`` seconds (their
        deliveries then wait in the store for the next start); return how many were cut."""
        unfinished = await self._tasks.wait(grace)
        if unfinished:
            self._tasks.cancel()
            await self._tasks.wait()
        return unfinished

    def __len__(self) -> int:
        return len(self._tasks)
