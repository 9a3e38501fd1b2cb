#!/usr/bin/env python3
"""The search benchmark: ``python bench/search.py [--deliveries N] [--db PATH] [--keep]``.

Builds a store of N deliveries (default 1,000,000), half of them batches of 100 items,
through the store's own operations (``Store.add_delivery`` and ``Store.record``, the
writes the daemon makes), then times the first page of ``GET /v1/deliveries`` for each
filter through the store's search read (``store.log.search``, what the route awaits).

The log it builds looks like a day of a service desk: 20 webhooks (10 batched, 10 not),
occurrence ids half chosen by the application (``sd-<n>``) and half generated
(``evt_…``), tickets (integer object ids) updated mostly while recent, clients (string
object ids), five event types and a rare sixth, 2 % failed deliveries. Item bodies are
two bytes: the search never reads bodies, and 50 million real ones would fill the disk.

``--db PATH`` with an existing file skips the build and times the queries again.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hookd.models import Delivery, IdFactory, new_delivery
from hookd.search import DeliveryQuery
from hookd.store import Store
from hookd.store.interface import Outcome
from hookd.timespec import format_time

START = 1_790_000_000.0  # the log's first delivery (unix seconds)
SPAN = 86_400.0  # and its last, a day later
WEBHOOKS = [f"hook-{n:02d}" for n in range(20)]  # even: batched, odd: one delivery per item
EVENTS = ["ticket.created", "ticket.updated", "ticket.status_changed", "action.added", "client.updated"]
RARE = "ticket.merged"  # one occurrence in 2,000
CHUNK = 2_000  # deliveries per write awaited


class SimClock:
    """The simulated time of the log being built; the store's clock and the ids' alike."""

    def __init__(self) -> None:
        self.t = START

    def now(self) -> float:
        """Unix seconds."""
        return self.t

    def ns(self) -> int:
        """Unix nanoseconds (the item ids' UUIDv7 millisecond)."""
        return int(self.t * 1e9)


class Log:
    """Makes the deliveries: occurrences, items, object ids and outcomes."""

    def __init__(self, clock: SimClock, ids: IdFactory, rng: random.Random) -> None:
        self.clock = clock
        self.ids = ids
        self.rng = rng
        self.tickets = 1_000
        self.occurrences = 0
        self.samples: dict[str, list[Any]] = {"batched": [], "single": []}

    def occurrence(self) -> tuple[str, str, Any]:
        """One occurrence: its id, event type and object id."""
        self.occurrences += 1
        n = self.occurrences
        occ_id = f"sd-{n}" if n % 2 else self.ids.make("evt")
        r = self.rng.random()
        if r < 0.0005:
            return occ_id, RARE, self._ticket()
        if r < 0.1:
            return occ_id, "client.updated", f"C-{self.rng.randrange(5_000)}"
        if r < 0.12:
            self.tickets += 1
            return occ_id, "ticket.created", self.tickets
        return occ_id, self.rng.choice(EVENTS[1:4]), self._ticket()

    def _ticket(self) -> int:
        # Mostly the last few thousand tickets, now and then an old one.
        if self.rng.random() < 0.9:
            return max(1, self.tickets - int(self.rng.expovariate(1 / 500)))
        return self.rng.randrange(1, self.tickets + 1)

    def delivery(self, seq: int, batched: bool) -> Delivery:
        """One delivery: a batch of 100 items or a single one."""
        n = 100 if batched else 1
        wid = WEBHOOKS[2 * self.rng.randrange(10) + (0 if batched else 1)]
        occ = [self.occurrence() for _ in range(n)]
        item_ids = [self.ids.uuid() for _ in range(n)]
        d = new_delivery(
            self.ids, seq, wid, b"[]", item_ids, sorted({e for _, e, _ in occ}), ["all"], self.clock.now(),
            event_ids=[o for o, _, _ in occ], object_ids=[x for _, _, x in occ],
        )  # fmt: skip
        if self.rng.random() < 0.001:  # a sample to search for later
            k = self.rng.randrange(n)
            self.samples["batched" if batched else "single"].append((item_ids[k], occ[k][0], occ[k][2], seq))
        return d

    def outcome(self, d: Delivery, recent: bool) -> Outcome:
        """Its (last) attempt: failed 2 % of the time; the newest ones may still be retrying."""
        r = self.rng.random()
        state = "retrying" if recent and r < 0.3 else "failed" if r < 0.02 else "succeeded"
        status = 200 if state == "succeeded" else 503
        response = {"status": status, "headers": {"Content-Type": "application/json"}, "body": '{"ok":true}',
                    "truncated": False}  # fmt: skip
        return Outcome(
            delivery=d, n=1, started_at=d.created_at + 0.05, duration_ms=12.5, status_code=status,
            error=None if status == 200 else "http", manual=False, state=state,
            next_at=d.created_at + 60 if state == "retrying" else None, lightweight=False,
            request={"method": "POST", "url": "https://example.test/hook", "headers": {}}, response=response,
        )  # fmt: skip


async def build(path: Path, total: int, seed: int) -> dict[str, Any]:
    """Write ``total`` deliveries through the store; what to search for, and the build figures."""
    clock = SimClock()
    ids = IdFactory(clock_ns=clock.ns)
    rng = random.Random(seed)
    log = Log(clock, ids, rng)
    store = Store(path, "process")
    await store.open()
    writer = asyncio.create_task(store.writer())
    t0 = time.perf_counter()
    items = 0
    try:
        for start in range(0, total, CHUNK):
            batch = []
            for k in range(start, min(start + CHUNK, total)):
                clock.t = START + SPAN * k / total
                d = log.delivery(store.next_delivery_seq(), batched=k % 2 == 0)
                items += len(d.item_ids)
                batch.append(d)
            await asyncio.gather(*(store.add_delivery(d, False) for d in batch))
            recent = start + CHUNK >= total - 5 * CHUNK
            await asyncio.gather(*(store.record(log.outcome(d, recent)) for d in batch))
            if start % (50 * CHUNK) == 0:
                rate = (start + CHUNK) / (time.perf_counter() - t0)
                print(f"  {start + CHUNK:>9,} deliveries, {items:>11,} items  ({rate:,.0f} deliveries/s)", flush=True)
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await store.close()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "items": items, "samples": log.samples, "tickets": log.tickets}


