"""Benchmark 7: what ``server.strict_event_types`` costs per event (SPEC §11).

A micro-measurement in the bench's own process, on the batched benchmark's events: the
time ingest's own validation takes per event, and the time the strict check adds on top
(the type's lookup and its compiled JSON Schema), against SPEC §10's budget of about
12 µs per batched event. Without strict_event_types the check does not run at all (one
attribute test per request), so it has no figure of its own.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import orjson
from harness import arrays, event
from scenarios import Ctx, Row

from hookd.catalogue import StrictTypes
from hookd.config import EventType
from hookd.models import IdFactory
from hookd.validate import validate_events

ROUNDS = 5
BUDGET_US = 12.0  # SPEC §10: per batched event, SQLite included

# A schema of the shape a real catalogue would give the batched benchmark's events.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "event", "object"],
    "properties": {
        "id": {"type": "string", "maxLength": 128},
        "event": {"const": "bench.updated"},
        "object": {
            "type": "object",
            "required": ["id", "summary", "status"],
            "properties": {
                "id": {"type": "integer", "minimum": 0},
                "summary": {"type": "string", "maxLength": 500},
                "status": {
                    "type": "object",
                    "required": ["id", "display"],
                    "properties": {"id": {"type": "integer"}, "display": {"type": "string"}},
                },
                "priority": {"enum": ["P1", "P2", "P3", "P4"]},
                "client": {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}},
                "agent": {"type": "string"},
            },
        },
        "action": {"type": "object", "properties": {"id": {"type": "integer"}, "note": {"type": "string"}}},
    },
}


def catalogue() -> list[EventType]:
    """The benchmark's type with its schema among 40 others, as a real catalogue holds."""
    others = [EventType(name=f"bench.other_{i}") for i in range(40)]
    return [*others, EventType.model_validate({"name": "bench.updated", "schema": SCHEMA})]


def per_event_us(bodies: list[bytes], n: int, work: Any) -> float:
    """The median over ROUNDS of ``work(parsed array)`` summed over ``bodies``, in µs per event."""
    parsed = [orjson.loads(b) for b in bodies]
    times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        for data in parsed:
            work(data)
        times.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(times)


async def strict_catalogue(ctx: Ctx) -> dict[str, Any]:
    """µs per event of ingest's validation, and of the strict catalogue check added to it."""
    n = ctx.scale.batched
    bodies = arrays([event(ctx.prefix("strict"), i, "bench.updated") for i in range(n)], 1000)
    t0 = time.perf_counter()
    strict = StrictTypes(catalogue())  # compiles nothing: the schemas were compiled by EventType
    build_ms = (time.perf_counter() - t0) * 1000
    ids = IdFactory()
    sample = orjson.loads(bodies[0])
    assert strict.check(sample) == [], strict.check(sample)[:3]
    validate_us = per_event_us(bodies, n, lambda data: validate_events(data, ids, "2026-11-29T07:00:00.000Z", 1000))
    strict_us = per_event_us(bodies, n, strict.check)
    ctx.rows.append(Row("7 strict catalogue", f"µs/event, schema check ({n:,})", f"{strict_us:.2f}",
                        f"{BUDGET_US:.0f}", strict_us / BUDGET_US))  # fmt: skip
    ctx.rows.append(Row("", "  ingest validation alone", f"{validate_us:.2f}", f"{BUDGET_US:.0f}",
                        validate_us / BUDGET_US))  # fmt: skip
    return {"n": n, "strict_us": strict_us, "validate_us": validate_us, "build_ms": build_ms, "budget_us": BUDGET_US}
