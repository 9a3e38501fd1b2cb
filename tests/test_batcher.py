"""Batching (SPEC §5) with a fake clock and a real SQLite store in tmp_path."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from hookd.batcher import Batcher, OpenBatch, batch_key, policies
from hookd.config import Config, Webhook
from hookd.ingest import Plan, Routing, hand_on, plan
from hookd.metrics import Metrics
from hookd.models import Delivery, IdFactory, Item, Occurrence, format_timestamp
from hookd.store import Store
from tests.fakeclock import FakeClock
from tests.support import running_store, until

T0 = 1_800_000_000.0
SPOOL_AFTER = 300.0
TRIGGERS = ("t", "a", "b")


def triggers(webhook_id: str) -> list[dict[str, Any]]:
    """The triggers TRIGGERS of one webhook: each takes any event whose object names the
    webhook (``to``) and the trigger, so a test says where each of its events goes."""
    return [
        {"id": t, "on": "*", "conditions": [{"field": "object.to", "op": "eq", "value": webhook_id},
                                            {"field": "object.trigger", "op": "eq", "value": t}]}
        for t in TRIGGERS
    ]  # fmt: skip


def webhooks(**modes: dict[str, Any]) -> tuple[Webhook, ...]:
    """Validated webhooks, one per keyword: ``name={"batching": ..., ...}``."""
    return Config.model_validate(
        {
            "webhooks": [
                {"id": name, "url": f"https://example.com/{name}", "events": triggers(name), **settings}
                for name, settings in modes.items()
            ]
        }
    ).webhooks


def timer_lateness(logs: list[MutableMapping[str, Any]]) -> list[float]:
    """How late (ms) each in-memory batch's timer fired, from the captured log lines."""
    return [e["late_ms"] for e in logs if e["event"] == "batch_timer_fired"]


class Harness:
    """A Batcher wired to a FakeClock and a real store, fed through ingest's own plan()."""

    def __init__(self, store: Store, clock: FakeClock, hooks: tuple[Webhook, ...]) -> None:
        self.store = store
        self.clock = clock
        self.ids = IdFactory()
        self.delivered: list[Delivery] = []
        self._arrived = asyncio.Event()
        self.hooks = hooks
        self.routing = Routing.build(Config(webhooks=hooks))
        self.batcher = Batcher(clock, store, self.ids, self._deliver)
        self.batcher.configure(hooks, SPOOL_AFTER)
        self._n = 0

    def _deliver(self, d: Delivery) -> None:
        self.delivered.append(d)
        self._arrived.set()

    def plan(self, specs: list[tuple[str, str, str]]) -> tuple[list[Occurrence], Plan]:
        """One request of (webhook, trigger, event) occurrences, and ingest's plan for it."""
        now = self.clock.now()
        occs = []
        for wid, trigger, event in specs:
            self._n += 1
            obj = {"id": self._n, "to": wid, "trigger": trigger}
            occs.append(Occurrence(self.ids.make("evt"), event, format_timestamp(now), obj, None, None, False))
        p = plan(
            occs, self.routing, now, self.ids,
            self.store.next_item_seq, self.store.next_delivery_seq, self.batcher.deadline_for,
        )  # fmt: skip
        assert [(i.webhook_id, i.trigger, i.event) for _, i in p.items] == specs  # each routed as its spec says
        return occs, p

    async def commit(self, occs: list[Occurrence], p: Plan) -> list[Item]:
        """Commit a planned request, then hand its items to the batcher with ingest's own hand_on."""
        dupes = await self.store.ingest(occs, self.clock.now(), p.deliveries, p.items)
        assert dupes == set()
        routed = hand_on(p, dupes, self.delivered.append, self.batcher, Metrics())
        assert sum(routed.values()) == len(p.items) + len(p.deliveries)
        return [item for _, item in p.items]

    async def feed_many(self, specs: list[tuple[str, str, str]]) -> list[Item]:
        """One ingest request of (webhook, trigger, event) items: plan, commit, then hand to the batcher."""
        return await self.commit(*self.plan(specs))

    async def feed(self, wid: str, trigger: str = "t", event: str = "ticket.created") -> Item:
        """One item in its own ingest request."""
        (item,) = await self.feed_many([(wid, trigger, event)])
        return item

    async def settle(self, count: int) -> list[Delivery]:
        """Wait until ``count`` deliveries were handed on (spooled flushes run as tasks)."""
        async with asyncio.timeout(10):
            while len(self.delivered) < count:
                self._arrived.clear()
                await self._arrived.wait()
        await self.store.drain()
        assert len(self.delivered) == count
        return self.delivered


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A real store in tmp_path / t.db."""
    async with running_store(tmp_path / "t.db") as s:
        yield s


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when told."""
    return FakeClock(T0)


