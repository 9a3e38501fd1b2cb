"""Coalescing (SPEC §13) through the running daemon: latest state wins inside a batch, timer
and spooled alike, the replaced ids on the delivery record, the config rule, and the
coalesced state kept across a kill -9 of the real ``hookd run``."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import pytest

from tests.support import HOOKD, AppFactory, Client, DaemonFactory, MakeConfig, Receiver, webhook

TRIGGERS = [{"id": "tickets", "on": "ticket.*"}]
# Two requests, as an application sends them: object 1 three times, object 2 once, two
# events of an object without an id, and object "1" (a string: another object than 1).
FIRST = [
    {"id": "a", "event": "ticket.created", "object": {"id": 1, "status": "new"}},
    {"id": "b", "event": "ticket.created", "object": {"id": 2, "status": "new"}},
    {"id": "n1", "event": "ticket.noted", "object": {"note": "no id"}},
]
SECOND = [
    {"id": "c", "event": "ticket.updated", "object": {"id": 1, "status": "open"}},
    {"id": "n2", "event": "ticket.noted", "object": {"note": "no id either"}},
    {"id": "d", "event": "ticket.updated", "object": {"id": 1, "status": "closed"}},
    {"id": "e", "event": "ticket.created", "object": {"id": "1", "status": "new"}},
]
# Object 1 keeps its first place with its latest state (d); a and c are replaced.
SENT = ["d", "b", "n1", "n2", "e"]


async def accept(d: Client, events: list[dict[str, Any]]) -> None:
    """POST events and insist on a 202."""
    code, body = await d.send(events)
    assert code == 202, body


async def check_coalesced(d: Client, receiver: Receiver, path: str) -> dict[str, Any]:
    """The batch at ``path`` arrived coalesced and its record says so; return the record."""
    (got,) = await receiver.wait_for(1, path)
    body = got.json()
    assert [i["event_id"] for i in body] == SENT
    assert body[0]["object"] == {"id": 1, "status": "closed"}
    (summary,) = await d.wait_deliveries(path.strip("/"), 1, state="succeeded")
    code, rec = await d.request("GET", f"/v1/deliveries/{summary['id']}")
    assert code == 200, rec
    assert rec["item_ids"] == [i["id"] for i in body]
    assert (rec["items"], summary["items"]) == (5, 5)
    replaced = rec["coalesced_item_ids"]
    assert len(replaced) == 2
    assert not set(replaced) & set(rec["item_ids"])
    # Item ids are UUIDv7, increasing in arrival order: the two replaced came before d's.
    assert sorted(replaced) == replaced
    assert max(replaced) < body[0]["id"]
    assert rec["events"] == ["ticket.updated", "ticket.created", "ticket.noted"]
    return dict(rec)


@pytest.mark.parametrize("spool_after", [300, 0.1], ids=["timer", "spooled"])
async def test_the_latest_item_of_an_object_wins_inside_a_batch(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory, spool_after: float
) -> None:
    """A coalescing webhook's batch carries each object once, with its latest state, at the
    place it first appeared; items without an object id all go; the record lists the replaced
    ids. The same events to a webhook that does not coalesce arrive all seven."""
    hooks = [
        webhook("co", receiver.url + "/co", events=TRIGGERS, batching="any_event", batch_wait_seconds=0.4,
                coalesce=True),
        webhook("all", receiver.url + "/all", events=TRIGGERS, batching="any_event", batch_wait_seconds=0.4),
    ]  # fmt: skip
    d = await app_factory(make_config(hooks, batching={"spool_after_seconds": spool_after}))
    await accept(d, FIRST)
    await accept(d, SECOND)
    code, view = await d.request("GET", "/v1/webhooks/co")
    assert view["counts"]["batched"] == 7  # items as they arrived, before coalescing

    rec = await check_coalesced(d, receiver, "/co")
    (plain,) = await receiver.wait_for(1, "/all")
    assert [i["event_id"] for i in plain.json()] == ["a", "b", "n1", "c", "n2", "d", "e"]
    (other,) = await d.wait_deliveries("all", 1, state="succeeded")
    code, other_rec = await d.request("GET", f"/v1/deliveries/{other['id']}")
    assert other_rec["coalesced_item_ids"] == []

    # A resend sends the same coalesced body, and its record keeps the same story.
    code, resent = await d.request("POST", f"/v1/deliveries/{rec['id']}/resend")
    assert code == 202, resent
    got = await receiver.wait_for(2, "/co")
    assert got[1].body == got[0].body
    code, again = await d.request("GET", f"/v1/deliveries/{resent['delivery_id']}")
    assert again["coalesced_item_ids"] == rec["coalesced_item_ids"]

    # A replaced item is found by its id: the deliveries that carried its object's later state.
    code, found = await d.request("GET", f"/v1/deliveries?item_id={rec['coalesced_item_ids'][0]}")
    assert code == 200, found
    assert sorted(f["id"] for f in found["deliveries"]) == sorted([rec["id"], resent["delivery_id"]])


async def test_coalesce_needs_a_batching_webhook(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """coalesce = true on a per_occurrence webhook is a config error (hookd check exits 1 naming
    it) and a 422 through the API; on a batching one the API takes it and shows it."""
    bad = make_config([webhook("p", receiver.url + "/p", coalesce=True)], name="bad.toml")
    proc = await asyncio.create_subprocess_exec(
        HOOKD, "check", "-c", str(bad), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    async with asyncio.timeout(30):
        out, _ = await proc.communicate()
    assert proc.returncode == 1
    assert "coalesce = true needs batching other than 'per_occurrence'" in out.decode()

    d = await app_factory(make_config([], delivery={"allow_networks": ["127.0.0.0/8"]}))
    doc = {"id": "api", "url": receiver.url + "/api", "events": TRIGGERS, "coalesce": True}
    code, body = await d.request("POST", "/v1/webhooks", json=doc)
    assert (code, body["error"]["code"]) == (422, "invalid_webhook")
    assert "coalesce" in json.dumps(body["error"]["details"])
    code, body = await d.request("POST", "/v1/webhooks", json={**doc, "batching": "any_event"})
    assert code == 201, body
    assert body["config"]["coalesce"] is True


@pytest.mark.parametrize("spool_after", [300, 1], ids=["timer", "spooled"])
async def test_coalescing_survives_kill_9(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory, spool_after: float
) -> None:
    """An open coalescing batch, killed with -9 and started again, is listed with the same
    deadline and items, and flushed it sends the same coalesced batch with the same record."""
    hook = webhook("co", receiver.url + "/co", events=TRIGGERS, batching="any_event", batch_wait_seconds=60,
                   coalesce=True)  # fmt: skip
    config = make_config([hook], batching={"spool_after_seconds": spool_after})
    d = await daemon_factory(config)
    await accept(d, FIRST)
    await accept(d, SECOND)
    code, before = await d.request("GET", "/v1/webhooks/co/batches")
    assert [(b["items"], b["spooled"]) for b in before["batches"]] == [(7, spool_after < 60)]
    await d.stop(signal.SIGKILL)

    d = await daemon_factory(config)
    code, after = await d.request("GET", "/v1/webhooks/co/batches")
    assert after == before
    code, view = await d.request("GET", "/v1/webhooks/co")
    assert view["counts"]["batched"] == 7
    assert receiver.at("/co") == []
    code, flushed = await d.request("POST", "/v1/webhooks/co/batches/flush")
    assert (code, flushed) == (202, {"deliveries": 1})
    await check_coalesced(d, receiver, "/co")
