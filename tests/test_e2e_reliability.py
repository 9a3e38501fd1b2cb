"""Reliable delivery end to end (SPEC §6, §7, §9): retries, Retry-After, redirects, slow
receivers, ordering and auto-disable against an App in the test's loop; crashes, restarts,
reload (SIGHUP) and shutdown (SIGTERM) against the real ``hookd run``."""

from __future__ import annotations

import asyncio
import signal
import time
import tomllib
from collections.abc import Callable, Iterable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from aiohttp import web

from tests.support import (
    AppFactory,
    Client,
    DaemonFactory,
    MakeConfig,
    Received,
    Receiver,
    ev,
    fail_first,
    hang,
    stamped,
    status,
    webhook,
)
from tests.support import until as support_until


def carried(requests: Iterable[Received]) -> list[str]:
    """Occurrence ids carried by requests, single items and batches alike, in arrival order."""
    out: list[str] = []
    for r in requests:
        body = r.json()
        out.extend(i["event_id"] for i in (body if isinstance(body, list) else [body]))
    return out


async def accept(d: Client, events: list[dict[str, Any]]) -> dict[str, Any]:
    """POST events and insist on a 202."""
    code, body = await d.send(events)
    assert code == 202, body
    return dict(body)


async def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``check`` until it holds, failing with ``what`` after ``timeout`` seconds."""
    await support_until(check, what, timeout=timeout, every=0.02)


async def record(d: Client, delivery_id: str) -> dict[str, Any]:
    """GET one delivery's whole record."""
    code, rec = await d.request("GET", f"/v1/deliveries/{delivery_id}")
    assert code == 200, rec
    return dict(rec)


async def webhook_state(d: Client, webhook_id: str) -> dict[str, Any]:
    """The webhook's entry in GET /v1/webhooks."""
    code, body = await d.request("GET", "/v1/webhooks")
    assert code == 200, body
    (entry,) = [w for w in body["webhooks"] if w["id"] == webhook_id]
    return dict(entry)


def write_config(path: Path, webhooks: list[dict[str, Any]], **tables: Any) -> None:
    """Rewrite a config file made by ``make_config``, keeping its other tables."""
    data = tomllib.loads(path.read_text())
    for key, value in tables.items():
        data.setdefault(key, {}).update(value)
    data["webhooks"] = webhooks
    path.write_text(tomli_w.dumps(data))


# -- retries ----------------------------------------------------------------------------


