"""The benchmarks of the performance issue, one coroutine each.

Each takes the shared ``Ctx`` (receiver, client session, scale, output folder), starts
its own daemon(s) in a fresh folder, appends rows to the table and returns the raw
figures for results.json and the plot.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import callgrind
import orjson
from harness import (
    BenchError,
    CpuMeter,
    Daemon,
    Procs,
    Server,
    arrays,
    channel_stats,
    daemon_config,
    event,
    get_json,
    item_body,
    open_loop,
    parse_ts,
    pct,
    post_all,
    post_one,
    rss_bytes,
    session,
    start_server,
    wait_channel,
    webhook,
)

CONCURRENCY = 64  # hookd's per_webhook_concurrency, and the bare client loop's
POSTERS = 4  # concurrent ingest posters in the throughput benchmarks

T = TypeVar("T")


@dataclass(frozen=True)
class Scale:
    """How big each benchmark is."""

    unbatched: int
    batched: int
    latency_seconds: float
    timer_keys: int
    memory_items: int
    recovery_items: int
    slow_items: int
    slow_baseline_seconds: float

    @classmethod
    def full(cls) -> Scale:
        """The issue's sizes."""
        return cls(20_000, 100_000, 10.0, 10_000, 1_000_000, 1_000_000, 1_000, 3.0)

    @classmethod
    def quick(cls) -> Scale:
        """A smoke check in under two minutes."""
        return cls(2_000, 10_000, 3.0, 1_000, 50_000, 50_000, 256, 1.0)


@dataclass
class Row:
    """One line of the printed table."""

    bench: str
    figure: str
    value: str
    ceiling: str = ""
    ratio: float | None = None
    target: str = ""
    ok: bool | None = None


@dataclass
class Ctx:
    """What every benchmark shares."""

    procs: Procs
    workdir: Path
    out: Path
    receiver: Server
    s: aiohttp.ClientSession
    scale: Scale
    profile: bool
    profile_args: list[str] = field(default_factory=list)
    callgrind: bool = False  # count the daemon's instructions (see callgrind.py)
    rows: list[Row] = field(default_factory=list)
    profiles: dict[str, Any] = field(default_factory=dict)
    keep: dict[str, Any] = field(default_factory=dict)  # state handed from one benchmark to the next
    figures: dict[str, float] = field(default_factory=dict)  # one benchmark's figures that a later one shows
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))

    def url(self, path: str) -> str:
        """A receiver URL."""
        return f"{self.receiver.base}{path}"

    def prefix(self, name: str) -> str:
        """An event-id prefix unique to this run and benchmark."""
        return f"{self.run_id}-{name}"


def fmt(x: float, unit: str = "", digits: int = 0) -> str:
    """A number with thousands separators."""
    if math.isnan(x):
        return "n/a"
    return f"{x:,.{digits}f}{unit}"


def ms(xs: list[float]) -> dict[str, float]:
    """p50/p99/max of millisecond samples."""
    return {"p50": pct(xs, 50), "p99": pct(xs, 99), "max": max(xs) if xs else math.nan, "n": len(xs)}


@dataclass(frozen=True)
class TimedRun:
    """What ``timed_daemon_run`` measured: first and last POST, the receiver's stats, and the
    daemon's CPU seconds (whole process and its event-loop thread) from the first POST until
    it was idle again."""

    first: float
    last: float
    stats: dict[str, Any]
    cpu: float
    cpu_loop: float
    flushes: int = 0  # the store's group commits over the daemon's life (its "stopped" line)
    instructions: dict[int, int] = field(default_factory=dict)  # under --callgrind: per thread, 1 the loop's


