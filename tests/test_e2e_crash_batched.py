"""kill -9 of the real ``hookd run`` during a batched ingest load (SPEC §5, §6): after the
restart every accepted event reaches each webhook exactly once, in a batch of its key,
with its body intact. Repeats of one delivery (same ``webhook-id``, the receiver's to
de-duplicate, SPEC §6) are allowed when they carry the same bytes."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import defaultdict
from typing import Any

import aiohttp
import orjson

from tests.support import Daemon, DaemonFactory, MakeConfig, Received, Receiver, until, webhook

TYPES = ("ticket.created", "ticket.updated", "ticket.closed")  # the batch keys of same_event_type
POSTERS = 4
ARRAY = 10  # events per request


def event(poster: int, n: int) -> dict[str, Any]:
    """An event with an application id, of one of TYPES, whose object must arrive byte for byte."""
    return {
        "id": f"p{poster}-{n}",
        "event": TYPES[(poster + n) % len(TYPES)],
        "object": {"id": poster * 100_000 + n, "summary": f'bénévole "{n}" \\ \u2028 😀', "n": n / 7, "tags": [n]},
    }


async def post_until(
    url: str, poster: int, stop: asyncio.Event, accepted: dict[str, dict[str, Any]], sent: dict[str, dict[str, Any]]
) -> None:
    """POST arrays of events until ``stop``; note each event sent and each one answered 202."""
    n = 0
    async with aiohttp.ClientSession() as s:
        while not stop.is_set():
            events = [event(poster, n + k) for k in range(ARRAY)]
            n += ARRAY
            for e in events:
                sent[e["id"]] = e
            try:
                async with s.post(url, data=orjson.dumps(events), headers={"content-type": "application/json"}) as r:
                    if r.status == 202:
                        for e in events:
                            accepted[e["id"]] = e
            except (aiohttp.ClientError, OSError):  # the daemon died under this request: not accepted
                await asyncio.sleep(0.01)


async def idle(d: Daemon, webhooks: list[str]) -> bool:
    """No delivery waiting, retrying or under way, and no item waiting in a batch."""
    code, body = await d.request("GET", "/v1/webhooks")
    assert code == 200, body
    counts = {w["id"]: w["counts"] for w in body["webhooks"]}
    return all(v == 0 for wid in webhooks for state, v in counts[wid].items() if state not in ("succeeded", "failed"))


def carried(requests: list[Received]) -> tuple[dict[str, bytes], dict[str, list[tuple[str, dict[str, Any]]]]]:
    """Per webhook-id: the body (checked byte-equal across repeats); and per event id, the
    deliveries (webhook-id) that carried it with the item as delivered."""
    bodies: dict[str, bytes] = {}
    items: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for r in requests:
        wid = r.headers["webhook-id"]
        if wid in bodies:
            assert r.body == bodies[wid], f"{wid} was sent again with other bytes"
            continue
        bodies[wid] = r.body
        batch = orjson.loads(r.body)
        assert isinstance(batch, list), r.body[:200]
        for item in batch:
            items[item["event_id"]].append((wid, item))
    return bodies, items


async def test_kill_9_during_batched_ingest_delivers_every_accepted_event_once_per_key_intact(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """Posters send arrays to webhooks batching by event type, in memory (timers) and in the spool, and to one
    batching everything; after a SIGKILL mid-load and a restart, each event accepted with a 202 arrives at each
    webhook in exactly one delivery (repeats of a delivery carry its same bytes), in a batch of its own key, with
    its object byte-equal to what was sent; events whose answer was lost arrive at most once."""
    hooks: dict[str, dict[str, Any]] = {
        "timers": {"batching": "same_event_type", "batch_wait_seconds": 0.15, "max_items_per_batch": 40},
        "spooled": {"batching": "same_event_type", "batch_wait_seconds": 0.5, "max_items_per_batch": 60},
        "all": {"batching": "any_event", "batch_wait_seconds": 0.1, "max_items_per_batch": 25},
    }
    config = make_config(
        [webhook(wid, f"{receiver.url}/{wid}", **settings) for wid, settings in hooks.items()],
        batching={"spool_after_seconds": 0.3, "spool_poll_seconds": 0.1},
    )
    d = await daemon_factory(config)
    accepted: dict[str, dict[str, Any]] = {}
    sent: dict[str, dict[str, Any]] = {}
    stop = asyncio.Event()
    posters = [asyncio.create_task(post_until(f"{d.url}/v1/events", p, stop, accepted, sent)) for p in range(POSTERS)]
    try:
        # Kill once batches of every kind have left and others are open or under way.
        await until(lambda: all(receiver.at(f"/{wid}") for wid in hooks), "a delivery to every webhook", timeout=10)
        await until(lambda: len(accepted) >= 600, "600 events accepted", timeout=10)
        assert await d.stop(signal.SIGKILL) == -signal.SIGKILL
        killed_at = time.monotonic()
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.gather(*posters)
    before = {wid: len(receiver.at(f"/{wid}")) for wid in hooks}

    d2 = await daemon_factory(config)
    for wid in hooks:

        def all_arrived(wid: str = wid) -> bool:
            return set(accepted) <= set(carried(receiver.at(f"/{wid}"))[1])

        await until(all_arrived, f"every accepted event at /{wid}", timeout=20)
    await until_idle(d2, list(hooks))

    for wid in hooks:
        bodies, items = carried(receiver.at(f"/{wid}"))
        assert set(accepted) <= set(items) <= set(sent)
        for eid, copies in items.items():
            assert len(copies) == 1, f"{eid} reached /{wid} in {len(copies)} deliveries: {[c[0] for c in copies]}"
            ((_, item),) = copies
            assert orjson.dumps(item["object"]) == orjson.dumps(sent[eid]["object"]), eid
            assert item["event"] == sent[eid]["event"]
        if hooks[wid]["batching"] == "same_event_type":
            for body in bodies.values():
                assert len({i["event"] for i in orjson.loads(body)}) == 1, "a batch mixed batch keys"
    # The kill came mid-load: work was left for the restart to finish.
    assert any(len(receiver.at(f"/{wid}")) > n for wid, n in before.items()), "nothing was left to deliver"
    assert time.monotonic() - killed_at < 30


async def until_idle(d: Daemon, webhooks: list[str], timeout: float = 10.0) -> None:
    """Poll the API until the daemon has nothing left to send."""
    async with asyncio.timeout(timeout):
        while True:
            if await idle(d, webhooks):
                return
            await asyncio.sleep(0.05)
