"""The store's packed writes: every row and every body byte lands as it was given."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import orjson
import pytest

from hookd.models import Delivery, IdFactory, Item, Occurrence
from hookd.store import Outcome, StoredWebhook
from hookd.store.schema import SCHEMA_VERSION
from tests.support import running_store

# Bodies the packing must carry exactly: empty, non-ASCII, quotes and backslashes, NUL,
# and bytes that are not UTF-8 at all.
BODIES = [b"", b'{"a":"\xc3\xa9\\"x"}', b"\x00\x01\xff", b"[" + b"1," * 5000 + b"1]", b'"\\u00e9"']


def _delivery(ids: IdFactory, seq: int, body: bytes, webhook_id: str = "w") -> Delivery:
    return Delivery(
        id=ids.delivery(seq), seq=seq, message_id=ids.make("msg"), webhook_id=webhook_id, body=body,
        item_ids=[f"i{seq}a", f"i{seq}b"], events=["x.created"], triggers=["t"], created_at=1000.0 + seq,
    )  # fmt: skip


def _occ(ids: IdFactory, oid: str | None) -> Occurrence:
    return Occurrence(
        id=oid or ids.make("evt"), event="x.created", timestamp="2026-11-29T07:00:00.000Z", object={"id": 1},
        action=None, linked=None, client_id=oid is not None,
    )  # fmt: skip


async def test_new_deliveries_keep_their_bodies_and_lists_exactly(tmp_path: Path) -> None:
    """Deliveries queued back to back share one commit and each reads back byte for byte."""
    ids = IdFactory()
    async with running_store(tmp_path / "t.db") as store:
        rows = [_delivery(ids, i + 1, body) for i, body in enumerate(BODIES)]
        futures = [store.add_delivery(d, lightweight=bool(i % 2)) for i, d in enumerate(rows)]
        assert len({id(f) for f in futures}) == 1  # one op, one commit
        await asyncio.gather(*futures)
        for d in rows:
            got = await store.delivery_by_seq(d.seq)
            assert got is not None
            assert (got.body, list(got.item_ids), list(got.events), got.message_id) == (
                d.body, list(d.item_ids), list(d.events), d.message_id
            )  # fmt: skip
        counts = await store.run(lambda c: c.execute("SELECT seq, items, lightweight FROM deliveries").fetchall())
        assert counts == [(i + 1, 2, i % 2) for i in range(len(BODIES))]


def _items(seq: int, key: str, n: int, start: int = 0) -> list[Item]:
    """``n`` items sharing chunk ``seq`` (one request, one key), bodies of every kind."""
    return [
        Item(id=f"{key}{seq}.{p}", webhook_id="w", trigger="t", event="x.created", occurrence_id=f"o{seq}.{p}",
             body=BODIES[p % len(BODIES)], batch_key=key, seq=seq, pos=p, deadline=5.0 + seq)
        for p in range(start, start + n)
    ]  # fmt: skip


def _seen(items: list[Item]) -> list[tuple[str, bytes, float, int, int]]:
    return [(i.id, i.body, i.deadline, i.seq, i.pos) for i in items]


async def test_a_request_s_items_share_a_chunk_and_batches_take_exactly_theirs(tmp_path: Path) -> None:
    """One request's items of a key are one row; a batch delivery takes exactly the items
    it carries, whatever their order, and a chunk leaves once all of it is taken."""
    ids = IdFactory()
    async with running_store(tmp_path / "t.db") as store:
        a, b = _items(1, "k", 6), _items(2, "other", 3)
        mixed = [a[0], b[0], a[1], a[2], b[1], a[3], b[2], a[4], a[5]]  # interleaved, as routing makes them
        await store.ingest([_occ(ids, None) for _ in mixed], 1.0, [], list(enumerate(mixed)))
        rows = await store.run(lambda c: c.execute("SELECT seq, batch_key, left FROM chunks ORDER BY seq").fetchall())
        assert rows == [(1, "k", 6), (2, "other", 3)]
        found = await store.batch_items_many([("w", "k", 100), ("w", "other", 2)])
        assert [_seen(f) for f in found] == [_seen(a), _seen(b[:2])]

        f1 = store.add_delivery(_delivery(ids, 1, b"[]"), False, [a[3], a[0], a[1]])
        f2 = store.add_delivery(_delivery(ids, 2, b"[]"), False, b)
        await asyncio.gather(f1, f2)
        found = await store.batch_items_many([("w", "k", 100), ("w", "other", 100)])
        assert [_seen(f) for f in found] == [_seen([a[2], a[4], a[5]]), []]
        left = await store.run(lambda c: c.execute("SELECT seq, left FROM chunks").fetchall())
        assert left == [(1, 3)]  # chunk 2 is gone, all of it taken
        batches = await store.open_batches()
        assert [(ob.webhook_id, ob.batch_key, ob.count, ob.deadline) for ob in batches] == [("w", "k", 3, 6.0)]


async def test_batch_reads_skip_taken_items_across_chunks_up_to_the_limit(tmp_path: Path) -> None:
    """A key's oldest items come first across chunks (requests), skipping those taken."""
    ids = IdFactory()
    async with running_store(tmp_path / "t.db") as store:
        first, second = _items(1, "k", 3), _items(2, "k", 3)
        for batch in (first, second):
            await store.ingest([_occ(ids, None) for _ in batch], 1.0, [], list(enumerate(batch)))
        await store.add_delivery(_delivery(ids, 1, b"[]"), False, first[:2])
        (got,) = await store.batch_items_many([("w", "k", 3)])
        assert _seen(got) == _seen([first[2], *second[:2]])


