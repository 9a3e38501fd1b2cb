"""``POST /v1/events``: validate, route, shape, commit, then hand on (SPEC §3).

Validation is all-or-nothing per request, and nothing is handed to the batcher or
the dispatcher before the store has committed it, so a 202 means the work survives a
crash and a rejected request leaves no trace.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from aiohttp import web

from hookd.batcher import Batcher, batch_key
from hookd.catalogue import StrictTypes
from hookd.clock import Clock
from hookd.config import Config
from hookd.deliver import Dispatcher
from hookd.metrics import Metrics
from hookd.models import (
    Delivery,
    IdFactory,
    Item,
    Occurrence,
    format_timestamp,
    new_delivery,
)
from hookd.payloads import BodyBuilder, body_builder
from hookd.responses import error, json_response
from hookd.router import Router
from hookd.store import Storage
from hookd.validate import inexact_numbers, validate_events

log = structlog.get_logger("hookd.ingest")

# A 1 MiB body can hold ~100,000 mistakes; answering each made a 4.7 MB error body. The
# first hundred show the pattern, and the count says how big the problem is.
MAX_DETAILS = 100


@dataclass(frozen=True)
class Routing:
    """Everything the ingest path derives from one config load; swapped whole on reload."""

    config: Config
    router: Router
    builders: dict[str, BodyBuilder]
    modes: dict[str, str]  # webhook id → batching mode
    lightweight: dict[str, bool]
    strict: StrictTypes | None  # server.strict_event_types: the catalogue's compiled check

    @classmethod
    def build(cls, config: Config) -> Routing:
        """Compile the config's triggers, payload shapes and message templates."""
        return cls(
            config=config,
            router=Router(config.webhooks),
            builders={w.id: body_builder(w) for w in config.webhooks},
            modes={w.id: w.batching for w in config.webhooks},
            lightweight={w.id: w.lightweight_logs for w in config.webhooks},
            strict=StrictTypes(config.event_types) if config.server.strict_event_types else None,
        )


class Unencodable(Exception):
    """An occurrence orjson cannot encode; ``detail`` is its error detail for the 422."""

    def __init__(self, detail: dict[str, Any]) -> None:
        super().__init__(detail["message"])
        self.detail = detail


@dataclass(slots=True)
class Chunk:
    """A request's items of one webhook and batch key: they share a store row (``seq``) and a
    deadline, and go to the batcher in one call."""

    webhook_id: str
    key: str
    seq: int
    deadline: float
    count: int = 0  # items so far; the next one's place in the chunk
    start: int = 1  # where the next body goes in the chunk's bytes: each is followed by a comma
    items: list[Item] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)  # of the occurrence each item came from


@dataclass(slots=True)
class Plan:
    """What one request becomes, each part with the index of the occurrence it came from,
    so the store can drop a duplicate's work in the transaction that finds it."""

    deliveries: list[tuple[int, Delivery, bool]]  # sent alone; the bool: lightweight logs
    items: list[tuple[int, Item]]  # for the store, in arrival order
    chunks: list[Chunk]  # the same items by webhook and batch key, for the batcher


def plan(
    occurrences: Sequence[Occurrence],
    rt: Routing,
    now: float,
    ids: IdFactory,
    next_item_seq: Callable[[], int],
    next_delivery_seq: Callable[[], int],
    deadline_for: Callable[[str, str, float], float],
) -> Plan:
    """Route a request's occurrences and shape their bodies: the deliveries and batched items
    to commit. Raises Unencodable when orjson refuses an occurrence.

    The sequence numbers and deadlines come from the caller (the store's counters, the
    batcher's open batches), so this reads no clock and does no I/O.
    """
    deliveries: list[tuple[int, Delivery, bool]] = []
    items: list[tuple[int, Item]] = []
    # The request's items of one webhook and batch key share a store chunk (one row). A
    # chunk is found by (webhook, trigger, event), which decide the key: the key is worked
    # out once per such triple in a request, not once per item.
    chunks: dict[tuple[str, str], Chunk] = {}
    slots: dict[tuple[str, str, str], Chunk] = {}
    route, builders, modes, lightweight = rt.router.route, rt.builders, rt.modes, rt.lightweight
    new_id = ids.uuids()
    for idx, occ in enumerate(occurrences):
        for wid, tid in route(occ):
            item_id = new_id()
            try:
                body = builders[wid].body(occ, item_id, tid)
            except TypeError as exc:  # orjson: nesting past its limit (254 levels)
                raise Unencodable(
                    {"index": idx, "path": _unencodable(occ), "message": f"cannot be encoded: {exc}"}
                ) from None
            mode = modes[wid]
            if mode == "per_occurrence":
                d = new_delivery(
                    ids, next_delivery_seq(), wid, body, [item_id], [occ.event], [tid], now,
                    event_ids=[occ.id], object_ids=[occ.object.get("id")],
                )  # fmt: skip
                deliveries.append((idx, d, lightweight[wid]))
            else:
                chunk = slots.get((wid, tid, occ.event))
                if chunk is None:
                    key = batch_key(mode, tid, occ.event)
                    assert key is not None
                    chunk = chunks.get((wid, key))
                    if chunk is None:
                        chunk = chunks[(wid, key)] = Chunk(wid, key, next_item_seq(), deadline_for(wid, key, now))
                    slots[(wid, tid, occ.event)] = chunk
                # Positional, in Item's field order (id, webhook_id, trigger, event, occurrence_id,
                # body, batch_key, seq, pos, deadline, object_id, start): by keyword the call cost
                # 0.5 µs more per item.
                item = Item(
                    item_id,
                    wid,
                    tid,
                    occ.event,
                    occ.id,
                    body,
                    chunk.key,
                    chunk.seq,
                    chunk.count,
                    chunk.deadline,
                    occ.object.get("id"),
                    chunk.start,
                )
                chunk.count += 1
                chunk.start += len(body) + 1
                chunk.items.append(item)
                chunk.indexes.append(idx)
                items.append((idx, item))
    return Plan(deliveries, items, list(chunks.values()))


