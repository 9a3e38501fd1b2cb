"""Recovery after an outage (SPEC §13) through the running daemon: POST
/v1/webhooks/{id}/recover and ``hookd recover`` against an App on a real receiver."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.support import AppFactory, Client, MakeConfig, Receiver, hookd, webhook

# Failures are final at once, so each delivery's outcome is known as soon as it is tried.
NO_RETRIES: dict[str, list[float]] = {"retry_schedule": []}


def rfc3339(ts: float) -> str:
    """Unix seconds as RFC 3339 with microseconds."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def ticket(n: int) -> dict[str, Any]:
    """A ticket.updated event ``e<n>`` of object ``n``."""
    return {"id": f"e{n}", "event": "ticket.updated", "object": {"id": n}}


class Outage:
    """A receiver behaviour: 500 for the objects listed in ``down`` until ``healed``, 200 for the rest."""

    def __init__(self, down: set[int]) -> None:
        self.down = down
        self.healed = False

    async def __call__(self, request: web.Request, n: int) -> web.StreamResponse:
        doc = await request.json()
        if doc["object_id"] in self.down and not self.healed:
            return web.Response(status=500, text="down")
        return web.json_response({"ok": True})


async def ended(d: Client, wid: str) -> int:
    """How many deliveries of ``wid`` have ended (succeeded or failed), as its counts say."""
    code, view = await d.request("GET", f"/v1/webhooks/{wid}")
    assert code == 200, view
    return int(view["counts"]["succeeded"] + view["counts"]["failed"])


async def phase(d: Client, events: list[dict[str, Any]], wid: str = "r") -> None:
    """Send events (one delivery each) and wait until each one's outcome is logged."""
    before = await ended(d, wid)
    code, body = await d.send(events)
    assert code == 202, body
    async with asyncio.timeout(10):
        while True:
            if await ended(d, wid) >= before + len(events):
                return
            await asyncio.sleep(0.01)


