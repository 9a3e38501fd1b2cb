"""What the tests share: real receivers on 127.0.0.1 port 0 and their behaviours, event and
webhook builders, a running store, and two ways to run hookd behind one client interface:
the real ``hookd run`` in a subprocess (``Daemon``) and an App in the test's own loop
(``InProcess``). Fixtures that hand these out live in conftest.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from signal import SIGTERM
from typing import Any, NamedTuple, NoReturn

import aiohttp
import orjson
import structlog
from aiohttp import web

from hookd.app import App
from hookd.config import Config
from hookd.store import Store

HOOKD = str(Path(sys.executable).with_name("hookd"))
PROXY = str(Path(sys.executable).with_name("proxy"))  # proxy.py, from the test extra
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

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context  # serve https with it
        self.requests: list[Received] = []
        self.behave: dict[str, Behaviour] = {}
        self._cond = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.release = asyncio.Event()  # set to let "hang" handlers finish

    @property
    def url(self) -> str:
        """Base URL, no trailing slash."""
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on 127.0.0.1, a free port."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
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


def webhook(id: str, url: str, on: str = "*", **settings: Any) -> dict[str, Any]:
    """A webhook table for ``make_config``; ``events`` may be given whole instead of ``on``."""
    w: dict[str, Any] = {"id": id, "url": url, **settings}
    w.setdefault("events", [{"id": "t", "on": on}])
    return w


class Run(NamedTuple):
    """What one ``hookd`` command did."""

    code: int
    out: str
    err: str


async def hookd(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> Run:
    """Run ``hookd ARGS`` without blocking the loop (the receiver and daemon keep serving).

    The caller's HOOKD_CONFIG and HOOKD_TOKEN are left out, so a verb finds the daemon only
    as its arguments (and ``env``) say."""
    base = {k: v for k, v in os.environ.items() if k not in ("HOOKD_CONFIG", "HOOKD_TOKEN")}
    proc = await asyncio.create_subprocess_exec(
        HOOKD,
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**base, **(env or {})},
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def refused_start(config: Path) -> list[str]:
    """Run ``hookd run -c CONFIG``, which must exit 1 at once; the errors of its last line
    (``config_invalid``)."""
    run = await hookd("run", "-c", str(config))
    assert run.code == 1, run.out + run.err
    line = json.loads((run.out + run.err).strip().splitlines()[-1])
    assert line["event"] == "config_invalid", line
    errors: list[str] = line["errors"]
    return errors


def free_port() -> int:
    """A port the kernel just handed out and released (for a config that must name one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def until(
    check: Callable[[], bool], what: str = "a condition", timeout: float = 10.0, every: float = 0.005
) -> None:
    """Poll ``check`` every ``every`` seconds until it holds; fail naming ``what`` after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                if check():
                    return
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"not in time ({timeout:g} s): {what}") from None


@contextlib.asynccontextmanager
async def running_store(path: Path, busy_timeout: float = 5.0) -> AsyncIterator[Store]:
    """A real Store on ``path`` with its writer task, closed at the end."""
    store = Store(path, "process", busy_timeout=busy_timeout)
    await store.open()
    writer = asyncio.get_running_loop().create_task(store.writer())
    try:
        yield store
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        await store.close()


# -- a running hookd, as its clients see it ---------------------------------------------------


class Client:
    """What a test sees of a running hookd: its HTTP API and its log lines, decoded.

    ``lines`` are the JSON log lines as dicts and ``raw`` their text; a runner appends
    both through ``_append`` and says when no more can come through ``_exited``.
    """

    port: int
    lines: list[dict[str, Any]]
    raw: list[str]
    _grown: asyncio.Event

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def _append(self, rec: dict[str, Any], text: str) -> None:
        self.raw.append(text)
        self.lines.append(rec)
        self._grown.set()

    def _exited(self) -> bool:
        raise NotImplementedError

    async def wait_line(
        self, event: str, timeout: float = 10.0, where: Callable[[dict[str, Any]], bool] | None = None, count: int = 1
    ) -> dict[str, Any]:
        """Wait for the ``count``-th log line whose ``event`` is ``event`` (and ``where`` holds)."""

        def found() -> list[dict[str, Any]]:
            return [r for r in self.lines if r.get("event") == event and (where is None or where(r))]

        try:
            async with asyncio.timeout(timeout):
                # Checking and waiting happen with no await between them, so a line
                # appended in the loop cannot slip past; another waiter clearing the
                # event after it woke does not matter, each one checks again.
                while len(found()) < count and not self._exited():
                    self._grown.clear()
                    await self._grown.wait()
        except TimeoutError:
            raise AssertionError(f"no {event!r} line in time; output:\n" + "\n".join(self.raw[-30:])) from None
        hits = found()
        if len(hits) < count:
            raise AssertionError(f"hookd exited before {event!r}; output:\n" + "\n".join(self.raw[-30:]))
        return hits[count - 1]

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


@dataclass
class Daemon(Client):
    """The real ``hookd run`` in a subprocess, its JSON log lines collected.

    For what only a process shows: signals, exit codes, kill -9, the lines as printed
    (the standard library's included), systemd, the environment at start-up.
    """

    config: Path
    proc: asyncio.subprocess.Process | None = None
    port: int = 0
    lines: list[dict[str, Any]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    _grown: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)  # after ``run -c PATH``, e.g. ``--log-level debug``

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
        try:
            while line := await self.proc.stdout.readline():
                text = line.decode().rstrip("\n")
                try:
                    rec = json.loads(text)
                except ValueError:
                    rec = {"event": "<not json>", "text": text}
                self._append(rec, text)
        finally:
            self._grown.set()  # the output has ended: waiters stop waiting for more

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

    async def kill(self) -> None:
        """Kill the process if it still runs, and let the reader finish."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            with contextlib.suppress(Exception):
                await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


class LogLines:
    """structlog's events, while installed, handed as ``hookd run`` would print them to every listening InProcess.

    Each event becomes the line the JSON renderer would write (level, ISO timestamp,
    values through the same ``default=str``), decoded again, so tests read the same
    dicts from both runners. structlog's configuration belongs to the whole process:
    the processor list is changed in place, as ``structlog.testing.capture_logs`` does,
    so loggers that cached it see the change, and put back as it was.
    """

    def __init__(self) -> None:
        self.listeners: list[InProcess] = []
        self._saved: list[Any] | None = None

    def install(self) -> None:
        """Route structlog's events here (once; later calls do nothing)."""
        if self._saved is not None:
            return
        processors = structlog.get_config()["processors"]
        self._saved = list(processors)
        processors[:] = [
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            self,
        ]
        structlog.configure(processors=processors)

    def uninstall(self) -> None:
        """Put structlog's processors back as they were."""
        if self._saved is None:
            return
        processors = structlog.get_config()["processors"]
        processors[:] = self._saved
        structlog.configure(processors=processors)
        self._saved = None

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> NoReturn:
        level = logging.getLevelNamesMapping().get(str(event_dict.get("level", "info")).upper(), logging.INFO)
        listeners = [x for x in self.listeners if level >= x.level]
        if listeners:
            text = orjson.dumps(event_dict, default=str).decode()
            for listener in listeners:
                listener.line(text)
        raise structlog.DropEvent


@dataclass(eq=False)
class InProcess(Client):
    """An App serving in the test's own loop on a free port: the HTTP contract without a process start.

    Its structlog lines are collected at ``level`` and above, as ``hookd run`` prints
    them. A process shares its signals, environment and logging set-up: tests of those
    use ``Daemon``.
    """

    config: Path
    logs: LogLines
    level: int = logging.INFO
    # Applied to the loaded config before the App starts: a test's stand-in for what the
    # store would add, such as webhooks created through the API.
    prepare: Callable[[Config], Config] | None = None
    app: App | None = None
    port: int = 0
    lines: list[dict[str, Any]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    _grown: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: int = 0
    stopped: bool = False

    async def start(self, timeout: float = 15.0) -> None:
        """Load the config, serve, and wait until the App is ready (or raise why it did not start)."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self.logs.install()
        self.logs.listeners.append(self)
        config = Config.load(self.config)
        self.app = App(self.prepare(config) if self.prepare else config, self.config)
        self._task = self._loop.create_task(self.app.serve(shutdown_trigger=self._stop))
        self._task.add_done_callback(lambda _: self._grown.set())  # stopped: waiters stop waiting for more
        ready = self._loop.create_task(self.app.ready.wait())
        try:
            await asyncio.wait([self._task, ready], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if self._task.done():
            self.stopped = True
            self._task.result()  # start-up failed: raise its error
            raise AssertionError("the App returned before it was ready")
        assert self.app.ready.is_set(), "the App did not start in time"
        assert self.app.port is not None
        self.port = self.app.port

    def line(self, text: str) -> None:
        """Take one rendered log line, from any thread."""
        if self._loop is None:
            return
        rec = json.loads(text)
        if threading.get_ident() == self._thread:
            self._append(rec, text)
        else:  # the store's connection thread logs too
            self._loop.call_soon_threadsafe(self._append, rec, text)

    def _exited(self) -> bool:
        return self._task is not None and self._task.done()

    async def stop(self, timeout: float = 15.0) -> int:
        """Stop as SIGTERM would (the App's shutdown checklist); 0 once it has stopped cleanly."""
        if self._task is None:
            return 0
        self.stopped = True
        self._stop.set()
        try:
            async with asyncio.timeout(timeout):
                await self._task
        finally:
            if self in self.logs.listeners:
                self.logs.listeners.remove(self)
        return 0


@dataclass
class Proxy:
    """A real HTTP proxy (proxy.py) in its own process group on a free loopback port, its
    access lines collected; ``auth`` (``user:password``) makes it answer 407 without them."""

    folder: Path
    auth: str | None = None
    port: int = 0
    lines: list[str] = field(default_factory=list)
    proc: asyncio.subprocess.Process | None = None
    _reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The proxy's URL, no credentials."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start and wait until it listens."""
        port_file = self.folder / f"proxy-{id(self)}.port"
        args = ["--hostname", "127.0.0.1", "--port", "0", "--port-file", str(port_file), "--num-workers", "1"]
        if self.auth:
            args += ["--basic-auth", self.auth]
        self.proc = await asyncio.create_subprocess_exec(
            PROXY, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await until(lambda: port_file.exists() and port_file.read_text().strip().isdigit(), "proxy.py's port file", 30)
        self.port = int(port_file.read_text())

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode(errors="replace").rstrip())

    def saw(self, *words: str) -> bool:
        """True when one access line holds every word (e.g. ``"CONNECT", "127.0.0.1:8443"``)."""
        return any(all(w in line for w in words) for line in self.lines if "access_log" in line)

    async def stop(self) -> None:
        """End its process group (the acceptors are child processes) and wait."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await self.proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        if self._reader is not None:
            await self._reader


MakeConfig = Callable[..., Path]
DaemonFactory = Callable[..., Awaitable[Daemon]]
AppFactory = Callable[..., Awaitable[InProcess]]
