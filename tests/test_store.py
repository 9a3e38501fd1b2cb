"""The store's packed writes: every row and every body byte lands as it was given."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from test_batcher import running_store

from hookd.models import Delivery, IdFactory, Item, Occurrence
from hookd.store import Outcome

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


async def test_a_new_batch_delivery_removes_exactly_its_items(tmp_path: Path) -> None:
    """The items a batch consumed leave the spool in the same commit; the others stay."""
    ids = IdFactory()
    async with running_store(tmp_path / "t.db") as store:
        items = [
            Item(id=f"it{n}", webhook_id="w", trigger="t", event="x.created", occurrence_id=f"o{n}",
                 body=BODIES[n % len(BODIES)], batch_key="*", seq=n, deadline=5.0 + n)
            for n in range(1, 11)
        ]  # fmt: skip
        occs = [_occ(ids, None) for _ in items]
        await store.ingest(occs, 1.0, [], list(enumerate(items)))
        found = await store.batch_items_many([("w", "*", 100)])
        assert [(i.id, i.body, i.deadline) for i in found[0]] == [(i.id, i.body, i.deadline) for i in items]
        f1 = store.add_delivery(_delivery(ids, 1, b"[]"), False, [1, 2, 3])
        f2 = store.add_delivery(_delivery(ids, 2, b"[]"), False, [5])
        await asyncio.gather(f1, f2)
        left = await store.run(lambda c: [r[0] for r in c.execute("SELECT seq FROM items ORDER BY seq")])
        assert left == [4, 6, 7, 8, 9, 10]


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
    """Two attempts queued together: both attempt rows land, the later state wins, and a
    request recorded by the first is not wiped by the second (which has none)."""
    ids = IdFactory()
    async with running_store(tmp_path / "t.db") as store:
        d = _delivery(ids, 1, b'{"x":1}')
        await store.add_delivery(d, lightweight=True)
        req = {"url": "http://r/", "headers": {"a": "é"}}
        store.record(Outcome(d, 1, 10.0, 2.5, 500, "HTTP 500", False, "retrying", 11.0, True, req, {"status": 500}))
        store.record(Outcome(d, 2, 11.0, 1.5, 200, None, False, "succeeded", None, True, None, {"status": 200}))
        await store.drain()
        row = await store.run(
            lambda c: c.execute(
                "SELECT state, attempts, status_code, error, finished_at, next_at, body, request, response"
                " FROM deliveries WHERE seq = 1"
            ).fetchone()
        )
        state, attempts, status, error, finished, next_at, body, request, response = row
        assert (state, attempts, status, error, finished, next_at) == ("succeeded", 2, 200, None, 11.0, None)
        assert body is None  # lightweight: the body goes once the delivery is final
        assert orjson.loads(request) == req
        assert orjson.loads(response) == {"status": 200}
        tries = await store.run(lambda c: c.execute("SELECT n, status_code, error FROM attempts").fetchall())
        assert tries == [(1, 500, "HTTP 500"), (2, 200, None)]


async def test_prune_stops_at_the_window_and_honours_its_limit(tmp_path: Path) -> None:
    """Prune takes finished deliveries oldest first, at most ``limit``, none inside the window."""
    ids = IdFactory()
    async with running_store(tmp_path / "t.db") as store:
        rows = [_delivery(ids, n, b"{}") for n in range(1, 8)]  # created at 1001 … 1007
        await asyncio.gather(*(store.add_delivery(d, False) for d in rows))
        for d in rows:
            store.record(Outcome(d, 1, d.created_at, 1.0, 200, None, False, "succeeded", None, False))
        await store.drain()
        assert await store.prune(1005.0, {"w"}, limit=3) == 3
        assert await store.prune(1005.0, {"w"}, limit=3) == 1
        assert await store.prune(1005.0, {"w"}, limit=3) == 0
        left = await store.run(lambda c: [r[0] for r in c.execute("SELECT seq FROM deliveries ORDER BY seq")])
        assert left == [5, 6, 7]
        attempts = await store.run(lambda c: [r[0] for r in c.execute("SELECT delivery_seq FROM attempts")])
        assert attempts == [5, 6, 7]
