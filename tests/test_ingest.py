"""Ingest's per-request plan (SPEC §3, §5): routing, bodies and store chunks, without a loop or a store."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from hookd.config import Config
from hookd.ingest import Routing, Unencodable, plan
from hookd.models import IdFactory, Occurrence, format_timestamp

NOW = 1_800_000_000.0


def routing(*hooks: dict[str, Any]) -> Routing:
    """The routing of a config holding ``hooks`` (id, batching and other settings), each taking every event."""
    return Routing.build(Config.model_validate({"webhooks": [
        {"url": f"https://example.com/{w['id']}", "events": [{"id": "all", "on": "*"}], **w} for w in hooks
    ]}))  # fmt: skip


def occ(n: int, event: str = "ticket.created", obj: dict[str, Any] | None = None) -> Occurrence:
    """An occurrence numbered ``n``."""
    return Occurrence(f"evt_{n}", event, format_timestamp(NOW), obj or {"id": n}, None, None, False)


class Counters:
    """The store's sequence counters and the batcher's deadlines, as plan() is given them."""

    def __init__(self) -> None:
        self.item_seq = itertools.count(100).__next__
        self.delivery_seq = itertools.count(500).__next__
        self.deadlines: list[tuple[str, str, float]] = []

    def deadline_for(self, webhook_id: str, key: str, now: float) -> float:
        """A deadline per asking, recorded: the first chunk's is now + 1, the next now + 2, …"""
        self.deadlines.append((webhook_id, key, now))
        return now + len(self.deadlines)


def test_plan_puts_a_requests_items_of_one_key_in_one_chunk() -> None:
    """The items of one webhook and batch key share a store chunk: one sequence number, consecutive places and
    one deadline, asked for once per chunk; another key or webhook gets its own chunk."""
    rt = routing({"id": "a", "batching": "same_event_type"}, {"id": "b", "batching": "any_event"})
    c = Counters()
    events = ["ticket.created", "ticket.updated", "ticket.created", "ticket.created"]
    p = plan([occ(n, e) for n, e in enumerate(events)], rt, NOW, IdFactory(), c.item_seq, c.delivery_seq,
             c.deadline_for)  # fmt: skip
    assert p.deliveries == []
    got = [(idx, i.webhook_id, i.batch_key, i.seq, i.pos, i.deadline) for idx, i in p.items]
    assert got == [
        (0, "a", "e:ticket.created", 100, 0, NOW + 1),
        (0, "b", "*", 101, 0, NOW + 2),
        (1, "a", "e:ticket.updated", 102, 0, NOW + 3),
        (1, "b", "*", 101, 1, NOW + 2),
        (2, "a", "e:ticket.created", 100, 1, NOW + 1),
        (2, "b", "*", 101, 2, NOW + 2),
        (3, "a", "e:ticket.created", 100, 2, NOW + 1),
        (3, "b", "*", 101, 3, NOW + 2),
    ]
    assert c.deadlines == [("a", "e:ticket.created", NOW), ("b", "*", NOW), ("a", "e:ticket.updated", NOW)]
    assert all(orjson.loads(i.body)["id"] == i.id for _, i in p.items)
    assert [(i.trigger, i.event, i.occurrence_id) for _, i in p.items] == [
        ("all", events[idx], f"evt_{idx}") for idx, _ in p.items
    ]
    assert len({i.id for _, i in p.items}) == len(p.items)


def test_plan_makes_a_delivery_per_item_of_an_unbatched_webhook() -> None:
    """A per_occurrence webhook's items become deliveries of their own, numbered by the store's counter, created
    at the request's time, each with a new message id and the webhook's lightweight_logs flag."""
    rt = routing({"id": "solo", "lightweight_logs": True}, {"id": "plain"})
    c = Counters()
    p = plan([occ(0), occ(1, "ticket.updated")], rt, NOW, IdFactory(), c.item_seq, c.delivery_seq, c.deadline_for)
    assert p.items == []
    assert c.deadlines == []
    got = [(idx, d.webhook_id, d.seq, d.events, d.triggers, d.created_at, light) for idx, d, light in p.deliveries]
    assert got == [
        (0, "solo", 500, ["ticket.created"], ["all"], NOW, True),
        (0, "plain", 501, ["ticket.created"], ["all"], NOW, False),
        (1, "solo", 502, ["ticket.updated"], ["all"], NOW, True),
        (1, "plain", 503, ["ticket.updated"], ["all"], NOW, False),
    ]
    assert [d.id.split("_")[1] for _, d, _ in p.deliveries] == ["500", "501", "502", "503"]
    assert len({d.message_id for _, d, _ in p.deliveries}) == 4
    for _, d, _ in p.deliveries:
        assert (d.manual, d.resend_of, d.state, d.attempts) == (False, None, "pending", 0)
        assert orjson.loads(d.body)["id"] == d.item_ids[0]


def test_plan_names_the_occurrence_it_cannot_encode() -> None:
    """An occurrence nested past the encoder's limit raises Unencodable with its index and the part at fault."""
    deep: Any = {}
    for _ in range(300):
        deep = {"x": deep}
    rt = routing({"id": "a"})
    c = Counters()
    with pytest.raises(Unencodable) as caught:
        plan([occ(0), occ(1, obj=deep)], rt, NOW, IdFactory(), c.item_seq, c.delivery_seq, c.deadline_for)
    assert caught.value.detail["index"] == 1
    assert caught.value.detail["path"] == "object"
    assert caught.value.detail["message"].startswith("cannot be encoded: ")
