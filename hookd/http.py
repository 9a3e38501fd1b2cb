"""Sending one attempt: a ClientSession per destination host, timeouts, no redirects,
and a response body read only as far as the log will keep it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDictProxy


@dataclass(slots=True)
class Response:
    """What one attempt got back, or why it got nothing."""

    status: int | None
    error: str | None  # timeout | connect | dns | tls | http
    message: str = ""
    duration_ms: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    truncated: bool = False


class Transport(Protocol):
    """What the dispatcher sends attempts through: a ``Sender``, or a test's scripted stand-in."""

    async def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        params: dict[str, str] | None = None,
    ) -> Response:
        """One HTTP request; never raises for anything the receiver or network does."""
        ...


def error_kind(exc: BaseException) -> str:
    """The log's word for a failed attempt: timeout, dns, tls, connect or http."""
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns"
    if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ClientConnectorCertificateError):
        return "tls"
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionRefusedError):
        return "connect"
    return "http"


class Sender:
    """Owns the client sessions, made lazily per host and closed at stop."""

    def __init__(self, timeout: float, connect_timeout: float, max_response_bytes: int) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._max = max_response_bytes
        self._sessions: dict[tuple[str, str, int | None], aiohttp.ClientSession] = {}

    def configure(self, timeout: float, connect_timeout: float, max_response_bytes: int) -> None:
        """New limits from a reloaded config; sessions are kept."""
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._max = max_response_bytes

    def _session(self, url: str) -> aiohttp.ClientSession:
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "", parts.port)
        session = self._sessions.get(key)
        if session is None or session.closed:
            # Concurrency is bounded by the dispatcher, so the connector need not be.
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=60, enable_cleanup_closed=True)
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=False,
                skip_auto_headers=("Accept", "Accept-Encoding"),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._sessions[key] = session
        return session

    async def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        params: dict[str, str] | None = None,
    ) -> Response:
        """One HTTP request; never raises for anything the receiver or network does."""
        started = time.perf_counter()
        try:
            async with self._session(url).request(
                method,
                url,
                headers=headers,
                data=body,
                params=params,
                allow_redirects=False,
                timeout=self._timeout,
            ) as resp:
                data, truncated = await self._read(resp)
                return Response(
                    status=resp.status,
                    error=None,
                    duration_ms=(time.perf_counter() - started) * 1000,
                    headers=_headers(resp.headers),
                    body=data,
                    truncated=truncated,
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the receiver's doing, whatever it is
            return Response(
                status=None,
                error=error_kind(exc),
                message=str(exc) or type(exc).__name__,
                duration_ms=(time.perf_counter() - started) * 1000,
            )

    async def _read(self, resp: aiohttp.ClientResponse) -> tuple[bytes, bool]:
        # One byte past the limit tells "exactly the limit" from "more than the limit".
        chunks: list[bytes] = []
        got = 0
        while got <= self._max:
            chunk = await resp.content.read(self._max + 1 - got)
            if not chunk:
                return b"".join(chunks), False
            chunks.append(chunk)
            got += len(chunk)
        # More than the log keeps: drop the connection rather than read the rest.
        resp.close()
        return b"".join(chunks)[: self._max], True

    async def close(self) -> None:
        """Close every session."""
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for s in sessions:
            await s.close()


def _headers(h: CIMultiDictProxy[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, v in h.items():
        k = str(key)  # multidict's istr: orjson encodes only exact str keys
        out[k] = f"{out[k]}, {v}" if k in out else v
    return out
