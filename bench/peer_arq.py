"""The arq peer: arq with Redis, workers delivering with aiohttp.

``python bench/peer_arq.py ingest --port-file F`` runs the ingest endpoint
(peer_common.py), which enqueues one job per delivery and answers 202 once Redis has
them; ``python bench/peer_arq.py worker`` runs one arq worker (``arq.run_worker`` with
``worker_settings()``, on uvloop like hookd and the ingest servers).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from arq import Retry, create_pool, run_worker
from arq.connections import RedisSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peer_common import Close, Enqueue, Job, serve_ingest, signed_headers, signing_keys

# 64 jobs at a time (hookd's per_webhook_concurrency; arq's default is 10). arq polls
# Redis for due jobs every poll_delay (0.5 s by default) and reads up to queue_read_limit
# job ids per poll (max(5 × max_jobs, 100) = 320): at more than 640 jobs/s the
# default would stand idle between polls, so a team after throughput lowers it.
MAX_JOBS = 64
POLL_DELAY = 0.05


def redis_settings() -> RedisSettings:
    """The peer's Redis, from ``PEER_REDIS_URL``."""
    return RedisSettings.from_dsn(os.environ["PEER_REDIS_URL"])


async def deliver(ctx: dict[str, Any], url: str, message_id: str, body: str) -> None:
    """One signed POST; anything but 2xx is retried later (arq's Retry, growing delay)."""
    data = body.encode()
    session: aiohttp.ClientSession = ctx["session"]
    async with session.post(url, data=data, headers=signed_headers(ctx["keys"], message_id, data)) as r:
        await r.read()
        if r.status >= 300:
            raise Retry(defer=ctx["job_try"] * 5)


async def startup(ctx: dict[str, Any]) -> None:
    """One client session for the worker (no cap: max_jobs is the cap), and the signing key."""
    ctx["session"] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=30)
    )
    ctx["keys"] = signing_keys()


async def shutdown(ctx: dict[str, Any]) -> None:
    """Close the session."""
    await ctx["session"].close()


def worker_settings() -> dict[str, Any]:
    """arq's worker settings (what a ``WorkerSettings`` class would hold, for ``run_worker``)."""
    return {
        "functions": [deliver],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": redis_settings(),
        "max_jobs": MAX_JOBS,
        "poll_delay": POLL_DELAY,
        "max_tries": 5,
    }


async def _open() -> tuple[Enqueue, Close]:
    pool = await create_pool(redis_settings())

    async def enqueue(jobs: Sequence[Job]) -> None:
        # Each enqueue_job is one transaction (WATCH, MULTI, SET, ZADD, EXEC); the
        # request's jobs go concurrently, as an asyncio handler would send them.
        await asyncio.gather(*(pool.enqueue_job("deliver", *job) for job in jobs))

    async def close() -> None:
        await pool.aclose()

    return enqueue, close


def main(argv: list[str]) -> int:
    """``ingest`` or ``worker``."""
    kind = argv[1] if len(argv) > 1 else ""
    if kind == "ingest":
        return serve_ingest(_open)
    if kind == "worker":
        import uvloop

        # run_worker takes the thread's current loop (asyncio.get_event_loop).
        asyncio.set_event_loop(uvloop.new_event_loop())
        run_worker(worker_settings())
        return 0
    print("usage: peer_arq.py ingest --port-file F | worker", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