def ids_of(items: list[Item]) -> list[str]:
    """The items' ids."""
    return [i.id for i in items]


def bodies(d: Delivery) -> list[Any]:
    """The decoded body of a batched delivery."""
    decoded = json.loads(d.body)
    assert isinstance(decoded, list)
    return decoded


# -- batch keys and policies ----------------------------------------------------------------


def test_batch_key_per_mode() -> None:
    """per_occurrence has no key; same_event keys by trigger, same_event_type by event type, any_event one key."""
    assert batch_key("per_occurrence", "t1", "ticket.created") is None
    assert batch_key("same_event", "t1", "ticket.created") == batch_key("same_event", "t1", "ticket.updated")
    assert batch_key("same_event", "t1", "ticket.created") != batch_key("same_event", "t2", "ticket.created")
    assert batch_key("same_event_type", "t1", "ticket.created") == batch_key("same_event_type", "t2", "ticket.created")
    assert batch_key("same_event_type", "t1", "ticket.created") != batch_key("same_event_type", "t1", "ticket.updated")
    assert batch_key("any_event", "t1", "ticket.created") == batch_key("any_event", "t2", "client.updated")
    # A trigger id and an event type that read the same must not share a key.
    assert batch_key("same_event", "ticket.created", "x") != batch_key("same_event_type", "y", "ticket.created")


def test_policies() -> None:
    """Only batching webhooks get a policy; waits above spool_after_seconds are spooled, equal ones are not."""
    got = policies(webhooks(
        single={},
        short={"batching": "any_event", "batch_wait_seconds": 30, "max_items_per_batch": 7},
        edge={"batching": "any_event", "batch_wait_seconds": SPOOL_AFTER},
        long={"batching": "same_event", "batch_wait_seconds": SPOOL_AFTER + 0.5, "lightweight_logs": True},
    ), SPOOL_AFTER)  # fmt: skip
    assert got.get("single") is None
    short = got.get("short")
    assert short is not None
    assert (short.wait, short.max_items, short.spooled, short.lightweight) == (30, 7, False, False)
    edge = got.get("edge")
    assert edge is not None
    assert edge.spooled is False
    long = got.get("long")
    assert long is not None
    assert (long.spooled, long.lightweight) == (True, True)


# -- grouping -------------------------------------------------------------------------------

MIXED = [
    ("w", "a", "ticket.created"),
    ("w", "b", "ticket.created"),
    ("w", "a", "ticket.updated"),
    ("w", "b", "ticket.updated"),
    ("w", "a", "ticket.created"),
]


@pytest.mark.parametrize(
    ("mode", "groups"),
    [
        ("same_event", [[0, 2, 4], [1, 3]]),
        ("same_event_type", [[0, 1, 4], [2, 3]]),
        ("any_event", [[0, 1, 2, 3, 4]]),
    ],
)
async def test_grouping(store: Store, clock: FakeClock, mode: str, groups: list[list[int]]) -> None:
    """Each mode puts exactly the items sharing its key into one delivery, in arrival order."""
    h = Harness(store, clock, webhooks(w={"batching": mode, "batch_wait_seconds": 10}))
    items = [await h.feed(*spec) for spec in MIXED]
    assert h.delivered == []
    clock.advance(10)
    delivered = await h.settle(len(groups))
    pos = {item.id: n for n, item in enumerate(items)}
    assert sorted([pos[i] for i in d.item_ids] for d in delivered) == groups
    by_id = {i.id: i for i in items}
    for d in delivered:
        assert d.webhook_id == "w"
        assert d.created_at == T0 + 10
        members = [by_id[i] for i in d.item_ids]
        assert bodies(d) == [json.loads(m.body) for m in members]
        assert d.events == list(dict.fromkeys(m.event for m in members))
        assert d.triggers == list(dict.fromkeys(m.trigger for m in members))


