"""The database file under the real ``hookd run``: deleted while running, shared by two daemons."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.support import HOOKD, Daemon, Receiver, ev, webhook

DaemonFactory = Callable[..., Awaitable[Daemon]]


async def run_to_exit(config: Path, timeout: float = 15.0) -> tuple[int, list[dict[str, Any]]]:
    """Run ``hookd run -c config`` expecting it to exit by itself; its exit code and JSON lines."""
    proc = await asyncio.create_subprocess_exec(
        HOOKD, "run", "-c", str(config), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            with contextlib.suppress(Exception):
                await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, [json.loads(line) for line in out.decode().splitlines()]


async def test_a_deleted_database_is_noticed_at_the_next_commit(
    tmp_path: Path, receiver: Receiver, make_config: Callable[..., Path], daemon_factory: DaemonFactory
) -> None:
    """After the database file is deleted, the next ingest is answered 503 storage_unavailable (not
    202 into the unlinked file), /healthz answers 503, and storage_lost is logged with the path."""
    db = tmp_path / "hookd.db"
    d = await daemon_factory(make_config([webhook("w", receiver.url + "/w")]))
    code, _ = await d.send([ev(1)])
    assert code == 202
    db.unlink()
    code, body = await d.send([ev(2)])
    assert code == 503, body
    assert body["error"]["code"] == "storage_unavailable"
    assert isinstance(body["error"]["message"], str)
    code, body = await d.request("GET", "/healthz")
    assert code == 503
    assert body["error"]["code"] == "storage_unavailable"
    line = await d.wait_line("storage_lost")
    assert (line["level"], line["path"]) == ("error", str(db))
    code, body = await d.send([ev(3)])
    assert code == 503
    await receiver.wait_for(1, "/w")  # work accepted before still goes out
    assert await d.stop() == 0


async def test_a_deleted_database_is_noticed_without_any_traffic(
    tmp_path: Path, make_config: Callable[..., Path], daemon_factory: DaemonFactory
) -> None:
    """The background check notices a deleted database within a few seconds even when nothing is written."""
    d = await daemon_factory(make_config([]))
    (tmp_path / "hookd.db").unlink()
    line = await d.wait_line("storage_lost", timeout=10)
    assert line["path"] == str(tmp_path / "hookd.db")
    code, _ = await d.request("GET", "/healthz")
    assert code == 503


async def test_a_second_daemon_on_the_same_database_refuses_to_start(
    tmp_path: Path, receiver: Receiver, make_config: Callable[..., Path], daemon_factory: DaemonFactory
) -> None:
    """A second hookd run on a storage.path in use exits 1 with one start_failed line naming the
    database and the first daemon's pid; the first keeps delivering, alone."""
    config = make_config([webhook("w", receiver.url + "/w")])
    first = await daemon_factory(config)
    assert first.proc is not None
    code, lines = await run_to_exit(config)
    assert code == 1
    (line,) = lines
    assert line["event"] == "start_failed"
    assert str(tmp_path / "hookd.db") in line["error"]
    assert f"pid {first.proc.pid}" in line["error"]
    assert (tmp_path / "hookd.db.lock").read_text().strip() == str(first.proc.pid)
    code, _ = await first.send([ev(1)])
    assert code == 202
    await first.wait_deliveries("w", 1, state="succeeded")
    assert len(receiver.at("/w")) == 1


async def test_the_lock_goes_with_its_holder_even_after_kill_9(
    receiver: Receiver, make_config: Callable[..., Path], daemon_factory: DaemonFactory
) -> None:
    """A daemon killed with SIGKILL leaves its lock file behind but not its lock: the next one starts."""
    config = make_config([webhook("w", receiver.url + "/w")])
    first = await daemon_factory(config)
    await first.stop(signal.SIGKILL)
    second = await daemon_factory(config)
    code, _ = await second.send([ev(1)])
    assert code == 202
    await receiver.wait_for(1, "/w")


async def test_in_memory_databases_take_no_lock(
    tmp_path: Path, make_config: Callable[..., Path], daemon_factory: DaemonFactory
) -> None:
    """Daemons on storage.path = ":memory:" each have their own database: two run side by side."""
    config = make_config([], storage={"path": ":memory:"})
    first = await daemon_factory(config)
    second = await daemon_factory(config)
    for d in (first, second):
        code, _ = await d.request("GET", "/healthz")
        assert code == 200
    assert _lock_files(tmp_path, Path.cwd()) == []


def _lock_files(*folders: Path) -> list[Path]:
    """Lock files in ``folders``."""
    return [p for f in folders for p in f.glob("*.lock")]


# A separate process that takes the database's write lock, says so, and holds it until its stdin closes.
HOLD_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


async def test_a_batch_meeting_another_process_write_lock_stays_pending_and_goes_out_after(
    tmp_path: Path, receiver: Receiver, make_config: Callable[..., Path], daemon_factory: DaemonFactory
) -> None:
    """While another process holds the write lock past the busy timeout, a closing batch stays visible as
    pending and its write is retried; once the lock goes, the batch is committed and delivered, all items in it."""
    import sys

    hook = webhook("w", receiver.url + "/w", batching="any_event", batch_wait_seconds=0.3)
    d = await daemon_factory(make_config([hook]))
    code, _ = await d.send([ev(1), ev(2), ev(3)])
    assert code == 202
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_WRITE_LOCK, str(tmp_path / "hookd.db"),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert (await holder.stdout.readline()).strip() == b"locked"
        failed = await d.wait_line("store_write_failed", timeout=20)
        assert failed["level"] == "error"
        code, view = await d.request("GET", "/v1/webhooks/w")
        assert code == 200
        assert view["counts"]["pending"] == 1, view
        assert receiver.at("/w") == []
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        await holder.wait()
    await d.wait_line("store_write_recovered", timeout=20)
    (got,) = await receiver.wait_for(1, "/w")
    assert [item["event_id"] for item in got.json()] == ["e1", "e2", "e3"]
    (done,) = await d.wait_deliveries("w", 1, state="succeeded")
    assert done["items"] == 3
    assert await d.stop() == 0
