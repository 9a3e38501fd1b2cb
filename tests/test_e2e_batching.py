"""Batching end to end (SPEC §5): an App in the test's loop grouping items into deliveries
on a real receiver, windows in real (short) time; open batches surviving kill -9 and
SIGTERM restarts of the real ``hookd run``."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import pytest
from standardwebhooks import Webhook as StandardWebhook

from tests.support import HOOKD, SECRET, AppFactory, Client, DaemonFactory, MakeConfig, Receiver, ev, stamped, webhook

# Two triggers, so same_event (key: trigger) and same_event_type (key: event type) differ.
TRIGGERS = [{"id": "tickets", "on": "ticket.*"}, {"id": "actions", "on": "action.*"}]


def event_ids(body: list[dict[str, Any]]) -> list[str]:
    """The occurrence ids of a batch body's items, in body order."""
    return [item["event_id"] for item in body]


async def accept(d: Client, events: list[dict[str, Any]]) -> dict[str, Any]:
    """POST events and insist on a 202."""
    code, body = await d.send(events)
    assert code == 202, body
    return dict(body)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("same_event", [["e1", "e3", "e4"], ["e2", "e5"]]),
        ("same_event_type", [["e1", "e4"], ["e2", "e5"], ["e3"]]),
        ("any_event", [["e1", "e2", "e3", "e4", "e5"]]),
    ],
)
async def test_each_mode_groups_items_by_its_key(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory, mode: str, expected: list[list[str]]
) -> None:
    """Each batching mode groups items by its key into one JSON-array request per batch, items in arrival order."""
    d = await app_factory(
        make_config([webhook("b", receiver.url + "/b", events=TRIGGERS, batching=mode, batch_wait_seconds=0.3)])
    )
    first = await accept(d, [ev(1, "ticket.created"), ev(2, "action.added"), ev(3, "ticket.updated")])
    second = await accept(d, [ev(4, "ticket.created"), ev(5, "action.added")])
    assert first["items"] + second["items"] == 5

    got = await receiver.wait_for(len(expected), "/b")
    records = await d.wait_deliveries("b", len(expected), state="succeeded")
    # Every item is in a batch by now, so no further request can be on its way.
    assert len(receiver.at("/b")) == len(expected)
    assert len(records) == len(expected)
    bodies = [r.json() for r in got]
    assert all(isinstance(b, list) for b in bodies)
    assert sorted(event_ids(b) for b in bodies) == sorted(expected)
    for b in bodies:
        triggers = {i["trigger"] for i in b}
        types = {i["event"] for i in b}
        if mode == "same_event":
            assert len(triggers) == 1
        if mode == "same_event_type":
            assert len(types) == 1
        assert all(i["webhook_id"] == "b" for i in b)

    # One delivery record per batch, naming exactly the items its request carried.
    by_message = {r.headers["webhook-id"]: r.json() for r in got}
    for summary in records:
        code, rec = await d.request("GET", f"/v1/deliveries/{summary['id']}")
        assert code == 200, rec
        body = by_message[rec["message_id"]]
        assert rec["item_ids"] == [i["id"] for i in body]
        assert rec["items"] == len(body)
        assert rec["events"] == list(dict.fromkeys(i["event"] for i in body))
        assert rec["state"] == "succeeded"


