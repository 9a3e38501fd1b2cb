"""Bodies written once (schema 6): a batch's payload refers to its items' bytes in their
chunks, every reader gets the same body as before, and the bytes live exactly as long as
waiting items or payloads need them."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import orjson

from hookd.models import Delivery, IdFactory, Item, Occurrence
from hookd.payloads import batch_body
from hookd.store import Outcome
from hookd.store.bodies import runs
from hookd.store.schema import SCHEMA_VERSION, chunk_rows, taken
from tests.support import running_store

BODIES = [b'{"a":1}', b'{"b":"\xc3\xa9,\\"]"}', b"{}", b'{"d":[1,2,3]}', b'{"e":null}']


def _items(seq: int, n: int, key: str = "*", skip: frozenset[int] = frozenset()) -> list[Item]:
    """``n`` items of chunk ``seq`` placed as ingest's plan places them (each body followed by
    a comma); those at ``skip`` (duplicates) keep their place but are left out."""
    out, start = [], 1
    for p in range(n):
        body = BODIES[p % len(BODIES)]
        if p not in skip:
            out.append(Item(f"i{seq}.{p}", "w", "t", "x.created", f"o{seq}.{p}", body, key, seq, p, 5.0, p, start))
        start += len(body) + 1
    return out


def _occ(ids: IdFactory) -> Occurrence:
    return Occurrence(ids.make("evt"), "x.created", "2026-11-29T07:00:00.000Z", {"id": 1}, None, None, False)


def _batch(ids: IdFactory, seq: int, items: list[Item], created: float = 1000.0) -> Delivery:
    return Delivery(
        id=ids.delivery(seq), seq=seq, message_id=ids.make("msg"), webhook_id="w",
        body=batch_body([i.body for i in items]), item_ids=[i.id for i in items], events=["x.created"],
        triggers=["t"], created_at=created,
    )  # fmt: skip


async def _ingest(store: object, ids: IdFactory, items: list[Item]) -> None:
    await store.ingest([_occ(ids) for _ in items], 1.0, [], list(enumerate(items)))  # type: ignore[attr-defined]


def _ended(d: Delivery, state: str, at: float, lightweight: bool = False) -> Outcome:
    code = 200 if state == "succeeded" else 500
    return Outcome(d, 1, at, 1.0, code, None, False, state, None, lightweight)


def _count(conn: sqlite3.Connection, table: str) -> int:
    n: int = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return n


def test_runs_join_neighbours_of_one_chunk_and_nothing_else() -> None:
    """Items that follow each other in one chunk are one range; a gap (a duplicate left out),
    another chunk, another order or an item with no stored place each start a new one."""
    a = _items(1, 5, skip=frozenset({3}))
    b = _items(2, 2)
    got = orjson.loads(runs([*a[:3], a[3], *b, a[0]]) or b"")
    l0, l1, l2, l4 = (len(BODIES[p]) for p in (0, 1, 2, 4))
    assert got == [
        [1, 1, l0 + 1 + l1 + 1 + l2],  # items 0..2, commas included
        [1, a[3].start, l4],  # item 4: item 3 (a duplicate) lies between
        [2, 1, l0 + 1 + l1],
        [1, 1, l0],
    ]
    loose = Item("x", "w", "t", "x.created", "o", b"{}", "*")  # no chunk: the payload keeps its bytes
    assert runs([a[0], loose]) is None


def _reference_runs(items: list[Item]) -> list[list[int]]:
    out: list[list[int]] = []
    for i in items:
        if out and out[-1][0] == i.seq and out[-1][1] + out[-1][2] + 1 == i.start:
            out[-1][2] += len(i.body) + 1
        else:
            out.append([i.seq, i.start, len(i.body)])
    return out


def test_runs_fast_path_agrees_with_the_item_by_item_walk() -> None:
    """Every subset and order of a chunk's items (gaps, repeats, reversals) and of two chunks
    gets the same ranges from runs() as from a plain walk, so the one-chunk shortcut never
    joins what is not contiguous; and the ranges cut out of the chunk's bytes give the body."""
    rng = random.Random(17)
    chunk = _items(1, 9)
    other = _items(2, 3)
    stored = {1: b"".join(i.body + b"," for i in chunk), 2: b"".join(i.body + b"," for i in other)}
    for _ in range(2000):
        picked = rng.sample(chunk, rng.randint(1, len(chunk)))
        if rng.random() < 0.5:
            picked.sort(key=lambda i: i.pos)
        if rng.random() < 0.1:
            picked.append(picked[0])
        if rng.random() < 0.2:
            picked += other[: rng.randint(1, 3)]
        got = orjson.loads(runs(picked) or b"")
        assert got == _reference_runs(picked)
        body = b"[" + b",".join(stored[c][a - 1 : a - 1 + n] for c, a, n in got) + b"]"
        assert body == batch_body([i.body for i in picked])


