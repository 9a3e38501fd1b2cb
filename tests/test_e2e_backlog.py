"""A backlog larger than a lane's window (hookd.lanes.WINDOW) end to end: most of it waits
in the store as seqs and is read back page by page, across a restart and while new events
keep coming, and every event still arrives exactly once and in order."""

from __future__ import annotations

import asyncio

from aiohttp import web

from hookd.lanes import WINDOW
from tests.support import AppFactory, Client, MakeConfig, Receiver, ev, webhook
from tests.test_e2e_reliability import accept, carried, webhook_state


async def pending_metric(d: Client, webhook_id: str) -> float:
    """hookd_pending_items of one webhook, from GET /metrics."""
    code, text = await d.request("GET", "/metrics")
    assert code == 200
    mark = f'hookd_pending_items{{webhook="{webhook_id}"}} '
    (line,) = [ln for ln in text.splitlines() if ln.startswith(mark)]
    return float(line.removeprefix(mark))


async def test_a_backlog_beyond_the_window_arrives_once_in_order_after_a_restart(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """An ordered webhook auto-disabled by a dead receiver queues more than its window; after a
    restart and the receiver's return every event arrives exactly once, in ingest order, new
    events sent meanwhile included, and the queued count is the true total throughout."""
    up = False

    async def dead_then_back(request: web.Request, n: int) -> web.StreamResponse:
        return web.json_response({"ok": True}) if up else web.Response(status=503)

    receiver.behave["/a"] = dead_then_back
    config = make_config(
        [webhook("a", receiver.url + "/a", ordered=True, auto_disable_after=1)], delivery={"retry_schedule": []}
    )
    backlog = WINDOW + 600
    d = await app_factory(config)
    await accept(d, [ev(0)])
    await d.wait_line("webhook_auto_disabled")
    for start in range(1, backlog + 1, 500):
        await accept(d, [ev(n) for n in range(start, min(start + 500, backlog + 1))])
    assert await pending_metric(d, "a") == backlog
    assert await d.stop() == 0

    d = await app_factory(config)
    assert (await d.wait_line("started"))["pending_deliveries"] == backlog
    assert await pending_metric(d, "a") == backlog
    assert d.app is not None
    lane = d.app.dispatcher._lanes["a"]
    assert lane.in_memory() <= WINDOW
    assert len(lane.stored) + lane.in_memory() == backlog

    up = True
    code, body = await d.request("POST", "/v1/webhooks/a/enable")
    assert code == 200, body
    more = 400  # handed over while pages are read back
    for start in range(backlog + 1, backlog + more + 1, 100):
        await accept(d, [ev(n) for n in range(start, start + 100)])
        assert lane.in_memory() <= WINDOW
    total = backlog + more
    got = await receiver.wait_for(1 + total, "/a", timeout=120)
    assert carried(got) == [f"e{n}" for n in range(total + 1)]
    assert await pending_metric(d, "a") == 0
    # The last outcomes are committed after their arrival.
    async with asyncio.timeout(10):
        while True:
            succeeded = (await webhook_state(d, "a"))["counts"]["succeeded"]
            if succeeded >= total:
                break
            await asyncio.sleep(0.02)
    assert succeeded == total
