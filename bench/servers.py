"""The bench's helper servers, each run as its own process on uvloop.

``receiver``: the webhook destination. ``POST /r/{channel}`` answers 200 at once;
``POST /slow/{channel}?delay=S`` answers 200 after S seconds; ``POST /down/{channel}``
answers 503 until ``POST /up/{channel}``, then as ``/r/``. Each channel counts
requests and items (item bodies carry exactly one ``"webhook_id":`` key) and remembers
the first and last arrival; with ``?rec=1`` it also keeps one record per request
(arrival, items, first item's event id and event type). ``GET /stats/{channel}``
reports a channel (``?records=1`` adds the records).

``ingest``: the batched ceiling, a bare ingest endpoint that only parses the body with
orjson (as hookd does) and answers 202.

Both write ``{"port": N}`` to ``--port-file`` once listening, and exit when their
parent goes away, so a killed bench leaves nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import uvloop
from aiohttp import web

ITEM_MARK = b'"webhook_id":'
EVENT_ID = re.compile(rb'"event_id":"([^"]*)"')
EVENT = re.compile(rb'"event":"([^"]*)"')


@dataclass
class Channel:
    """What one receiver path has seen."""

    requests: int = 0
    items: int = 0
    first: float = 0.0
    last: float = 0.0
    last_done: float = 0.0
    records: list[tuple[float, float, int, str, str]] = field(default_factory=list)

    def add(self, arrived: float, done: float, body: bytes, keep: bool) -> None:
        """Count one request."""
        n = body.count(ITEM_MARK) or 1
        if not self.requests:
            self.first = arrived
        self.requests += 1
        self.items += n
        self.last = max(self.last, arrived)
        self.last_done = max(self.last_done, done)
        if keep:
            m_id, m_ev = EVENT_ID.search(body), EVENT.search(body)
            self.records.append(
                (arrived, done, n, m_id.group(1).decode() if m_id else "", m_ev.group(1).decode() if m_ev else "")
            )


def receiver_app() -> web.Application:
    """The webhook receiver."""
    channels: dict[str, Channel] = {}

    def channel(name: str) -> Channel:
        ch = channels.get(name)
        if ch is None:
            ch = channels[name] = Channel()
        return ch

    async def fast(request: web.Request) -> web.Response:
        arrived = time.time()
        body = await request.read()
        channel(request.match_info["ch"]).add(arrived, arrived, body, "rec" in request.query)
        return web.Response()

    async def slow(request: web.Request) -> web.Response:
        arrived = time.time()
        body = await request.read()
        delay = min(float(request.query.get("delay", "1.0")), 30.0)
        await asyncio.sleep(delay)
        channel(request.match_info["ch"]).add(arrived, time.time(), body, True)
        return web.Response()

    up: set[str] = set()  # /down/ channels told to come back

    async def dead(request: web.Request) -> web.Response:
        name = request.match_info["ch"]
        if name not in up:
            await request.read()
            return web.Response(status=503)
        return await fast(request)

    async def revive(request: web.Request) -> web.Response:
        up.add(request.match_info["ch"])
        return web.Response()

    async def stats(request: web.Request) -> web.Response:
        ch = channel(request.match_info["ch"])
        out: dict[str, Any] = {
            "requests": ch.requests, "items": ch.items, "first": ch.first, "last": ch.last,
            "last_done": ch.last_done,
        }  # fmt: skip
        if "records" in request.query:
            out["records"] = ch.records
        return web.Response(body=orjson.dumps(out), content_type="application/json")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/r/{ch}", fast)
    app.router.add_post("/slow/{ch}", slow)
    app.router.add_post("/down/{ch}", dead)
    app.router.add_post("/up/{ch}", revive)
    app.router.add_get("/stats/{ch}", stats)
    return app


def ingest_app() -> web.Application:
    """The bare ingest ceiling: parse the array, answer 202."""
    total = [0]

    async def events(request: web.Request) -> web.Response:
        data = orjson.loads(await request.read())
        n = len(data) if isinstance(data, list) else 1
        total[0] += n
        return web.Response(status=202, body=orjson.dumps({"accepted": n}), content_type="application/json")

    async def stats(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({"events": total[0]}), content_type="application/json")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/events", events)
    app.router.add_get("/stats", stats)
    return app


async def serve(app: web.Application, port_file: Path, max_seconds: float) -> None:
    """Listen on 127.0.0.1:0, publish the port, and run until the parent goes away."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
    await site.start()
    port = int(runner.addresses[0][1])
    tmp = port_file.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps({"port": port, "pid": os.getpid()}))
    tmp.rename(port_file)
    parent = os.getppid()
    try:
        for _ in range(int(max_seconds * 2)):
            if os.getppid() != parent:
                break
            await asyncio.sleep(0.5)
    finally:
        await runner.cleanup()


def main() -> int:
    """Run one helper server."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("kind", choices=["receiver", "ingest"])
    p.add_argument("--port-file", type=Path, required=True)
    p.add_argument("--max-seconds", type=float, default=3600.0, help="exit after this long whatever happens")
    args = p.parse_args()
    app = receiver_app() if args.kind == "receiver" else ingest_app()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(app, args.port_file, args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