# The tables of hookd 0.1.0 (schema version 0) that later versions changed.
SCHEMA_0 = """
CREATE TABLE items (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, webhook_id TEXT NOT NULL,
    batch_key TEXT NOT NULL, trigger TEXT NOT NULL, event TEXT NOT NULL, occurrence_id TEXT NOT NULL,
    deadline REAL NOT NULL, body BLOB NOT NULL);
CREATE INDEX items_key ON items(webhook_id, batch_key, seq);
CREATE TABLE deliveries (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, message_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL, state TEXT NOT NULL, created_at REAL NOT NULL, next_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0, status_code INTEGER, error TEXT, duration_ms REAL,
    items INTEGER NOT NULL, item_ids TEXT NOT NULL, events TEXT NOT NULL, triggers TEXT NOT NULL,
    lightweight INTEGER NOT NULL, manual INTEGER NOT NULL DEFAULT 0, resend_of TEXT, finished_at REAL,
    body BLOB, request TEXT, response TEXT);
CREATE INDEX deliveries_webhook ON deliveries(webhook_id, state, seq);
"""


async def test_a_store_of_schema_0_is_migrated_with_its_items_and_deliveries(tmp_path: Path) -> None:
    """A store written by hookd 0.1.0 (an items row per item, bodies on deliveries rows)
    opens with its waiting items and its deliveries' bodies intact."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_0)
    conn.executemany(
        "INSERT INTO items VALUES (?,?,?,?,?,?,?,?,?)",
        [(n, f"i{n}", "w", "k", "t", "x.created", f"o{n}", 7.0 + n, BODIES[n % len(BODIES)]) for n in (3, 9)],
    )
    conn.execute(
        "INSERT INTO deliveries (seq, id, message_id, webhook_id, state, created_at, items, item_ids, events,"
        " triggers, lightweight, body) VALUES (5, 'dlv_5_abc', 'msg_1', 'w', 'retrying', 1.0, 2, ?, ?, ?, 0, ?)",
        (b'["i1","i2"]', b'["x.created"]', b'["t"]', BODIES[1]),
    )
    conn.commit()
    conn.close()
    async with running_store(path) as store:
        assert (store.counters.item_seq, store.counters.delivery_seq) == (9, 5)
        (got,) = await store.batch_items_many([("w", "k", 10)])
        assert [(i.id, i.body, i.deadline, i.seq) for i in got] == [
            ("i3", BODIES[3], 10.0, 3), ("i9", BODIES[4], 16.0, 9)
        ]  # fmt: skip
        batches = await store.open_batches()
        assert [(ob.batch_key, ob.count, ob.deadline) for ob in batches] == [("k", 2, 10.0)]
        d = await store.delivery_by_seq(5)
        assert d is not None
        assert (d.body, list(d.item_ids), list(d.events)) == (BODIES[1], ["i1", "i2"], ["x.created"])
        tables = await store.run(lambda c: [r[0] for r in c.execute("SELECT name FROM sqlite_master")])
        columns = await store.run(lambda c: [r[1] for r in c.execute("PRAGMA table_info(deliveries)")])
        assert "items" not in tables
        assert "body" not in columns
        assert "item_ids" not in columns
        assert await store.run(lambda c: c.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION


async def test_duplicates_are_found_within_a_request_and_across_requests(tmp_path: Path) -> None:
    """An application-chosen id repeated in one request, or seen by an earlier one, is a duplicate."""
    ids = IdFactory()
    async with running_store(tmp_path / "t.db") as store:
        first = [_occ(ids, "a"), _occ(ids, None), _occ(ids, "b"), _occ(ids, "a")]
        assert await store.ingest(first, 1.0, [], []) == {3}
        second = [_occ(ids, "c"), _occ(ids, "b"), _occ(ids, '"quoted\\"'), _occ(ids, "é")]
        # Both requests in one flush: the second sees the first's ids.
        r1, r2 = await asyncio.gather(store.ingest(second, 2.0, [], []), store.ingest([_occ(ids, "c")], 2.0, [], []))
        assert (r1, r2) == ({1}, {0})
        stored = await store.run(lambda c: sorted(r[0] for r in c.execute("SELECT id FROM occurrences")))
        assert stored == sorted(['"quoted\\"', "a", "b", "c", "é"])


async def test_outcomes_of_one_delivery_in_one_flush_fold_in_order(tmp_path: Path) -> None:
    """Two attempts queued together: both attempt rows land, each with its own response, the
    later state wins, and a request recorded by the first is not wiped by the second (which has none)."""
    ids = IdFactory()
    async with running_store(tmp_path / "t.db") as store:
        d = _delivery(ids, 1, b'{"x":1}')
        await store.add_delivery(d, lightweight=True)
        req = {"url": "http://r/", "headers": {"a": "é"}}
        store.record(
            Outcome(
                delivery=d, n=1, started_at=10.0, duration_ms=2.5, status_code=500, error="HTTP 500", manual=False,
                state="retrying", next_at=11.0, lightweight=True, request=req, response={"status": 500},
            )
        )  # fmt: skip
        store.record(
            Outcome(
                delivery=d, n=2, started_at=11.0, duration_ms=1.5, status_code=200, error=None, manual=False,
                state="succeeded", next_at=None, lightweight=True, request=None, response={"status": 200},
            )
        )  # fmt: skip
        await store.drain()
        row = await store.run(
            lambda c: c.execute(
                "SELECT state, attempts, status_code, error, finished_at, next_at, body, request, response"
                " FROM deliveries JOIN payloads USING (seq) WHERE seq = 1"
            ).fetchone()
        )
        state, attempts, status, error, finished, next_at, body, request, response = row
        assert (state, attempts, status, error, finished, next_at) == ("succeeded", 2, 200, None, 11.0, None)
        assert body is None  # lightweight: the body goes once the delivery is final
        assert orjson.loads(request) == req
        assert response is None  # each attempt's is on its own row
        tries = await store.run(lambda c: c.execute("SELECT n, status_code, error, response FROM attempts").fetchall())
        assert [(n, st, e, orjson.loads(r)) for n, st, e, r in tries] == [
            (1, 500, "HTTP 500", {"status": 500}), (2, 200, None, {"status": 200})
        ]  # fmt: skip


async def test_prune_stops_at_the_window_and_honours_its_limit(tmp_path: Path) -> None:
    """Prune takes finished deliveries oldest first, at most ``limit``, none inside the window."""
    ids = IdFactory()
    async with running_store(tmp_path / "t.db") as store:
        rows = [_delivery(ids, n, b"{}") for n in range(1, 8)]  # created at 1001 … 1007
        await asyncio.gather(*(store.add_delivery(d, False) for d in rows))
        for d in rows:
            store.record(
                Outcome(
                    delivery=d, n=1, started_at=d.created_at, duration_ms=1.0, status_code=200, error=None,
                    manual=False, state="succeeded", next_at=None, lightweight=False,
                )
            )  # fmt: skip
        await store.drain()
        assert await store.prune(1005.0, {"w"}, limit=3) == 3
        assert await store.prune(1005.0, {"w"}, limit=3) == 1
        assert await store.prune(1005.0, {"w"}, limit=3) == 0
        left = await store.run(lambda c: [r[0] for r in c.execute("SELECT seq FROM deliveries ORDER BY seq")])
        assert left == [5, 6, 7]
        attempts = await store.run(lambda c: [r[0] for r in c.execute("SELECT delivery_seq FROM attempts")])
        assert attempts == [5, 6, 7]


def _schema_0_file(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_0)
    conn.execute("INSERT INTO items VALUES (1, 'i1', 'w', 'k', 't', 'x.created', 'o1', 8.0, x'00')")
    conn.commit()
    conn.close()


async def test_a_failed_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    """When a migration step fails, nothing of it is kept and the store does not open."""
    path = tmp_path / "old.db"
    _schema_0_file(path)
    conn = sqlite3.connect(path)
    # A chunks row in the way of the migrated item's seq makes the copy fail.
    conn.executescript(
        "CREATE TABLE chunks (seq INTEGER PRIMARY KEY, webhook_id TEXT NOT NULL, batch_key TEXT NOT NULL,"
        " deadline REAL NOT NULL, left INTEGER NOT NULL, done TEXT NOT NULL DEFAULT '', meta TEXT NOT NULL,"
        " bodies BLOB NOT NULL); INSERT INTO chunks VALUES (1, 'w', 'k', 1.0, 1, '', '[]', x'');"
    )
    conn.close()
    with pytest.raises(sqlite3.IntegrityError):
        async with running_store(path):
            pass
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT id FROM items").fetchall() == [("i1",)]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    conn.close()


async def test_a_file_from_a_newer_hookd_is_refused(tmp_path: Path) -> None:
    """A schema version above this hookd's is an error at open, not a guess."""
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(OSError, match="schema version 99, written by a newer hookd"):
        async with running_store(path):
            pass


