"""``POST /v1/events``: validate, route, shape, commit, then hand on (SPEC §3).

Validation is all-or-nothing per request, and nothing is handed to the batcher or
the dispatcher before the store has committed it, so a 202 means the work survives a
crash and a rejected request leaves no trace.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from aiohttp import web

from hookd.batcher import Batcher, batch_key
from hookd.clock import Clock
from hookd.config import Config
from hookd.deliver import Dispatcher
from hookd.metrics import Metrics
from hookd.models import Delivery, IdFactory, Item, Occurrence, format_timestamp, inexact_numbers, validate_events
from hookd.payloads import PayloadBuilder
from hookd.responses import error, json_response
from hookd.router import Router
from hookd.store import Storage

log = structlog.get_logger("hookd.ingest")

# A 1 MiB body can hold ~100,000 mistakes; answering each made a 4.7 MB error body. The
# first hundred show the pattern, and the count says how big the problem is.
MAX_DETAILS = 100


@dataclass(frozen=True)
class Routing:
    """Everything the ingest path derives from one config load; swapped whole on reload."""

    config: Config
    router: Router
    builders: dict[str, PayloadBuilder]
    modes: dict[str, str]  # webhook id → batching mode
    lightweight: dict[str, bool]

    @classmethod
    def build(cls, config: Config) -> Routing:
        """Compile the config's triggers and payload shapes."""
        return cls(
            config=config,
            router=Router(config.webhooks),
            builders={w.id: PayloadBuilder(w) for w in config.webhooks},
            modes={w.id: w.batching for w in config.webhooks},
            lightweight={w.id: w.lightweight_logs for w in config.webhooks},
        )


class TooLarge(Exception):
    """The request body is over ``max_body_bytes``."""


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The body, refusing to hold more than ``limit`` bytes (chunked bodies included)."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge
    chunks: list[bytes] = []
    got = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        got += len(chunk)
        if got > limit:
            raise TooLarge
        chunks.append(chunk)


