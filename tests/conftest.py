"""Shared fixtures: real receivers on 127.0.0.1 port 0, config files in tmp_path, and the
real ``hookd`` command as a subprocess (or an in-process App where a test needs to look
inside)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from signal import SIGTERM
from typing import Any

import aiohttp
import pytest
import tomli_w
from aiohttp import web

HOOKD = str(Path(sys.executable).with_name("hookd"))
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class Received:
    """One request a receiver got."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body, decoded."""
        return json.loads(self.body)


Behaviour = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


class Receiver:
    """An aiohttp server that records every request and answers as told, per path.

    ``behave[path]`` is a coroutine ``(request, n) -> response`` where ``n`` counts the
    requests to that path so far (1-based); the default answers 200 ``{"ok": true}``.
    """

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.behave: dict[str, Behaviour] = {}
        self._cond = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.release = asyncio.Event()  # set to let "hang" handlers finish

    @property
    def url(self) -> str:
        """Base URL, no trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on 127.0.0.1, a free port."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Stop listening."""
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        rec = Received(request.method, request.path, dict(request.query), dict(request.headers), body)
        n = sum(1 for r in self.requests if r.path == request.path) + 1
        async with self._cond:
            self.requests.append(rec)
            self._cond.notify_all()
        behaviour = self.behave.get(request.path)
        if behaviour is None:
            return web.json_response({"ok": True})
        return await behaviour(request, n)

    def at(self, path: str) -> list[Received]:
        """Requests to ``path``."""
        return [r for r in self.requests if r.path == path]

    async def wait_for(self, count: int, path: str | None = None, timeout: float = 10.0) -> list[Received]:
        """Wait until ``count`` requests (to ``path``, or any) have arrived."""

        def enough() -> bool:
            got = self.at(path) if path else self.requests
            return len(got) >= count

        async with asyncio.timeout(timeout), self._cond:
            await self._cond.wait_for(enough)
        return self.at(path) if path else list(self.requests)