async def test_webhooks_do_not_share_batches(store: Store, clock: FakeClock) -> None:
    """Two webhooks with the same key batch separately."""
    h = Harness(store, clock, webhooks(a={"batching": "any_event"}, b={"batching": "any_event"}))
    a1 = await h.feed("a")
    b1 = await h.feed("b")
    a2 = await h.feed("a")
    clock.advance(30)
    delivered = await h.settle(2)
    assert {d.webhook_id: d.item_ids for d in delivered} == {"a": [a1.id, a2.id], "b": [b1.id]}


async def test_delivery_ids_unique(store: Store, clock: FakeClock) -> None:
    """Every flushed batch gets its own delivery id, message id and increasing sequence number."""
    h = Harness(store, clock, webhooks(w={"batching": "same_event_type", "batch_wait_seconds": 5}))
    for n in range(4):
        await h.feed("w", event=f"ticket.e{n}")
    clock.advance(5)
    delivered = await h.settle(4)
    assert len({d.id for d in delivered}) == 4
    assert len({d.message_id for d in delivered}) == 4
    seqs = [d.seq for d in delivered]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 4


# -- windows --------------------------------------------------------------------------------


async def test_fixed_window_from_first_item(store: Store, clock: FakeClock) -> None:
    """The deadline is the first item's arrival plus the wait; later items do not push it back."""
    h = Harness(store, clock, webhooks(w={"batching": "any_event", "batch_wait_seconds": 30}))
    with capture_logs() as logs:
        first = await h.feed("w")
        clock.advance(20)
        second = await h.feed("w")
        assert second.deadline == first.deadline == T0 + 30
        clock.advance(9.999)
        await asyncio.sleep(0)
        assert h.delivered == []
        clock.advance(0.001)
        (d,) = await h.settle(1)
    assert d.item_ids == [first.id, second.id]
    assert d.created_at == T0 + 30
    assert timer_lateness(logs) == [0.0]
    assert h.batcher.open == {}


async def test_next_window_opens_after_flush(store: Store, clock: FakeClock) -> None:
    """After a flush, the next item opens a new window from its own arrival."""
    h = Harness(store, clock, webhooks(w={"batching": "any_event", "batch_wait_seconds": 30}))
    await h.feed("w")
    clock.advance(45)
    await h.settle(1)
    late = await h.feed("w")
    assert late.deadline == T0 + 45 + 30
    clock.advance(29.5)
    assert len(h.delivered) == 1
    clock.advance(0.5)
    delivered = await h.settle(2)
    assert delivered[1].item_ids == [late.id]


async def test_item_at_deadline_after_timer_opens_new_batch(store: Store, clock: FakeClock) -> None:
    """Once the clock reaches the deadline the timer fires first: an item arriving at that instant opens a new batch."""
    h = Harness(store, clock, webhooks(w={"batching": "any_event", "batch_wait_seconds": 30}))
    first = await h.feed("w")
    clock.advance(30)
    assert ("w", "*") not in h.batcher.open  # the timer closed the batch
    (d0,) = await h.settle(1)
    assert d0.item_ids == [first.id]
    at_deadline = await h.feed("w")
    assert at_deadline.deadline == T0 + 60
    clock.advance(30)
    delivered = await h.settle(2)
    assert delivered[1].item_ids == [at_deadline.id]


async def test_item_at_deadline_before_timer_joins_batch(store: Store, clock: FakeClock) -> None:
    """An item handled at the deadline instant before the timer callback has run still travels in that batch."""
    h = Harness(store, clock, webhooks(w={"batching": "any_event", "batch_wait_seconds": 30}))
    first = await h.feed("w")
    clock.t = T0 + 30  # time reached the deadline; the loop has not run the timer yet
    joined = await h.feed("w")
    assert joined.deadline == T0 + 30
    assert h.delivered == []
    clock.advance(0)
    (d,) = await h.settle(1)
    assert d.item_ids == [first.id, joined.id]