async def timed_daemon_run(
    ctx: Ctx, name: str, cfg: Any, warm: str, bodies: list[bytes], n: int, wait_seconds: float
) -> TimedRun:
    """Start the daemon, warm it, post ``bodies`` and wait until channel ``name`` has ``n`` items
    and the daemon is idle; the daemon is stopped afterwards. Under ``--callgrind`` the
    daemon's instructions are counted over the same span."""
    counted = ctx.workdir / name / "callgrind"
    d = Daemon(ctx.procs, ctx.workdir, name, cfg, prefix=callgrind.prefix(counted) if ctx.callgrind else ())
    slower = 50 if ctx.callgrind else 1
    await d.start()
    try:
        await warm_daemon(ctx, d, warm)

        async def work() -> TimedRun:
            if ctx.callgrind:
                callgrind.start(d.pid)
            meter = CpuMeter(d.pid)
            posted = await post_all(ctx.s, f"{d.base}/v1/events", bodies, POSTERS)
            st = await wait_channel(ctx.s, ctx.receiver, name, n, wait_seconds * slower)
            if ctx.callgrind:  # valgrind's own upkeep keeps an idle daemon busier
                await meter.settle(patience=120.0, step=0.5, idle=0.05)
                callgrind.stop(d.pid)
            else:
                await meter.settle()
            cpu, loop = meter.used()
            return TimedRun(posted.first, posted.last, st, cpu, loop)

        run = await with_spy(ctx, name, d, work())
    finally:
        stopped = await d.stop()
    counts = callgrind.instructions(counted, d.pid) if ctx.callgrind else {}
    return replace(run, flushes=int(stopped.get("flushes", 0)), instructions=counts)


def cpu_row(run: TimedRun, n: int) -> Row:
    """The daemon's CPU per event, the loop thread's share beside it; under --callgrind its
    instructions per event instead (its CPU seconds there are valgrind's)."""
    if run.instructions:
        total = sum(run.instructions.values()) / n
        loop = run.instructions.get(1, 0) / n
        return Row("", "  daemon instructions per event", f"{total:,.0f} (loop {loop:,.0f}, other threads "
                   f"{total - loop:,.0f}; {run.flushes:,} group commits)")  # fmt: skip
    per = run.cpu / n * 1e6
    loop = run.cpu_loop / n * 1e6
    return Row("", "  daemon CPU per event", f"{per:.1f} µs (loop {loop:.1f}, other threads {per - loop:.1f}; "
               f"{run.flushes:,} group commits)")  # fmt: skip


def cpu_figures(run: TimedRun, n: int) -> dict[str, Any]:
    """The CPU figures for results.json: seconds, and µs per event (and instructions per
    thread and per event under --callgrind)."""
    out: dict[str, Any] = {
        "cpu_seconds": run.cpu, "cpu_loop_seconds": run.cpu_loop, "cpu_us_per_event": run.cpu / n * 1e6,
        "cpu_loop_us_per_event": run.cpu_loop / n * 1e6, "flushes": run.flushes,
    }  # fmt: skip
    if run.instructions:
        out["instructions"] = {f"thread {t}": i for t, i in run.instructions.items()}
        out["instructions_per_event"] = sum(run.instructions.values()) / n
        out["loop_instructions_per_event"] = run.instructions.get(1, 0) / n
    return out


async def with_spy(ctx: Ctx, name: str, daemon: Daemon, work: Awaitable[T]) -> T:
    """Run ``work``; under ``--profile`` sample the daemon with py-spy meanwhile."""
    if not ctx.profile:
        return await work
    import spy as spy_mod
    from spy import Spy, as_json, report, summarize

    spy_mod.LINES = "--lines" in ctx.profile_args

    raw = ctx.out / f"profile-{name}.txt"
    spy = Spy(ctx.procs, daemon.pid, raw, extra=ctx.profile_args)
    await asyncio.sleep(0.3)  # py-spy attaches
    try:
        return await work
    finally:
        spy.stop()
        if not raw.exists():
            print(f"py-spy wrote no profile; see {spy.log}", flush=True)
        else:
            profiles = summarize(raw)
            text = report(profiles, 250)
            (ctx.out / f"profile-{name}-top.txt").write_text(text)
            ctx.profiles[name] = as_json(profiles)
            print(f"\n-- py-spy profile of hookd, {name} (raw stacks: {raw})\n{text}", flush=True)


async def warm_daemon(ctx: Ctx, d: Daemon, ch: str, n: int = 200) -> None:
    """Open the daemon's client connections and warm its code paths (webhook 'warm')."""
    evs = [event(ctx.prefix(f"warm-{ch}"), i, "warm.up") for i in range(n)]
    for body in arrays(evs, 100):
        await post_one(ctx.s, f"{d.base}/v1/events", body, 202)
    await wait_channel(ctx.s, ctx.receiver, ch, n, 30)


def warm_hook(ctx: Ctx, ch: str) -> dict[str, Any]:
    """The warm-up webhook every daemon carries (fast receiver, its own channel)."""
    return webhook("warm", ctx.url(f"/r/{ch}"), "warm.*")