async def test_a_chunk_taken_in_several_batches_keeps_exact_count_even_if_an_item_is_taken_twice(
    tmp_path: Path,
) -> None:
    """Batches take one chunk's items over several commits; a position taken again is not
    counted again, so the chunk stays until its last item is taken."""
    ids = IdFactory()
    async with running_store(tmp_path / "t.db") as store:
        a = _items(1, "k", 5)
        await store.ingest([_occ(ids, None) for _ in a], 1.0, [], list(enumerate(a)))
        await store.add_delivery(_delivery(ids, 1, b"[]"), False, a[:2])
        await store.add_delivery(_delivery(ids, 2, b"[]"), False, [a[1], a[2], a[2]])  # a[1] again, a[2] twice
        (got,) = await store.batch_items_many([("w", "k", 10)])
        assert _seen(got) == _seen(a[3:])
        assert await store.run(lambda c: c.execute("SELECT left, done FROM chunks").fetchall()) == [(2, "0,1,2,")]
        await store.add_delivery(_delivery(ids, 3, b"[]"), False, a[3:])
        assert await store.run(lambda c: c.execute("SELECT count(*) FROM chunks").fetchone()[0]) == 0


async def test_one_flush_takes_from_fresh_and_partly_taken_chunks_counting_repeats_once(tmp_path: Path) -> None:
    """Deliveries of one flush take a fresh chunk whole (it goes), part of a fresh chunk and the rest of a chunk
    taken from before, each with a repeated item: every chunk's count and list of taken items stay exact."""
    ids = IdFactory()
    async with running_store(tmp_path / "t.db") as store:
        whole, part, rest = _items(1, "a", 3), _items(2, "b", 4), _items(3, "c", 3)
        for batch in (whole, part, rest):
            await store.ingest([_occ(ids, None) for _ in batch], 1.0, [], list(enumerate(batch)))
        await store.add_delivery(_delivery(ids, 1, b"[]"), False, [rest[0]])
        f1 = store.add_delivery(_delivery(ids, 2, b"[]"), False, [whole[2], whole[0], whole[2], whole[1]])
        f2 = store.add_delivery(_delivery(ids, 3, b"[]"), False, [part[3], part[1], part[3], rest[0], rest[2]])
        await asyncio.gather(f1, f2)
        rows = await store.run(lambda c: c.execute("SELECT seq, left, done FROM chunks ORDER BY seq").fetchall())
        assert rows == [(2, 2, "1,3,"), (3, 1, "0,2,")]
        found = await store.batch_items_many([("w", "a", 10), ("w", "b", 10), ("w", "c", 10)])
        assert [_seen(f) for f in found] == [[], _seen([part[0], part[2]]), _seen([rest[1]])]
        await store.add_delivery(_delivery(ids, 4, b"[]"), False, [part[0], part[2], rest[1], rest[1]])
        assert await store.run(lambda c: c.execute("SELECT count(*) FROM chunks").fetchone()[0]) == 0


