"""Store writes that fail (a held write lock, a deleted file) and start-up that fails: nothing
accepted is lost or hidden, failed writes are retried, and nothing is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from hookd.app import App
from hookd.config import Config
from hookd.models import Delivery, IdFactory, Occurrence
from hookd.store import Outcome, StorageLost, Store
from hookd.store.writer import backoff, transient
from tests.fakeclock import FakeClock
from tests.support import Daemon, Receiver, ev, webhook
from tests.support import until as support_until

BUSY = 0.1  # the store's busy timeout in these tests: a held lock fails a write fast


class WriteLock:
    """A second connection that holds the database's write lock (``BEGIN IMMEDIATE``), as
    another process would."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, timeout=10)

    def take(self) -> None:
        """Hold the write lock."""
        self._conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        """Let go of it (if held)."""
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def close(self) -> None:
        """Release and close."""
        self.release()
        self._conn.close()


@contextlib.contextmanager
def write_lock(path: Path) -> Iterator[WriteLock]:
    """A WriteLock, taken for the block and closed after it."""
    lock = WriteLock(path)
    lock.take()
    try:
        yield lock
    finally:
        lock.close()


async def until(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll ``cond`` until it holds, failing after ``timeout`` seconds."""
    await support_until(cond, timeout=timeout)


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    """The captured log entries named ``name``."""
    return [e for e in logs if e["event"] == name]


@contextlib.asynccontextmanager
async def running_app(config_path: Path, busy_timeout: float = BUSY) -> AsyncIterator[tuple[App, Daemon]]:
    """An in-process App on ``config_path`` with a short busy timeout, and a client for its API."""
    app = App(Config.load(config_path), config_path)
    app.store.busy_timeout = busy_timeout
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(app.serve(stop))
    ready = asyncio.ensure_future(app.ready.wait())
    try:
        await asyncio.wait([task, ready], timeout=15, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if task.done():
            task.result()  # start-up failed: raise its error
        assert app.ready.is_set(), "the app did not start in time"
        yield app, Daemon(config_path, port=app.port or 0)
    finally:
        stop.set()
        async with asyncio.timeout(15):
            await task


async def counts(client: Daemon, webhook_id: str) -> dict[str, int]:
    """The webhook's delivery counts by state, as the API shows them."""
    code, body = await client.request("GET", f"/v1/webhooks/{webhook_id}")
    assert code == 200, body
    result: dict[str, int] = body["counts"]
    return result


async def pending_gauge(client: Daemon, webhook_id: str) -> float:
    """``hookd_pending_items{webhook=...}`` from /metrics."""
    code, text = await client.request("GET", "/metrics")
    assert code == 200
    m = re.search(rf'^hookd_pending_items{{webhook="{webhook_id}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


# -- pure parts ----------------------------------------------------------------------------


def test_backoff_doubles_from_a_tenth_of_a_second_up_to_five() -> None:
    """The wait before retrying a failed write doubles from 0.1 s with each failure and stops at 5 s."""
    assert [backoff(n) for n in range(1, 9)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert backoff(1000) == 5.0


def test_only_errors_that_can_pass_are_transient(tmp_path: Path) -> None:
    """A locked database is worth retrying; a bad statement (a bug) is not."""
    path = tmp_path / "t.db"
    with write_lock(path):
        other = sqlite3.connect(path, isolation_level=None, timeout=0.01)
        with pytest.raises(sqlite3.OperationalError) as locked:
            other.execute("CREATE TABLE t (x)")
        with pytest.raises(sqlite3.OperationalError) as bug:
            other.execute("INSERT INTO no_such_table VALUES (1)")
        other.close()
    assert transient(locked.value)
    assert not transient(bug.value)
    assert not transient(ValueError("x"))


# -- the store alone -------------------------------------------------------------------------


def _delivery(ids: IdFactory, seq: int) -> Delivery:
    return Delivery(
        id=ids.delivery(seq), seq=seq, message_id=ids.make("msg"), webhook_id="w", body=b"{}",
        item_ids=["i"], events=["e.x"], triggers=["t"], created_at=1000.0,
    )  # fmt: skip


@pytest.mark.parametrize("durability", ["process", "memory"])
async def test_writes_that_meet_a_held_lock_are_retried_with_doubling_waits_until_they_land(
    tmp_path: Path, durability: str
) -> None:
    """A new delivery, its outcome and a webhook's state, queued while another connection holds the
    write lock, stay queued and are retried after 0.1, 0.2 and 0.4 s of the injected clock; one error
    line for the streak, one recovery line, and every write lands."""
    clock = FakeClock()
    ids = IdFactory()
    store = Store(tmp_path / "t.db", durability, clock=clock, busy_timeout=0.05)
    await store.open()
    writer = asyncio.get_running_loop().create_task(store.writer())
    try:
        with capture_logs() as logs, write_lock(tmp_path / "t.db") as lock:
            d = _delivery(ids, 1)
            added = store.add_delivery(d, lightweight=False)
            store.record(
                Outcome(
                    delivery=d, n=1, started_at=1000.0, duration_ms=1.0, status_code=200, error=None,
                    manual=False, state="succeeded", next_at=None, lightweight=False,
                )
            )  # fmt: skip
            store.set_webhook_state("w", True, 3, 1000.0)
            t0 = clock.now()
            await until(lambda: store.failures == 1)
            assert clock.due() == [pytest.approx(t0 + 0.1)]
            clock.advance(0.1)
            await until(lambda: store.failures == 2)
            assert clock.due() == [pytest.approx(t0 + 0.3)]
            clock.advance(0.2)
            await until(lambda: store.failures == 3)
            assert clock.due() == [pytest.approx(t0 + 0.7)]
            assert not added.done()
            lock.release()
            clock.advance(0.4)
            async with asyncio.timeout(10):
                await added
            await until(lambda: store.failures == 0)
        failed = events(logs, "store_write_failed")
        assert len(failed) == 1
        assert failed[0]["log_level"] == "error"
        assert "locked" in failed[0]["error"]
        assert [e["log_level"] for e in events(logs, "store_write_recovered")] == ["info"]
        assert events(logs, "store_write_dropped") == []
        rows = await store.run(lambda c: c.execute("SELECT state, attempts FROM deliveries").fetchall())
        assert rows == [("succeeded", 1)]
        state = await store.run(lambda c: c.execute("SELECT disabled, failures FROM webhook_state").fetchall())
        assert state == [(1, 3)]
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        await store.close()


async def test_ingest_meeting_a_held_lock_fails_at_once_and_is_not_kept(tmp_path: Path) -> None:
    """An ingest commit that meets a held write lock raises (its client is answered 503 and retries),
    and is not written later behind the client's back."""
    store = Store(tmp_path / "t.db", "process", busy_timeout=0.05)
    await store.open()
    writer = asyncio.get_running_loop().create_task(store.writer())
    occ = Occurrence("evt_1", "e.x", "2026-11-29T07:00:00.000Z", {"id": 1}, None, None, True)
    try:
        with write_lock(tmp_path / "t.db"), pytest.raises(sqlite3.OperationalError):
            await store.ingest([occ], 1.0, [], [])
        await store.drain()
        assert await store.ingest([occ], 2.0, [], []) == set()  # not a duplicate: the first never landed
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        await store.close()


async def test_a_commit_into_a_deleted_database_is_not_acknowledged(tmp_path: Path) -> None:
    """Once the database file is deleted, the next group commit is not acknowledged: the ingest
    raises StorageLost, the store says it is lost, and storage_lost is logged with the path."""
    path = tmp_path / "t.db"
    store = Store(path, "process")
    await store.open()
    writer = asyncio.get_running_loop().create_task(store.writer())
    occ = [Occurrence(f"evt_{i}", "e.x", "2026-11-29T07:00:00.000Z", {"id": i}, None, None, True) for i in range(2)]
    try:
        assert await store.ingest(occ[:1], 1.0, [], []) == set()
        assert not store.lost
        with capture_logs() as logs:
            path.unlink()
            with pytest.raises(StorageLost):
                await store.ingest(occ[1:], 1.0, [], [])
            with pytest.raises(StorageLost):  # refused before any work once known
                await store.ingest(occ[1:], 1.0, [], [])
        assert store.lost
        (lost,) = events(logs, "storage_lost")
        assert (lost["log_level"], lost["path"]) == ("error", str(path))
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        await store.close()


async def test_a_replaced_database_file_is_noticed_by_the_background_check(tmp_path: Path) -> None:
    """A database file replaced by another (same path, another inode) is noticed by the periodic
    check without any write, on the injected clock."""
    path = tmp_path / "t.db"
    clock = FakeClock()
    store = Store(path, "process", clock=clock)
    await store.open()
    watch = asyncio.get_running_loop().create_task(store.watch())
    try:
        await asyncio.sleep(0)
        clock.advance(10)
        await asyncio.sleep(0)
        assert not store.lost
        path.unlink()
        path.write_bytes(b"")  # another file at the same path
        with capture_logs() as logs:
            clock.advance(10)
            await until(lambda: store.lost)
        assert [e["event"] for e in logs] == ["storage_lost"]
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        await store.close()


# -- the whole daemon, in process ---------------------------------------------------------------


async def test_a_batch_whose_delivery_cannot_be_committed_stays_pending_and_is_sent_after_the_lock_goes(
    tmp_path: Path, receiver: Receiver, make_config: Callable[..., Path]
) -> None:
    """A batch flushed while another process holds the write lock past the busy timeout is shown
    pending (API counts and hookd_pending_items) while its write is retried, then is committed and
    delivered once the lock is released; nothing is lost."""
    config = make_config([webhook("w", receiver.url + "/w", batching="any_event", batch_wait_seconds=0.3)])
    with capture_logs() as logs:
        async with running_app(config) as (app, client):
            code, _ = await client.send([ev(1), ev(2)])
            assert code == 202
            with write_lock(tmp_path / "hookd.db"):
                await until(lambda: bool(events(logs, "store_write_failed")))
                assert (await counts(client, "w"))["pending"] == 1
                assert await pending_gauge(client, "w") == 2
                await until(lambda: app.store.failures >= 2)  # retried, still failing, still shown
                assert (await counts(client, "w"))["pending"] == 1
                assert await pending_gauge(client, "w") == 2
                assert receiver.requests == []
            (got,) = await receiver.wait_for(1, "/w")
            assert [item["event_id"] for item in got.json()] == ["e1", "e2"]
            (done,) = await client.wait_deliveries("w", 1, state="succeeded")
            assert done["items"] == 2
            assert await pending_gauge(client, "w") == 0
    assert len(events(logs, "store_write_failed")) == 1
    assert len(events(logs, "store_write_recovered")) == 1
    assert events(logs, "batch_not_recorded") == []


async def test_an_outcome_that_cannot_be_written_is_retried_and_the_delivery_is_not_sent_again(
    tmp_path: Path, receiver: Receiver, make_config: Callable[..., Path]
) -> None:
    """A 200 whose outcome write meets a held write lock leaves the delivery shown as delivering (not
    pending, not re-attempted) until the write lands after the lock is released, as succeeded."""
    lock = WriteLock(tmp_path / "hookd.db")

    async def lock_then_ok(request: web.Request, n: int) -> web.StreamResponse:
        lock.take()  # before the answer, so the outcome's write meets it
        return web.json_response({"ok": True})

    receiver.behave["/w"] = lock_then_ok
    config = make_config([webhook("w", receiver.url + "/w")])
    try:
        with capture_logs() as logs:
            async with running_app(config) as (app, client):
                code, _ = await client.send([ev(1)])
                assert code == 202
                await receiver.wait_for(1, "/w")
                await until(lambda: app.store.failures >= 2)
                code, page = await client.request("GET", "/v1/webhooks/w/deliveries")
                assert [d["state"] for d in page["deliveries"]] == ["delivering"]
                shown = await counts(client, "w")
                assert (shown["delivering"], shown["pending"], shown["succeeded"]) == (1, 0, 0)
                lock.release()
                (done,) = await client.wait_deliveries("w", 1, state="succeeded")
                assert done["attempts"] == 1
                shown = await counts(client, "w")
                assert (shown["delivering"], shown["pending"], shown["succeeded"]) == (0, 0, 1)
                assert len(receiver.at("/w")) == 1
    finally:
        lock.close()
    assert len(events(logs, "store_write_failed")) == 1
    assert len(events(logs, "store_write_recovered")) == 1


async def test_a_stop_during_a_write_failure_streak_is_bounded_and_the_items_wait_for_the_next_start(
    tmp_path: Path, receiver: Receiver, make_config: Callable[..., Path]
) -> None:
    """Stopping while a batch's write keeps failing ends within the grace period, logs the writes it
    had to give up, and the batch's items are delivered by the next start."""
    config = make_config([webhook("w", receiver.url + "/w", batching="any_event", batch_wait_seconds=0.2)])
    lock = WriteLock(tmp_path / "hookd.db")
    try:
        with capture_logs() as logs:
            async with running_app(config) as (app, client):
                code, _ = await client.send([ev(1), ev(2)])
                assert code == 202
                lock.take()  # the ingest is committed; the batch's flush meets the lock
                await until(lambda: app.store.failures >= 1)
                started = asyncio.get_running_loop().time()
            assert asyncio.get_running_loop().time() - started < 6  # grace 2 s, plus two busy timeouts
    finally:
        lock.close()
    (abandoned,) = events(logs, "store_writes_abandoned")
    assert abandoned["log_level"] == "error"
    async with running_app(config):
        (got,) = await receiver.wait_for(1, "/w")
        assert [item["event_id"] for item in got.json()] == ["e1", "e2"]


async def test_signal_handlers_are_removed_when_the_store_fails_to_open(
    tmp_path: Path, make_config: Callable[..., Path]
) -> None:
    """When the store cannot be opened (a file from a newer hookd), serve raises and leaves none of
    its signal handlers installed."""
    config = make_config([])
    conn = sqlite3.connect(tmp_path / "hookd.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    app = App(Config.load(config), config)
    with pytest.raises(OSError, match="schema version 99"):
        await app.serve(asyncio.Event())
    loop = asyncio.get_running_loop()
    assert [loop.remove_signal_handler(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)] == [False] * 3
    assert not (tmp_path / "hookd.db.lock").exists() or _unlocked(tmp_path / "hookd.db.lock")


def _unlocked(path: Path) -> bool:
    """True when nobody holds ``path``'s lock (it can be taken and is let go again)."""
    import fcntl
    import os

    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True