# -- 1. unbatched ----------------------------------------------------------------------------------


async def client_loop(ctx: Ctx, ch: str, bodies: list[bytes]) -> float:
    """The ceiling: a bare aiohttp client loop POSTing ``bodies`` to the receiver,
    CONCURRENCY at a time; deliveries per second, first POST to last arrival."""
    async with session() as s:
        url = ctx.url(f"/r/{ch}")
        warm = ctx.url(f"/r/{ch}-warm")
        await asyncio.gather(*(post_one(s, warm, bodies[i % len(bodies)], 200) for i in range(CONCURRENCY)))
        posted = await post_all(s, url, bodies, CONCURRENCY, status=200)
    st = await wait_channel(ctx.s, ctx.receiver, ch, len(bodies), 30, key="requests")
    return float(len(bodies) / (st["last"] - posted.first))


async def unbatched(ctx: Ctx) -> dict[str, Any]:
    """N per_occurrence deliveries against a bare client loop POSTing the same bodies."""
    n = ctx.scale.unbatched
    pre = ctx.prefix("unbatched")
    events = [event(pre, i, "bench.created") for i in range(n)]
    bodies = arrays(events, 100)
    item_bodies = [item_body("unbatched", ev, i) for i, ev in enumerate(events)]

    ceiling = [await client_loop(ctx, f"ceil-u1-{ctx.run_id}", item_bodies)]
    cfg = daemon_config(
        ctx.workdir / "unbatched" / "hookd.db",
        [webhook("unbatched", ctx.url("/r/unbatched"), "bench.*"), warm_hook(ctx, "warm-u")],
        concurrency=4 * CONCURRENCY, per_webhook=CONCURRENCY,
    )  # fmt: skip
    run = await timed_daemon_run(ctx, "unbatched", cfg, "warm-u", bodies, n, 60 + n / 100)
    first, st, ingested = run.first, run.stats, run.last
    ceiling.append(await client_loop(ctx, f"ceil-u2-{ctx.run_id}", item_bodies))
    rate = n / (st["last"] - first)
    ceil = sum(ceiling) / len(ceiling)
    ratio = rate / ceil
    ctx.figures["unbatched_rate"] = rate  # the peers' figure compares
    ctx.rows.append(Row("1 unbatched", f"deliveries/s ({n:,} events)", fmt(rate), fmt(ceil), ratio, "≥ 0.8",
                        ratio >= 0.8))  # fmt: skip
    ctx.rows.append(Row("", "  ingest done after", fmt(ingested - first, " s", 2)))
    ctx.rows.append(cpu_row(run, n))
    return {"n": n, "rate": rate, "ceilings": ceiling, "ceiling": ceil, "ratio": ratio,
            "ingest_seconds": ingested - first, "seconds": st["last"] - first, **cpu_figures(run, n)}  # fmt: skip


# -- 2. batched -----------------------------------------------------------------------------------