def queries(samples: dict[str, list[Any]], rng: random.Random) -> list[tuple[str, DeliveryQuery]]:
    """The filters timed, each alone and a few together (first page, 50 per page)."""
    item_b, event_b, object_b, _ = rng.choice(samples["batched"])
    item_s, event_s, _, _ = rng.choice(samples["single"])
    mid = START + SPAN / 2
    return [
        ("no filter", DeliveryQuery()),
        ("webhook", DeliveryQuery(webhook="hook-03")),
        ("state=failed", DeliveryQuery(state="failed")),
        ("state=retrying (newest only)", DeliveryQuery(state="retrying")),
        ("webhook + state=failed", DeliveryQuery(webhook="hook-04", state="failed")),
        ("event (common)", DeliveryQuery(event="ticket.updated")),
        (f"event={RARE} (rare)", DeliveryQuery(event=RARE)),
        (f"object_id={object_b} (in batches)", DeliveryQuery(object_id=str(object_b))),
        ("object_id=C-17 (a string id)", DeliveryQuery(object_id="C-17")),
        ("object_id (none such)", DeliveryQuery(object_id="no-such-object")),
        ("event_id (inside a batch)", DeliveryQuery(event_id=event_b)),
        ("event_id (unbatched)", DeliveryQuery(event_id=event_s)),
        ("item_id (inside a batch)", DeliveryQuery(item_id=item_b)),
        ("item_id (unbatched)", DeliveryQuery(item_id=item_s)),
        ("since (the last hour)", DeliveryQuery(since=START + SPAN - 3600)),
        ("since + until (an hour mid-log)", DeliveryQuery(since=mid, until=mid + 3600)),
        ("until (the first hour)", DeliveryQuery(until=START + 3600)),
        ("object_id + state=failed", DeliveryQuery(object_id=str(object_b), state="failed")),
        ("object_id + webhook", DeliveryQuery(object_id=str(object_b), webhook="hook-02")),
        ("event (rare) + since", DeliveryQuery(event=RARE, since=mid)),
        ("state=failed + webhook + since", DeliveryQuery(state="failed", webhook="hook-05", since=mid)),
    ]


