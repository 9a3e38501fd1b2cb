"""Plumbing for the benchmarks: child processes, generated configs, the load generator.

Every child is started with a parent-death signal and registered in one ``Procs``
group, so the bench leaves no process behind however it ends. Every wait has a
deadline. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"


class BenchError(Exception):
    """A benchmark could not run as designed (a child died, a wait timed out, …)."""


# -- child processes -----------------------------------------------------------------------


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: the children's own parent checks still apply
        pass


class Procs:
    """Every child the bench started; ``cleanup`` stops what is still running."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[bytes]] = []

    def spawn(self, cmd: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``cmd`` with stdout and stderr going to ``log_path``."""
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                list(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent, start_new_session=True, env=env,  # noqa: PLW1509 - prctl only
            )  # fmt: skip
        self.children.append(proc)
        return proc

    def cleanup(self) -> None:
        """SIGTERM every live child, give them a few seconds together, then SIGKILL."""
        live = [p for p in self.children if p.poll() is None]
        for p in live:
            with contextlib.suppress(OSError):
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in live:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    p.kill()
                with contextlib.suppress(OSError):
                    p.wait(timeout=5)
        self.children = [p for p in self.children if p.poll() is None]


async def wait_file(path: Path, proc: subprocess.Popen[bytes], patience: float, log: Path) -> bytes:
    """The contents of ``path`` once it exists (the child writes it atomically)."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            with path.open("rb") as f:
                return f.read()
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            raise BenchError(f"{proc.args!r} exited with {proc.returncode}:\n{tail(log)}")
        await asyncio.sleep(0.01)
    raise BenchError(f"{proc.args!r} did not start within {patience} s:\n{tail(log)}")


def tail(path: Path, n: int = 2000) -> str:
    """The end of a log file, for error messages."""
    try:
        return path.read_bytes()[-n:].decode("utf-8", "replace")
    except OSError:
        return "(no log)"


@dataclass
class Server:
    """A helper server from servers.py."""

    proc: subprocess.Popen[bytes]
    port: int

    @property
    def base(self) -> str:
        """Its base URL."""
        return f"http://{HOST}:{self.port}"


async def start_server(procs: Procs, workdir: Path, kind: str, max_seconds: float) -> Server:
    """Start ``servers.py kind`` and wait for its port."""
    port_file = workdir / f"{kind}-{secrets.token_hex(3)}.port"
    log = workdir / f"{kind}.log"
    cmd = [sys.executable, str(BENCH_DIR / "servers.py"), kind, "--port-file", str(port_file),
           "--max-seconds", str(max_seconds)]  # fmt: skip
    proc = procs.spawn(cmd, log)
    info = orjson.loads(await wait_file(port_file, proc, 30, log))
    return Server(proc, int(info["port"]))


# -- the daemon ------------------------------------------------------------------------------


def hookd_command() -> str:
    """The ``hookd`` console script next to this interpreter, else the one on PATH."""
    here = Path(sys.executable).parent / "hookd"
    if here.exists():
        return str(here)
    import shutil

    found = shutil.which("hookd")
    if not found:
        raise BenchError("cannot find the hookd command; install hookd into this environment")
    return found


def toml_value(v: Any) -> str:
    """One TOML value (the subset the bench's configs use)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str | Path):
        return json.dumps(str(v))
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"no TOML for {type(v).__name__}")


def render_config(cfg: dict[str, Any]) -> str:
    """A config dict as a TOML file: plain sections, then ``[[webhooks]]``."""
    lines: list[str] = []
    for section in ("server", "storage", "delivery", "batching"):
        if section in cfg:
            lines.append(f"[{section}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in cfg[section].items()]
            lines.append("")
    for w in cfg.get("webhooks", []):
        lines.append("[[webhooks]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in w.items()]
        lines.append("")
    return "\n".join(lines)


def new_secret() -> str:
    """A Standard Webhooks signing secret."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook(wid: str, url: str, on: str, batching: str = "per_occurrence", **extra: Any) -> dict[str, Any]:
    """One ``[[webhooks]]`` entry with a signing secret, as a real one would have."""
    w: dict[str, Any] = {"id": wid, "url": url, "secret": new_secret(), "batching": batching}
    w.update(extra)
    w["events"] = [{"id": "all", "on": on}]
    return w


def daemon_config(
    db: Path,
    webhooks: list[dict[str, Any]],
    *,
    concurrency: int = 256,
    per_webhook: int = 64,
    spool_after: float = 300.0,
    spool_poll: float = 1.0,
    retry_schedule: Sequence[float] = (1, 2, 5),
) -> dict[str, Any]:
    """A whole config: loopback on port 0, storage in the bench's temp dir."""
    return {
        "server": {"listen": f"{HOST}:0", "max_events_per_request": 1000, "max_body_bytes": 4 * 1024 * 1024,
                   "shutdown_grace_seconds": 2},
        "storage": {"path": str(db), "durability": "process"},
        "delivery": {"concurrency": concurrency, "per_webhook_concurrency": per_webhook,
                     "retry_schedule": list(retry_schedule), "timeout_seconds": 30},
        "batching": {"spool_after_seconds": spool_after, "spool_poll_seconds": spool_poll},
        "webhooks": webhooks,
    }  # fmt: skip


def parse_ts(iso: str) -> float:
    """An RFC 3339 timestamp (as hookd logs and answers them) as unix seconds."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class Daemon:
    """One ``hookd run -c <generated config>`` child."""

    def __init__(
        self, procs: Procs, workdir: Path, name: str, config: dict[str, Any], prefix: Sequence[str] = ()
    ) -> None:
        self.procs = procs
        self.prefix = list(prefix)  # run the daemon under this (valgrind, say)
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.dir / "hookd.toml"
        self.config_path.write_text(render_config(config))
        self.config_path.chmod(0o600)
        self.log = self.dir / "hookd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.started: dict[str, Any] = {}
        self.spawned_at = 0.0
        self._offset = 0

    @property
    def pid(self) -> int:
        """The daemon's process id."""
        assert self.proc is not None
        return self.proc.pid

    @property
    def base(self) -> str:
        """Its base URL."""
        return f"http://{HOST}:{self.port}"

    async def start(self, patience: float = 120.0) -> dict[str, Any]:
        """Spawn it and wait for its ``started`` line; return that line."""
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        self.spawned_at = time.time()
        self.proc = self.procs.spawn([*self.prefix, hookd_command(), "run", "-c", str(self.config_path)], self.log)
        self.started = await self.wait_line("started", patience)
        self.port = int(self.started["port"])
        return self.started

    async def wait_line(self, event: str, patience: float) -> dict[str, Any]:
        """The next JSON log line whose ``event`` is ``event``."""
        assert self.proc is not None
        needle = f'"event":"{event}"'.encode()
        deadline = time.monotonic() + patience
        buf = b""
        while time.monotonic() < deadline:
            with self.log.open("rb") as f:
                f.seek(self._offset)
                chunk = f.read()
            self._offset += len(chunk)
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if needle in line:
                    with contextlib.suppress(orjson.JSONDecodeError):
                        rec: dict[str, Any] = orjson.loads(line)
                        if rec.get("event") == event:
                            return rec
            if self.proc.poll() is not None and not chunk:
                raise BenchError(f"hookd exited with {self.proc.returncode} before {event!r}:\n{tail(self.log)}")
            await asyncio.sleep(0.005)
        raise BenchError(f"no {event!r} line from hookd within {patience} s:\n{tail(self.log)}")

    async def stop(self, patience: float = 120.0) -> dict[str, Any]:
        """SIGTERM it and wait for the exit; return its ``stopped`` line (or {})."""
        if self.proc is None or self.proc.poll() is not None:
            return {}
        self.proc.send_signal(signal.SIGTERM)
        try:
            stopped = await self.wait_line("stopped", patience)
        except BenchError:
            stopped = {}
        for _ in range(1500):  # 30 s
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.02)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.returncode not in (0, -signal.SIGKILL):
            raise BenchError(f"hookd exited with {self.proc.returncode}:\n{tail(self.log)}")
        return stopped