async def test_recover_resends_the_failed_deliveries_of_the_window_oldest_first(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Of failed, succeeded and lightweight deliveries before, in and after the window, only the
    failed ones of the window with a body are resent, oldest first, each with its original
    webhook-id; the lightweight ones are counted as skipped, and a dry run counts the same."""
    outage = Outage(down={0, 1, 3, 5, 6, 9})
    receiver.behave["/r"] = outage

    def config(lightweight: bool) -> Path:
        hook = webhook("r", receiver.url + "/r", per_webhook_concurrency=1, lightweight_logs=lightweight)
        return make_config([hook], delivery=NO_RETRIES)

    d = await app_factory(config(False))
    assert d.app is not None
    await phase(d, [ticket(0)])  # failed, before the window
    since = time.time()
    await phase(d, [ticket(1), ticket(2)])  # failed, succeeded
    config(True)
    assert await d.app.reload()
    await phase(d, [ticket(3), ticket(4)])  # failed and succeeded, lightweight: no body kept
    config(False)
    assert await d.app.reload()
    await phase(d, [ticket(5)])
    await phase(d, [ticket(6), ticket(7)])
    until = time.time()
    await phase(d, [ticket(9)])  # failed, after the window
    outage.healed = True

    code, page = await d.request("GET", "/v1/webhooks/r/deliveries?state=failed&limit=500")
    assert code == 200, page
    failed = {}
    for r in page["deliveries"]:
        code, rec = await d.request("GET", f"/v1/deliveries/{r['id']}")
        failed[rec["request"]["body"] if rec["request"] else "lightweight"] = rec
    assert len(page["deliveries"]) == 6
    window = {"since": rfc3339(since), "until": rfc3339(until)}

    code, counted = await d.request("POST", "/v1/webhooks/r/recover", json={**window, "dry_run": True})
    assert (code, counted) == (200, {"resent": 0, "would_resend": 3, "skipped": 1})
    assert len(receiver.at("/r")) == 9  # a dry run sends nothing

    code, done = await d.request("POST", "/v1/webhooks/r/recover", json=window)
    assert (code, done) == (202, {"resent": 3, "skipped": 1})
    got = await receiver.wait_for(12, "/r")
    resent = got[9:]
    assert [r.json()["event_id"] for r in resent] == ["e1", "e5", "e6"]
    originals = {r["request"]["body"]: r for r in failed.values() if r["request"]}
    for r in resent:
        original = originals[r.body.decode()]
        assert r.headers["webhook-id"] == original["message_id"]
    # Each resend is a delivery of its own, naming the one it repeats, and it succeeded.
    code, page = await d.request("GET", "/v1/webhooks/r/deliveries?limit=500")
    resends = [r for r in page["deliveries"] if r["resend_of"]]
    assert sorted(r["resend_of"] for r in resends) == sorted(
        originals[r.body.decode()]["id"] for r in resent
    )  # fmt: skip
    assert all(r["manual"] for r in resends)
    await d.wait_deliveries("r", 3, state="succeeded")


class Gauge:
    """A receiver behaviour that answers after ``delay`` seconds and notes the most requests it held at once."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.now = 0
        self.most = 0
        self.failing = True

    async def __call__(self, request: web.Request, n: int) -> web.StreamResponse:
        if self.failing:
            return web.Response(status=503)
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(self.delay)  # a slow receiver: the scenario, not a wait for the test
        finally:
            self.now -= 1
        return web.json_response({"ok": True})


async def test_a_larger_recovery_stays_within_the_webhooks_concurrency(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """200 resends go through the webhook's own queue: never more than per_webhook_concurrency
    in flight at the receiver, and all of them logged by the time the 202 comes."""
    gauge = Gauge(delay=0.02)
    receiver.behave["/g"] = gauge
    config = make_config([webhook("g", receiver.url + "/g", per_webhook_concurrency=3)], delivery=NO_RETRIES)
    d = await app_factory(config)
    code, body = await d.send([ticket(n) for n in range(200)])
    assert code == 202, body
    await d.wait_deliveries("g", 200, state="failed", timeout=30)
    gauge.failing = False

    code, done = await d.request("POST", "/v1/webhooks/g/recover", json={"since": rfc3339(time.time() - 3600)})
    assert (code, done) == (202, {"resent": 200, "skipped": 0})
    code, view = await d.request("GET", "/v1/webhooks/g")
    assert sum(view["counts"][s] for s in ("pending", "delivering", "succeeded")) == 200
    await d.wait_deliveries("g", 200, state="succeeded", timeout=30)
    assert len(receiver.at("/g")) == 400
    assert gauge.most == 3  # the limit, reached and never passed


async def test_recover_refuses_bad_requests_with_the_error_body(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """An unknown webhook is 404, another content type 415, broken JSON 400, and a bad window
    422 with one detail per problem; the daemon answers on."""
    d = await app_factory(make_config([webhook("r", receiver.url + "/r")]))
    since = {"since": "2026-11-29T07:00:00Z"}
    code, body = await d.request("POST", "/v1/webhooks/nope/recover", json=since)
    assert (code, body["error"]["code"]) == (404, "not_found")
    code, body = await d.request("POST", "/v1/webhooks/r/recover", data=b"since=yesterday")
    assert (code, body["error"]["code"]) == (415, "unsupported_media_type")
    code, body = await d.request(
        "POST", "/v1/webhooks/r/recover", data=b"{", headers={"Content-Type": "application/json"}
    )
    assert (code, body["error"]["code"]) == (400, "malformed_json")
    code, body = await d.request("POST", "/v1/webhooks/r/recover", json={"since": "yesterday", "until": 3, "dry": True})
    assert (code, body["error"]["code"]) == (422, "invalid_request")
    assert sorted(x["path"] for x in body["error"]["details"]) == ["dry", "since", "until"]
    code, body = await d.request("POST", "/v1/webhooks/r/recover", json={**since, "until": since["since"]})
    assert (code, body["error"]["details"][0]["path"]) == (422, "until")
    code, body = await d.request("POST", "/v1/webhooks/r/recover", json=since)
    assert (code, body) == (202, {"resent": 0, "skipped": 0})


async def test_hookd_recover_counts_and_resends(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """``hookd recover ID --since 1h --dry-run`` counts, without it resends; --since and --until
    take RFC 3339 too; a bad time or an unknown webhook exits 1 saying why."""
    outage = Outage(down={1, 2})
    receiver.behave["/r"] = outage
    d = await app_factory(make_config([webhook("r", receiver.url + "/r")], delivery=NO_RETRIES))
    await phase(d, [ticket(1), ticket(2), ticket(3)])
    outage.healed = True

    code, out, err = await hookd("recover", "r", "--since", "1h", "--dry-run", "--url", d.url)
    assert (code, out) == (0, "would resend 2, skip 0 (lightweight logs: no body kept)\n"), err
    code, out, err = await hookd("recover", "r", "--since", "2h", "--until", "1h", "--url", d.url)
    assert (code, out) == (0, "resent 0, skipped 0 (lightweight logs: no body kept)\n"), err
    code, out, err = await hookd("recover", "r", "--since", rfc3339(time.time() - 60), "--url", d.url, "--json")
    assert code == 0, err
    assert json.loads(out) == {"resent": 2, "skipped": 0}
    got = await receiver.wait_for(5, "/r")
    assert sorted(r.json()["event_id"] for r in got[3:]) == ["e1", "e2"]

    code, out, err = await hookd("recover", "r", "--since", "yesterday", "--url", d.url)
    assert code == 1
    assert "'yesterday' is neither an RFC 3339 date-time" in err
    code, out, err = await hookd("recover", "nope", "--since", "1h", "--url", d.url)
    assert code == 1
    assert "404 not_found" in err
