"""Sending one attempt: a ClientSession per destination and egress (proxy, TLS, guard),
timeouts, no redirects, and a response body read only as far as the log will keep it."""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from hookd.egress import DIRECT, Egress, GuardedResolver, choose_proxy, proxy_environment, shown_proxy
from hookd.failures import failure, proxy_auth_reason
from hookd.guard import Blocked, literal_address
from hookd.tls import TlsMaterial, client_context


@dataclass(slots=True)
class Response:
    """What one attempt got back, or why it got nothing."""

    status: int | None
    error: str | None  # timeout | connect | dns | tls | proxy | blocked | http
    message: str = ""
    duration_ms: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    truncated: bool = False
    via: str | None = None  # the proxy the attempt went through, without credentials


class Transport(Protocol):
    """What the dispatcher sends attempts through: a ``Sender``, or a test's scripted stand-in."""

    async def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        params: dict[str, str] | None = None,
        egress: Egress = DIRECT,
    ) -> Response:
        """One HTTP request; never raises for anything the receiver or network does."""
        ...


def error_kind(exc: BaseException) -> str:
    """The log's word for a failed attempt: blocked, proxy, timeout, dns, tls, connect or http."""
    return failure(exc)[0]


@dataclass(slots=True, eq=False)
class _Route:
    """A session to one destination over one egress, and what each request on it adds.
    Compared by identity: two routes are never the same one however alike."""

    session: aiohttp.ClientSession
    proxy: str | None  # with its credentials: for aiohttp only
    via: str | None  # the same, shown
    blocked: Blocked | None  # a literal address the guard refuses: no request is made
    https: bool
    client_cert: bool
    inflight: int = 0  # attempts using the session now