async def test_empty_bodies_are_stored_as_empty_not_null(tmp_path: Path) -> None:
    """A statement whose bodies are all empty still stores empty bytes (substr of x'' is NULL)."""
    ids = IdFactory()
    async with running_store(tmp_path / "t.db") as store:
        items = [Item(id="e", webhook_id="w", trigger="t", event="x.created", occurrence_id="o", body=b"",
                      batch_key="k", seq=1, pos=0, deadline=1.0)]  # fmt: skip
        await store.ingest([_occ(ids, None)], 1.0, [], list(enumerate(items)))
        await store.add_delivery(_delivery(ids, 1, b""), False)
        (got,) = await store.batch_items_many([("w", "k", 10)])
        assert [i.body for i in got] == [b""]
        d = await store.delivery_by_seq(1)
        assert d is not None
        assert d.body == b""


async def test_ids_holding_nul_and_astral_characters_keep_every_character(tmp_path: Path) -> None:
    """SQLite's JSON functions cut strings at an escaped NUL: application ids that hold one
    must neither collide nor pass as new (idempotency), and items keep them whole."""
    ids = IdFactory()
    odd = ["\x00a", "\x00b", "x\x00y", "é\U0001f600"]
    async with running_store(tmp_path / "t.db") as store:
        occs = [_occ(ids, o) for o in odd]
        items = [
            Item(id=f"i{n}", webhook_id="w", trigger="t", event="x.created", occurrence_id=o, body=b"{}",
                 batch_key="k", seq=1, pos=n, deadline=1.0)
            for n, o in enumerate(odd)
        ]  # fmt: skip
        assert await store.ingest(occs, 1.0, [], list(enumerate(items))) == set()
        assert await store.ingest([_occ(ids, "\x00a"), _occ(ids, "\x00c")], 2.0, [], []) == {0}
        stored = await store.run(lambda c: sorted(r[0] for r in c.execute("SELECT id FROM occurrences")))
        assert stored == sorted([*odd, "\x00c"])
        (got,) = await store.batch_items_many([("w", "k", 10)])
        assert [i.occurrence_id for i in got] == odd


