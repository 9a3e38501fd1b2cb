"""Recovery (SPEC §13) over a real store in tmp_path: the window, the order, the pages, the
bounds, and what each resend carries; the HTTP side is in test_e2e_recover.py."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest

from hookd.config import Config, Webhook
from hookd.models import Delivery, IdFactory, new_delivery
from hookd.recover import Recovery, RecoveryRunning, RecoveryStopped, Window
from hookd.store import Outcome, Store
from hookd.store.failed import SLACK_SECONDS
from tests.support import running_store

T = 1_800_000_000.0


def hook(lightweight: bool = False) -> Webhook:
    """The webhook ``w``."""
    (w,) = Config.model_validate(
        {"webhooks": [{"id": "w", "url": "https://example.com/w", "events": [{"id": "t", "on": "*"}],
                       "lightweight_logs": lightweight}]}
    ).webhooks  # fmt: skip
    return w


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A real store in tmp_path."""
    async with running_store(tmp_path / "r.db") as s:
        yield s


class Seeder:
    """Deliveries of webhook ``w`` written as the dispatcher writes them, each ending as told."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.ids = IdFactory()

    async def add(self, created_at: float, state: str, lightweight: bool = False, webhook_id: str = "w") -> Delivery:
        """One delivery created at ``created_at``, its one attempt leaving it ``state``."""
        seq = self.store.next_delivery_seq()
        body = orjson.dumps([{"n": seq}])
        d = new_delivery(self.ids, seq, webhook_id, body, [f"item{seq}"], ["x.y"], ["t"], created_at)
        if seq % 3 == 0:
            d.coalesced = [f"gone{seq}"]
        self.store.add_delivery(d, lightweight)
        if state != "pending":
            outcome = Outcome(d, 1, created_at, 1.0, 500 if state == "failed" else 200, None, False, state,
                              None, lightweight)  # fmt: skip
            self.store.record(outcome)
        await self.store.drain()
        return d


def recovery(store: Store, sent: list[Delivery], page: int = 3) -> Recovery:
    """A Recovery whose resends land in ``sent`` (the dispatcher's submit)."""
    return Recovery(store, sent.append, IdFactory(), lambda: T + 10_000, page=page)


async def test_failed_deliveries_of_the_window_are_resent_oldest_first(store: Store) -> None:
    """Only failed deliveries created in [since, until) are resent, in creation order and over
    several pages; lightweight ones are skipped; each resend carries its original's body,
    message id (webhook-id) and replaced items, and names the original."""
    seed = Seeder(store)
    await seed.add(T - 1, "failed")  # before the window
    wanted = []
    for n in range(10):
        d = await seed.add(T + n, "failed" if n % 4 else "succeeded")
        if n % 4:
            wanted.append(d)
    await seed.add(T + 10, "failed", lightweight=True)
    await seed.add(T + 11, "pending")
    await seed.add(T + 12, "failed", webhook_id="other")
    await seed.add(T + 20, "failed")  # at until: outside
    sent: list[Delivery] = []
    rec = recovery(store, sent)
    window = Window(T, T + 20)

    counted = await rec.count("w", window)
    assert (counted.would_resend, counted.skipped) == (len(wanted), 1)
    done = await rec.run(hook(), window)
    assert (done.resent, done.skipped) == (len(wanted), 1)

    assert [d.resend_of for d in sent] == [d.id for d in wanted]
    assert [d.message_id for d in sent] == [d.message_id for d in wanted]
    for new, old in zip(sent, wanted, strict=True):
        assert (new.manual, new.webhook_id) == (True, "w")
        assert new.seq > old.seq
        assert not new.loaded  # the lane holds it without its body ...
        assert await store.load(new)  # ... which the store gives back when its attempt comes
        assert (new.body, list(new.item_ids)) == (old.body, list(old.item_ids))
        rec_new = await store.log.delivery(new.id)
        assert rec_new is not None
        assert (rec_new["state"], rec_new["manual"], rec_new["resend_of"]) == ("pending", True, old.id)
        assert rec_new["coalesced_item_ids"] == list(old.coalesced)


async def test_resends_never_come_round_again(store: Store) -> None:
    """Resends that fail at once, inside the window and while the recovery still runs, are not
    resent by it again: it takes the deliveries that existed when it started."""
    seed = Seeder(store)
    originals = [await seed.add(T + n, "failed") for n in range(7)]
    sent: list[Delivery] = []

    def fail_at_once(d: Delivery) -> None:
        sent.append(d)
        store.record(Outcome(d, 1, T + 1, 1.0, 500, None, True, "failed", None, False))

    rec = Recovery(store, fail_at_once, IdFactory(), lambda: T + 2, page=2)
    done = await rec.run(hook(), Window(T, None))
    assert done.resent == 7
    assert [d.resend_of for d in sent] == [d.id for d in originals]
    # A second recovery of the same window resends the originals and the failed resends.
    await store.drain()
    again = await recovery(store, []).count("w", Window(T, None))
    assert again.would_resend == 14


async def test_one_recovery_per_webhook_at_a_time(store: Store) -> None:
    """A second recovery of a webhook while one runs is refused; once it ended, another may run."""
    seed = Seeder(store)
    for n in range(5):
        await seed.add(T + n, "failed")
    rec = recovery(store, [], page=1)
    first = asyncio.ensure_future(rec.run(hook(), Window(T, None)))
    await asyncio.sleep(0)  # the first has started
    with pytest.raises(RecoveryRunning):
        await rec.run(hook(), Window(T, None))
    assert (await first).resent == 5
    # The originals are still failed, so they go again (their resends are pending, not failed).
    assert (await rec.run(hook(), Window(T, None))).resent == 5


async def test_a_recovery_outlives_its_caller(store: Store) -> None:
    """Cancelling the caller (its HTTP client gone) leaves the recovery running to the end."""
    seed = Seeder(store)
    for n in range(6):
        await seed.add(T + n, "failed")
    sent: list[Delivery] = []
    rec = recovery(store, sent, page=1)
    caller = asyncio.ensure_future(rec.run(hook(), Window(T, None)))
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await rec._tasks.wait()
    assert len(sent) == 6


async def test_the_window_is_found_without_a_scan(store: Store) -> None:
    """window_seqs bounds the window's sequence range (with the slack for clock steps) even with
    gaps left by pruning, so reads never walk the deliveries before it."""
    seed = Seeder(store)
    made = [await seed.add(T + 100 * n, "failed") for n in range(50)]
    await store.run(lambda c: c.execute("DELETE FROM deliveries WHERE seq % 7 = 0"))
    kept = [d for d in made if d.seq % 7]
    lo, hi = await store.window_seqs(T + 1000, T + 2000)
    inside = [d.seq for d in kept if T + 1000 <= d.created_at < T + 2000]
    assert lo <= min(inside)
    assert hi > max(inside)
    # Only the slack's worth of rows lies outside the window on either side.
    assert all(d.created_at >= T + 1000 - SLACK_SECONDS - 100 for d in kept if d.seq >= lo)
    assert all(d.created_at < T + 2000 + SLACK_SECONDS + 100 for d in kept if d.seq < hi)
    assert await store.window_seqs(T + 10**6, None) == (made[-1].seq + 1, 1 << 62)
    assert (await store.window_seqs(0, T - 10**6))[1] == made[0].seq


@contextlib.contextmanager
def daemon_gc() -> Iterator[None]:
    """The collector set as ``hookd run`` sets it (start-up objects frozen, collections rarer),
    put back afterwards: with the test runner's defaults, full collections over 100,000 queued
    deliveries would be what stalls the loop, not the recovery."""
    saved = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*saved)
        gc.unfreeze()