async def timed(fn: Callable[[], Awaitable[list[Any]]], runs: int) -> tuple[float, float, int]:
    """(first run ms, median of the rest ms, rows found)."""
    times = []
    found = 0
    for _ in range(runs):
        t = time.perf_counter()
        found = len(await fn())
        times.append((time.perf_counter() - t) * 1000)
    return times[0], statistics.median(times[1:]) if runs > 1 else times[0], found


async def measure(path: Path, samples: dict[str, list[Any]], runs: int, seed: int) -> list[dict[str, Any]]:
    """Time each query's first page on the store at ``path``; print a table."""
    store = Store(path, "process")
    await store.open()
    out = []
    try:
        print(f"\n{'filter':<42} {'first ms':>9} {'median ms':>10} {'rows':>5}")
        for name, q in queries(samples, random.Random(seed)):
            first, median, rows = await timed(partial(store.log.search, q), runs)
            print(f"{name:<42} {first:>9.1f} {median:>10.1f} {rows:>5}", flush=True)
            out.append({"filter": name, "first_ms": first, "median_ms": median, "rows": rows})
    finally:
        await store.close()
    return out


async def sizes(path: Path) -> dict[str, int]:
    """Bytes per table and index (SQLite's dbstat), and the search index's rows."""
    store = Store(path, "process")
    await store.open()
    try:
        pages = await store.run(lambda c: c.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
        keys = await store.run(lambda c: c.execute("SELECT count(*) FROM search").fetchone()[0])
    finally:
        await store.close()
    return {**dict(pages), "search_rows": keys}


def main() -> int:
    """Build (or reuse) the store, then time the queries."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--deliveries", type=int, default=1_000_000, help="deliveries to build (half are batches of 100)")
    p.add_argument("--db", type=Path, help="the store's file (default: a new one in a temp dir, removed after)")
    p.add_argument("--keep", action="store_true", help="keep the store built in the temp dir")
    p.add_argument("--runs", type=int, default=5, help="times each query runs (the first one cold-ish)")
    p.add_argument("--sizes", action="store_true", help="also print the bytes of each table (reads the whole file)")
    p.add_argument("--seed", type=int, default=15)
    args = p.parse_args()
    tmp = None
    if args.db is None:
        tmp = Path(tempfile.mkdtemp(prefix="hookd-search-"))
        args.db = tmp / "hookd.db"
    samples_file = args.db.with_suffix(".samples.json")
    try:
        if not args.db.exists():
            print(f"building {args.deliveries:,} deliveries in {args.db} …", flush=True)
            built = uvloop.run(build(args.db, args.deliveries, args.seed))
            size = sum(f.stat().st_size for f in args.db.parent.glob(args.db.name + "*"))
            print(f"built in {built['seconds']:.0f} s: {built['items']:,} items, {size / 1e9:.2f} GB on disk")
            samples_file.write_bytes(orjson.dumps(built["samples"]))
        samples = orjson.loads(samples_file.read_bytes())
        uvloop.run(measure(args.db, samples, args.runs, args.seed))
        if args.sizes:
            for name, n in uvloop.run(sizes(args.db)).items():
                print(f"  {name:<24} {n:>15,}")
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp is not None:
            print(f"store kept: {args.db}")
    print(f"(times of a first page of 50; {format_time(time.time())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