async def test_a_store_of_schema_3_gains_coalesced_item_ids(tmp_path: Path) -> None:
    """A store written before coalescing (schema 3: payloads without coalesced_item_ids) opens
    with the column added, its payloads intact, and keeps a coalesced batch's replaced ids."""
    path = tmp_path / "v3.db"
    ids = IdFactory()
    async with running_store(path) as store:
        await store.add_delivery(_delivery(ids, 1, BODIES[1]), False)
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE payloads DROP COLUMN coalesced_item_ids")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    async with running_store(path) as store:
        old = await store.delivery_by_seq(1)
        assert old is not None
        assert old.body == BODIES[1]
        d = _delivery(ids, 2, b"[]")
        d.coalesced = ["gone1", "gone2"]
        await store.add_delivery(d, False)
        rec = await store.log.delivery(d.id)
        assert rec is not None
        assert rec["coalesced_item_ids"] == ["gone1", "gone2"]
        first = await store.log.delivery(old.id)
        assert first is not None
        assert first["coalesced_item_ids"] == []
        assert await store.run(lambda c: c.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION


async def test_a_long_log_read_does_not_hold_up_a_commit(tmp_path: Path) -> None:
    """The admin API's reads run on a read connection of their own: while one is still reading, a write commits,
    and the read saw the log as it was when it began (one snapshot)."""

    reading, release = threading.Event(), threading.Event()

    def slow_read(conn: sqlite3.Connection) -> tuple[int, int]:
        before = conn.execute("SELECT count(*) FROM api_webhooks").fetchone()[0]
        reading.set()
        assert release.wait(10)
        after = conn.execute("SELECT count(*) FROM api_webhooks").fetchone()[0]
        return before, after

    async with running_store(tmp_path / "t.db") as store:
        read = asyncio.ensure_future(store.log._conn.run(slow_read))
        assert await asyncio.to_thread(reading.wait, 10)
        # Committed while the read is still under way: the writer's thread is free.
        await asyncio.wait_for(store.put_webhook(StoredWebhook("w", b"{}", "r1", 1.0, 1.0)), 5)
        assert not read.done()
        release.set()
        assert await read == (0, 0)
        assert await store.run(lambda c: c.execute("SELECT id FROM api_webhooks").fetchall()) == [("w",)]


async def test_a_spool_round_reads_every_key_s_oldest_items_exactly(tmp_path: Path) -> None:
    """One read of many keys gives each its own oldest items up to its limit, in arrival order, every body
    byte for byte, and nothing for a key with no items."""
    ids = IdFactory()
    keys = [f"k{n}" for n in range(40)] + ["é\U0001f600"]  # keys come from event names and trigger ids: no NUL
    wanted: dict[str, list[Item]] = {k: [] for k in keys}
    async with running_store(tmp_path / "t.db") as store:
        seq = 0
        for request in range(3):  # three requests, each a chunk per key, keys interleaved
            seq0 = seq
            batch: list[Item] = []
            for n, k in enumerate(keys):
                seq = seq0 + n + 1
                batch += _items(seq, k, 1 + (n + request) % 3)
            for i in batch:
                wanted[str(i.batch_key)].append(i)
            await store.ingest([_occ(ids, None) for _ in batch], 1.0, [], list(enumerate(batch)))
        limits = [(n % 5) + 1 for n in range(len(keys))]
        with_gone = [*zip(keys, limits, strict=True), ("missing", 3)]
        found = await store.batch_items_many([("w", k, limit) for k, limit in with_gone])
        expected = [_seen(wanted[k][:limit]) for k, limit in zip(keys, limits, strict=True)]
        assert [_seen(f) for f in found] == [*expected, []]
        assert await store.batch_items_many([]) == []