def rss_bytes(pid: int) -> tuple[int, int]:
    """Resident memory now and its peak (VmHWM), in bytes."""
    import psutil

    rss = int(psutil.Process(pid).memory_info().rss)
    peak = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, peak


# -- load --------------------------------------------------------------------------------------

SUMMARY = "Printer on fire on the third floor, paper tray two"


def event(prefix: str, i: int, etype: str) -> dict[str, Any]:
    """One ingest event, about the size of a real service-desk event (~300 bytes)."""
    return {
        "id": f"{prefix}-{i}",
        "event": etype,
        "object": {"id": i, "summary": SUMMARY, "status": {"id": 9, "display": "Open"}, "priority": "P2",
                   "client": {"id": 17, "name": "Acme Ltd"}, "agent": "jo.bloggs"},
        "action": {"id": i, "note": "Technician dispatched"},
    }  # fmt: skip


def item_body(wid: str, ev: dict[str, Any], i: int) -> bytes:
    """What hookd sends for one item of ``ev`` (payload = object): the ceiling's body."""
    return orjson.dumps({
        "id": f"0190a4b2-7c3e-7d1a-9f00-{i:012d}", "webhook_id": wid, "event": ev["event"], "event_id": ev["id"],
        "trigger": "all", "object_id": ev["object"]["id"], "timestamp": "2026-11-29T07:00:00.000Z",
        "object": ev["object"], "action": ev["action"],
    })  # fmt: skip


