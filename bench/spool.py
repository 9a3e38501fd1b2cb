#!/usr/bin/env python3
"""The spool round, timed directly: ``python bench/spool.py [--keys N] [--items K] [--runs R]``.

No daemon: a store in a temp dir holds N spooled keys (default 10,000) of K items each
(default 1, as figure 4's spool run), written through the store's own ingest in requests
of 100 items. Two timings, each with the event loop idle and with it busy (a task that
holds the GIL in 2 ms slices, as a daemon serving ingest and deliveries does):

- **read**: ``Store.batch_items_many`` for every key at once, what one spool round awaits
  (the read only: it takes nothing, so it runs R times over the same store);
- **round**: a ``Batcher`` with every key due, from the flush until every delivery is
  handed on (its row committed): the read, the batches built, their rows written. A round
  takes its items, so each run builds the store again (R // 4 runs, at least 3).

Prints p50 / p99 / max in ms. The daemon's settings are applied as ``hookd run`` applies
them (switch interval, GC thresholds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hookd.batcher import Batcher
from hookd.clock import LoopClock
from hookd.config import Config
from hookd.models import Delivery, IdFactory, Item, Occurrence
from hookd.store import Store

WEBHOOK = "spool"
REQUEST = 100  # items per ingest request, as the bench posts them


def body(n: int) -> bytes:
    """An item body the size of the bench's events (about 300 bytes)."""
    return orjson.dumps(
        {
            "event": f"bench.k{n}", "event_id": f"evt_{n:012d}", "timestamp": "2026-12-02T03:00:00.000Z",
            "object_id": n, "object": {"id": n, "summary": f"ticket {n} " + "x" * 120, "status": "open"},
        }
    )  # fmt: skip


@contextlib.asynccontextmanager
async def running(path: Path) -> AsyncIterator[Store]:
    """A store on ``path`` with its writer task, closed at the end."""
    store = Store(path, "process")
    await store.open()
    writer = asyncio.get_running_loop().create_task(store.writer())
    try:
        yield store
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        await store.close()


async def build(store: Store, keys: int, per_key: int) -> None:
    """Fill ``store`` with ``keys`` spooled keys of ``per_key`` items each."""
    ids = IdFactory()
    items: list[Item] = []
    for k in range(keys):
        for _ in range(per_key):
            items.append(
                Item(id=ids.make("itm"), webhook_id=WEBHOOK, trigger="t", event=f"bench.k{k}",
                     occurrence_id=ids.make("evt"), body=body(k), batch_key=f"e:bench.k{k}", deadline=0.0)
            )  # fmt: skip
    items.sort(key=lambda i: i.id)  # arrival order, keys interleaved as requests mix them
    for start in range(0, len(items), REQUEST):
        request = items[start : start + REQUEST]
        chunks: dict[str | None, int] = {}
        for i in request:  # one chunk per request and key, as ingest makes them
            if i.batch_key not in chunks:
                chunks[i.batch_key] = store.next_item_seq()
            i.seq = chunks[i.batch_key]
        for pos, i in enumerate(request):
            i.pos = pos
        stamp = "2026-12-02T03:00:00.000Z"
        occs = [Occurrence(i.occurrence_id, i.event, stamp, {}, None, None, False) for i in request]
        await store.ingest(occs, 0.0, [], list(enumerate(request)))


async def busy(stop: asyncio.Event) -> None:
    """Hold the GIL in 2 ms slices, yielding to the loop between them."""
    while not stop.is_set():
        until = time.perf_counter() + 0.002
        while time.perf_counter() < until:
            pass
        await asyncio.sleep(0)


async def timed(fn: Callable[[], Awaitable[object]], loaded: bool) -> float:
    """Seconds ``fn`` took, with the loop busy meanwhile when ``loaded``."""
    stop = asyncio.Event()
    spinner = asyncio.get_running_loop().create_task(busy(stop)) if loaded else None
    await asyncio.sleep(0.01)
    t0 = time.perf_counter()
    await fn()
    took = time.perf_counter() - t0
    stop.set()
    if spinner is not None:
        await spinner
    return took


async def round_once(workdir: Path, keys: int, per_key: int, loaded: bool) -> float:
    """One whole spool round over a fresh store: seconds until every delivery is handed on."""
    path = workdir / f"round-{time.monotonic_ns()}.db"
    async with running(path) as store:
        await build(store, keys, per_key)
        took = await _round(store, keys, loaded)
    path.unlink()
    return took


async def _round(store: Store, keys: int, loaded: bool) -> float:
    hooks = Config.model_validate(
        {"webhooks": [{"id": WEBHOOK, "url": "https://example.com/", "events": [{"id": "t", "on": "*"}],
                       "batching": "same_event_type", "batch_wait_seconds": 3600, "max_items_per_batch": 100}]}
    ).webhooks  # fmt: skip
    done = asyncio.Event()
    handed: list[Delivery] = []

    def deliver(d: Delivery) -> None:
        handed.append(d)
        if len(handed) == keys:
            done.set()

    batcher = Batcher(LoopClock(), store, IdFactory(), deliver)
    batcher.configure(hooks, 300.0)
    found = await batcher.read_open(None, hooks, 300.0)

    async def flush() -> None:
        batcher.restore(found)  # every deadline (0.0) has passed: all of them flush now
        await done.wait()

    took = await timed(flush, loaded)
    await batcher.stop()
    return took


def ms(xs: list[float]) -> str:
    """p50 / p99 / max in ms."""
    xs = sorted(x * 1000 for x in xs)
    p99 = xs[min(len(xs) - 1, round(0.99 * (len(xs) - 1)))]
    return f"{statistics.median(xs):7.1f} / {p99:7.1f} / {xs[-1]:7.1f} ms  (n={len(xs)})"


async def main(keys: int, per_key: int, runs: int, rounds: bool) -> None:
    """Build, time, print."""
    with tempfile.TemporaryDirectory(prefix="hookd-spool-") as tmp:
        workdir = Path(tmp)
        t0 = time.perf_counter()
        async with running(workdir / "read.db") as store:
            await build(store, keys, per_key)
            print(f"{keys:,} keys of {per_key} item(s) built in {time.perf_counter() - t0:.1f} s")
            wanted = [(WEBHOOK, f"e:bench.k{k}", per_key) for k in range(keys)]
            got = await store.batch_items_many(wanted)
            assert sum(map(len, got)) == keys * per_key, "the read missed items"
            for loaded in (False, True):
                took = [await timed(lambda: store.batch_items_many(wanted), loaded) for _ in range(runs)]
                print(f"read,  loop {'busy' if loaded else 'idle'}: {ms(took)}")
        for loaded in (False, True) if rounds else ():
            took = [await round_once(workdir, keys, per_key, loaded) for _ in range(max(3, runs // 4))]
            print(f"round, loop {'busy' if loaded else 'idle'}: {ms(took)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=1, help="items per key")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--read-only", action="store_true", help="time the read only, not whole rounds")
    args = parser.parse_args()
    # As hookd run sets them (hookd/cli.py).
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    sys.setswitchinterval(0.001)
    uvloop.run(main(args.keys, args.items, args.runs, not args.read_only))