async def test_window_is_fixed_from_the_first_item(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Items sent within batch_wait_seconds of a key's first item leave as one request at the first item's deadline."""
    times: list[float] = []
    receiver.behave["/b"] = stamped(times)
    wait = 0.4
    d = await app_factory(
        make_config([webhook("b", receiver.url + "/b", batching="any_event", batch_wait_seconds=wait)])
    )
    t0 = time.monotonic()
    await accept(d, [ev(1)])
    # Spacing the sends is the scenario: the second item comes well inside the window, late
    # enough that a sliding window would visibly move the deadline (to about t0 + 0.65 s).
    await asyncio.sleep(0.25)
    assert receiver.at("/b") == []
    await accept(d, [ev(2)])
    (first,) = await receiver.wait_for(1, "/b")
    assert event_ids(first.json()) == ["e1", "e2"]
    assert wait - 0.02 <= times[0] - t0 < wait + 0.25

    # The next item opens a new batch with its own window.
    t1 = time.monotonic()
    await accept(d, [ev(3)])
    got = await receiver.wait_for(2, "/b")
    assert event_ids(got[1].json()) == ["e3"]
    assert wait - 0.02 <= times[1] - t1 < wait + 0.25


@pytest.mark.parametrize("spool_after", [300, 0.2], ids=["in-memory", "spooled"])
async def test_full_batch_leaves_at_once(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory, spool_after: float
) -> None:
    """A batch that reaches max_items_per_batch is delivered at once, long before its window ends."""
    times: list[float] = []
    receiver.behave["/b"] = stamped(times)
    d = await app_factory(
        make_config(
            [webhook("b", receiver.url + "/b", batching="any_event", batch_wait_seconds=5, max_items_per_batch=3)],
            batching={"spool_after_seconds": spool_after},
        )
    )
    t0 = time.monotonic()
    answer = await accept(d, [ev(n) for n in range(1, 8)])
    assert answer["items"] == 7
    got = await receiver.wait_for(2, "/b")
    assert all(t - t0 < 1.0 for t in times)
    assert sorted(event_ids(r.json()) for r in got) == [["e1", "e2", "e3"], ["e4", "e5", "e6"]]
    # The seventh item opened a new batch whose window is 5 s: a short look shows it still
    # waiting (a wrongly flushed batch would arrive within milliseconds).
    await asyncio.sleep(0.3)
    assert len(receiver.at("/b")) == 2


async def test_spooled_batch_survives_kill_9(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """A spooled open batch survives SIGKILL and arrives once, whole, at about its original deadline."""
    times: list[float] = []
    receiver.behave["/b"] = stamped(times)
    config = make_config(
        [webhook("b", receiver.url + "/b", batching="any_event", batch_wait_seconds=1.0)],
        batching={"spool_after_seconds": 0.2},
    )
    d = await daemon_factory(config)
    t0 = time.monotonic()
    await accept(d, [ev(1), ev(2)])
    await accept(d, [ev(3)])
    assert await d.stop(signal.SIGKILL) == -signal.SIGKILL
    assert receiver.at("/b") == []

    d2 = await daemon_factory(config)
    ready = time.monotonic()
    assert (await d2.wait_line("started"))["batched_items"] == 3
    (got,) = await receiver.wait_for(1, "/b")
    assert event_ids(got.json()) == ["e1", "e2", "e3"]
    assert times[0] - t0 >= 1.0 - 0.02
    # Target: within 1 s of the deadline (or of the restart, when that came later).
    assert times[0] - max(t0 + 1.0, ready) < 1.0
    records = await d2.wait_deliveries("b", 1, state="succeeded")
    assert len(records) == 1
    assert records[0]["items"] == 3
    assert len(receiver.at("/b")) == 1


@pytest.mark.parametrize(("wait", "spool_after"), [(0.3, 300), (0.5, 0.2)], ids=["in-memory", "spooled"])
async def test_batch_whose_deadline_passed_while_down_leaves_at_start(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory, wait: float, spool_after: float
) -> None:
    """An open batch whose deadline passed while hookd was down is delivered, once and whole, right after start."""
    times: list[float] = []
    receiver.behave["/b"] = stamped(times)
    config = make_config(
        [webhook("b", receiver.url + "/b", batching="any_event", batch_wait_seconds=wait)],
        batching={"spool_after_seconds": spool_after},
    )
    d = await daemon_factory(config)
    t0 = time.monotonic()
    await accept(d, [ev(1), ev(2)])
    assert await d.stop(signal.SIGKILL) == -signal.SIGKILL
    # The scenario is downtime past the deadline: wait it out before starting again.
    await asyncio.sleep(max(0.0, t0 + wait + 0.1 - time.monotonic()))

    d2 = await daemon_factory(config)
    ready = time.monotonic()
    (got,) = await receiver.wait_for(1, "/b")
    assert event_ids(got.json()) == ["e1", "e2"]
    assert times[0] - ready < 0.5
    records = await d2.wait_deliveries("b", 1, state="succeeded")
    assert [r["items"] for r in records] == [2]
    assert len(receiver.at("/b")) == 1


async def test_in_memory_batch_survives_sigterm(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """An in-memory open batch outlives a clean stop (exit 0) and is delivered once after the restart."""
    times: list[float] = []
    receiver.behave["/b"] = stamped(times)
    config = make_config([webhook("b", receiver.url + "/b", batching="same_event", batch_wait_seconds=1.5)])
    d = await daemon_factory(config)
    t0 = time.monotonic()
    await accept(d, [ev(1), ev(2)])
    assert await d.stop(signal.SIGTERM) == 0
    assert receiver.at("/b") == []

    d2 = await daemon_factory(config)
    assert (await d2.wait_line("started"))["batched_items"] == 2
    (got,) = await receiver.wait_for(1, "/b")
    assert event_ids(got.json()) == ["e1", "e2"]
    assert times[0] - t0 >= 1.5 - 0.02
    records = await d2.wait_deliveries("b", 1, state="succeeded")
    assert [r["items"] for r in records] == [2]
    assert len(receiver.at("/b")) == 1


async def test_batched_delivery_carries_auth_and_signature(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A batched request carries the auth header, extra headers and a Standard Webhooks signature over the array."""
    hook = webhook("b", receiver.url + "/b", batching="any_event", batch_wait_seconds=0.2, secret=SECRET)
    hook |= {"auth": {"type": "bearer", "token": "tok-123"}, "headers": {"X-Source": "hookd-tests"}}
    d = await app_factory(make_config([hook]))
    await accept(d, [ev(1), ev(2, "action.added")])
    (got,) = await receiver.wait_for(1, "/b")
    headers = {k.lower(): v for k, v in got.headers.items()}
    assert headers["authorization"] == "Bearer tok-123"
    assert headers["x-source"] == "hookd-tests"
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"].startswith("msg_")
    assert StandardWebhook(SECRET).verify(got.body, headers) == got.json()
    assert event_ids(got.json()) == ["e1", "e2"]

    (summary,) = await d.wait_deliveries("b", 1, state="succeeded")
    code, rec = await d.request("GET", f"/v1/deliveries/{summary['id']}")
    assert code == 200
    logged = {k.lower(): v for k, v in rec["request"]["headers"].items()}
    assert logged["authorization"] == "***"
    assert "tok-123" not in json.dumps(rec)
    assert json.loads(rec["request"]["body"]) == got.json()


async def test_resend_repeats_the_whole_batch(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Resending a batched delivery sends the same array body with the same webhook-id as a new delivery."""
    d = await app_factory(
        make_config([webhook("b", receiver.url + "/b", batching="any_event", batch_wait_seconds=0.2, secret=SECRET)])
    )
    await accept(d, [ev(1), ev(2), ev(3)])
    (original,) = await receiver.wait_for(1, "/b")
    (summary,) = await d.wait_deliveries("b", 1, state="succeeded")

    code, answer = await d.request("POST", f"/v1/deliveries/{summary['id']}/resend")
    assert code == 202, answer
    new_id = answer["delivery_id"]
    assert new_id != summary["id"]
    again = (await receiver.wait_for(2, "/b"))[1]
    assert again.body == original.body
    assert again.headers["webhook-id"] == original.headers["webhook-id"]
    assert StandardWebhook(SECRET).verify(again.body, {k.lower(): v for k, v in again.headers.items()})

    records = await d.wait_deliveries("b", 2, state="succeeded")
    assert {r["id"] for r in records} == {summary["id"], new_id}
    code, rec = await d.request("GET", f"/v1/deliveries/{new_id}")
    assert code == 200
    code, old = await d.request("GET", f"/v1/deliveries/{summary['id']}")
    assert code == 200
    assert rec["resend_of"] == summary["id"]
    assert rec["item_ids"] == old["item_ids"]
    assert rec["items"] == 3
    assert [a["trigger"] for a in rec["attempts"]] == ["manual"]


async def test_show_lists_a_batchs_items(receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory) -> None:
    """``hookd show ID --json`` and GET /v1/deliveries/{id} show a batch's item ids, events and body."""
    d = await app_factory(
        make_config([webhook("b", receiver.url + "/b", batching="any_event", batch_wait_seconds=0.2)])
    )
    await accept(d, [ev(1), ev(2, "action.added"), ev(3)])
    (got,) = await receiver.wait_for(1, "/b")
    (summary,) = await d.wait_deliveries("b", 1, state="succeeded")
    assert summary["items"] == 3
    assert summary["events"] == ["ticket.created", "action.added"]

    proc = await asyncio.create_subprocess_exec(
        HOOKD, "show", summary["id"], "--url", d.url, "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 0, err.decode()
    shown = json.loads(out)
    code, rec = await d.request("GET", f"/v1/deliveries/{summary['id']}")
    assert code == 200
    body = got.json()
    for record in (shown, rec):
        assert record["id"] == summary["id"]
        assert record["item_ids"] == [i["id"] for i in body]
        assert record["items"] == 3
        assert record["events"] == ["ticket.created", "action.added"]
        assert json.loads(record["request"]["body"]) == body
        assert [a["status_code"] for a in record["attempts"]] == [200]