async def test_item_whose_batch_flushed_during_commit(store: Store, clock: FakeClock) -> None:
    """An item that took its deadline from a batch which flushed while it was being committed leaves at once, alone."""
    h = Harness(store, clock, webhooks(w={"batching": "any_event", "batch_wait_seconds": 30}))
    first = await h.feed("w")
    clock.t = T0 + 30
    occs, p = h.plan([("w", "t", "ticket.created")])
    ((_, item),) = p.items
    assert item.deadline == T0 + 30
    clock.advance(0)  # the timer runs while the item's commit is in flight
    await h.commit(occs, p)
    clock.advance(0)
    delivered = await h.settle(2)
    assert [d.item_ids for d in delivered] == [[first.id], [item.id]]


# -- max items ------------------------------------------------------------------------------


async def test_max_items_flushes_at_once(store: Store, clock: FakeClock) -> None:
    """A batch that reaches max_items_per_batch leaves at once; its timer is cancelled."""
    h = Harness(store, clock, webhooks(w={"batching": "any_event", "batch_wait_seconds": 30, "max_items_per_batch": 3}))
    items = [await h.feed("w") for _ in range(3)]
    (d,) = await h.settle(1)
    assert d.item_ids == ids_of(items)
    assert d.created_at == T0
    assert h.batcher.open == {}
    assert clock.pending == 0


async def test_next_item_after_max_opens_new_batch(store: Store, clock: FakeClock) -> None:
    """The item after a full batch opens a new batch with its own deadline."""
    h = Harness(store, clock, webhooks(w={"batching": "any_event", "batch_wait_seconds": 30, "max_items_per_batch": 2}))
    full = [await h.feed("w") for _ in range(2)]
    clock.advance(10)
    nxt = await h.feed("w")
    assert nxt.deadline == T0 + 40
    assert h.batcher.open[("w", "*")].deadline == T0 + 40
    clock.advance(20)
    assert len(h.delivered) == 1
    clock.advance(10)
    delivered = await h.settle(2)
    assert [d.item_ids for d in delivered] == [ids_of(full), [nxt.id]]


async def test_max_items_within_one_request(store: Store, clock: FakeClock) -> None:
    """Five items of one request with max 2 leave as 2 + 2 at once and 1 at the deadline, in order."""
    h = Harness(store, clock, webhooks(w={"batching": "any_event", "batch_wait_seconds": 30, "max_items_per_batch": 2}))
    items = await h.feed_many([("w", "t", "ticket.created")] * 5)
    await h.settle(2)
    clock.advance(30)
    delivered = await h.settle(3)
    assert [d.item_ids for d in delivered] == [ids_of(items[:2]), ids_of(items[2:4]), ids_of(items[4:])]


async def test_a_request_run_fills_the_open_batch_then_opens_the_next(store: Store, clock: FakeClock) -> None:
    """A request's items of one key join the batch already open, up to max_items, and the
    rest open the next batches in arrival order, keys apart: each batch exact, none too big."""
    hooks = webhooks(w={"batching": "same_event", "batch_wait_seconds": 30, "max_items_per_batch": 4})
    h = Harness(store, clock, hooks)
    a0 = await h.feed("w", "a")
    clock.advance(5)
    mixed = await h.feed_many([("w", "a" if i % 3 else "b", "ticket.created") for i in range(12)])
    a = [a0] + [i for i in mixed if i.trigger == "a"]  # 1 + 8
    b = [i for i in mixed if i.trigger == "b"]  # 4
    full = await h.settle(3)
    assert sorted(list(d.item_ids) for d in full) == sorted([ids_of(a[:4]), ids_of(a[4:8]), ids_of(b)])
    # The first "a" batch kept its deadline; the one left open took the request's.
    assert h.batcher.open[("w", "t:a")].count == 1
    assert h.batcher.open[("w", "t:a")].deadline == T0 + 30
    clock.advance(25)
    (last,) = (await h.settle(4))[3:]
    assert last.item_ids == ids_of(a[8:])


async def test_a_duplicate_inside_a_request_run_is_left_out_of_its_batch(store: Store, clock: FakeClock) -> None:
    """hand_on gives the batcher a chunk's items but those of duplicate occurrences."""
    h = Harness(store, clock, webhooks(w={"batching": "any_event", "batch_wait_seconds": 30, "max_items_per_batch": 3}))
    occs, p = h.plan([("w", "t", "ticket.created")] * 4)
    items = [i for _, i in p.items]
    assert [len(c.items) for c in p.chunks] == [4]
    assert await store.ingest(occs, clock.now(), p.deliveries, p.items) == set()
    routed = hand_on(p, {1}, h.delivered.append, h.batcher, Metrics())  # as if occurrence 1 were a duplicate
    assert routed == {"w": 3}
    (d,) = await h.settle(1)
    assert d.item_ids == ids_of([items[0], items[2], items[3]])


