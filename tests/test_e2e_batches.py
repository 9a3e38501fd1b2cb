"""Open batches (SPEC §13) through the running daemon: GET /v1/webhooks/{id}/batches, their
flush, the ``batched`` count, and ``hookd batches`` / ``hookd flush``, for timer batches
and spooled ones alike."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tests.support import AppFactory, MakeConfig, Receiver, hookd, webhook

TRIGGERS = [{"id": "tickets", "on": "ticket.*"}]


def ticket(n: int, event: str = "ticket.created") -> dict[str, Any]:
    """An event ``e<n>`` of object ``n``."""
    return {"id": f"e{n}", "event": event, "object": {"id": n}}


def seconds(a: str, b: str) -> float:
    """``b - a`` in seconds, for two RFC 3339 times."""
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


async def test_open_batches_of_both_kinds_are_listed_counted_and_flushed(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A routed item shows at once in ``batched`` and in its open batch (timer or spooled); a
    flush sends every open batch of the webhook now, one delivery each, already in the log."""
    config = make_config(
        [
            # 10 s ≤ spool_after: a timer batch; 60 s > spool_after: spooled. Neither comes due here.
            webhook("timer", receiver.url + "/timer", events=TRIGGERS, batching="any_event", batch_wait_seconds=10),
            webhook("spool", receiver.url + "/spool", events=TRIGGERS, batching="same_event_type",
                    batch_wait_seconds=60),
            webhook("plain", receiver.url + "/plain", events=TRIGGERS),
        ],
        batching={"spool_after_seconds": 20},
    )  # fmt: skip
    d = await app_factory(config)
    code, body = await d.send([ticket(1), ticket(2, "ticket.updated"), ticket(3)])
    assert (code, body["items"]) == (202, 9)

    code, listing = await d.request("GET", "/v1/webhooks")
    batched = {w["id"]: w["counts"]["batched"] for w in listing["webhooks"]}
    assert batched == {"timer": 3, "spool": 3, "plain": 0}
    code, view = await d.request("GET", "/v1/webhooks/spool")
    assert view["counts"]["batched"] == 3

    code, timer = await d.request("GET", "/v1/webhooks/timer/batches")
    assert code == 200
    (b,) = timer["batches"]
    assert (b["key"], b["items"], b["spooled"]) == ("*", 3, False)
    assert seconds(b["opened_at"], b["deadline"]) == 10
    code, spool = await d.request("GET", "/v1/webhooks/spool/batches")
    assert [(b["key"], b["items"], b["spooled"]) for b in spool["batches"]] == [
        ("e:ticket.created", 2, True), ("e:ticket.updated", 1, True)
    ]  # fmt: skip
    assert all(seconds(b["opened_at"], b["deadline"]) == 60 for b in spool["batches"])
    code, plain = await d.request("GET", "/v1/webhooks/plain/batches")
    assert (code, plain) == (200, {"batches": []})

    for wid, expected in (("timer", [["e1", "e2", "e3"]]), ("spool", [["e1", "e3"], ["e2"]])):
        code, flushed = await d.request("POST", f"/v1/webhooks/{wid}/batches/flush")
        assert (code, flushed) == (202, {"deliveries": len(expected)})
        # In the log by the time the answer comes.
        code, page = await d.request("GET", f"/v1/webhooks/{wid}/deliveries")
        assert len(page["deliveries"]) == len(expected)
        got = await receiver.wait_for(len(expected), f"/{wid}")
        assert sorted([i["event_id"] for i in r.json()] for r in got) == expected
        code, view = await d.request("GET", f"/v1/webhooks/{wid}")
        assert view["counts"]["batched"] == 0
        code, after = await d.request("GET", f"/v1/webhooks/{wid}/batches")
        assert after == {"batches": []}

    code, flushed = await d.request("POST", "/v1/webhooks/timer/batches/flush")
    assert (code, flushed) == (202, {"deliveries": 0})
    for method, path in (("GET", "/v1/webhooks/nope/batches"), ("POST", "/v1/webhooks/nope/batches/flush")):
        code, body = await d.request(method, path)
        assert (code, body["error"]["code"]) == (404, "not_found")


async def test_a_batch_that_fills_up_leaves_the_listing(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A full batch leaves at once: the listing then shows only the batch its next item opened."""
    d = await app_factory(
        make_config([webhook("b", receiver.url + "/b", batching="any_event", batch_wait_seconds=10,
                             max_items_per_batch=2)])
    )  # fmt: skip
    code, _ = await d.send([ticket(1), ticket(2), ticket(3)])
    assert code == 202
    (full,) = await receiver.wait_for(1, "/b")
    assert [i["event_id"] for i in full.json()] == ["e1", "e2"]
    code, listing = await d.request("GET", "/v1/webhooks/b/batches")
    assert [b["items"] for b in listing["batches"]] == [1]
    code, view = await d.request("GET", "/v1/webhooks/b")
    assert view["counts"]["batched"] == 1


async def test_hookd_batches_and_flush(receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory) -> None:
    """``hookd batches ID`` prints the open batches as a table (or JSON), ``hookd flush ID`` sends them."""
    d = await app_factory(
        make_config([webhook("b", receiver.url + "/b", batching="same_event_type", batch_wait_seconds=30)])
    )
    code, out, err = await hookd("batches", "b", "--url", d.url)
    assert (code, out) == (0, "no open batches for b\n"), err
    code, _ = await d.send([ticket(1), ticket(2), ticket(3, "ticket.updated")])
    assert code == 202

    code, out, err = await hookd("batches", "b", "--url", d.url)
    assert code == 0, err
    head, *rows = out.splitlines()
    assert head.split() == ["KEY", "ITEMS", "OPENED", "DEADLINE", "SPOOLED"]
    assert [r.split()[:2] + r.split()[-1:] for r in rows] == [["e:ticket.created", "2", "no"],
                                                            ["e:ticket.updated", "1", "no"]]  # fmt: skip
    code, out, err = await hookd("batches", "b", "--url", d.url, "--json")
    assert code == 0, err
    assert [b["items"] for b in json.loads(out)] == [2, 1]

    code, out, err = await hookd("flush", "b", "--url", d.url)
    assert (code, out) == (0, "flushed 2 batches of b\n"), err
    got = await receiver.wait_for(2, "/b")
    assert sorted(len(r.json()) for r in got) == [1, 2]
    code, out, err = await hookd("flush", "b", "--url", d.url)
    assert (code, out) == (0, "flushed 0 batches of b\n"), err
    code, out, err = await hookd("flush", "nope", "--url", d.url)
    assert code == 1
    assert "404 not_found" in err


async def test_flushing_a_batch_of_a_webhook_that_stopped_batching_sends_each_item(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """After a reload to per_occurrence, the batch still open is listed, and its flush sends
    each item alone, with its own body, counting one delivery per item."""
    d = await app_factory(make_config([webhook("b", receiver.url + "/b", batching="any_event", batch_wait_seconds=30)]))
    code, _ = await d.send([ticket(1), ticket(2)])
    assert code == 202
    make_config([webhook("b", receiver.url + "/b")])
    assert d.app is not None
    assert await d.app.reload()
    code, listing = await d.request("GET", "/v1/webhooks/b/batches")
    assert [b["items"] for b in listing["batches"]] == [2]
    code, flushed = await d.request("POST", "/v1/webhooks/b/batches/flush")
    assert (code, flushed) == (202, {"deliveries": 2})
    got = await receiver.wait_for(2, "/b")
    assert sorted(r.json()["event_id"] for r in got) == ["e1", "e2"]