def test_a_chunk_row_is_the_same_by_either_path() -> None:
    """A request's items back to back (the path made with map()) and the same with one left
    out (item by item, its place as spaces) give the meta and bytes the layout promises."""
    whole = _items(1, 7)
    gapped = _items(1, 7, skip=frozenset({2}))
    for items in (whole, gapped):
        (row,) = chunk_rows(items)
        meta = orjson.loads(row.meta)
        assert [m[6:8] for m in meta] == [[i.start, len(i.body)] for i in items]
        assert [m[:6] + m[8:] for m in meta] == [
            [i.pos, i.id, i.trigger, i.event, i.occurrence_id, i.deadline, i.object_id] for i in items
        ]
        assert (row.seq, row.left, row.deadline, row.batch_key) == (1, len(items), 5.0, "*")
        for i in items:
            assert row.bodies[i.start - 1 : i.start + len(i.body)] == i.body + b","
    (row,) = chunk_rows(gapped)
    hole = whole[2]
    assert row.bodies[hole.start - 1 : hole.start + len(hole.body)] == b" " * (len(hole.body) + 1)
    assert chunk_rows(whole)[0].bodies == b"".join(i.body + b"," for i in whole)
    assert taken(3, [4, 1, 4]) == (3, 2, "1,4,", [1, 4])


async def test_a_batch_refers_to_its_chunks_and_reads_back_exactly(tmp_path: Path) -> None:
    """A batch over two chunks, one with a duplicate's gap, and a coalesced batch in another
    order: no payload holds a body, each reads back byte for byte (the attempt's reload,
    the log's view, a failed page for recover and resend), and the chunks' bytes outlive
    their chunks rows while payloads need them."""
    ids = IdFactory()
    async with running_store(tmp_path / "t.db") as store:
        first, second = _items(1, 6, skip=frozenset({2})), _items(2, 4)
        await _ingest(store, ids, first)
        await _ingest(store, ids, second)
        one = [*first[:3], *second[:2]]
        two = [second[3], first[4], first[3], second[2]]  # coalesced: its own order
        d1, d2 = _batch(ids, 1, one), _batch(ids, 2, two)
        f1 = store.add_delivery(d1, False, one, body_items=one)
        f2 = store.add_delivery(d2, False, [*two, first[-1]], body_items=two)
        await asyncio.gather(f1, f2)

        def stored(c: sqlite3.Connection) -> list[tuple[int, bytes | None, str | None]]:
            return c.execute("SELECT seq, body, parts FROM payloads ORDER BY seq").fetchall()

        rows = await store.run(stored)
        assert [(seq, body, parts is not None) for seq, body, parts in rows] == [(1, None, True), (2, None, True)]
        assert await store.run(lambda c: _count(c, "chunks")) == 0  # every item taken
        assert await store.run(lambda c: _count(c, "chunk_bodies")) == 2  # still referred to
        for d in (d1, d2):
            got = await store.delivery_by_seq(d.seq)
            assert got is not None
            assert got.body == d.body
            rec = await store.log.delivery(d.id)
            assert rec is not None
            assert rec["body"] == d.body
            reloaded = Delivery(id=d.id, seq=d.seq, message_id="m", webhook_id="w", body=b"", item_ids=(),
                                events=(), triggers=(), created_at=0.0, loaded=False)  # fmt: skip
            assert await store.load(reloaded)
            assert reloaded.body == d.body
        for d in (d1, d2):
            await store.record(_ended(d, "failed", 1001.0, False))
        page = await store.failed("w", 0.0, None, 0, 1 << 62, 10, True)
        assert [f.body for f in page] == [d1.body, d2.body]
        delivery_view = await store.log.delivery(d1.id)
        assert delivery_view is not None
        assert delivery_view["body"] == d1.body

        # Pruning the first delivery leaves both chunks' bytes: the second refers to both.
        assert await store.prune(1001.5, {"w"}, limit=1) == 1
        assert await store.run(lambda c: _count(c, "chunk_bodies")) == 2
        assert (await store.delivery_by_seq(2)) is None  # ended (failed), still readable in the log
        rec2 = await store.log.delivery(d2.id)
        assert rec2 is not None
        assert rec2["body"] == d2.body
        assert await store.prune(1001.5, {"w"}) == 1
        assert await store.run(lambda c: (_count(c, "chunk_bodies"), _count(c, "body_refs"))) == (0, 0)


