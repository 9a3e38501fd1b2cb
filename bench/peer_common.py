"""What the two peers of the bench share (bench/peers.py runs them): the ingest endpoint,
the item body and the signed request.

Each peer is what a Python team would otherwise deploy for hookd's job: a small aiohttp
ingest server that answers 202 once every event's delivery job is queued in Redis, and
workers that send one Standard Webhooks signed JSON POST per job. The ingest endpoint
takes the same arrays of events as hookd's ``POST /v1/events``; an event goes to the
webhook named by its type's first segment (``bench.created`` to ``bench``), as hookd's
``bench.*`` and ``warm.*`` triggers route the bench's events. Its body has hookd's shape
(the fields of ``harness.item_body``), encoded once at ingest, as hookd does.

A peer's settings travel in environment variables, since its worker processes are
started by their frameworks' own command lines: ``PEER_REDIS_URL``, ``PEER_SECRET`` (a
``whsec_`` secret) and, for the ingest server, ``PEER_ROUTES`` (JSON: type prefix to
``[webhook id, url]``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from hookd.signing import secret_key, sign

# One queued delivery: (url, message id, body). The body is text, since Celery's default
# JSON serializer carries no bytes; arq's pickle would take either.
Job = tuple[str, str, str]
Enqueue = Callable[[Sequence[Job]], Awaitable[None]]
Close = Callable[[], Awaitable[None]]
Routes = dict[str, tuple[str, str]]


def routes_from_env() -> Routes:
    """The ingest server's routes: event-type prefix -> (webhook id, url)."""
    raw: dict[str, list[str]] = orjson.loads(os.environ["PEER_ROUTES"])
    return {prefix: (wid, url) for prefix, (wid, url) in raw.items()}


def signing_keys() -> list[bytes]:
    """The workers' HMAC key, from ``PEER_SECRET``."""
    return [secret_key(os.environ["PEER_SECRET"])]


def jobs_for(events: list[dict[str, Any]], routes: Routes) -> list[Job]:
    """One job per event and matching webhook, its body encoded once (hookd's fields)."""
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    jobs: list[Job] = []
    for ev in events:
        route = routes.get(str(ev.get("event", "")).split(".", 1)[0])
        if route is None:
            continue
        wid, url = route
        mid = str(uuid.uuid4())
        body = orjson.dumps({
            "id": mid, "webhook_id": wid, "event": ev["event"], "event_id": ev["id"], "trigger": "all",
            "object_id": ev["object"]["id"], "timestamp": stamp, "object": ev["object"], "action": ev["action"],
        })  # fmt: skip
        jobs.append((url, mid, body.decode()))
    return jobs


def signed_headers(keys: Sequence[bytes], message_id: str, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt, signed now (as hookd signs each attempt)."""
    ts = int(time.time())
    return {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(keys, message_id, ts, body),
    }


def ingest_app(enqueue: Enqueue, routes: Routes) -> web.Application:
    """``POST /v1/events`` (an event or an array of them): queue every delivery, then 202."""

    async def events(request: web.Request) -> web.Response:
        data = orjson.loads(await request.read())
        evs = data if isinstance(data, list) else [data]
        await enqueue(jobs_for(evs, routes))
        return web.Response(status=202, body=orjson.dumps({"accepted": len(evs)}), content_type="application/json")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/events", events)
    return app


def serve_ingest(make_enqueue: Callable[[], Awaitable[tuple[Enqueue, Close]]]) -> int:
    """Run an ingest server on uvloop (``--port-file``, ``--max-seconds`` as servers.py's):
    ``make_enqueue`` opens the peer's queue and returns its enqueue and close functions."""
    import uvloop
    from servers import serve

    p = argparse.ArgumentParser()
    p.add_argument("--port-file", type=Path, required=True)
    p.add_argument("--max-seconds", type=float, default=3600.0)
    args = p.parse_args(sys.argv[2:])

    async def main() -> None:
        enqueue, close = await make_enqueue()
        try:
            await serve(ingest_app(enqueue, routes_from_env()), args.port_file, args.max_seconds)
        finally:
            await close()

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(main())
    return 0