def arrays(events: list[dict[str, Any]], size: int) -> list[bytes]:
    """``events`` as ingest request bodies of ``size`` events each."""
    return [orjson.dumps(events[i : i + size]) for i in range(0, len(events), size)]


@dataclass
class Posted:
    """What posting a list of bodies did: per request, (sent, answered, status)."""

    sent: list[float] = field(default_factory=list)
    done: list[float] = field(default_factory=list)

    @property
    def first(self) -> float:
        """When the first request went out."""
        return min(self.sent)

    @property
    def last(self) -> float:
        """When the last answer came back."""
        return max(self.done)


def session(limit: int = 0) -> aiohttp.ClientSession:
    """A client session for load and control traffic."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, force_close=False),
        timeout=aiohttp.ClientTimeout(total=120),
        skip_auto_headers=("Accept-Encoding",),
    )


JSON = {"Content-Type": "application/json"}


async def post_one(s: aiohttp.ClientSession, url: str, body: bytes, status: int) -> bytes:
    """POST one body; anything but ``status`` is an error."""
    async with s.post(url, data=body, headers=JSON) as r:
        data = await r.read()
        if r.status != status:
            raise BenchError(f"POST {url} answered {r.status}: {data[:300]!r}")
        return data


async def post_all(
    s: aiohttp.ClientSession, url: str, bodies: Sequence[bytes], concurrency: int, status: int = 202
) -> Posted:
    """POST every body, ``concurrency`` at a time, as fast as answers come back."""
    out = Posted([0.0] * len(bodies), [0.0] * len(bodies))
    nxt = iter(range(len(bodies)))

    async def worker() -> None:
        for i in nxt:
            out.sent[i] = time.time()
            await post_one(s, url, bodies[i], status)
            out.done[i] = time.time()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(bodies)))))
    return out


async def open_loop(
    s: aiohttp.ClientSession,
    url: str,
    bodies: Sequence[bytes],
    rate: float,
    on_done: Callable[[int, float, float], None] | None = None,
    status: int = 202,
) -> list[float]:
    """POST ``bodies`` on a fixed schedule (``rate`` per second) whatever the answers do;
    return each request's latency from its *scheduled* start (no coordinated omission)."""
    lat = [math.nan] * len(bodies)
    tasks: list[asyncio.Task[None]] = []
    t0 = time.time() + 0.05

    async def one(i: int, scheduled: float) -> None:
        await post_one(s, url, bodies[i], status)
        now = time.time()
        lat[i] = now - scheduled
        if on_done is not None:
            on_done(i, scheduled, now)

    for i in range(len(bodies)):
        scheduled = t0 + i / rate
        delay = scheduled - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    return lat


# -- the receiver's view --------------------------------------------------------------------


async def get_json(s: aiohttp.ClientSession, url: str) -> Any:
    """GET a JSON document."""
    async with s.get(url) as r:
        if r.status != 200:
            raise BenchError(f"GET {url} answered {r.status}: {(await r.read())[:300]!r}")
        return orjson.loads(await r.read())


