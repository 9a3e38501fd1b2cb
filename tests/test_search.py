"""The search of the delivery log below the API: the query's reading and the index keys
(pure), and the store's search, index upkeep and migration on real SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson

from hookd.models import Delivery, IdFactory, Item, new_delivery
from hookd.search import DeliveryQuery, delivery_keys, event_key, item_key, object_value, parse_query
from hookd.store import Outcome, Store
from hookd.store.schema import SCHEMA, SCHEMA_VERSION, by_seq
from hookd.store.schema import new_delivery as schema_row
from hookd.timespec import parse_time
from tests.support import running_store


def test_query_parameters_are_read_or_refused_one_detail_each() -> None:
    """parse_query turns parameters into a DeliveryQuery, and names every bad, unknown or repeated one."""
    q, problems = parse_query(
        {"webhook": "a", "state": "failed", "event": "ticket.created", "object_id": "4242", "limit": "7",
         "since": "2026-11-29T07:00:00Z", "before": "12"}
    )  # fmt: skip
    assert problems == []
    assert q == DeliveryQuery(
        webhook="a", state="failed", event="ticket.created", object_id="4242", limit=7,
        since=parse_time("2026-11-29T07:00:00Z"), before=12,
    )  # fmt: skip
    _, problems = parse_query({"state": "x", "limit": "٣", "nope": "1", "item_id": ""}, repeated=["webhook"])
    assert [p["path"] for p in problems] == ["webhook", "state", "limit", "nope", "item_id"]


def test_index_keys_are_shared_by_ids_that_come_in_runs() -> None:
    """Item ids of one millisecond share a key, so do occurrence ids that differ in their last two characters;
    event types are keys of their own, and object ids are matched as the store writes them."""
    ids = IdFactory(clock_ns=lambda: 1_800_000_000_000_000_000)
    items = [ids.uuid() for _ in range(50)]
    keys = delivery_keys(items, ["sd-1200", "sd-1299", "sd-1300", "x", "é€"], ["ticket.created", "a.b"])
    assert sorted(keys) == sorted(
        [item_key(items[0]), "esd-12", "esd-13", "e", "ta.b", "tticket.created"]
    )  # fmt: skip
    assert event_key("ab") == event_key("") == "e"
    assert [object_value(t) for t in ("4242", "-7", "04242", "+5", "1e3", "C-17", "٣", "9223372036854775808")] == [
        4242, -7, "04242", "+5", "1e3", "C-17", "٣", "9223372036854775808"
    ]  # fmt: skip
    assert object_value("a\x00b") == "a"


def _delivery(ids: IdFactory, seq: int, at: float, **kw: Any) -> Delivery:
    d = new_delivery(
        ids, seq, kw.pop("webhook", "w"), b"[]", kw.pop("items", [f"item-{seq}"]), kw.pop("events", ["x.created"]),
        ["t"], at, event_ids=kw.pop("event_ids", [f"ev-{seq}"]), object_ids=kw.pop("object_ids", [seq]),
    )  # fmt: skip
    assert not kw
    return d


async def _search(store: Store, **query: Any) -> list[int]:
    return [r["seq"] for r in await store.log.search(DeliveryQuery(**query))]


async def test_times_become_a_window_of_the_log(tmp_path: Path) -> None:
    """since is inclusive and until exclusive, to the exact created_at, alone, together and with other filters."""
    ids = IdFactory()
    async with running_store(tmp_path / "t.db") as store:
        for seq in range(1, 21):
            await store.add_delivery(_delivery(ids, seq, 1000.0 + seq, object_ids=[seq % 2]), False)
        assert await _search(store, since=1010.0) == list(range(20, 9, -1))
        assert await _search(store, since=1010.0001) == list(range(20, 10, -1))
        assert await _search(store, until=1003.0) == [2, 1]
        assert await _search(store, since=1005.0, until=1008.0) == [7, 6, 5]
        assert await _search(store, since=1005.0, until=1008.0, object_id="1") == [7, 5]
        assert await _search(store, since=1005.0, until=1008.0, limit=2) == [7, 6]
        assert await _search(store, since=1005.0, until=1008.0, before=6) == [5]
        assert await _search(store, since=2000.0) == []
        assert await _search(store, until=1000.0) == []


async def test_shared_keys_are_checked_and_the_page_still_fills(tmp_path: Path) -> None:
    """Item and occurrence ids that share an index key with many others are found exactly, and a page whose
    candidates were mostly others' still fills up from older ones."""
    ids = IdFactory()
    async with running_store(tmp_path / "t.db") as store:
        for seq in range(1, 61):  # all share one item key and one occurrence key
            items = [f"0190a4b2-7c3e-7000-8000-{seq:012d}"]
            wanted = seq % 10 == 0
            await store.add_delivery(
                _delivery(
                    ids, seq, 1000.0 + seq, items=items, event_ids=["ord-1" + ("00" if wanted else f"{seq:02d}")]
                ),
                False,
            )
        assert await _search(store, item_id="0190a4b2-7c3e-7000-8000-000000000017") == [17]
        assert await _search(store, item_id="0190a4b2-7c3e-7000-8000-000000000099") == []
        assert await _search(store, event_id="ord-100") == [60, 50, 40, 30, 20, 10]
        assert await _search(store, event_id="ord-100", limit=4) == [60, 50, 40, 30]
        assert await _search(store, event_id="ord-100", limit=4, before=30) == [20, 10]
        assert await _search(store, event_id="ord-100", item_id="0190a4b2-7c3e-7000-8000-000000000040") == [40]