async def test_a_recovery_of_100000_deliveries_leaves_the_loop_free(store: Store) -> None:
    """100,000 failed deliveries are resent in pages: the loop never stalls for long, and every
    resend is committed before it is handed on."""
    n = 100_000

    def seed(conn: sqlite3.Connection) -> None:
        rows = "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?)"
        conn.execute(
            rows + " INSERT INTO deliveries (seq, id, message_id, webhook_id, state, created_at, items, events,"
            " triggers, lightweight) SELECT i, 'dlv_' || i || '_seed00', 'msg_' || i, 'w', 'failed',"
            " ? + i * 0.001, 1, '[\"x.y\"]', '[\"t\"]', 0 FROM k",
            (n, T),
        )
        conn.execute(
            rows + " INSERT INTO payloads (seq, item_ids, body) SELECT i, '[\"i' || i || '\"]', '[{\"n\":' || i || '}]'"
            " FROM k",
            (n,),
        )

    seeded = store.submit(seed, wait=True)
    assert seeded is not None
    await seeded
    store.counters.delivery_seq = n
    sent: list[Delivery] = []
    rec = Recovery(store, sent.append, IdFactory(), time.time)
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    with daemon_gc():
        tick = asyncio.ensure_future(ticker())
        started = time.perf_counter()
        done = await rec.run(hook(), Window(T, None))
        took = time.perf_counter() - started
        stop.set()
        await tick
    assert done.resent == n
    assert [d.resend_of for d in sent[:3]] == ["dlv_1_seed00", "dlv_2_seed00", "dlv_3_seed00"]
    assert sent[-1].resend_of == f"dlv_{n}_seed00"
    pending = await store.run(lambda c: c.execute("SELECT count(*) FROM deliveries WHERE state = 'pending'").fetchone())
    assert pending == (n,)
    # A page of 500 resends holds the loop about 20 ms (measured), then it is free again. The
    # bound is loose for a shared machine; one page of 100,000 would stall it for seconds.
    assert max(gaps) < 0.15, (sorted(gaps)[-5:], took)


async def test_a_stop_cuts_a_recovery_short_and_says_so(store: Store) -> None:
    """Stopping the recoveries (the App's stop) ends one under way; its caller is told it was
    stopped, and the resends made so far are pending in the store."""
    seed = Seeder(store)
    for n in range(6):
        await seed.add(T + n, "failed")
    first = asyncio.Event()
    rec = Recovery(store, lambda d: first.set(), IdFactory(), lambda: T + 10_000, page=1)
    caller = asyncio.ensure_future(rec.run(hook(), Window(T, None)))
    async with asyncio.timeout(10):
        await first.wait()  # one page is made and handed on
    await rec.stop()
    with pytest.raises(RecoveryStopped):
        await caller
    await store.drain()
    pending = await store.run(lambda c: c.execute("SELECT count(*) FROM deliveries WHERE state = 'pending'").fetchone())
    assert 1 <= pending[0] < 6
