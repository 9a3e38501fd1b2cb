"""The HTTP listener: slow and idle clients, raw header bytes, numbers JSON cannot carry
through a double, capped error bodies and the root redirect against an App in the test's
loop; descriptor exhaustion, a port already taken and what the daemon prints against the
real ``hookd`` process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.support import HOOKD, AppFactory, Daemon, DaemonFactory, MakeConfig, Receiver, webhook

JSON = {"Content-Type": "application/json"}


class LimitedDaemon(Daemon):
    """``hookd run`` started under ``prlimit``, so it has only ``nofile`` descriptors."""

    nofile: int = 64

    async def start(self, timeout: float = 15.0) -> None:
        """Start under the descriptor limit and wait for the ``started`` line."""
        self.lines.clear()
        self.proc = await asyncio.create_subprocess_exec(
            "prlimit", f"--nofile={self.nofile}:{self.nofile}", HOOKD, "run", "-c", str(self.config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ, **self.env},
        )  # fmt: skip
        self._reader = asyncio.get_running_loop().create_task(self._read())
        started = await self.wait_line("started", timeout=timeout)
        self.port = started["port"]


@contextlib.asynccontextmanager
async def limited_daemon(config: Path) -> AsyncIterator[LimitedDaemon]:
    """A LimitedDaemon, killed at the end whatever happened."""
    d = LimitedDaemon(config)
    try:
        await d.start()
        yield d
    finally:
        if d.proc is not None and d.proc.returncode is None:
            d.proc.kill()
            await d.proc.wait()
        if d._reader is not None:
            with contextlib.suppress(Exception):
                await d._reader


async def raw_exchange(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send ``request`` bytes on a fresh connection; everything the server answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await reader.read()
    finally:
        writer.close()


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """True once the server has closed the connection (EOF or reset), waiting as long as it takes."""
    try:
        return await reader.read(1) == b""
    except ConnectionError:
        return True


async def healthz(port: int) -> int:
    """The status of one GET /healthz on a new connection."""
    timeout = aiohttp.ClientTimeout(total=3)
    async with aiohttp.ClientSession(timeout=timeout) as s, s.get(f"http://127.0.0.1:{port}/healthz") as r:
        return r.status


def no_traceback(d: Daemon) -> None:
    """The daemon logged no traceback and no error line."""
    text = "\n".join(d.raw)
    assert "Traceback" not in text, text[-3000:]
    assert not [r for r in d.lines if r.get("level") in ("error", "critical")], text[-3000:]


# -- 1. slow, idle and too many clients ------------------------------------------------------


async def test_idle_connections_beyond_the_descriptor_limit_are_logged_and_reclaimed(
    make_config: MakeConfig,
) -> None:
    """With more idle connections than descriptors, hookd logs accept_failed and counts it; once
    client_timeout_seconds has passed the idle connections are closed and /healthz answers again."""
    config = make_config([], server={"client_timeout_seconds": 0.5})
    async with limited_daemon(config) as d:
        conns = [await asyncio.open_connection("127.0.0.1", d.port) for _ in range(100)]
        try:
            line = await d.wait_line("accept_failed", timeout=10)
            assert "open files" in line["error"].lower()
            assert line["errno"] == "EMFILE"
            # The connections hookd did accept are closed after the client timeout, not kept forever.
            async with asyncio.timeout(15):
                closed = await asyncio.gather(*(closed_by_peer(r) for r, _ in conns))
            assert all(closed)
            async with asyncio.timeout(15):
                while True:
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        if await healthz(d.port) == 200:
                            break
            code, text = await d.request("GET", "/metrics")
            assert code == 200
            counted = [ln for ln in text.splitlines() if ln.startswith("hookd_accept_errors_total ")]
            assert counted
            assert float(counted[0].split()[1]) >= 1
            # Rate-limited: a burst of failures is not a burst of lines.
            assert len([r for r in d.lines if r.get("event") == "accept_failed"]) <= 20
        finally:
            for _, w in conns:
                w.close()


async def test_slow_headers_are_cut_off_after_client_timeout(make_config: MakeConfig, app_factory: AppFactory) -> None:
    """A client sending its request headers byte by byte is disconnected once client_timeout_seconds passes."""
    d = await app_factory(make_config([], server={"client_timeout_seconds": 0.5}))
    reader, writer = await asyncio.open_connection("127.0.0.1", d.port)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    started = time.monotonic()
    cut = asyncio.get_running_loop().create_task(closed_by_peer(reader))
    try:
        for byte in request:
            if cut.done():
                break
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.sleep(0.02)  # the slow client's pace (200+ bytes: over 4 s in all)
        async with asyncio.timeout(5):
            assert await cut
        elapsed = time.monotonic() - started
        assert 0.4 <= elapsed < 3.0, elapsed
    finally:
        cut.cancel()
        writer.close()
    assert await healthz(d.port) == 200


async def test_slow_body_gets_408_after_client_timeout(make_config: MakeConfig, daemon_factory: DaemonFactory) -> None:
    """An ingest body that trickles in for longer than client_timeout_seconds gets 408 and the connection closes."""
    d = await daemon_factory(make_config([], server={"client_timeout_seconds": 0.5}))
    reader, writer = await asyncio.open_connection("127.0.0.1", d.port)
    body = json.dumps({"event": "ticket.created", "object": {"pad": "x" * 400}}).encode()
    head = f"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"\r\n")
    started = time.monotonic()
    answer = asyncio.get_running_loop().create_task(reader.read())
    try:
        for i in range(0, len(body), 10):
            if answer.done():
                break
            with contextlib.suppress(ConnectionError):
                writer.write(body[i : i + 10])
            await asyncio.sleep(0.05)  # the slow client's pace (40+ chunks: over 2 s in all)
        async with asyncio.timeout(5):
            raw = await answer
    finally:
        answer.cancel()
        writer.close()
    assert time.monotonic() - started < 2.0
    assert raw.startswith(b"HTTP/1.1 408 "), raw[:200]
    assert b'"code":"request_timeout"' in raw
    _, text = await d.request("GET", "/metrics")
    assert "hookd_events_ingested_total 0.0" in text
    no_traceback(d)


async def test_idle_keep_alive_connection_closes_after_client_timeout(
    make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A keep-alive connection left idle after an answer is closed by hookd after client_timeout_seconds."""
    d = await app_factory(make_config([], server={"client_timeout_seconds": 0.5}))
    reader, writer = await asyncio.open_connection("127.0.0.1", d.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int(next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        idle = time.monotonic()
        async with asyncio.timeout(5):
            assert await closed_by_peer(reader)
        assert time.monotonic() - idle >= 0.4
    finally:
        writer.close()


# -- 2. Authorization -------------------------------------------------------------------------


async def test_authorization_with_invalid_utf8_is_401(make_config: MakeConfig, daemon_factory: DaemonFactory) -> None:
    """An Authorization header that is not UTF-8 gets 401, not a 500 and a traceback."""
    d = await daemon_factory(make_config([], server={"tokens": ["tok-1"]}))
    for value in (b"Bearer \xff\xfe\xfd", b"Bearer tok-1\xff", b"\xc3\x28 tok-1", b"Bearer \xed\xa0\x80"):
        head = b"GET /v1/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: " + value
        raw = await raw_exchange(d.port, head + b"\r\nConnection: close\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 401 "), (value, raw[:300])
        assert b'"code":"unauthorized"' in raw
    assert await healthz(d.port) == 200
    no_traceback(d)


async def test_a_request_aiohttp_cannot_parse_is_400_and_one_warning_without_its_bytes(
    make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """Malformed request lines and headers get aiohttp's 400; hookd logs each as one
    request_unparsable warning naming the fault, with no traceback, no error line and none
    of the bytes: a broken Authorization line must not put its token in the log."""
    d = await daemon_factory(make_config([], server={"tokens": ["tok-1"]}))
    secret = b"s3cr3t-t0ken"
    requests = [
        b"GARBAGE / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET /v1/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + b"\x01x\r\n\r\n",
        b"GET /v1/webhooks HTTP/1.1\r\nHost: x\r\nBad Header " + secret + b"\r\n\r\n",
    ]
    for request in requests:
        raw = await raw_exchange(d.port, request)
        assert raw.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 ")), (request, raw[:300])
    assert await healthz(d.port) == 200
    await d.wait_line("request_unparsable")
    unparsable = [r for r in d.lines if r.get("event") == "request_unparsable"]
    assert len(unparsable) >= 3  # a first request's bad method may be logged at debug only
    assert all(r["level"] == "warning" and r["status"] == 400 and r["fault"] for r in unparsable), unparsable
    no_traceback(d)
    assert secret.decode() not in "\n".join(d.raw)


async def test_bearer_scheme_is_case_insensitive(make_config: MakeConfig, app_factory: AppFactory) -> None:
    """`bearer`, `BEARER` and `Bearer` all name the scheme (RFC 9110); the token itself is case-sensitive."""
    d = await app_factory(make_config([], server={"tokens": ["Tok-1", "zweites-tök"]}))
    for header, want in [
        ("Bearer Tok-1", 200),
        ("bearer Tok-1", 200),
        ("BEARER Tok-1", 200),
        ("BeArEr  Tok-1", 200),
        ("Bearer tok-1", 401),
        ("Basic Tok-1", 401),
        ("Bearer", 401),
        ("BearerTok-1", 401),
        ("Bearer Tok-1 extra", 401),
    ]:
        code, _ = await d.request("GET", "/v1/webhooks", headers={"Authorization": header})
        assert code == want, header
    # A token with non-ASCII characters is compared on its UTF-8 bytes.
    raw = await raw_exchange(
        d.port,
        b"GET /v1/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: bearer " + "zweites-tök".encode()
        + b"\r\nConnection: close\r\n\r\n",
    )  # fmt: skip
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:300]


# -- 4. port already in use --------------------------------------------------------------------


async def test_port_in_use_logs_one_start_failed_line_and_exits_1(make_config: MakeConfig) -> None:
    """A listen address that is taken: one start_failed line naming the address and the reason, exit 1, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = make_config([], server={"listen": f"127.0.0.1:{port}"})
        proc = await asyncio.create_subprocess_exec(
            HOOKD, "run", "-c", str(config), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    text = out.decode()
    assert proc.returncode == 1, text
    assert "Traceback" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    failed = [r for r in lines if r["event"] == "start_failed"]
    assert len(failed) == 1, text
    assert failed[0]["listen"] == f"127.0.0.1:{port}"
    assert "address already in use" in failed[0]["error"].lower()
    assert not [r for r in lines if r["event"] == "crashed"]
    assert len(lines) <= 3, text


# -- 5. numbers --------------------------------------------------------------------------------


async def test_numbers_a_double_or_64_bit_integer_cannot_hold_are_422(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Integers beyond 64 bits, and numbers that would underflow to 0 or overflow to infinity, get 422 naming
    the field; nothing is delivered."""
    d = await app_factory(make_config([webhook("a", receiver.url + "/a")]))
    cases = {
        b'{"event": "ticket.created", "object": {"id": 18446744073709551616}}': "object.id",
        b'{"event": "ticket.created", "object": {"id": -9223372036854775809}}': "object.id",
        b'{"event": "ticket.created", "object": {"id": 123456789012345678901234567890}}': "object.id",
        b'{"event": "ticket.created", "object": {"id": 1, "tiny": 1e-400}}': "object.tiny",
        b'{"event": "ticket.created", "object": {"id": 1, "tiny": 0.0000000000000000000000000000000000000000000000000'
        + b"0" * 300
        + b"1}}": "object.tiny",
        b'{"event": "ticket.created", "object": {"id": 1, "huge": 1e400}}': "object.huge",
        b'[{"event": "ticket.created", "object": {"id": 1}},'
        b' {"event": "ticket.created", "object": {"id": 2, "l": [1, {"x": -2.5E-999}]}}]': "object.l[1].x",
    }
    for body, path in cases.items():
        code, answer = await d.request("POST", "/v1/events", data=body, headers=JSON)
        assert code == 422, (body[:80], answer)
        details = answer["error"]["details"]
        assert [det["path"] for det in details] == [path], details
        assert "send it as a string" in details[0]["message"]
        assert details[0]["index"] == (1 if body.startswith(b"[") else 0)
    # What a 64-bit integer or a double holds passes unchanged, and look-alikes inside strings are not numbers.
    body = (
        b'{"id": "e1", "event": "ticket.created", "object": {"id": 18446744073709551615, "min": -9223372036854775808,'
        b' "ns": 1700000000000000000, "sub": 5e-324, "big": 1.5e308, "zero": 0e-999,'
        b' "s": "123456789012345678901234567890 1e-400"}}'
    )
    code, answer = await d.request("POST", "/v1/events", data=body, headers=JSON)
    assert code == 202, answer
    (got,) = await receiver.wait_for(1, "/a")
    assert b'"id":18446744073709551615' in got.body
    assert b'"min":-9223372036854775808' in got.body
    assert b'"ns":1700000000000000000' in got.body
    assert got.json()["object"]["sub"] == 5e-324
    assert got.json()["object"]["zero"] == 0
    assert got.json()["object"]["s"] == "123456789012345678901234567890 1e-400"


# -- 6. capped 422 body ------------------------------------------------------------------------


async def test_422_details_are_capped_and_say_how_many_more(make_config: MakeConfig, app_factory: AppFactory) -> None:
    """An event with 90,000 unknown keys gets a small 422: the first 100 details and one saying how many more."""
    d = await app_factory(make_config([]))
    event: dict[str, Any] = {"event": "ticket.created", "object": {}}
    event.update({f"{i:x}": 0 for i in range(90_000)})
    body = json.dumps(event, separators=(",", ":")).encode()
    assert len(body) < 1_048_576
    async with (
        aiohttp.ClientSession() as s,
        s.post(d.url + "/v1/events", data=body, headers=JSON) as r,
    ):
        raw = await r.read()
        assert r.status == 422
    assert len(raw) < 20_000, len(raw)
    err = json.loads(raw)["error"]
    assert set(err) == {"code", "message", "details"}
    assert err["message"] == "90000 problem(s) in the request"
    assert len(err["details"]) == 101
    assert all(det["message"] == "unknown key" for det in err["details"][:100])
    assert err["details"][100] == {"index": None, "path": None, "message": "… and 89900 more problems"}


# -- 7. GET / ----------------------------------------------------------------------------------


async def test_root_redirects_to_the_page(make_config: MakeConfig, app_factory: AppFactory) -> None:
    """GET / redirects to /ui/, even with tokens set (the page asks for one itself)."""
    d = await app_factory(make_config([], server={"tokens": ["tok"]}))
    async with aiohttp.ClientSession() as s, s.get(d.url + "/", allow_redirects=False) as r:
        assert r.status in (302, 308)
        assert r.headers["Location"] == "/ui/"
    async with aiohttp.ClientSession() as s, s.get(d.url + "/") as r:
        assert r.status == 200
        assert r.url.path == "/ui/"
        assert "text/html" in r.headers["Content-Type"]


def test_accept_errors_are_counted_each_and_logged_once_a_second() -> None:
    """Every failed accept is counted; a line is logged at most once per second and says how many it stands for."""
    import errno

    from structlog.testing import capture_logs

    from hookd.listener import AcceptErrors

    now = [100.0]
    counted: list[int] = []
    errors = AcceptErrors(lambda: counted.append(1), every=1.0, now=lambda: now[0])
    exc = OSError(errno.EMFILE, os.strerror(errno.EMFILE))
    with capture_logs() as logs:
        for _ in range(10):  # ten failures within 0.9 s
            errors(exc)
            now[0] += 0.1
        now[0] += 0.2
        errors(exc)
    assert len(counted) == 11
    assert [(r["event"], r["errno"], r["failures"]) for r in logs] == [("accept_failed", "EMFILE", 1),
                                                                      ("accept_failed", "EMFILE", 10)]  # fmt: skip
    assert logs[0]["error"] == "Too many open files"