def hand_on(p: Plan, dupes: set[int], submit: Callable[[Delivery], None], batcher: Batcher,
            metrics: Metrics) -> dict[str, int]:  # fmt: skip
    """Give the committed work of the non-duplicate occurrences to the dispatcher (``submit``)
    and the batcher; the items routed, per webhook."""
    per_webhook: dict[str, int] = {}
    for idx, d, _ in p.deliveries:
        if idx not in dupes:
            submit(d)
            per_webhook[d.webhook_id] = per_webhook.get(d.webhook_id, 0) + 1
    # A chunk at a time: its items share the webhook and key, so the batcher looks its
    # open batch up once and takes them as slices (a duplicate is rare; then item by item).
    for c in p.chunks:
        kept = c.items if not dupes else [it for i, it in zip(c.indexes, c.items, strict=True) if i not in dupes]
        if kept:
            batcher.add_run(c.webhook_id, c.key, kept)
            per_webhook[c.webhook_id] = per_webhook.get(c.webhook_id, 0) + len(kept)
    for wid, n in per_webhook.items():
        metrics.routed(wid, n)
    return per_webhook


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


async def read_json(request: web.Request, limit: int, types: tuple[str, ...] = ("application/json",)) -> Any:
    """An admin call's JSON body, or the error response to answer with (415, 413, 400)."""
    if request.content_type not in types:
        return error(415, "unsupported_media_type", f"Content-Type must be {' or '.join(types)}")
    try:
        raw = await read_limited(request, limit)
    except TooLarge:
        return error(413, "body_too_large", f"the body is larger than {limit} bytes")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return error(400, "malformed_json", f"the body is not valid JSON: {exc}")


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
        got = await self._read(request)
        if isinstance(got, web.StreamResponse):
            return got
        occurrences, now = got
        # Taken after the body is read: a reload during the upload must not leave this
        # request routing by a config the batcher no longer knows.
        store = self._store
        try:
            p = plan(
                occurrences, self._routing(), now, self._ids,
                store.next_item_seq, store.next_delivery_seq, self._batcher.deadline_for,
            )  # fmt: skip
        except Unencodable as exc:
            return error(422, "invalid_events", "1 problem(s) in the request", [exc.detail])
        try:
            dupes = await store.ingest(occurrences, now, p.deliveries, p.items)
        except Exception as exc:
            log.error("ingest_store_failed", error=str(exc))
            return error(
                503, "storage_unavailable", "the store could not commit the events; retry", headers={"Retry-After": "1"}
            )
        per_webhook = hand_on(p, dupes, self._dispatcher.submit, self._batcher, self._metrics)
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

    async def _read(self, request: web.Request) -> tuple[list[Occurrence], float] | web.StreamResponse:
        """The request's valid occurrences and the time they were received, or the refusal."""
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
        # The routing the plan will use (no await from here to it), not the one before the body.
        strict = self._routing().strict
        if not problems and strict is not None:
            # Only well-formed events get here, so every one is an object with an event name.
            problems = strict.check(data if isinstance(data, list) else [data])
        if problems:
            return error(422, "invalid_events", f"{len(problems)} problem(s) in the request", capped(problems))
        return occurrences, now


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