async def batched(ctx: Ctx) -> dict[str, Any]:
    """N events into one any_event webhook (100 per batch) against a bare parse-and-202 server."""
    n = ctx.scale.batched
    pre = ctx.prefix("batched")
    bodies = arrays([event(pre, i, "bench.updated") for i in range(n)], 1000)
    warm = arrays([event(pre + "-w", i, "bench.updated") for i in range(2000)], 1000)

    bare = await start_server(ctx.procs, ctx.workdir, "ingest", 600)
    ceiling: list[float] = []
    try:
        url = f"{bare.base}/v1/events"
        await post_all(ctx.s, url, warm, POSTERS)
        for _ in range(3):
            posted = await post_all(ctx.s, url, bodies, POSTERS)
            ceiling.append(n / (posted.last - posted.first))
    finally:
        bare.proc.terminate()
        bare.proc.wait(10)

    cfg = daemon_config(
        ctx.workdir / "batched" / "hookd.db",
        [webhook("batched", ctx.url("/r/batched"), "bench.*", "any_event", batch_wait_seconds=1,
                 max_items_per_batch=100), warm_hook(ctx, "warm-b")],
        concurrency=4 * CONCURRENCY, per_webhook=CONCURRENCY,
    )  # fmt: skip
    run = await timed_daemon_run(ctx, "batched", cfg, "warm-b", bodies, n, 60 + n / 1000)
    first, st, ingested = run.first, run.stats, run.last
    ceiling.sort()
    ceil = ceiling[len(ceiling) // 2]
    rate = n / (st["last"] - first)
    ratio = rate / ceil
    ctx.rows.append(Row("2 batched", f"events/s ({n:,}, 100/batch)", fmt(rate), fmt(ceil), ratio, "≥ 0.5",
                        ratio >= 0.5))  # fmt: skip
    ingest_rate = n / (ingested - first)
    ctx.rows.append(Row("", "  ingest alone (202s)", fmt(ingest_rate), fmt(ceil), ingest_rate / ceil))
    ctx.rows.append(Row("", "  deliveries received", fmt(st["requests"])))
    ctx.rows.append(cpu_row(run, n))
    return {"n": n, "rate": rate, "ceilings": ceiling, "ceiling": ceil, "ratio": ratio, "ingest_rate": ingest_rate,
            "deliveries": st["requests"], **cpu_figures(run, n)}  # fmt: skip


# -- 3. ingest latency ----------------------------------------------------------------------------


async def latency(ctx: Ctx) -> dict[str, Any]:
    """Open-loop 200 requests/s of 10 events; latency from each request's scheduled start."""
    rate, per = 200, 10
    seconds = ctx.scale.latency_seconds
    out: dict[str, Any] = {}
    # The ceiling: the same schedule against the bare parse-and-202 server.
    count = int(rate * seconds)
    pre = ctx.prefix("lat-bare")
    bodies = arrays([event(pre, i, "bench.changed") for i in range(count * per)], per)
    bare = await start_server(ctx.procs, ctx.workdir, "ingest", 600)
    try:
        url = f"{bare.base}/v1/events"
        await open_loop(ctx.s, url, bodies[:rate], rate)
        ceiling = ms([x * 1000 for x in await open_loop(ctx.s, url, bodies, rate)])
    finally:
        bare.proc.terminate()
        bare.proc.wait(10)
    out["bare"] = ceiling
    variants: dict[str, dict[str, Any]] = {
        "delivering": {"batching": "per_occurrence"},
        "batched": {"batching": "any_event", "batch_wait_seconds": 1, "max_items_per_batch": 100},
    }
    for name, shape in variants.items():
        pre = ctx.prefix(f"lat-{name}")
        ch = f"lat-{name}"
        count = int(rate * seconds)
        bodies = arrays([event(pre, i, "bench.changed") for i in range(count * per)], per)
        warm = arrays([event(pre + "-w", i, "bench.changed") for i in range(rate * per)], per)
        wh = webhook("lat", ctx.url(f"/r/{ch}"), "bench.*", **shape)
        cfg = daemon_config(ctx.workdir / ch / "hookd.db", [wh], per_webhook=CONCURRENCY)
        d = Daemon(ctx.procs, ctx.workdir, ch, cfg)
        await d.start()
        try:
            url = f"{d.base}/v1/events"
            await open_loop(ctx.s, url, warm, rate)  # one second at the same rate, not counted
            lat = await open_loop(ctx.s, url, bodies, rate)
            st = await wait_channel(ctx.s, ctx.receiver, ch, (count + rate) * per, 60)
        finally:
            await d.stop()
        lms = [x * 1000 for x in lat]
        stats = ms(lms)
        ok = stats["p99"] <= 10.0
        ctx.rows.append(Row("3 ingest latency" if name == "delivering" else "", f"{name}: p50 / p99 / max",
                            f"{stats['p50']:.1f} / {stats['p99']:.1f} / {stats['max']:.1f} ms",
                            f"{ceiling['p50']:.1f} / {ceiling['p99']:.1f} ms", None, "p99 ≤ 10 ms", ok))  # fmt: skip
        out[name] = {**stats, "latencies_ms": lms, "rate_events": rate * per, "deliveries": st["requests"]}
    return out


# -- 4. timer lateness ---------------------------------------------------------------------------


async def _deliveries_created(ctx: Ctx, d: Daemon, wid: str, limit: int) -> list[tuple[float, str]]:
    """(created_at, first event type) of the webhook's deliveries, from the admin API."""
    out: list[tuple[float, str]] = []
    before = None
    for _ in range(limit // 500 + 2):
        q = f"{d.base}/v1/webhooks/{wid}/deliveries?limit=500" + (f"&before={before}" if before else "")
        page = await get_json(ctx.s, q)
        out += [(parse_ts(x["created_at"]), x["events"][0]) for x in page["deliveries"]]
        before = page["next"]
        if not before:
            break
    return out


async def _timers(ctx: Ctx, spooled: bool) -> dict[str, Any]:
    keys = ctx.scale.timer_keys
    wait = 2.0
    name = "timers-spool" if spooled else "timers"
    pre = ctx.prefix(name)
    events = [event(pre, i, f"bench.k{i}") for i in range(keys)]
    bodies = arrays(events, 100)
    wh = webhook("timers", ctx.url(f"/r/{name}?rec=1"), "bench.*", "same_event_type", batch_wait_seconds=wait,
                 max_items_per_batch=100)  # fmt: skip
    cfg = daemon_config(
        ctx.workdir / name / "hookd.db", [wh, warm_hook(ctx, f"warm-{name}")], per_webhook=CONCURRENCY,
        spool_after=0.5 if spooled else 300.0, spool_poll=1.0,
    )  # fmt: skip
    d = Daemon(ctx.procs, ctx.workdir, name, cfg)
    await d.start()
    t202: dict[str, float] = {}

    def answered(i: int, scheduled: float, now: float) -> None:
        for ev in events[i * 100 : (i + 1) * 100]:
            t202[ev["event"]] = now

    try:
        await warm_daemon(ctx, d, f"warm-{name}", CONCURRENCY)
        t0 = time.time()
        await open_loop(ctx.s, f"{d.base}/v1/events", bodies, len(bodies) / 1.0, answered)  # all within ~1 s
        opened = time.time() - t0
        await wait_channel(ctx.s, ctx.receiver, name, keys, wait + 60 + keys / 100)
        recs = (await channel_stats(ctx.s, ctx.receiver, name, records=True))["records"]
        created = await _deliveries_created(ctx, d, "timers", keys)
    finally:
        await d.stop()
    arrival = [(r[0] - (t202[r[4]] + wait)) * 1000 for r in recs if r[4] in t202]
    fired = [(c - (t202[ev] + wait)) * 1000 for c, ev in created if ev in t202]
    return {"keys": keys, "opened_seconds": opened, "arrival": ms(arrival), "fired": ms(fired),
            "arrival_ms": arrival, "fired_ms": fired, "spooled": spooled}  # fmt: skip


async def timers(ctx: Ctx) -> dict[str, Any]:
    """Lateness at N open keys, as in-memory timers and through the spool."""
    mem = await _timers(ctx, False)
    spool = await _timers(ctx, True)
    k = mem["keys"]
    a, f = mem["arrival"], mem["fired"]
    ctx.rows.append(Row("4 timer lateness", f"{k:,} keys, arrival p50/p99/max",
                        f"{a['p50']:.0f} / {a['p99']:.0f} / {a['max']:.0f} ms", "", None, "p99 ≤ 50 ms",
                        a["p99"] <= 50))  # fmt: skip
    ctx.rows.append(Row("", "  timer fired (created_at)", f"{f['p50']:.0f} / {f['p99']:.0f} / {f['max']:.0f} ms",
                        "", None, "p99 ≤ 50 ms", f["p99"] <= 50))  # fmt: skip
    a, f = spool["arrival"], spool["fired"]
    ctx.rows.append(Row("", "spool, arrival p50/p99/max", f"{a['p50']:.0f} / {a['p99']:.0f} / {a['max']:.0f} ms",
                        "", None, "p99 ≤ 1000 ms", a["p99"] <= 1000))  # fmt: skip
    ctx.rows.append(Row("", "  spool fired (created_at)", f"{f['p50']:.0f} / {f['p99']:.0f} / {f['max']:.0f} ms",
                        "", None, "p99 ≤ 1000 ms", f["p99"] <= 1000))  # fmt: skip
    return {"memory": mem, "spool": spool}


# -- 4b. memory with spooled items ------------------------------------------------------------------


def _spool_config(ctx: Ctx, name: str, keys: int) -> dict[str, Any]:
    wh = webhook("spool", ctx.url(f"/r/{name}"), "bench.*", "same_event_type", batch_wait_seconds=3600,
                 max_items_per_batch=10_000)  # fmt: skip
    return daemon_config(ctx.workdir / name / "hookd.db", [wh], spool_after=1.0, per_webhook=CONCURRENCY)


async def _queue_behind_dead(ctx: Ctx, d: Daemon, name: str, n: int) -> float:
    """Send one event to the daemon's webhook "dead" (its receiver fails, retry_schedule = [],
    auto_disable_after = 1), wait until that failure has auto-disabled it, then queue n events
    behind it; the ingest rate in events/s."""
    await post_one(ctx.s, f"{d.base}/v1/events", orjson.dumps(event(ctx.prefix(name), -1, "bench.first")), 202)
    deadline = time.monotonic() + 30
    while (await get_json(ctx.s, f"{d.base}/v1/webhooks/dead"))["enabled"]:
        if time.monotonic() > deadline:
            raise BenchError("the dead webhook was not auto-disabled within 30 s")
        await asyncio.sleep(0.05)
    return await _fill(ctx, d, ctx.prefix(name), n, lambda i: "bench.created")


async def _fill(ctx: Ctx, d: Daemon, pre: str, n: int, types: Callable[[int], str]) -> float:
    """Ingest n events in arrays of 1000, POSTERS at a time, generated chunk by chunk; events/s."""
    chunk = 100_000
    t0 = time.time()
    for start in range(0, n, chunk):
        evs = [event(pre, i, types(i)) for i in range(start, min(n, start + chunk))]
        await post_all(ctx.s, f"{d.base}/v1/events", arrays(evs, 1000), POSTERS)
    return n / (time.time() - t0)


async def _spooled_daemon(ctx: Ctx, n: int) -> tuple[Daemon, float, int]:
    keys = max(4, math.ceil(n / 5000))  # under max_items_per_batch, so nothing leaves
    name = "spool"
    d = Daemon(ctx.procs, ctx.workdir, name, _spool_config(ctx, name, keys))
    await d.start()
    await asyncio.sleep(1.0)
    empty = rss_bytes(d.pid)[0]
    rate = await _fill(ctx, d, ctx.prefix(name), n, lambda i: f"bench.t{i % keys}")
    return d, rate, empty


async def _metric(ctx: Ctx, d: Daemon, name: str) -> float:
    async with ctx.s.get(f"{d.base}/metrics") as r:
        text = await r.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def memory(ctx: Ctx) -> dict[str, Any]:
    """Resident memory with N spooled items against the same daemon empty."""
    n = ctx.scale.memory_items
    d, rate, empty = await _spooled_daemon(ctx, n)
    handed_on = False
    try:
        await asyncio.sleep(2.0)
        loaded, peak = rss_bytes(d.pid)
        spooled = await _metric(ctx, d, "hookd_spool_items")
        delivered = (await channel_stats(ctx.s, ctx.receiver, "spool"))["items"]
        if delivered:
            raise BenchError(f"{delivered} spooled items were delivered; the memory figure would be wrong")
        ctx.keep["spool"] = (d, n)
        handed_on = True
    finally:
        if not handed_on:
            await d.stop()
    mib = 1024 * 1024
    ctx.rows.append(Row("4 memory", f"RSS empty / {n:,} spooled", f"{empty / mib:.0f} / {loaded / mib:.0f} MiB",
                        "", None, "", None))  # fmt: skip
    ctx.rows.append(Row("", "  difference (per item)", f"{(loaded - empty) / mib:.0f} MiB "
                        f"({(loaded - empty) / n:.0f} B)", "", None, "", None))  # fmt: skip
    ctx.rows.append(Row("", "  peak RSS / ingest rate", f"{peak / mib:.0f} MiB / {fmt(rate)} ev/s"))
    return {"n": n, "rss_empty": empty, "rss_loaded": loaded, "rss_peak": peak, "spool_items_metric": spooled,
            "ingest_rate": rate}  # fmt: skip


async def backlog(ctx: Ctx) -> dict[str, Any]:
    """RSS idle, with N deliveries queued behind a dead receiver (the webhook auto-disabled
    after its first failure), and once the receiver is back and they have drained."""
    n = ctx.scale.memory_items
    name = "queued"
    dead = webhook("dead", ctx.url(f"/down/{name}"), "bench.*", auto_disable_after=1)
    cfg = daemon_config(ctx.workdir / name / "hookd.db", [dead], retry_schedule=(), per_webhook=CONCURRENCY)
    d = Daemon(ctx.procs, ctx.workdir, name, cfg)
    await d.start()
    try:
        await asyncio.sleep(1.0)
        idle = rss_bytes(d.pid)[0]
        rate = await _queue_behind_dead(ctx, d, name, n)
        await asyncio.sleep(2.0)
        queued, peak_queued = rss_bytes(d.pid)
        print(f"  RSS idle / {n:,} queued: {idle / 2**20:.0f} / {queued / 2**20:.0f} MiB; draining …", flush=True)
        await post_one(ctx.s, ctx.url(f"/up/{name}"), b"", 200)
        await post_one(ctx.s, f"{d.base}/v1/webhooks/dead/enable", b"", 200)
        t0 = time.monotonic()
        await wait_channel(ctx.s, ctx.receiver, name, n, patience=max(120.0, n / 500))
        drain_rate = n / (time.monotonic() - t0)
        await asyncio.sleep(3.0)  # the last outcomes committed, the loop idle
        drained, peak = rss_bytes(d.pid)
    finally:
        await d.stop()
    mib = 1024 * 1024
    shown = f"{idle / mib:.0f} / {queued / mib:.0f} MiB"
    ctx.rows.append(Row("4 backlog", f"RSS idle / {n:,} queued deliveries", shown, "", None, "< 150 MiB",
                        queued < 150 * mib))  # fmt: skip
    ctx.rows.append(Row("", "  after they drained / peak", f"{drained / mib:.0f} / {peak / mib:.0f} MiB "
                        f"(drained at {fmt(drain_rate)}/s)"))  # fmt: skip
    return {"rss_idle": idle, "rss_queued": queued, "rss_queued_peak": peak_queued, "rss_drained": drained,
            "rss_peak": peak, "ingest_rate": rate, "drain_rate": drain_rate}  # fmt: skip


# -- 5. recovery ------------------------------------------------------------------------------------


async def _restart(d: Daemon) -> dict[str, Any]:
    stopped = await d.stop()
    started = await d.start(patience=600)
    seconds = parse_ts(started["timestamp"]) - d.spawned_at
    rss = rss_bytes(d.pid)[0]
    await d.stop()
    return {"seconds": seconds, "startup_ms": started.get("startup_ms"), "stop_ms": stopped.get("stop_ms"),
            "pending_deliveries": started.get("pending_deliveries"), "batched_items": started.get("batched_items"),
            "rss": rss}  # fmt: skip


async def recovery(ctx: Ctx) -> dict[str, Any]:
    """Start-up time with N pending items: spooled batch items, and queued deliveries."""
    n = ctx.scale.recovery_items
    kept = ctx.keep.pop("spool", None)
    if kept is not None and kept[1] == n:
        d = kept[0]
    else:
        if kept is not None:
            await kept[0].stop()
        d = (await _spooled_daemon(ctx, n))[0]
    spool = await _restart(d)

    # Pending deliveries: a dead receiver with retry_schedule = [] and auto_disable_after = 1
    # pauses the webhook after its first failure; everything after it stays queued.
    name = "dead"
    dead = webhook("dead", "http://127.0.0.1:9/nowhere", "bench.*", auto_disable_after=1)
    cfg = daemon_config(ctx.workdir / name / "hookd.db", [dead], retry_schedule=(), per_webhook=CONCURRENCY)
    d = Daemon(ctx.procs, ctx.workdir, name, cfg)
    await d.start()
    try:
        rate = await _queue_behind_dead(ctx, d, name, n)
    except BaseException:
        await d.stop()
        raise
    queued = await _restart(d)
    queued["ingest_rate"] = rate
    for label, r, what in (
        ("spooled items", spool, "batched_items"),
        ("queued deliveries", queued, "pending_deliveries"),
    ):
        ctx.rows.append(Row("5 recovery" if label == "spooled items" else "", f"{n:,} {label}: to 'started'",
                            fmt(r["seconds"], " s", 2), "", None, "≤ 10 s", r["seconds"] <= 10))  # fmt: skip
        ctx.rows.append(Row("", "  startup_ms / restored / RSS", f"{fmt(r['startup_ms'] or math.nan)} ms / "
                            f"{fmt(r[what] or 0)} / {r['rss'] / 2**20:.0f} MiB"))  # fmt: skip
    return {"n": n, "spooled": spool, "deliveries": queued}


# -- 6. slow receiver --------------------------------------------------------------------------------


async def slow(ctx: Ctx) -> dict[str, Any]:
    """A 1 s receiver on one webhook drains at concurrency/latency; another webhook stays fast."""
    m = ctx.scale.slow_items
    delay = 1.0
    pre = ctx.prefix("slow")
    hooks = [
        webhook("slow", ctx.url(f"/slow/slow-{ctx.run_id}?delay={delay}"), "slow.*",
                per_webhook_concurrency=CONCURRENCY),
        webhook("fast", ctx.url(f"/r/fast-{ctx.run_id}?rec=1"), "fast.*"),
    ]  # fmt: skip
    cfg = daemon_config(ctx.workdir / "slow" / "hookd.db", hooks, per_webhook=16)
    d = Daemon(ctx.procs, ctx.workdir, "slow", cfg)
    await d.start()
    url = f"{d.base}/v1/events"
    fast_rate = 50.0
    max_fast = int(fast_rate * (ctx.scale.slow_baseline_seconds + 3 * m / CONCURRENCY * delay + 30))
    fast_bodies = [orjson.dumps(event(pre + "-f", i, "fast.ping")) for i in range(max_fast)]
    sent_at: dict[str, float] = {}
    stop = asyncio.Event()

    async def fast_load() -> None:
        t0 = time.time()
        tasks = []
        for i, body in enumerate(fast_bodies):
            delay_s = t0 + i / fast_rate - time.time()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            if stop.is_set():
                break

            async def one(i: int = i, body: bytes = body) -> None:
                sent = time.time()
                await post_one(ctx.s, url, body, 202)
                sent_at[f"{pre}-f-{i}"] = sent

            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)

    try:
        loader = asyncio.create_task(fast_load())
        await asyncio.sleep(ctx.scale.slow_baseline_seconds)
        t_slow = time.time()
        await post_all(ctx.s, url, arrays([event(pre, i, "slow.work") for i in range(m)], 100), POSTERS)
        st = await wait_channel(ctx.s, ctx.receiver, f"slow-{ctx.run_id}", m, 60 + 3 * m / CONCURRENCY * delay)
        await asyncio.sleep(0.5)
        stop.set()
        await loader
        await wait_channel(ctx.s, ctx.receiver, f"fast-{ctx.run_id}", len(sent_at), 30)
        fast_recs = (await channel_stats(ctx.s, ctx.receiver, f"fast-{ctx.run_id}", records=True))["records"]
        slow_recs = (await channel_stats(ctx.s, ctx.receiver, f"slow-{ctx.run_id}", records=True))["records"]
    finally:
        await d.stop()
    t_end = st["last_done"]
    rate = m / (t_end - t_slow)
    expect = CONCURRENCY / delay
    base, during = [], []
    points = []
    for arrived, _, _, eid, _ in fast_recs:  # latency: ingest POST sent → delivery arrived
        if eid not in sent_at:
            continue
        lat = (arrived - sent_at[eid]) * 1000
        points.append((sent_at[eid] - t_slow, lat))
        if sent_at[eid] < t_slow:
            base.append(lat)
        elif sent_at[eid] <= t_end:
            during.append(lat)
    b, du = ms(base), ms(during)
    ratio = rate / expect
    ctx.rows.append(Row("6 slow receiver", f"slow webhook items/s ({m:,}, 1 s each)", fmt(rate, digits=1),
                        fmt(expect, digits=1), ratio, "≈ 1", ratio >= 0.8))  # fmt: skip
    ctx.rows.append(Row("", "  fast webhook p50/p99 before", f"{b['p50']:.1f} / {b['p99']:.1f} ms"))
    ctx.rows.append(Row("", "  fast webhook p50/p99 during", f"{du['p50']:.1f} / {du['p99']:.1f} ms", "", None,
                        "stays low", du["p99"] <= max(50.0, 3 * b["p99"])))  # fmt: skip
    return {"m": m, "rate": rate, "expected": expect, "ratio": ratio, "fast_before": b, "fast_during": du,
            "fast_points": points, "slow_done": sorted(r[1] - t_slow for r in slow_recs),
            "slow_seconds": t_end - t_slow}  # fmt: skip


SCENARIOS: dict[str, Callable[[Ctx], Awaitable[dict[str, Any]]]] = {
    "unbatched": unbatched,
    "batched": batched,
    "latency": latency,
    "timers": timers,
    "memory": memory,
    "backlog": backlog,
    "recovery": recovery,
    "slow": slow,
}