async def test_retries_until_success_and_logs_every_attempt(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Transient failures are retried on the schedule until a 2xx, each attempt in the record and the log."""
    receiver.behave["/a"] = fail_first(2, 500)
    receiver.behave["/z"] = status(503)
    d = await app_factory(make_config([webhook("a", receiver.url + "/a"), webhook("z", receiver.url + "/z")]))
    await accept(d, [ev(1)])

    (ok,) = await d.wait_deliveries("a", 1, state="succeeded")
    rec = await record(d, ok["id"])
    assert [(a["n"], a["status_code"], a["trigger"]) for a in rec["attempts"]] == [
        (1, 500, "scheduled"),
        (2, 500, "scheduled"),
        (3, 200, "scheduled"),
    ]
    assert rec["response"]["status"] == 200
    got = receiver.at("/a")
    assert len(got) == 3
    assert len({r.headers["webhook-id"] for r in got}) == 1
    assert got[0].headers["webhook-id"] == rec["message_id"]
    lines = [ln for ln in d.lines if ln.get("event") == "attempt" and ln.get("delivery") == ok["id"]]
    assert [(ln["attempt"], ln["status"], ln["outcome"], ln["items"]) for ln in lines] == [
        (1, 500, "retrying", 1),
        (2, 500, "retrying", 1),
        (3, 200, "succeeded", 1),
    ]
    assert all(ln["webhook"] == "a" and ln["duration_ms"] >= 0 for ln in lines)

    # With every attempt failing, the delivery fails after the last scheduled retry.
    (failed,) = await d.wait_deliveries("z", 1, state="failed")
    assert failed["attempts"] == 3
    assert failed["status_code"] == 503
    assert len(receiver.at("/z")) == 3


@pytest.mark.parametrize(
    ("retry_on", "state", "attempts"),
    [("transient", "failed", [400]), ("any_failure", "succeeded", [400, 200])],
)
async def test_permanent_4xx_is_retried_only_under_any_failure(
    receiver: Receiver,
    make_config: MakeConfig,
    app_factory: AppFactory,
    retry_on: str,
    state: str,
    attempts: list[int],
) -> None:
    """A 400 ends the delivery at once under retry_on = "transient" and is retried under "any_failure"."""
    receiver.behave["/a"] = fail_first(1, 400)
    d = await app_factory(make_config([webhook("a", receiver.url + "/a")], delivery={"retry_on": retry_on}))
    await accept(d, [ev(1)])
    (summary,) = await d.wait_deliveries("a", 1, state=state)
    rec = await record(d, summary["id"])
    assert [a["status_code"] for a in rec["attempts"]] == attempts
    assert len(receiver.at("/a")) == len(attempts)


async def test_retry_after_is_honoured_up_to_the_schedules_largest_delay(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Retry-After on 429/503 stretches the next wait beyond the schedule, but never past its largest delay."""
    plain: list[float] = []
    asked: list[float] = []
    capped: list[float] = []
    receiver.behave["/plain"] = stamped(plain, fail_first(1, 429))
    receiver.behave["/asked"] = stamped(asked, fail_first(1, 429, {"Retry-After": "1"}))
    receiver.behave["/capped"] = stamped(capped, fail_first(1, 503, {"Retry-After": "30"}))
    dated: list[float] = []

    async def date_two_seconds_ahead(request: web.Request, n: int) -> web.StreamResponse:
        if n == 1:
            # An HTTP date has whole seconds: this asks for a wait in (1, 2] s, capped at 1.5 s.
            return web.Response(status=503, headers={"Retry-After": formatdate(time.time() + 2, usegmt=True)})
        return web.json_response({"ok": True})

    receiver.behave["/dated"] = stamped(dated, date_two_seconds_ahead)
    d = await app_factory(
        make_config(
            [webhook(p, receiver.url + "/" + p) for p in ("plain", "asked", "capped", "dated")],
            delivery={"retry_schedule": [0.05, 1.5]},
        )
    )
    await accept(d, [ev(1)])
    for wid in ("plain", "asked", "capped", "dated"):
        await d.wait_deliveries(wid, 1, state="succeeded")
    # No Retry-After: the schedule's first delay.
    assert plain[1] - plain[0] < 0.5
    # Retry-After: 1 is longer than the schedule's 0.05 s and within its 1.5 s reach.
    assert 0.95 <= asked[1] - asked[0] < 1.4
    # Retry-After: 30 is capped at the schedule's largest delay, 1.5 s.
    assert 1.45 <= capped[1] - capped[0] < 2.5
    # Retry-After as an HTTP date counts from now, within the same cap.
    assert 0.9 <= dated[1] - dated[0] < 2.0


async def test_redirect_is_a_failure_and_not_followed(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A 302 counts as a failed attempt and its Location is never requested."""
    receiver.behave["/a"] = status(302, headers={"Location": receiver.url + "/elsewhere"})
    d = await app_factory(make_config([webhook("a", receiver.url + "/a")]))
    await accept(d, [ev(1)])
    (summary,) = await d.wait_deliveries("a", 1, state="failed")
    assert summary["status_code"] == 302
    assert summary["attempts"] == 1
    rec = await record(d, summary["id"])
    assert rec["response"]["status"] == 302
    # A followed redirect would have been requested before the attempt ended, so the
    # failed record is proof enough that nothing went to the Location.
    assert receiver.at("/elsewhere") == []
    assert len(receiver.at("/a")) == 1


async def test_spooled_retry_survives_kill_9(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """A retry waiting in the spool survives SIGKILL and is attempted at its due time after the restart."""
    times: list[float] = []
    receiver.behave["/a"] = stamped(times, fail_first(1, 503))
    config = make_config(
        [webhook("a", receiver.url + "/a")],
        delivery={"retry_schedule": [1.0]},
        batching={"spool_after_seconds": 0.2},
    )
    d = await daemon_factory(config)
    await accept(d, [ev(1)])
    # The API reads the store: once it says "retrying", the due time is committed.
    (waiting,) = await d.wait_deliveries("a", 1, state="retrying")
    assert await d.stop(signal.SIGKILL) == -signal.SIGKILL

    d2 = await daemon_factory(config)
    assert (await d2.wait_line("started"))["pending_deliveries"] == 1
    started = time.monotonic()  # no earlier than the restart was ready: a slow start delays attempt 2
    await receiver.wait_for(2, "/a")
    assert times[1] - times[0] >= 1.0 - 0.05
    # Sent when due, or at once when the restart itself took longer than the wait; never
    # a whole retry step (or a spool poll interval of many seconds) late.
    assert times[1] < max(times[0] + 1.0, started) + 1.0
    (done,) = await d2.wait_deliveries("a", 1, state="succeeded")
    assert done["id"] == waiting["id"]
    rec = await record(d2, done["id"])
    assert [(a["n"], a["status_code"]) for a in rec["attempts"]] == [(1, 503), (2, 200)]
    assert len(receiver.at("/a")) == 2


# -- crashes and slow receivers ---------------------------------------------------------


async def test_kill_9_under_load_loses_no_accepted_item(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """Items accepted while the receiver is down all arrive after a SIGKILL and restart."""
    receiver.behave["/a"] = status(503)
    receiver.behave["/b"] = status(503)
    config = make_config(
        [
            webhook("a", receiver.url + "/a"),
            webhook("b", receiver.url + "/b", batching="any_event", batch_wait_seconds=0.3, max_items_per_batch=50),
        ],
        delivery={"retry_schedule": [0.3] * 20},
    )
    d = await daemon_factory(config)
    accepted: list[str] = []
    for start in range(0, 400, 100):
        answer = await accept(d, [ev(n) for n in range(start, start + 100)])
        assert answer["items"] == 200
        accepted.extend(answer["ids"])
    assert await d.stop(signal.SIGKILL) == -signal.SIGKILL
    assert len(set(accepted)) == 400

    receiver.behave.clear()
    mark = len(receiver.requests)
    await daemon_factory(config)

    def arrived(path: str) -> set[str]:
        return set(carried(r for r in receiver.requests[mark:] if r.path == path))

    await until(lambda: arrived("/a") >= set(accepted), "every item at /a", timeout=30)
    await until(lambda: arrived("/b") >= set(accepted), "every item at /b", timeout=30)


async def test_kill_9_during_batched_ingest_delivers_each_accepted_event_once_with_its_body(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """SIGKILL while batched requests are still coming in, and while batch deliveries that
    refer to their items' stored bytes wait for a retry: after the restart every event
    answered 202 arrives in exactly one delivery (one webhook-id) of its batch key, its
    item body whole (the ranges put back together from the chunks' bytes)."""
    receiver.behave["/b"] = status(503)
    config = make_config(
        [webhook("b", receiver.url + "/b", batching="same_event_type", batch_wait_seconds=0.2, max_items_per_batch=30)],
        delivery={"retry_schedule": [0.3] * 20},
    )
    d = await daemon_factory(config)
    kinds = ("ticket.created", "ticket.updated")
    accepted: set[str] = set()

    async def post(start: int) -> None:
        try:
            code, body = await d.send([ev(n, kinds[n % 2]) for n in range(start, start + 40)])
        except Exception:  # the kill cut this request: nothing of it was acknowledged
            return
        if code == 202:
            accepted.update(body["ids"])

    first = [asyncio.ensure_future(post(s)) for s in range(0, 400, 40)]
    await asyncio.gather(*first)
    await until(lambda: len(receiver.at("/b")) >= 3, "batch attempts refused before the kill")
    later = [asyncio.ensure_future(post(s)) for s in range(400, 800, 40)]
    await asyncio.sleep(0.05)
    assert await d.stop(signal.SIGKILL) == -signal.SIGKILL
    await asyncio.gather(*later)
    assert len(accepted) >= 400

    receiver.behave.clear()
    mark = len(receiver.requests)
    await daemon_factory(config)

    def ok() -> list[Received]:
        return [r for r in receiver.requests[mark:] if r.path == "/b"]

    await until(lambda: set(carried(ok())) >= accepted, "every accepted event at /b", timeout=30)
    carriers: dict[str, set[str]] = {}
    for r in [*receiver.requests[:mark], *ok()]:
        if r.path != "/b":
            continue
        items = r.json()
        assert len({i["event"] for i in items}) == 1  # one batch key per delivery
        for item in items:
            n = int(item["event_id"][1:])
            assert item["object"] == {"id": n, "summary": f"ticket {n}"}
            assert (item["event"], item["object_id"]) == (kinds[n % 2], n)
            carriers.setdefault(item["event_id"], set()).add(r.headers["webhook-id"])
    assert {e for e in accepted if len(carriers.get(e, ())) != 1} == set()


async def test_hanging_receiver_does_not_delay_another_webhook(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """While webhook A's receiver hangs with its lane full, webhook B's delivery still arrives at once."""
    receiver.behave["/a"] = hang(receiver)
    d = await app_factory(
        make_config([webhook("a", receiver.url + "/a", "ticket.*"), webhook("b", receiver.url + "/b", "client.*")])
    )
    await accept(d, [ev(n) for n in range(20)])
    # The default per-webhook limit is 16: that many attempts hang, the rest wait.
    await receiver.wait_for(16, "/a")
    t0 = time.monotonic()
    await accept(d, [ev(100, "client.updated")])
    await receiver.wait_for(1, "/b", timeout=1.0)
    assert time.monotonic() - t0 < 1.0
    assert len(receiver.at("/a")) == 16
    receiver.release.set()  # the hung attempts may end: the App's stop need not wait out its grace period


async def test_ordered_webhook_keeps_ingest_order_through_a_retry(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """With ordered = true nothing after an item is sent until that item's retry has succeeded."""
    failed_once = False

    async def fail_two_once(request: web.Request, n: int) -> web.StreamResponse:
        nonlocal failed_once
        if (await request.json())["object_id"] == 2 and not failed_once:
            failed_once = True
            return web.Response(status=500)
        return web.json_response({"ok": True})

    receiver.behave["/a"] = fail_two_once
    d = await app_factory(make_config([webhook("a", receiver.url + "/a", ordered=True)]))
    await accept(d, [ev(n) for n in range(1, 6)])
    got = await receiver.wait_for(6, "/a")
    assert [r.json()["object_id"] for r in got] == [1, 2, 2, 3, 4, 5]
    await d.wait_deliveries("a", 5, state="succeeded")


# -- auto-disable -----------------------------------------------------------------------


async def test_auto_disable_keeps_items_until_enabled_across_a_restart(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """After auto_disable_after failures the webhook holds new items, across a restart too, until enabled."""
    receiver.behave["/a"] = status(500)
    config = make_config(
        [webhook("a", receiver.url + "/a", auto_disable_after=2, per_webhook_concurrency=1)],
        delivery={"retry_schedule": []},
    )
    d = await daemon_factory(config)
    await accept(d, [ev(1), ev(2)])
    await d.wait_line("webhook_auto_disabled", where=lambda ln: ln.get("webhook") == "a")
    await d.wait_deliveries("a", 2, state="failed")
    state = await webhook_state(d, "a")
    assert state["enabled"] is False
    assert state["disabled_reason"] == "auto"

    answer = await accept(d, [ev(3), ev(4)])
    assert answer["items"] == 2
    pending = await d.wait_deliveries("a", 2, state="pending")
    assert sorted(p["items"] for p in pending) == [1, 1]
    # An enabled lane would send these within milliseconds; a short look shows them held.
    await asyncio.sleep(0.3)
    assert len(receiver.at("/a")) == 2

    assert await d.stop(signal.SIGTERM) == 0
    d2 = await daemon_factory(config)
    assert (await d2.wait_line("started"))["pending_deliveries"] == 2
    state = await webhook_state(d2, "a")
    assert (state["enabled"], state["disabled_reason"]) == (False, "auto")
    await asyncio.sleep(0.3)  # as above: held items would otherwise go out at once
    assert len(receiver.at("/a")) == 2

    receiver.behave.clear()
    code, body = await d2.request("POST", "/v1/webhooks/a/enable")
    assert code == 200, body
    assert body["enabled"] is True
    got = await receiver.wait_for(4, "/a")
    assert carried(got[2:]) == ["e3", "e4"]
    await d2.wait_deliveries("a", 2, state="succeeded")
    state = await webhook_state(d2, "a")
    assert (state["enabled"], state["disabled_reason"]) == (True, None)


async def test_auto_disable_counts_only_consecutive_failures(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A success between failures resets the streak, so only auto_disable_after failures in a row disable."""
    answers = iter([500, 200, 500, 500])

    async def scripted(request: web.Request, n: int) -> web.StreamResponse:
        return web.Response(status=next(answers))

    receiver.behave["/a"] = scripted
    d = await app_factory(
        make_config([webhook("a", receiver.url + "/a", auto_disable_after=2)], delivery={"retry_schedule": []})
    )
    for n in (1, 2, 3):  # one at a time, so the streak follows the script's order
        await accept(d, [ev(n)])
        await d.wait_line("attempt", count=n)
    state = await webhook_state(d, "a")
    assert (state["enabled"], state["consecutive_failures"]) == (True, 1)

    await accept(d, [ev(4)])
    await d.wait_line("webhook_auto_disabled")
    state = await webhook_state(d, "a")
    assert (state["enabled"], state["disabled_reason"], state["consecutive_failures"]) == (False, "auto", 2)


# -- reload -----------------------------------------------------------------------------


async def test_sighup_reload_applies_a_valid_config(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """SIGHUP adds webhooks and moves URLs for new events; a removed webhook's items wait until it is added back."""
    batched: dict[str, Any] = {"batching": "any_event", "batch_wait_seconds": 0.3}
    c_hook = webhook("c", receiver.url + "/c", **batched)
    config = make_config([webhook("a", receiver.url + "/a1"), c_hook])
    d = await daemon_factory(config)
    await accept(d, [ev(1)])
    await receiver.wait_for(1, "/a1")

    # Move A, add B, remove C while C's batch (holding e1) is still open.
    write_config(config, [webhook("a", receiver.url + "/a2"), webhook("b", receiver.url + "/b")])
    await d.signal(signal.SIGHUP)
    reloaded = await d.wait_line("reloaded")
    assert reloaded["added"] == ["b"]
    assert reloaded["removed"] == ["c"]
    # C's open batch leaves memory with C; its items wait in the store, not sent.
    await d.wait_line("orphaned_batch", where=lambda ln: ln.get("webhook") == "c")
    await accept(d, [ev(2)])
    await receiver.wait_for(1, "/a2")
    await receiver.wait_for(1, "/b")
    assert carried(receiver.at("/a1")) == ["e1"]
    assert carried(receiver.at("/a2")) == ["e2"]
    assert carried(receiver.at("/b")) == ["e2"]
    assert receiver.at("/c") == []

    write_config(config, [webhook("a", receiver.url + "/a2"), webhook("b", receiver.url + "/b"), c_hook])
    await d.signal(signal.SIGHUP)
    assert (await d.wait_line("reloaded", count=2))["added"] == ["c"]
    (got,) = await receiver.wait_for(1, "/c")
    assert carried([got]) == ["e1"]
    await d.wait_deliveries("c", 1, state="succeeded")


async def test_webhook_removed_and_readded_within_its_window_sends_each_item_once(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """Removing a batching webhook and adding it back before its window closes still sends each item once."""
    c_hook = webhook("c", receiver.url + "/c", batching="any_event", batch_wait_seconds=1.0)
    config = make_config([c_hook])
    d = await daemon_factory(config)
    await accept(d, [ev(1), ev(2)])

    write_config(config, [webhook("a", receiver.url + "/a")])
    await d.signal(signal.SIGHUP)
    await d.wait_line("reloaded")
    write_config(config, [c_hook])
    await d.signal(signal.SIGHUP)
    await d.wait_line("reloaded", count=2)

    (got,) = await receiver.wait_for(1, "/c")
    assert carried([got]) == ["e1", "e2"]
    (summary,) = await d.wait_deliveries("c", 1, state="succeeded")
    assert summary["items"] == 2


async def test_webhook_removed_and_readded_during_a_retry_wait_retries_once(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """Removing a webhook and adding it back while a delivery waits for its retry still makes one retry."""
    receiver.behave["/a"] = fail_first(1, 503)
    a_hook = webhook("a", receiver.url + "/a")
    config = make_config([a_hook], delivery={"retry_schedule": [1.0]})
    d = await daemon_factory(config)
    await accept(d, [ev(1)])
    await d.wait_deliveries("a", 1, state="retrying")

    write_config(config, [webhook("b", receiver.url + "/b")])
    await d.signal(signal.SIGHUP)
    await d.wait_line("reloaded")
    write_config(config, [a_hook])
    await d.signal(signal.SIGHUP)
    assert (await d.wait_line("reloaded", count=2))["added"] == ["a"]

    (done,) = await d.wait_deliveries("a", 1, state="succeeded")
    # A second retry would be due at the same moment as the first; a short look after
    # the success shows whether one went out.
    await asyncio.sleep(0.3)
    assert len(receiver.at("/a")) == 2
    rec = await record(d, done["id"])
    assert [(a["n"], a["status_code"]) for a in rec["attempts"]] == [(1, 503), (2, 200)]


async def test_reload_during_an_inflight_attempt_keeps_an_ordered_lane_moving(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """A reload while an ordered webhook's attempt is in flight does not stall the deliveries queued behind it."""
    gate = asyncio.Event()

    async def slow_first(request: web.Request, n: int) -> web.StreamResponse:
        if n == 1:
            await gate.wait()
        return web.json_response({"ok": True})

    receiver.behave["/a"] = slow_first
    a_hook = webhook("a", receiver.url + "/a", ordered=True)
    config = make_config([a_hook])
    d = await daemon_factory(config)
    await accept(d, [ev(1), ev(2), ev(3)])
    await receiver.wait_for(1, "/a")

    write_config(config, [a_hook, webhook("b", receiver.url + "/b")])
    await d.signal(signal.SIGHUP)
    await d.wait_line("reloaded")
    gate.set()
    got = await receiver.wait_for(3, "/a", timeout=5)
    assert carried(got) == ["e1", "e2", "e3"]
    await d.wait_deliveries("a", 3, state="succeeded")
    # Events after the reload go out too, and nothing queued before it goes twice.
    await accept(d, [ev(4)])
    await until(lambda: len(receiver.at("/a")) >= 4, "e4, sent after the reload, to arrive", timeout=5)
    assert carried(receiver.at("/a")) == ["e1", "e2", "e3", "e4"]
    await d.wait_deliveries("a", 4, state="succeeded")
    assert len(receiver.at("/a")) == 4


async def test_sighup_with_an_invalid_file_keeps_the_old_config(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """SIGHUP with a broken config file logs reload_failed and the daemon keeps delivering as before."""
    config = make_config([webhook("a", receiver.url + "/a")])
    d = await daemon_factory(config)
    config.write_text("this is = = not [toml\n")
    await d.signal(signal.SIGHUP)
    failed = await d.wait_line("reload_failed")
    assert failed["errors"]
    assert failed["path"] == str(config)
    await accept(d, [ev(1)])
    (got,) = await receiver.wait_for(1, "/a")
    assert carried([got]) == ["e1"]
    code, body = await d.request("GET", "/healthz")
    assert code == 200, body
    assert not any(ln.get("event") == "reloaded" for ln in d.lines)


# -- shutdown and durability ------------------------------------------------------------


async def test_sigterm_with_hanging_receiver_exits_promptly_and_keeps_work(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """SIGTERM answers 503, cuts hanging attempts after the grace period, exits 0; cut work is sent after restart."""
    receiver.behave["/a"] = hang(receiver)
    config = make_config([webhook("a", receiver.url + "/a")])  # shutdown_grace_seconds = 2
    d = await daemon_factory(config)
    answer = await accept(d, [ev(n) for n in range(30)])
    await receiver.wait_for(16, "/a")

    t0 = time.monotonic()
    await d.signal(signal.SIGTERM)
    await d.wait_line("stopping")
    code, body = await d.send([ev(99)])
    assert code == 503, body
    assert body["error"]["code"] == "shutting_down"
    assert await d.stop() == 0
    elapsed = time.monotonic() - t0
    assert 1.9 <= elapsed < 2 + 2.0
    stopped = await d.wait_line("stopped")
    assert stopped["cut_attempts"] == 16

    receiver.behave.clear()
    receiver.release.set()
    mark = len(receiver.requests)
    d2 = await daemon_factory(config)
    assert (await d2.wait_line("started"))["pending_deliveries"] == 30

    def arrived() -> set[str]:
        return set(carried(r for r in receiver.requests[mark:] if r.path == "/a"))

    await until(lambda: arrived() == set(answer["ids"]), "all 30 items after the restart")
    assert "e99" not in arrived()


async def test_machine_durability_works_end_to_end(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """Under durability = "machine" items are delivered, and an open batch survives SIGKILL."""
    config = make_config(
        [
            webhook("a", receiver.url + "/a"),
            webhook("b", receiver.url + "/b", batching="any_event", batch_wait_seconds=1.0),
        ],
        storage={"durability": "machine"},
    )
    d = await daemon_factory(config)
    await accept(d, [ev(1), ev(2)])
    await receiver.wait_for(2, "/a")
    assert sorted(carried(receiver.at("/a"))) == ["e1", "e2"]
    assert await d.stop(signal.SIGKILL) == -signal.SIGKILL
    assert receiver.at("/b") == []

    d2 = await daemon_factory(config)
    (got,) = await receiver.wait_for(1, "/b")
    assert carried([got]) == ["e1", "e2"]
    await d2.wait_deliveries("b", 1, state="succeeded")


async def test_memory_durability_keeps_accepted_work_across_a_clean_stop(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """Under durability = "memory" items accepted before SIGTERM (in flight or batched) are delivered after restart."""
    receiver.behave["/a"] = hang(receiver)
    config = make_config(
        [
            webhook("a", receiver.url + "/a"),
            webhook("b", receiver.url + "/b", batching="any_event", batch_wait_seconds=1.5),
        ],
        storage={"durability": "memory"},
        server={"shutdown_grace_seconds": 0.3},
    )
    d = await daemon_factory(config)
    answer = await accept(d, [ev(1), ev(2), ev(3)])
    assert answer["items"] == 6
    await receiver.wait_for(3, "/a")
    assert await d.stop(signal.SIGTERM) == 0
    assert receiver.at("/b") == []

    receiver.behave.clear()
    receiver.release.set()
    mark = len(receiver.requests)
    d2 = await daemon_factory(config)
    started = await d2.wait_line("started")
    assert (started["pending_deliveries"], started["batched_items"]) == (3, 3)

    def arrived(path: str) -> list[str]:
        return carried(r for r in receiver.requests[mark:] if r.path == path)

    await until(lambda: sorted(arrived("/a")) == ["e1", "e2", "e3"], "the cut attempts after restart")
    (got,) = await receiver.wait_for(1, "/b")
    assert carried([got]) == ["e1", "e2", "e3"]
