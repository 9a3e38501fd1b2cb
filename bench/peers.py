"""Figure 8: the peers, what a Python team would otherwise deploy, doing figure 1's job.

Celery 5 with a Redis broker and ``requests`` (peer_celery.py), and arq with Redis and
aiohttp (peer_arq.py), each behind a small aiohttp ingest endpoint that answers 202 once
the request's deliveries are queued. Each gets figure 1's events (the same count, in
arrays of 100 from 4 posters), one signed POST per event to the same receiver, and is
measured the same way: first POST -> the receiver's N-th arrival. Beside each rate, the
CPU its processes used per event (ingest server, worker, Redis), as figure 1 reports
hookd's, and the bare client loop's ceiling measured before and after them.

Each peer gets its own ``redis-server`` on 127.0.0.1 (a free port, a temp dir), started
and stopped here like every other child of the bench. Without ``redis-server`` (or
without the bench extra's celery and arq) the figure is skipped with a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from harness import (
    BENCH_DIR,
    HOST,
    BenchError,
    Procs,
    arrays,
    event,
    item_body,
    new_secret,
    post_all,
    post_one,
    tail,
    wait_channel,
    wait_file,
)
from scenarios import CONCURRENCY, POSTERS, Ctx, Row, client_loop, fmt

PEERS = ("celery", "arq")
LABELS = {
    "celery": "Celery 5 + Redis (requests, threads ×64)",
    "arq": f"arq + Redis (aiohttp, max_jobs {CONCURRENCY})",
}


def missing() -> str | None:
    """Why the peers cannot run here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server)"
    absent = [m for m in ("celery", "arq", "redis", "requests") if importlib.util.find_spec(m) is None]
    if absent:
        return f"{', '.join(absent)} not installed (pip install -e '.[bench]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


