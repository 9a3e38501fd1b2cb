"""The listening socket and client time limits of the HTTP server.

hookd accepts connections itself instead of leaving it to the event loop (aiohttp's
``TCPSite``). Under uvloop, libuv answers an ``accept()`` that fails for want of file
descriptors by accepting and dropping the waiting connections, or, when even that fails,
by closing the listener; nothing reaches Python. A daemon out of descriptors went silent
with nothing logged. Accepting here lets it say so (``accept_failed``, counted in
``hookd_accept_errors_total``) and leave waiting clients in the backlog until descriptors
free up: idle clients are closed after ``client_timeout_seconds``, which is what frees them.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from hookd.responses import error
from hookd.tasks import TaskSet

log = structlog.get_logger("hookd")


class ServerLog:
    """aiohttp's server logger (``aiohttp.server``), but for requests aiohttp could not parse.

    aiohttp answers those 400 itself and logged each as an ERROR with a traceback that
    quotes the offending bytes: a client's malformed request became an operator's alarm,
    and a malformed ``Authorization`` line put its token in the log. Such a request is now
    one ``request_unparsable`` warning naming the kind of fault, without the bytes; every
    other record goes to aiohttp's logger as before."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def exception(self, msg: object, *args: object, exc_info: object = None, **kw: Any) -> None:
        """aiohttp's ``log_exception``: a client's unparsable request is a warning, anything else stays an error."""
        if not _told(log.warning, exc_info):
            self._logger.exception(msg, *args, exc_info=exc_info, **kw)  # type: ignore[arg-type]

    def debug(self, msg: object, *args: object, exc_info: object = None, **kw: Any) -> None:
        """aiohttp logs non-HTTP bytes on a first request at debug: without them, too."""
        if not _told(log.debug, exc_info):
            self._logger.debug(msg, *args, exc_info=exc_info, **kw)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


def _told(emit: Callable[..., Any], exc: object) -> bool:
    """If ``exc`` is aiohttp refusing a request it could not parse (a 4xx), say so with
    ``emit`` in one line without the bytes, and return True."""
    if not (isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500):
        return False
    emit("request_unparsable", status=exc.code, fault=type(exc).__name__)
    return True


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ListenError(OSError):
    """The listen address could not be bound; ``listen`` names it, ``strerror`` says why."""

    def __init__(self, listen: str, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.listen = listen


class AcceptErrors:
    """Counts failed accepts and logs them at most once per ``every`` seconds.

    With the descriptor table full every accept fails, so one line per failure would be
    a flood; each line says how many failures it stands for.
    """

    def __init__(
        self, count: Callable[[], None], every: float = 1.0, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._count = count
        self._every = every
        self._now = now
        self._last: float | None = None
        self._unlogged = 0

    def __call__(self, exc: OSError) -> None:
        """Note one failed accept."""
        self._count()
        self._unlogged += 1
        now = self._now()
        if self._last is not None and now - self._last < self._every:
            return
        self._last = now
        code = exc.errno or 0
        log.error(
            "accept_failed", errno=errno.errorcode.get(code, str(code)), error=os.strerror(code) if code else str(exc),
            failures=self._unlogged, hint="raise LimitNOFILE, or lower server.client_timeout_seconds",
        )  # fmt: skip
        self._unlogged = 0


def bind(listen: str, host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening, non-blocking sockets for every address ``host`` resolves to (as asyncio binds them)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise ListenError(listen, exc) from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ListenError(listen, exc) from None
    return sockets


class AcceptSite(web.BaseSite):
    """An aiohttp site whose accept loop is hookd's own (see the module's docstring)."""

    def __init__(
        self,
        runner: web.BaseRunner,
        listen: str,
        host: str,
        port: int,
        on_error: Callable[[OSError], None],
        backlog: int = 1024,
        retry_after: float = 0.1,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._listen = listen
        self._host = host
        self._port = port
        self._on_error = on_error
        self._retry_after = retry_after
        self._sockets: list[socket.socket] = []
        self._retries: dict[int, asyncio.TimerHandle] = {}
        self._connecting = TaskSet()

    @property
    def name(self) -> str:
        """The address, as aiohttp's sites name themselves."""
        return f"http://{self._listen}"

    @property
    def port(self) -> int:
        """The bound port (the first socket's, when ``host`` gave several)."""
        return int(self._sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Bind and start accepting; ListenError when the address cannot be had."""
        await super().start()
        self._sockets = bind(self._listen, self._host, self._port, self._backlog)
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            loop.add_reader(sock.fileno(), self._accept, sock)

    async def stop(self) -> None:
        """Stop accepting and close the listening sockets."""
        loop = asyncio.get_running_loop()
        for handle in self._retries.values():
            handle.cancel()
        self._retries.clear()
        for sock in self._sockets:
            loop.remove_reader(sock.fileno())
            sock.close()
        self._sockets = []
        self._connecting.cancel()
        await super().stop()

    def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        for _ in range(self._backlog):  # then let the loop run other work before taking more
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                self._on_error(exc)
                # The socket stays readable while the backlog is not empty, so watching it
                # now would spin; the waiting clients keep their place in the backlog.
                loop.remove_reader(sock.fileno())
                self._retries[sock.fileno()] = loop.call_later(self._retry_after, self._resume, sock)
                return
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = self._connecting.spawn(loop.connect_accepted_socket(server, conn))
            task.add_done_callback(self._connected)

    def _resume(self, sock: socket.socket) -> None:
        self._retries.pop(sock.fileno(), None)
        if sock.fileno() >= 0:
            asyncio.get_running_loop().add_reader(sock.fileno(), self._accept, sock)

    def _connected(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # The client went away between accept and set-up; nothing to answer.
            log.debug("connection_setup_failed", error=str(task.exception()))


class BodyTimeout(TimeoutError):
    """The request body did not arrive within the client timeout.

    A TimeoutError, so that aiohttp, draining the rest of the body after the 408, stops
    at once instead of logging an unhandled exception.
    """


def body_deadline(seconds: float) -> Any:
    """Middleware: a request body still arriving ``seconds`` after its headers gets 408.

    The headers themselves are bounded by aiohttp's keep-alive timer (set to the same
    value), which closes a connection still waiting for a complete request head.
    """

    def expire(content: Any) -> None:
        if not content.is_eof():
            content.set_exception(BodyTimeout())

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        content = request.content
        # Bodies that came in with their headers (the common case) need no timer.
        if not request.body_exists or content.is_eof():
            return await handler(request)
        timer = asyncio.get_running_loop().call_later(seconds, expire, content)
        try:
            return await handler(request)
        except BodyTimeout:
            resp = error(408, "request_timeout", f"the request body did not arrive within {seconds:g} s")
            resp.force_close()
            return resp
        finally:
            timer.cancel()

    return middleware