async def test_odd_ids_are_found_and_the_index_goes_with_the_deliveries(tmp_path: Path) -> None:
    """Ids with a NUL, quotes or non-ASCII, integer and string object ids alike, are found; pruning a delivery takes
    its index rows with it, and a resend of a delivery is found by the same ids."""
    ids = IdFactory()
    odd = 'a"b\x00c\\é'
    async with running_store(tmp_path / "t.db") as store:
        first = _delivery(ids, 1, 1001.0, event_ids=[odd], object_ids=[4242, "4242", odd, None, True, 1.5, {"x": 1}])
        first.item_ids = ["i1"] * 7
        first.event_ids = [odd] * 7
        second = _delivery(ids, 2, 1002.0, event_ids=[odd + "d"], object_ids=["C-17"])
        for d in (first, second):
            await store.add_delivery(d, False)
        assert await _search(store, event_id=odd) == [1]
        assert await _search(store, event_id=odd + "d") == [2]
        assert await _search(store, object_id="4242") == [1]
        assert await _search(store, object_id="C-17") == [2]
        assert await _search(store, object_id="1.5") == []
        assert await _search(store, object_id="true") == []
        rec = await store.log.delivery(first.id)
        assert rec is not None
        assert rec["event_ids"] == [odd] * 7
        assert rec["object_ids"] == [4242, "4242", odd, None, True, 1.5, {"x": 1}]

        for d in (first, second):
            store.record(
                Outcome(delivery=d, n=1, started_at=d.created_at, duration_ms=1.0, status_code=200, error=None,
                        manual=False, state="succeeded", next_at=None, lightweight=False)
            )  # fmt: skip
        await store.drain()
        assert await store.prune(1001.5, {"w"}) == 1
        assert await _search(store, object_id="4242") == []
        assert await _search(store, event_id=odd) == []
        left = await store.run(
            lambda c: (
                sorted(r[0] for r in c.execute("SELECT DISTINCT seq FROM search")),
                sorted(r[0] for r in c.execute("SELECT DISTINCT seq FROM search_objects")),
            )
        )
        assert left == ([2], [2])


# The tables of hookd's schema 3 that schemas 4 and 5 changed, as it wrote them; the others are today's.
SCHEMA_3 = """
CREATE TABLE payloads (
    seq INTEGER PRIMARY KEY,  -- the delivery's
    item_ids TEXT NOT NULL,
    body BLOB  -- NULL once a lightweight-logs delivery has ended
);
CREATE TABLE attempts (
    delivery_seq INTEGER NOT NULL,
    n INTEGER NOT NULL,
    started_at REAL NOT NULL,
    duration_ms REAL NOT NULL,
    status_code INTEGER,
    error TEXT,
    manual INTEGER NOT NULL,
    PRIMARY KEY (delivery_seq, n)
) WITHOUT ROWID;
"""