async def _ping(port: int) -> bool:
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return False
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 2)).startswith(b"+PONG")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def start_redis(procs: Procs, folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A redis-server of the bench's own on 127.0.0.1 (a free port, data in ``folder``).

    Its append-only file is written before each reply but not fsynced (``appendfsync no``):
    a queued job survives Redis's crash but not the machine's, as hookd's events do with
    ``durability = "process"``. No snapshots."""
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before the child starts
    log = folder / "redis.log"
    for _ in range(5):  # the free port may be taken between the check and the bind
        port = _free_port()
        cmd = ["redis-server", "--bind", HOST, "--port", str(port), "--dir", str(folder), "--save", "",
               "--appendonly", "yes", "--appendfsync", "no", "--daemonize", "no"]  # fmt: skip
        proc = procs.spawn(cmd, log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            if await _ping(port):
                return proc, port
            await asyncio.sleep(0.02)
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
    raise BenchError(f"redis-server did not start:\n{tail(log)}")


class PeerCpu:
    """CPU seconds (user + system) of a peer's processes, each with its children, over an
    interval."""

    def __init__(self, pids: dict[str, int]) -> None:
        import psutil

        self._procs = {role: psutil.Process(pid) for role, pid in pids.items()}
        self._start = self._read()

    def _read(self) -> dict[str, float]:
        import psutil

        out: dict[str, float] = {}
        for role, p in self._procs.items():
            out[role] = 0.0
            with contextlib.suppress(psutil.Error):
                for q in [p, *p.children(recursive=True)]:
                    t = q.cpu_times()
                    out[role] += t.user + t.system
        return out

    def used(self) -> dict[str, float]:
        """CPU seconds per process since the meter started."""
        now = self._read()
        return {role: now[role] - self._start[role] for role in now}

    async def settle(self, patience: float = 10.0, step: float = 0.2, idle: float = 0.01) -> None:
        """Wait until the processes are idle (arq's worker polls Redis even then)."""
        deadline = time.monotonic() + patience
        last = sum(self.used().values())
        while time.monotonic() < deadline:
            await asyncio.sleep(step)
            now = sum(self.used().values())
            if now - last < idle:
                return
            last = now


@dataclass(frozen=True)
class PeerRun:
    """One peer's run: its rate, when ingest was done, its CPU per event."""

    rate: float
    ingest_seconds: float
    cpu_us_per_event: dict[str, float]  # per process: ingest, worker, redis

    @property
    def cpu_total(self) -> float:
        """µs of CPU per event, all its processes."""
        return sum(self.cpu_us_per_event.values())


async def run_peer(ctx: Ctx, name: str) -> PeerRun:
    """Start Redis, the peer's ingest server and worker; warm them; post figure 1's events."""
    folder = ctx.workdir / f"peer-{name}"
    redis_proc, redis_port = await start_redis(ctx.procs, folder / "redis")
    ch = f"peer-{name}-{ctx.run_id}"
    warm_ch = f"peer-{name}-warm-{ctx.run_id}"
    routes = {"bench": ["peer", ctx.url(f"/r/{ch}")], "warm": ["warm", ctx.url(f"/r/{warm_ch}")]}
    env = {
        **_base_env(),
        "PEER_REDIS_URL": f"redis://{HOST}:{redis_port}/0",
        "PEER_SECRET": new_secret(),
        "PEER_ROUTES": orjson.dumps(routes).decode(),
    }
    script = BENCH_DIR / f"peer_{name}.py"
    if name == "celery":
        from peer_celery import WORKER_ARGS  # here: celery is imported only when it is installed

        worker_cmd = [sys.executable, "-m", "celery", "-A", "peer_celery", "worker", "-n", f"peer-{ctx.run_id}@%h",
                      *WORKER_ARGS]  # fmt: skip
    else:
        worker_cmd = [sys.executable, str(script), "worker"]
    worker = ctx.procs.spawn(worker_cmd, folder / "worker.log", env=env)
    port_file = folder / "ingest.port"
    ingest_log = folder / "ingest.log"
    ingest = ctx.procs.spawn([sys.executable, str(script), "ingest", "--port-file", str(port_file)], ingest_log,
                             env=env)  # fmt: skip
    try:
        info = orjson.loads(await wait_file(port_file, ingest, 60, ingest_log))
        url = f"http://{HOST}:{int(info['port'])}/v1/events"
        # Warm-up, as hookd's: the worker is up, its connections open, its code paths run.
        warm = [event(ctx.prefix(f"peer-{name}-warm"), i, "warm.up") for i in range(200)]
        for body in arrays(warm, 100):
            await post_one(ctx.s, url, body, 202)
        await wait_channel(ctx.s, ctx.receiver, warm_ch, len(warm), 60)
        n = ctx.scale.unbatched
        bodies = arrays([event(ctx.prefix(f"peer-{name}"), i, "bench.created") for i in range(n)], 100)
        meter = PeerCpu({"ingest": ingest.pid, "worker": worker.pid, "redis": redis_proc.pid})
        posted = await post_all(ctx.s, url, bodies, POSTERS)
        st = await wait_channel(ctx.s, ctx.receiver, ch, n, 60 + n / 50)
        await meter.settle()
        cpu = meter.used()
        if worker.poll() is not None:
            raise BenchError(f"the {name} worker exited with {worker.returncode}:\n{tail(folder / 'worker.log')}")
    finally:
        # Redis last, so the worker's warm shutdown can still reach it.
        _stop([ingest, worker])
        _stop([redis_proc])
    per_event = {role: seconds / n * 1e6 for role, seconds in cpu.items()}
    return PeerRun(n / (st["last"] - posted.first), posted.last - posted.first, per_event)


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for p in children:
        if p.poll() is None:
            p.terminate()
    for p in children:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def _base_env() -> dict[str, str]:
    # The workers import the bench's modules by bare name (celery -A peer_celery).
    env = dict(os.environ)
    env["PYTHONPATH"] = str(BENCH_DIR) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


async def peers(ctx: Ctx) -> dict[str, Any]:
    """Figure 1's job done by Celery and by arq, against the bare client loop (and hookd,
    when figure 1 ran in the same run)."""
    why = missing()
    if why is not None:
        ctx.rows.append(Row("8 peers", "skipped", why))
        return {"skipped": why}
    n = ctx.scale.unbatched
    item_bodies = _item_bodies(ctx, n)
    ceiling = [await client_loop(ctx, f"ceil-p1-{ctx.run_id}", item_bodies)]
    runs = {name: await run_peer(ctx, name) for name in PEERS}
    ceiling.append(await client_loop(ctx, f"ceil-p2-{ctx.run_id}", item_bodies))
    ceil = sum(ceiling) / len(ceiling)
    hookd_rate = ctx.figures.get("unbatched_rate")
    out: dict[str, Any] = {"n": n, "ceilings": ceiling, "ceiling": ceil}
    for i, name in enumerate(PEERS):
        r = runs[name]
        ctx.rows.append(Row("8 peers" if i == 0 else "", f"{LABELS[name]}: deliveries/s", fmt(r.rate), fmt(ceil),
                            r.rate / ceil))  # fmt: skip
        parts = ", ".join(f"{role} {us:.0f}" for role, us in r.cpu_us_per_event.items())
        ctx.rows.append(Row("", "  CPU per event", f"{r.cpu_total:.0f} µs ({parts})"))
        ctx.rows.append(Row("", "  ingest done after", fmt(r.ingest_seconds, " s", 2)))
        if hookd_rate:  # figure 1 ran earlier in this run
            ctx.rows.append(Row("", "  hookd's rate (figure 1) ÷ this", f"{hookd_rate / r.rate:.1f}"))
        out[name] = {"rate": r.rate, "ratio": r.rate / ceil, "ingest_seconds": r.ingest_seconds,
                     "cpu_us_per_event": r.cpu_total, "cpu_us_per_event_by_process": r.cpu_us_per_event}  # fmt: skip
        if hookd_rate:
            out[name]["hookd_over_peer"] = hookd_rate / r.rate
    return out


def _item_bodies(ctx: Ctx, n: int) -> list[bytes]:
    evs = [event(ctx.prefix("peers-ceil"), i, "bench.created") for i in range(n)]
    return [item_body("peer", ev, i) for i, ev in enumerate(evs)]