async def test_bytes_go_when_nothing_needs_them(tmp_path: Path) -> None:
    """A lightweight-logs batch drops its body at its end, and with it the chunk's bytes once
    no waiting item needs them; a chunk whose items were all coalesced away or sent alone
    leaves no bytes behind; a partly taken chunk keeps its bytes for the rest."""
    ids = IdFactory()
    async with running_store(tmp_path / "t.db") as store:
        a, b = _items(1, 4), _items(2, 2)
        await _ingest(store, ids, a)
        await _ingest(store, ids, b)
        d = _batch(ids, 1, a[:2])
        await store.add_delivery(d, True, a[:2], body_items=a[:2])
        # b's items leave in a delivery that carries its own body (no body_items).
        await store.add_delivery(_batch(ids, 2, b), False, b)
        assert await store.run(lambda c: c.execute("SELECT seq FROM chunk_bodies").fetchall()) == [(1,)]
        await store.record(_ended(d, "succeeded", 1001.0, True))
        # Chunk 1 still has two items waiting: its bytes stay, and those items read back.
        assert await store.run(lambda c: _count(c, "chunk_bodies")) == 1
        (rest,) = await store.batch_items_many([("w", "*", 10)])
        assert [(i.id, i.body, i.start) for i in rest] == [(i.id, i.body, i.start) for i in a[2:]]
        d3 = _batch(ids, 3, rest)
        await store.add_delivery(d3, True, rest, body_items=rest)
        got = await store.delivery_by_seq(3)
        assert got is not None
        assert got.body == d3.body
        await store.record(_ended(d3, "succeeded", 1002.0, True))
        assert await store.run(lambda c: (_count(c, "chunk_bodies"), _count(c, "body_refs"))) == (0, 0)


async def test_a_range_whose_bytes_are_gone_keeps_the_body_in_the_payload(tmp_path: Path) -> None:
    """Never expected, guarded anyway: a batch referring to a chunk whose bytes are gone is
    written with its own copy of the body instead."""
    ids = IdFactory()
    async with running_store(tmp_path / "t.db") as store:
        a = _items(1, 3)
        await _ingest(store, ids, a)
        await store.run(lambda c: c.execute("DELETE FROM chunk_bodies"))
        d = _batch(ids, 1, a)
        await store.add_delivery(d, False, a, body_items=a)
        assert await store.run(lambda c: c.execute("SELECT body, parts FROM payloads").fetchall()) == [(d.body, None)]
        got = await store.delivery_by_seq(1)
        assert got is not None
        assert got.body == d.body