def _schema_3_file(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_3)
    conn.executescript(SCHEMA)  # the tables schema 3 had already stay as they are
    conn.executescript("DROP TABLE search; DROP TABLE search_objects; PRAGMA user_version = 3;")
    conn.execute(
        "INSERT INTO deliveries (seq, id, message_id, webhook_id, state, created_at, attempts, status_code, items,"
        " events, triggers, lightweight, request, response) VALUES (5, 'dlv_5_abc', 'msg_1', 'w', 'failed', 1.0, 1,"
        " 500, 1, '[\"x.created\"]', '[\"t\"]', 0, ?, ?)",
        (orjson.dumps({"method": "POST", "url": "http://r/", "headers": {}}), orjson.dumps({"status": 500})),
    )
    conn.execute("INSERT INTO payloads (seq, item_ids, body) VALUES (5, '[\"i5\"]', x'7b7d')")
    conn.execute("INSERT INTO attempts VALUES (5, 1, 1.0, 2.0, 500, NULL, 0)")
    conn.commit()
    conn.close()


async def test_a_schema_3_store_gains_the_index_and_keeps_its_records(tmp_path: Path) -> None:
    """A store of schema 3 opens at the current schema: its records read as before (the last response kept on the row),
    they are not in the index, and new deliveries are."""
    path = tmp_path / "v3.db"
    _schema_3_file(path)
    ids = IdFactory()
    async with running_store(path) as store:
        assert await store.run(lambda c: c.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION == 6
        rec = await store.log.delivery("dlv_5_abc")
        assert rec is not None
        assert (rec["event_ids"], rec["object_ids"], rec["item_ids"]) == ([], [], ["i5"])
        assert rec["response"] == {"status": 500}
        assert [a["response"] for a in rec["attempt_log"]] == [None]
        assert await _search(store) == [5]
        assert await _search(store, item_id="i5") == []
        await store.add_delivery(_delivery(ids, 6, 2.0, object_ids=[77]), False)
        assert await _search(store, object_id="77") == [6]


async def test_spooled_items_keep_their_object_ids(tmp_path: Path) -> None:
    """A batched item's object id is stored with it, so a batch made after a restart is indexed by it; an item
    spooled by schema 4 (without it) gets it from its body."""
    path = tmp_path / "t.db"
    body = orjson.dumps({"id": "it-old", "event_id": "o-old", "object_id": "C-9"})
    async with running_store(path) as store:
        items = [
            Item(id=f"it-{n}", webhook_id="w", trigger="t", event="x.created", occurrence_id=f"o-{n}", body=b"{}",
                 batch_key="*", seq=1, pos=n, deadline=5.0, object_id=oid)
            for n, oid in enumerate([4242, "C-17", None])
        ]  # fmt: skip
        await store.ingest([], 1.0, [], [(0, i) for i in items])
        legacy = orjson.dumps([[0, "it-old", "t", "x.created", "o-old", 5.0, 1, len(body)]])
        await store.run(
            lambda c: (
                c.execute(
                    "INSERT INTO chunks (seq, webhook_id, batch_key, deadline, left, meta)"
                    " VALUES (2, 'w', '*', 5.0, 1, ?)",
                    (legacy,),
                ),
                c.execute("INSERT INTO chunk_bodies (seq, bodies) VALUES (2, ?)", (body,)),
            )
        )
    async with running_store(path) as store:
        (got,) = await store.batch_items_many([("w", "*", 10)])
        assert [(i.id, i.object_id) for i in got] == [
            ("it-0", 4242),
            ("it-1", "C-17"),
            ("it-2", None),
            ("it-old", "C-9"),
        ]


def test_a_rows_keys_and_object_ids_are_cut_out_of_its_ids_exactly() -> None:
    """by_seq finds each row's object ids and keys inside its ids whatever the ids hold: an occurrence id with
    ``,"o":`` in it, object ids that are objects with "o" and "k" keys."""
    ids = IdFactory()
    events = ['a,"o":[1],"k":["x"]', "b"]
    objects = [{"o": [2], "k": ["y"]}, 'c,"k":"z"']
    d = new_delivery(ids, 9, "w", b"[]", ["i1", "i2"], ["x.y"], ["t"], 1.0, event_ids=events, object_ids=objects)
    row = schema_row(d, False)
    keys, found = by_seq([row])
    assert orjson.loads(keys) == {"9": delivery_keys(["i1", "i2"], events, ["x.y"])}
    assert orjson.loads(found) == {"9": objects}
    assert orjson.loads(row.ids) == {"e": events, "o": objects, "k": orjson.loads(keys)["9"]}