class Sender:
    """Owns the client sessions, made lazily per destination and egress, and closed at stop
    or, for a destination no webhook uses any more, once no attempt uses them.

    SSL contexts are built once per distinct TLS material, when a config is applied (and
    for any other material the first time it is used), never per attempt.
    """

    def __init__(self, timeout: float, connect_timeout: float, max_response_bytes: int) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._max = max_response_bytes
        self._routes: dict[tuple[str, str, int | None, Egress], _Route] = {}
        # The same routes by the URL as given: splitting the URL for every attempt cost
        # about 2 % of the loop thread in the unbatched bench (a webhook's URL is fixed).
        self._by_url: dict[tuple[str, Egress], _Route] = {}
        self._contexts: dict[TlsMaterial, ssl.SSLContext] = {}
        # Routes no destination uses any more, still in use by an attempt when retired:
        # each is closed once its inflight is back to 0.
        self._retired: set[_Route] = set()
        self._env = proxy_environment(os.environ)

    def configure(
        self,
        timeout: float,
        connect_timeout: float,
        max_response_bytes: int,
        destinations: Iterable[tuple[str, Egress]] = (),
    ) -> None:
        """New limits and destinations (each webhook's URL and egress) from a (re)loaded
        config. Sessions no destination uses any more (a webhook deleted, its URL or egress
        changed) are retired: ``close_retired`` closes the idle ones, and the last attempt
        on a busy one closes it as it ends. Webhooks made at run time for each customer
        come and go; their sessions go with them."""
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._max = max_response_bytes
        self._env = proxy_environment(os.environ)
        destinations = list(destinations)
        wanted = {e for _, e in destinations} | {DIRECT}
        self._contexts = {m: c for m, c in self._contexts.items() if any(e.tls == m for e in wanted)}
        for e in wanted:
            if e.tls is not None:
                self._context(e.tls)
        keep = {_route_key(url, e) for url, e in destinations}
        for key in [k for k in self._routes if k not in keep]:
            self._retired.add(self._routes.pop(key))
        self._by_url.clear()

    async def close_retired(self) -> None:
        """Close the retired sessions no attempt is using. Before, they stayed open until
        the daemon stopped: an operator changing proxies or certificates by reload grew a
        set of dead connection pools, one per destination each time."""
        idle = {r for r in self._retired if not r.inflight}
        self._retired -= idle
        for r in idle:
            await r.session.close()

    def _context(self, material: TlsMaterial) -> ssl.SSLContext:
        ctx = self._contexts.get(material)
        if ctx is None:
            ctx = self._contexts[material] = client_context(material)
        return ctx

    def _route(self, url: str, egress: Egress) -> _Route:
        route = self._by_url.get((url, egress))
        if route is not None and not route.session.closed:
            return route
        key = _route_key(url, egress)
        route = self._routes.get(key)
        if route is None or route.session.closed:
            route = self._routes[key] = self._new_route(url, *key)
        self._by_url[(url, egress)] = route
        return route

    def _new_route(self, url: str, scheme: str, host: str, port: int | None, egress: Egress) -> _Route:
        proxy = choose_proxy(egress.proxy, scheme, host, port, self._env)
        blocked = None
        resolver = None
        if egress.guard is not None:
            # A literal address is checked here, once: it cannot change. A name is checked
            # by the resolver on what it resolves to, unless a proxy resolves it instead.
            # The host as aiohttp will connect to it: yarl folds some spellings (IDNA digits).
            address = literal_address(URL(url).host or host)
            if address is not None:
                try:
                    egress.guard.check(host, address, literal=True)
                except Blocked as exc:
                    blocked = exc
            elif proxy is None:
                resolver = GuardedResolver(egress.guard)
        # Concurrency is bounded by the dispatcher, so the connector need not be.
        connector = aiohttp.TCPConnector(
            limit=0, ttl_dns_cache=60, enable_cleanup_closed=True, resolver=resolver,
            ssl=self._context(egress.tls) if egress.tls is not None else True,
        )  # fmt: skip
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=False,
            skip_auto_headers=("Accept", "Accept-Encoding"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        client_cert = egress.tls is not None and egress.tls.cert_pem is not None
        via = shown_proxy(proxy) if proxy else None
        return _Route(session, proxy, via, blocked, scheme == "https", client_cert)

    async def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        params: dict[str, str] | None = None,
        egress: Egress = DIRECT,
    ) -> Response:
        """One HTTP request; never raises for anything the receiver or network does."""
        started = time.perf_counter()
        route = None
        try:
            route = self._route(url, egress)
            route.inflight += 1
            if route.blocked is not None:
                raise route.blocked
            async with route.session.request(
                method,
                url,
                headers=headers,
                data=body,
                params=params,
                allow_redirects=False,
                timeout=self._timeout,
                proxy=route.proxy,
            ) as resp:
                if resp.status == 407 and route.proxy is not None:
                    return Response(status=None, error="proxy", message=proxy_auth_reason(), via=route.via,
                                    duration_ms=(time.perf_counter() - started) * 1000)  # fmt: skip
                data, truncated = await self._read(resp)
                return Response(
                    status=resp.status,
                    error=None,
                    duration_ms=(time.perf_counter() - started) * 1000,
                    headers=_headers(resp.headers),
                    body=data,
                    truncated=truncated,
                    via=route.via,
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the receiver's doing, whatever it is
            kind, message = failure(exc, route is not None and route.https, route is not None and route.client_cert)
            return Response(
                status=None,
                error=kind,
                message=message,
                duration_ms=(time.perf_counter() - started) * 1000,
                via=route.via if route is not None else None,
            )
        finally:
            if route is not None:
                route.inflight -= 1
                if not route.inflight and route in self._retired:
                    self._retired.discard(route)
                    await route.session.close()

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
        sessions = [r.session for r in self._routes.values()] + [r.session for r in self._retired]
        self._routes.clear()
        self._by_url.clear()
        self._retired.clear()
        for s in sessions:
            await s.close()


def _route_key(url: str, egress: Egress) -> tuple[str, str, int | None, Egress]:
    """What a session serves: the URL's scheme, host and port, over one egress."""
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port, egress


def _headers(h: CIMultiDictProxy[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, v in h.items():
        k = str(key)  # multidict's istr: orjson encodes only exact str keys
        out[k] = f"{out[k]}, {v}" if k in out else v
    return out