# Schema 5's chunks, payloads and deliveries, as hookd wrote them before chunk_bodies (the
# other tables have not changed since; the schema's CREATE IF NOT EXISTS makes them).
SCHEMA_5 = """
CREATE TABLE chunks (seq INTEGER PRIMARY KEY, webhook_id TEXT NOT NULL, batch_key TEXT NOT NULL,
    deadline REAL NOT NULL, left INTEGER NOT NULL, done TEXT NOT NULL DEFAULT '', meta TEXT NOT NULL,
    bodies BLOB NOT NULL);
CREATE INDEX chunks_key ON chunks(webhook_id, batch_key, seq);
CREATE TABLE payloads (seq INTEGER PRIMARY KEY, item_ids TEXT NOT NULL, body BLOB,
    coalesced_item_ids TEXT, ids TEXT);
CREATE TABLE deliveries (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, message_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL, state TEXT NOT NULL, created_at REAL NOT NULL, next_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0, status_code INTEGER, error TEXT, duration_ms REAL,
    items INTEGER NOT NULL, events TEXT NOT NULL, triggers TEXT NOT NULL, lightweight INTEGER NOT NULL,
    manual INTEGER NOT NULL DEFAULT 0, resend_of TEXT, finished_at REAL, request TEXT, response TEXT);
CREATE INDEX deliveries_webhook ON deliveries(webhook_id, state, seq);
PRAGMA user_version = 5;
"""


def _schema_5_file(path: Path) -> list[bytes]:
    """A schema 5 file: a chunk of three items (bodies back to back, no commas) with the
    first taken, and a batch delivery holding its body."""
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_5)
    meta, start = [], 1
    for p, body in enumerate(BODIES[:3]):
        meta.append([p, f"old{p}", "t", "x.created", f"occ{p}", 5.0, start, len(body), p])
        start += len(body)
    conn.execute(
        "INSERT INTO chunks VALUES (7, 'w', '*', 5.0, 2, '0,', ?, ?)", (orjson.dumps(meta), b"".join(BODIES[:3]))
    )
    conn.execute(
        "INSERT INTO deliveries (seq, id, message_id, webhook_id, state, created_at, items, events, triggers,"
        " lightweight) VALUES (3, 'dlv_3_abc', 'msg_3', 'w', 'pending', 1.0, 1, '[\"x.created\"]', '[\"t\"]', 0)"
    )
    conn.execute(
        "INSERT INTO payloads (seq, item_ids, body, ids) VALUES (3, '[\"old0\"]', ?, ?)",
        (batch_body(BODIES[:1]), b'{"e":["occ0"],"o":[0],"k":[]}'),
    )
    conn.commit()
    conn.close()
    return BODIES[:3]


async def test_a_store_of_schema_5_is_migrated_with_its_chunks_and_payloads(tmp_path: Path) -> None:
    """A schema 5 file (chunks holding their bodies, payloads holding theirs) opens at schema 6:
    its waiting items read back with their bodies, a batch of them refers to the migrated
    bytes (one range per item: no commas between them) and reads back exactly, and the old
    payload keeps its body."""
    path = tmp_path / "v5.db"
    bodies = _schema_5_file(path)
    ids = IdFactory()
    async with running_store(path) as store:
        assert await store.run(lambda c: c.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION == 6
        columns = await store.run(lambda c: [r[1] for r in c.execute("PRAGMA table_info(chunks)")])
        assert "bodies" not in columns
        old = await store.delivery_by_seq(3)
        assert old is not None
        assert old.body == batch_body(bodies[:1])
        (waiting,) = await store.batch_items_many([("w", "*", 10)])
        assert [(i.id, i.body) for i in waiting] == [("old1", bodies[1]), ("old2", bodies[2])]
        assert orjson.loads(runs(waiting) or b"") == [[7, w.start, len(w.body)] for w in waiting]
        d = _batch(ids, 4, waiting)
        await store.add_delivery(d, False, waiting, body_items=waiting)
        got = await store.delivery_by_seq(4)
        assert got is not None
        assert got.body == d.body == batch_body(bodies[1:])
        # The chunk is gone (all taken); its bytes stay for the payload that refers to them.
        assert await store.run(lambda c: (_count(c, "chunks"), _count(c, "chunk_bodies"))) == (0, 1)