def status(code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Behaviour:
    """A behaviour answering ``code``."""

    async def answer(request: web.Request, n: int) -> web.StreamResponse:
        return web.Response(status=code, body=body, headers=headers)

    return answer


def fail_first(times: int, code: int = 500, headers: dict[str, str] | None = None) -> Behaviour:
    """Answer ``code`` for the first ``times`` requests, then 200."""

    async def answer(request: web.Request, n: int) -> web.StreamResponse:
        if n <= times:
            return web.Response(status=code, body=b"not yet", headers=headers)
        return web.json_response({"ok": True})

    return answer


def hang(receiver: Receiver) -> Behaviour:
    """Never answer until the receiver's ``release`` is set."""

    async def answer(request: web.Request, n: int) -> web.StreamResponse:
        await receiver.release.wait()
        return web.Response(status=200)

    return answer


def ev(n: int, event: str = "ticket.created") -> dict[str, Any]:
    """An event with a known occurrence id ``e<n>`` and object id ``n``."""
    return {"id": f"e{n}", "event": event, "object": {"id": n, "summary": f"ticket {n}"}}


def stamped(times: list[float], inner: Behaviour | None = None) -> Behaviour:
    """A behaviour noting the monotonic arrival time of each request, then answering as ``inner`` (or 200)."""

    async def answer(request: web.Request, n: int) -> web.StreamResponse:
        times.append(time.monotonic())
        if inner is not None:
            return await inner(request, n)
        return web.json_response({"ok": True})

    return answer


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A recording receiver on a free loopback port."""
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


def webhook(id: str, url: str, on: str = "*", **settings: Any) -> dict[str, Any]:
    """A webhook table for ``make_config``; ``events`` may be given whole instead of ``on``."""
    w: dict[str, Any] = {"id": id, "url": url, **settings}
    w.setdefault("events", [{"id": "t", "on": on}])
    return w


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a config file with small timings; keyword tables override the defaults."""

    def make(webhooks: list[dict[str, Any]] | None = None, name: str = "hookd.toml", **tables: Any) -> Path:
        data: dict[str, Any] = {
            "server": {"listen": "127.0.0.1:0", "shutdown_grace_seconds": 2},
            "storage": {"path": str(tmp_path / "hookd.db")},
            "delivery": {"retry_schedule": [0.05, 0.1], "jitter": 0, "timeout_seconds": 5,
                         "connect_timeout_seconds": 2},
            "batching": {"spool_poll_seconds": 0.05},
        }  # fmt: skip
        for key, value in tables.items():
            data.setdefault(key, {}).update(value)
        data["webhooks"] = webhooks or []
        path = tmp_path / name
        path.write_text(tomli_w.dumps(data))
        return path

    return make


@dataclass
class Daemon:
    """The real ``hookd run`` in a subprocess, its JSON log lines collected."""

    config: Path
    proc: asyncio.subprocess.Process | None = None
    port: int = 0
    lines: list[dict[str, Any]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    _cond: asyncio.Condition = field(default_factory=asyncio.Condition)
    _reader: asyncio.Task[None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)  # after ``run -c PATH``, e.g. ``--log-level debug``

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 15.0) -> None:
        """Start and wait for the ``started`` line."""
        self.lines.clear()
        env = {**os.environ, **self.env}
        self.proc = await asyncio.create_subprocess_exec(
            HOOKD, "run", "-c", str(self.config), *self.args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
        )  # fmt: skip
        self._reader = asyncio.get_running_loop().create_task(self._read())
        started = await self.wait_line("started", timeout=timeout)
        self.port = started["port"]

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            text = line.decode().rstrip("\n")
            self.raw.append(text)
            try:
                rec = json.loads(text)
            except ValueError:
                rec = {"event": "<not json>", "text": text}
            async with self._cond:
                self.lines.append(rec)
                self._cond.notify_all()

    async def wait_line(
        self, event: str, timeout: float = 10.0, where: Callable[[dict[str, Any]], bool] | None = None, count: int = 1
    ) -> dict[str, Any]:
        """Wait for the ``count``-th log line whose ``event`` is ``event`` (and ``where`` holds)."""

        def found() -> list[dict[str, Any]]:
            return [r for r in self.lines if r.get("event") == event and (where is None or where(r))]

        try:
            async with asyncio.timeout(timeout), self._cond:
                await self._cond.wait_for(lambda: len(found()) >= count or self._exited())
        except TimeoutError:
            raise AssertionError(f"no {event!r} line in time; output:\n" + "\n".join(self.raw[-30:])) from None
        hits = found()
        if len(hits) < count:
            raise AssertionError(f"hookd exited before {event!r}; output:\n" + "\n".join(self.raw[-30:]))
        return hits[count - 1]

    def _exited(self) -> bool:
        proc, reader = self.proc, self._reader
        return proc is not None and proc.returncode is not None and reader is not None and reader.done()

    async def signal(self, sig: int) -> None:
        """Send a signal."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def stop(self, sig: int = SIGTERM, timeout: float = 15.0) -> int:
        """Signal and wait for exit; return the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            if self._reader is not None:
                await self._reader
        return code

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """One API call; (status, decoded JSON or text)."""
        async with aiohttp.ClientSession() as s, s.request(method, self.url + path, **kwargs) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text

    async def send(self, events: Any, **kwargs: Any) -> tuple[int, Any]:
        """POST /v1/events."""
        return await self.request("POST", "/v1/events", json=events, **kwargs)

    async def wait_deliveries(
        self, webhook_id: str, count: int, state: str | None = None, timeout: float = 10.0, **kw: Any
    ) -> list[dict[str, Any]]:
        """Poll the API until ``webhook_id`` has ``count`` deliveries (in ``state``)."""
        query = f"?limit=500&state={state}" if state else "?limit=500"
        async with asyncio.timeout(timeout):
            while True:
                code, body = await self.request("GET", f"/v1/webhooks/{webhook_id}/deliveries{query}", **kw)
                assert code == 200, body
                if len(body["deliveries"]) >= count:
                    return list(body["deliveries"])
                await asyncio.sleep(0.02)


@pytest.fixture
async def daemon_factory() -> AsyncIterator[Callable[..., Awaitable[Daemon]]]:
    """Start real ``hookd run`` processes; every one is stopped (or killed) at the end."""
    started: list[Daemon] = []

    async def start(config: Path, env: dict[str, str] | None = None, args: list[str] | None = None) -> Daemon:
        d = Daemon(config, env=env or {}, args=args or [])
        started.append(d)
        await d.start()
        return d

    yield start
    for d in started:
        if d.proc is not None and d.proc.returncode is None:
            d.proc.kill()
            with contextlib.suppress(Exception):
                await d.proc.wait()
        if d._reader is not None:
            with contextlib.suppress(Exception):
                await d._reader