async def test_a_batch_over_full_after_a_reload_leaves_before_the_run_joins(store: Store, clock: FakeClock) -> None:
    """max_items_per_batch shrank under an open batch: the next run closes it as it is and
    starts a new one, so no batch grows further past the new limit."""
    h = Harness(store, clock, webhooks(w={"batching": "any_event", "batch_wait_seconds": 30, "max_items_per_batch": 5}))
    before = await h.feed_many([("w", "t", "ticket.created")] * 3)
    h.batcher.configure(webhooks(w={"batching": "any_event", "batch_wait_seconds": 30, "max_items_per_batch": 2}),
                        SPOOL_AFTER)  # fmt: skip
    after = await h.feed_many([("w", "t", "ticket.created")] * 3)
    delivered = await h.settle(2)
    assert [d.item_ids for d in delivered] == [ids_of(before), ids_of(after[:2])]
    assert h.batcher.open[("w", "*")].count == 1


async def test_max_items_one(store: Store, clock: FakeClock) -> None:
    """max_items_per_batch = 1 delivers every item at once as a one-element array."""
    h = Harness(store, clock, webhooks(w={"batching": "any_event", "max_items_per_batch": 1}))
    items = [await h.feed("w") for _ in range(3)]
    delivered = await h.settle(3)
    assert [d.item_ids for d in delivered] == [[i.id] for i in items]
    assert all(len(bodies(d)) == 1 for d in delivered)


# -- many keys ------------------------------------------------------------------------------