class Ingest:
    """The ingest endpoint's handler."""

    def __init__(
        self,
        routing: Callable[[], Routing],
        store: Storage,
        batcher: Batcher,
        dispatcher: Dispatcher,
        ids: IdFactory,
        clock: Clock,
        metrics: Metrics,
        accepting: Callable[[], bool],
    ) -> None:
        self._routing = routing
        self._store = store
        self._batcher = batcher
        self._dispatcher = dispatcher
        self._ids = ids
        self._clock = clock
        self._metrics = metrics
        self._accepting = accepting

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one ingest request."""
        started = time.perf_counter()
        resp = await self._handle(request)
        if resp.status == 202:
            self._metrics.ingest_latency.observe(time.perf_counter() - started)
        else:
            self._metrics.rejected.labels(str(resp.status)).inc()
        return resp

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if not self._accepting():
            return error(503, "shutting_down", "hookd is stopping; retry shortly", headers={"Retry-After": "5"})
        if self._store.lost:
            return error(503, "storage_unavailable", "the database file was deleted or replaced; hookd needs a restart")
        limits = self._routing().config.server
        if request.content_type != "application/json":
            return error(415, "unsupported_media_type", "Content-Type must be application/json")
        try:
            raw = await read_limited(request, limits.max_body_bytes)
        except TooLarge:
            return error(413, "body_too_large", f"the body is larger than {limits.max_body_bytes} bytes")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            # Valid JSON that orjson cannot hold (a number past the double's range) is a 422.
            inexact = inexact_numbers(raw, orjson_refused=True)
            if inexact:
                return error(422, "invalid_events", f"{len(inexact)} problem(s) in the request", capped(inexact))
            return error(400, "malformed_json", f"the body is not valid JSON: {exc}")
        if isinstance(data, list) and len(data) > limits.max_events_per_request:
            return error(
                413,
                "too_many_events",
                f"the array holds {len(data)} events; the limit is {limits.max_events_per_request}",
            )
        now = self._clock.now()
        occurrences, problems = validate_events(data, self._ids, format_timestamp(now), limits.max_events_per_request)
        inexact = inexact_numbers(raw)
        if inexact:
            problems = sorted([*problems, *inexact], key=lambda d: -1 if d["index"] is None else d["index"])
        if problems:
            return error(422, "invalid_events", f"{len(problems)} problem(s) in the request", capped(problems))

        # Taken after the body is read: a reload during the upload must not leave this
        # request routing by a config the batcher no longer knows.
        rt = self._routing()
        deliveries: list[tuple[int, Delivery, bool]] = []
        items: list[tuple[int, Item]] = []
        # The request's items of one webhook and batch key share a store chunk (one row).
        chunks: dict[tuple[str, str], list[Any]] = {}  # → [seq, items so far, deadline]
        ids, store, batcher = self._ids, self._store, self._batcher
        route, builders, modes, lightweight = rt.router.route, rt.builders, rt.modes, rt.lightweight
        for idx, occ in enumerate(occurrences):
            for wid, tid in route(occ):
                item_id = ids.uuid()
                try:
                    body = builders[wid].body(occ, item_id, tid)
                except TypeError as exc:  # orjson: nesting past its limit (254 levels)
                    detail = {"index": idx, "path": _unencodable(occ), "message": f"cannot be encoded: {exc}"}
                    return error(422, "invalid_events", "1 problem(s) in the request", [detail])
                mode = modes[wid]
                if mode == "per_occurrence":
                    seq = store.next_delivery_seq()
                    d = Delivery(
                        id=ids.delivery(seq), seq=seq, message_id=ids.make("msg"),
                        webhook_id=wid, body=body, item_ids=[item_id], events=[occ.event],
                        triggers=[tid], created_at=now,
                    )  # fmt: skip
                    deliveries.append((idx, d, lightweight[wid]))
                else:
                    key = batch_key(mode, tid, occ.event)
                    assert key is not None
                    chunk = chunks.get((wid, key))
                    if chunk is None:
                        chunk = chunks[(wid, key)] = [store.next_item_seq(), 0, batcher.deadline_for(wid, key, now)]
                    item = Item(
                        id=item_id, webhook_id=wid, trigger=tid, event=occ.event, occurrence_id=occ.id,
                        body=body, batch_key=key, seq=chunk[0], pos=chunk[1], deadline=chunk[2],
                    )  # fmt: skip
                    chunk[1] += 1
                    items.append((idx, item))
        try:
            dupes = await store.ingest(occurrences, now, deliveries, items)
        except Exception as exc:
            log.error("ingest_store_failed", error=str(exc))
            return error(
                503, "storage_unavailable", "the store could not commit the events; retry", headers={"Retry-After": "1"}
            )

        per_webhook: dict[str, int] = {}
        for idx, d, _ in deliveries:
            if idx not in dupes:
                self._dispatcher.submit(d)
                per_webhook[d.webhook_id] = per_webhook.get(d.webhook_id, 0) + 1
        for idx, item in items:
            if idx not in dupes:
                batcher.add(item)
                per_webhook[item.webhook_id] = per_webhook.get(item.webhook_id, 0) + 1
        for wid, n in per_webhook.items():
            self._metrics.routed(wid, n)
        routed = sum(per_webhook.values())
        log.debug("routed", events=len(occurrences), duplicates=len(dupes), items=routed, webhooks=per_webhook)
        self._metrics.events.inc(len(occurrences))
        if dupes:
            self._metrics.duplicates.inc(len(dupes))
        return json_response(
            {
                "accepted": len(occurrences),
                "duplicates": len(dupes),
                "items": routed,
                "ids": [o.id for o in occurrences],
            },
            status=202,
        )


def capped(details: list[dict[str, Any]], limit: int = MAX_DETAILS) -> list[dict[str, Any]]:
    """The first ``limit`` details, then one saying how many were left out (the error shape stays the same)."""
    if len(details) <= limit:
        return details
    more = len(details) - limit
    return [*details[:limit], {"index": None, "path": None, "message": f"… and {more} more problems"}]


def _unencodable(occ: Occurrence) -> str:
    """Which part of an occurrence orjson refuses (only asked after it refused one)."""
    for key in ("object", "action", "linked"):
        try:
            orjson.dumps(getattr(occ, key))
        except TypeError:
            return key
    return "object"
