"""The Celery peer: Celery 5 with a Redis broker, workers delivering with ``requests``.

``python bench/peer_celery.py ingest --port-file F`` runs the ingest endpoint
(peer_common.py), which publishes one task per delivery and answers 202 once Redis has
them; the workers are Celery's own command, as a team runs them (bench/peers.py starts
``celery -A peer_celery worker``, with this folder on ``PYTHONPATH``; see WORKER_ARGS).

Celery wants its app and tasks at module level, found by import: here they are module
globals, unlike hookd's own code, because that is how Celery is used.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import requests
from celery import Celery, Task

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peer_common import Close, Enqueue, Job, serve_ingest, signed_headers, signing_keys

# What a team would run for I/O-bound tasks on one machine: the threads pool, 64 at a
# time (hookd's per_webhook_concurrency), one worker process. The prefork pool forks a
# process per slot (64 interpreters on 2 cores); gevent needs monkey-patching. Gossip,
# mingle and heartbeats are the chatter Celery's docs suggest turning off with a Redis
# broker. The log level is Celery's default (warning): no line per task, where hookd
# writes one per attempt.
WORKER_ARGS = ["--pool", "threads", "--concurrency", "64", "--loglevel", "WARNING", "--without-gossip",
               "--without-mingle", "--without-heartbeat"]  # fmt: skip

app = Celery("peer_celery", broker=os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    # A delivery is acknowledged after it ran, so a worker that dies mid-way leaves it
    # queued (hookd keeps a delivery until its outcome is committed).
    task_acks_late=True,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

_local = threading.local()  # a requests.Session per worker thread (Session is not thread-safe)


def _session() -> requests.Session:
    s: requests.Session | None = getattr(_local, "session", None)
    if s is None:
        s = _local.session = requests.Session()
    return s


_keys: list[bytes] = []


def _signing_keys() -> list[bytes]:
    if not _keys:
        _keys.extend(signing_keys())
    return _keys


# The name is given: run as a script, this module is __main__, and the ingest server would
# publish tasks the workers (which import peer_celery) do not know.
@app.task(  # type: ignore[untyped-decorator]
    name="peer_celery.deliver",
    bind=True,
    acks_late=True,
    autoretry_for=(requests.RequestException,),
    retry_backoff=True,
    max_retries=5,
)
def deliver(self: Task, url: str, message_id: str, body: str) -> None:
    """One signed POST; anything but 2xx raises, and Celery retries with backoff."""
    data = body.encode()
    r = _session().post(url, data=data, headers=signed_headers(_signing_keys(), message_id, data), timeout=30)
    r.raise_for_status()


async def _open() -> tuple[Enqueue, Close]:
    async def enqueue(jobs: Sequence[Job]) -> None:
        # One broker connection for the request's publishes. apply_async blocks on Redis:
        # the server answers nothing else meanwhile, as a team's handler calling
        # .delay() would do.
        with app.producer_or_acquire() as producer:
            for job in jobs:
                deliver.apply_async(job, producer=producer)

    async def close() -> None:
        app.close()

    return enqueue, close


def main(argv: list[str]) -> int:
    """``ingest``: run the ingest endpoint."""
    if argv[1:2] != ["ingest"]:
        print("usage: peer_celery.py ingest --port-file F [--max-seconds S]", file=sys.stderr)
        return 2
    return serve_ingest(_open)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