async def test_ten_thousand_keys_flush_on_time(store: Store, clock: FakeClock) -> None:
    """10,000 open keys each flush exactly at their own deadline, none early, none late."""
    h = Harness(store, clock, webhooks(w={"batching": "same_event_type", "batch_wait_seconds": 30}))
    groups = 10
    per_group = 1000
    for g in range(groups):
        specs = [("w", "t", f"ticket.k{g}_{n}") for n in range(per_group)]
        await h.feed_many(specs)
        clock.advance(0.25)
    assert len(h.batcher.open) == groups * per_group
    assert h.delivered == []
    start = T0 + 30
    with capture_logs() as logs:
        for g in range(groups):
            # Just before group g's deadline only the earlier groups have left.
            clock.advance(start + g * 0.25 - 0.01 - clock.now())
            assert len(h.batcher.open) == (groups - g) * per_group
            clock.advance(0.01)
            assert len(h.batcher.open) == (groups - g - 1) * per_group
        delivered = await h.settle(groups * per_group)
    assert h.batcher.open == {}
    late = timer_lateness(logs)
    assert len(late) == groups * per_group
    assert max(late) == 0.0
    for n, d in enumerate(delivered):
        assert d.created_at == start + (n // per_group) * 0.25
        assert len(d.item_ids) == 1
    assert await store.open_batches() == []


# -- the spool ------------------------------------------------------------------------------

LONG = {"batching": "any_event", "batch_wait_seconds": 600}


async def test_spooled_batch_keeps_no_items_in_memory(store: Store, clock: FakeClock) -> None:
    """A batch whose wait exceeds spool_after_seconds holds only a count and deadline, and no timer."""
    h = Harness(store, clock, webhooks(w=LONG))
    await h.feed("w")
    clock.advance(100)
    await h.feed("w")
    b = h.batcher.open[("w", "*")]
    assert isinstance(b, OpenBatch)
    assert b.spooled is True
    assert b.items == []
    assert b.count == 2
    assert b.deadline == T0 + 600
    assert b.timer is None
    assert clock.pending == 0
    assert h.batcher.pending() == {"w": 2}


async def test_spooled_batch_flushes_on_poll_after_deadline(store: Store, clock: FakeClock) -> None:
    """A spooled batch leaves on the first poll at or after its deadline, its body read from SQLite in arrival order."""
    h = Harness(store, clock, webhooks(w=LONG))
    items: list[Item] = []
    for _ in range(4):
        items.append(await h.feed("w", event=f"ticket.e{len(items)}"))
        clock.advance(50)
    clock.advance(T0 + 599 - clock.now())
    h.batcher.poll()
    await store.drain()
    assert h.delivered == []
    clock.advance(1)  # exactly the deadline
    assert h.delivered == []  # no timer: only poll() flushes
    h.batcher.poll()
    (d,) = await h.settle(1)
    assert d.item_ids == ids_of(items)
    assert bodies(d) == [json.loads(i.body) for i in items]
    assert d.events == [f"ticket.e{n}" for n in range(4)]
    assert d.created_at == T0 + 600
    assert h.batcher.open == {}
    assert await store.open_batches() == []
    (logged,) = await store.open_deliveries(["w"])
    assert not logged.loaded  # start-up reads bodies lazily
    await store.load(logged)
    assert logged.id == d.id
    assert logged.body == d.body
    assert logged.item_ids == d.item_ids


async def test_a_spooled_batch_due_before_the_next_poll_leaves_at_its_deadline(store: Store, clock: FakeClock) -> None:
    """poll(ahead) gives a spooled batch due within ``ahead`` a timer of its own, so it
    leaves at its deadline, not up to a poll later; batches due later get none yet."""
    h = Harness(store, clock, webhooks(w=LONG, x=LONG))
    first = await h.feed("w")
    clock.advance(300)
    later = await h.feed("x")
    clock.advance(299.25)  # w is due in 0.75 s, x in 300.75 s
    h.batcher.poll(ahead=1.0)
    assert h.batcher.open[("w", "*")].timer is not None
    assert h.batcher.open[("x", "*")].timer is None
    assert clock.pending == 1
    h.batcher.poll(ahead=1.0)  # a second poll before the deadline arms no second timer
    assert clock.pending == 1
    clock.advance(0.5)
    await store.drain()
    assert h.delivered == []  # never before the deadline
    clock.advance(0.25)
    (d,) = await h.settle(1)
    assert d.item_ids == [first.id]
    assert d.created_at == T0 + 600
    assert list(h.batcher.open) == [("x", "*")]
    clock.advance(300)
    h.batcher.poll(ahead=1.0)
    delivered = await h.settle(2)
    assert delivered[1].item_ids == [later.id]


async def test_a_spooled_batch_that_fills_before_its_timer_leaves_once(store: Store, clock: FakeClock) -> None:
    """A spooled batch that fills after poll() armed its timer leaves at once, and the
    timer is cancelled with it: the next batch of the key does not leave early."""
    h = Harness(store, clock, webhooks(w={**LONG, "max_items_per_batch": 2}))
    a = await h.feed("w")
    clock.advance(599.5)
    h.batcher.poll(ahead=1.0)
    assert clock.pending == 1
    b = await h.feed("w")
    (d,) = await h.settle(1)
    assert d.item_ids == [a.id, b.id]
    assert clock.pending == 0
    c = await h.feed("w")
    clock.advance(1)
    h.batcher.poll(ahead=1.0)
    await store.drain()
    assert len(h.delivered) == 1
    assert h.batcher.open[("w", "*")].deadline == T0 + 1199.5
    clock.advance(599)
    h.batcher.poll(ahead=1.0)
    (_, d2) = await h.settle(2)
    assert d2.item_ids == [c.id]


async def test_a_spooled_key_read_again_before_its_deletes_commit_sends_no_item_twice(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The spool task reads a key's oldest items: when a key it read comes round again
    before that round's deletes are committed (here another process holds the write lock),
    it waits for them, and never reads the items it already sent."""
    async with running_store(tmp_path / "t.db", busy_timeout=0.02) as store:
        h = Harness(store, clock, webhooks(w={**LONG, "max_items_per_batch": 2}))
        requests = [h.plan([("w", "t", "ticket.created")] * 2) for _ in range(2)]
        for occs, p in requests:
            await store.ingest(occs, clock.now(), p.deliveries, p.items)
        with sqlite3.connect(tmp_path / "t.db", isolation_level=None) as other:
            other.execute("BEGIN IMMEDIATE")
            hand_on(requests[0][1], set(), h.delivered.append, h.batcher, Metrics())
            await until(lambda: not h.batcher.waiting(), "the first round read its items (their delete waits)")
            hand_on(requests[1][1], set(), h.delivered.append, h.batcher, Metrics())
            await asyncio.sleep(0.1)  # the second round, given the time to read too early
            other.execute("ROLLBACK")
        delivered = await h.settle(2)
        assert [list(d.item_ids) for d in delivered] == [[i.id for _, i in p.items] for _, p in requests]


async def test_spooled_max_items(store: Store, clock: FakeClock) -> None:
    """Full spooled batches leave at once and in order; the remainder waits for its deadline."""
    h = Harness(store, clock, webhooks(w={**LONG, "max_items_per_batch": 2}))
    items = await h.feed_many([("w", "t", "ticket.created")] * 5)
    await h.settle(2)
    assert h.batcher.open[("w", "*")].count == 1
    clock.advance(600)
    h.batcher.poll()
    delivered = await h.settle(3)
    assert [d.item_ids for d in delivered] == [ids_of(items[:2]), ids_of(items[2:4]), ids_of(items[4:])]


async def test_spooled_and_memory_batches_side_by_side(store: Store, clock: FakeClock) -> None:
    """Short and spooled webhooks batch independently: the timer flushes one, poll() the other."""
    h = Harness(store, clock, webhooks(short={"batching": "any_event", "batch_wait_seconds": 5}, long=LONG))
    s = await h.feed("short")
    lg = await h.feed("long")
    clock.advance(5)
    (d0,) = await h.settle(1)
    assert d0.item_ids == [s.id]
    h.batcher.poll()
    await store.drain()
    assert len(h.delivered) == 1
    clock.advance(595)
    h.batcher.poll()
    delivered = await h.settle(2)
    assert delivered[1].item_ids == [lg.id]


async def test_flush_removes_items_from_store(store: Store, clock: FakeClock) -> None:
    """A flushed in-memory batch's items leave the spool table and its delivery is logged, in one commit."""
    h = Harness(store, clock, webhooks(w={"batching": "any_event", "batch_wait_seconds": 5}))
    items = [await h.feed("w") for _ in range(3)]
    (ob,) = await store.open_batches()
    assert (ob.webhook_id, ob.batch_key, ob.deadline, ob.count) == ("w", "*", T0 + 5, 3)
    clock.advance(5)
    (d,) = await h.settle(1)
    assert await store.open_batches() == []
    (logged,) = await store.open_deliveries(["w"])
    assert not logged.loaded  # start-up reads bodies lazily
    await store.load(logged)
    assert (logged.id, logged.item_ids, logged.body) == (d.id, ids_of(items), d.body)


# -- restart --------------------------------------------------------------------------------

BOTH = {"short": {"batching": "any_event", "batch_wait_seconds": 30}, "long": LONG}


async def _fill_and_close(path: Path) -> tuple[list[Item], list[Item]]:
    """Open a short and a spooled batch of two items each, then stop and close the store."""
    clock = FakeClock(T0)
    async with running_store(path) as store:
        h = Harness(store, clock, webhooks(**BOTH))
        short = [await h.feed("short")]
        longs = [await h.feed("long")]
        clock.advance(5)
        short.append(await h.feed("short"))
        longs.append(await h.feed("long"))
        await h.batcher.stop()
        assert h.delivered == []
    return short, longs


async def test_restore_reopens_batches_with_original_deadlines(tmp_path: Path) -> None:
    """After a restart, restore() brings back short and spooled batches with their original deadlines and order."""
    path = tmp_path / "t.db"
    short, longs = await _fill_and_close(path)
    clock = FakeClock(T0 + 10)
    async with running_store(path) as store:
        h = Harness(store, clock, webhooks(**BOTH))
        assert h.batcher.restore(await h.batcher.read_open(None, h.hooks, SPOOL_AFTER)) == 4
        s = h.batcher.open[("short", "*")]
        assert (s.deadline, s.count, s.spooled) == (T0 + 30, 2, False)
        assert ids_of(s.items) == ids_of(short)
        lg = h.batcher.open[("long", "*")]
        assert (lg.deadline, lg.count, lg.spooled, lg.items) == (T0 + 600, 2, True, [])
        assert clock.pending == 1
        later = await h.feed("long")  # joins the restored spooled batch
        assert later.deadline == T0 + 600
        assert later.seq > max(i.seq for i in short + longs)
        clock.advance(19.99)
        assert h.delivered == []
        clock.advance(0.01)
        (d,) = await h.settle(1)
        assert d.item_ids == ids_of(short)
        assert bodies(d) == [json.loads(i.body) for i in short]
        assert d.created_at == T0 + 30
        clock.advance(T0 + 600 - clock.now())
        h.batcher.poll()
        delivered = await h.settle(2)
        assert delivered[1].item_ids == [*ids_of(longs), later.id]
        assert bodies(delivered[1]) == [json.loads(i.body) for i in [*longs, later]]
        assert await store.open_batches() == []


async def test_restore_after_deadlines_passed(tmp_path: Path) -> None:
    """Batches whose deadlines passed while hookd was down leave at once after restore()."""
    path = tmp_path / "t.db"
    short, longs = await _fill_and_close(path)
    clock = FakeClock(T0 + 1000)
    async with running_store(path) as store:
        h = Harness(store, clock, webhooks(**BOTH))
        assert h.batcher.restore(await h.batcher.read_open(None, h.hooks, SPOOL_AFTER)) == 4
        clock.advance(0)
        delivered = await h.settle(2)
        assert {d.webhook_id: d.item_ids for d in delivered} == {"short": ids_of(short), "long": ids_of(longs)}
        assert h.batcher.open == {}
        assert await store.open_batches() == []


async def test_restore_skips_unconfigured_webhooks(tmp_path: Path) -> None:
    """Batches of a webhook no longer batching are left in the store, not delivered."""
    path = tmp_path / "t.db"
    await _fill_and_close(path)
    clock = FakeClock(T0 + 10)
    async with running_store(path) as store:
        h = Harness(store, clock, webhooks(long=LONG))
        assert h.batcher.restore(await h.batcher.read_open(None, h.hooks, SPOOL_AFTER)) == 2
        assert list(h.batcher.open) == [("long", "*")]
        assert {(ob.webhook_id, ob.count) for ob in await store.open_batches()} == {("short", 2), ("long", 2)}


@pytest.mark.parametrize("wait", [30, 600], ids=["memory", "spooled"])
async def test_restore_over_max_items(tmp_path: Path, wait: float) -> None:
    """Restored items beyond a lowered max_items_per_batch leave in full batches at once, the rest at the deadline."""
    path = tmp_path / "t.db"
    clock = FakeClock(T0)
    settings = {"batching": "any_event", "batch_wait_seconds": wait}
    async with running_store(path) as store:
        h = Harness(store, clock, webhooks(w=settings))
        items = await h.feed_many([("w", "t", "ticket.created")] * 5)
        await h.batcher.stop()
    async with running_store(path) as store:
        h = Harness(store, clock, webhooks(w={**settings, "max_items_per_batch": 2}))
        assert h.batcher.restore(await h.batcher.read_open(None, h.hooks, SPOOL_AFTER)) == 5
        await h.settle(2)
        assert h.batcher.open[("w", "*")].count == 1
        clock.advance(wait)
        h.batcher.poll()
        delivered = await h.settle(3)
        assert [d.item_ids for d in delivered] == [ids_of(items[:2]), ids_of(items[2:4]), ids_of(items[4:])]
        assert await store.open_batches() == []


async def test_a_spooled_batch_of_a_webhook_that_stopped_batching_leaves_item_by_item(
    store: Store, clock: FakeClock
) -> None:
    """After a reload to per_occurrence, a spooled batch coming due is sent as one delivery
    per item, each with its item's own body: none is dropped."""
    h = Harness(store, clock, webhooks(w={"batching": "any_event", "batch_wait_seconds": 600}))
    items = await h.feed_many([("w", "t", "ticket.created")] * 3)
    h.batcher.configure(webhooks(w={"batching": "per_occurrence"}), SPOOL_AFTER)
    clock.advance(600)
    h.batcher.poll()
    delivered = await h.settle(3)
    assert [(list(d.item_ids), d.body) for d in delivered] == [([i.id], i.body) for i in items]
    assert await store.open_batches() == []