async def channel_stats(s: aiohttp.ClientSession, receiver: Server, ch: str, records: bool = False) -> dict[str, Any]:
    """A receiver channel's counts (and records)."""
    data: dict[str, Any] = await get_json(s, f"{receiver.base}/stats/{ch}" + ("?records=1" if records else ""))
    return data


async def wait_channel(
    s: aiohttp.ClientSession, receiver: Server, ch: str, items: int, patience: float, key: str = "items"
) -> dict[str, Any]:
    """Poll until the channel has seen ``items`` items (or ``key``), or fail after ``patience`` s."""
    deadline = time.monotonic() + patience
    st: dict[str, Any] = {}
    while time.monotonic() < deadline:
        st = await channel_stats(s, receiver, ch)
        if st[key] >= items:
            return st
        await asyncio.sleep(0.02)
    raise BenchError(f"receiver channel {ch!r} saw {st.get(key)} of {items} {key} within {patience:.0f} s")


# -- numbers -------------------------------------------------------------------------------------


def pct(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values``."""
    xs = sorted(v for v in values if not math.isnan(v))
    if not xs:
        return math.nan
    k = max(0, min(len(xs) - 1, math.ceil(p / 100 * len(xs)) - 1))
    return xs[k]


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import platform

    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from importlib.metadata import version

        hookd_version = version("hookd")
    except Exception:
        hookd_version = "?"
    try:
        # The checkout of the hookd this interpreter runs (another checkout's venv may run
        # this bench against its own hookd).
        import importlib.util

        spec = importlib.util.find_spec("hookd")
        root = Path(spec.origin).parent.parent if spec and spec.origin else BENCH_DIR.parent
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                check=False, capture_output=True, text=True, timeout=5).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "hookd"],
                               check=False, capture_output=True, text=True, timeout=5).stdout.strip()  # fmt: skip
        commit += "+dirty" if dirty else ""
    except Exception:
        commit = "?"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hookd": hookd_version,
        "commit": commit,
    }


class CpuMeter:
    """One process's CPU seconds (user + system) over an interval: the whole process, and its
    main thread (hookd's event loop) apart from the others (aiosqlite's SQLite thread, the
    log writer). CPU time, unlike a rate, holds still when other processes share the cores."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._pid = pid
        self._proc = psutil.Process(pid)
        self._start = self._read()

    def _read(self) -> tuple[float, float]:
        t = self._proc.cpu_times()
        main = sum(th.user_time + th.system_time for th in self._proc.threads() if th.id == self._pid)
        return t.user + t.system, main

    def used(self) -> tuple[float, float]:
        """(whole process, main thread) CPU seconds since the meter started."""
        total, main = self._read()
        return total - self._start[0], main - self._start[1]

    async def settle(self, patience: float = 10.0, step: float = 0.1, idle: float = 0.003) -> None:
        """Wait until the process is idle (under ``idle`` CPU seconds per ``step``), so work
        left after the last arrival (outcome commits, checkpoints) is counted too."""
        deadline = time.monotonic() + patience
        last = self.used()[0]
        while time.monotonic() < deadline:
            await asyncio.sleep(step)
            now = self.used()[0]
            if now - last < idle:
                return
            last = now


class CpuWatch:
    """CPU used by processes other than the bench's own tree (and the VM's steal time)
    over an interval: a sign that the figures were disturbed."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._t0 = time.monotonic()
        self._busy0, self._steal0 = self._system()
        self._ours0 = self._ours()

    def _system(self) -> tuple[float, float]:
        t = self._psutil.cpu_times()
        busy = t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)
        return busy, getattr(t, "steal", 0.0)

    def _ours(self) -> float:
        # Children that exited and were waited for are in os.times(); live ones asked directly.
        t = os.times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in self._psutil.Process().children(recursive=True):
            with contextlib.suppress(self._psutil.Error):
                c = child.cpu_times()
                total += c.user + c.system
        return total

    def others(self) -> tuple[float, float]:
        """(cores busy with other processes, cores stolen by the hypervisor) on average so far."""
        wall = max(1e-6, time.monotonic() - self._t0)
        busy, steal = self._system()
        other = (busy - self._busy0) - (self._ours() - self._ours0)
        return max(0.0, other / wall), (steal - self._steal0) / wall
