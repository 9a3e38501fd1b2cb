"""Why an attempt got no answer: the delivery log's error kind and a reason an operator can
act on, from the exception aiohttp raised. Pure: no I/O.

A reason never carries proxy credentials: the proxy's own errors are worded here, and any
other message has ``user:password@`` cut out of the URLs it quotes.
"""

from __future__ import annotations

import asyncio
import errno
import re
import ssl

import aiohttp

from hookd.guard import Blocked
from hookd.tls import verify_reason

_USERINFO = re.compile(r"(?<=//)[^/@\s'\"]*@")


def scrub(message: str) -> str:
    """``message`` with the ``user:password@`` of every URL in it masked."""
    return _USERINFO.sub("***@", message)


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The ssl error behind ``exc``, if one is in its chain."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, ssl.SSLError):
            return current
        current = getattr(current, "os_error", None) or current.__cause__
        seen += 1
    return None


def failure(exc: BaseException, https: bool = False, client_cert: bool = False) -> tuple[str, str]:
    """(kind, reason) for an attempt that raised ``exc``: blocked, proxy, timeout, dns, tls, connect or http."""
    if isinstance(exc, Blocked):
        return "blocked", exc.reason
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        if exc.status == 407:
            return "proxy", proxy_auth_reason()
        return "proxy", f"the proxy refused the CONNECT ({exc.status} {exc.message})"
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        why = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
        return "proxy", f"cannot reach the proxy {exc.host}:{exc.port}: {why}"
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return "timeout", scrub(str(exc)) or type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns", scrub(str(exc))
    if isinstance(exc, aiohttp.ClientConnectorCertificateError) and isinstance(
        exc.certificate_error, ssl.SSLCertVerificationError
    ):
        return "tls", verify_reason(exc.certificate_error)
    found = _ssl_error(exc)
    if found is not None:
        if isinstance(found, ssl.SSLCertVerificationError):
            return "tls", verify_reason(found)
        reason = str(found.reason or found).lower().replace("_", " ")
        return "tls", f"TLS handshake failed: {reason}"
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionRefusedError):
        return "connect", scrub(str(exc)) or type(exc).__name__
    message = scrub(str(exc)) or type(exc).__name__
    if https and not client_cert and _dropped(exc):
        # TLS 1.3 checks a client certificate after the client's handshake is done: a
        # receiver that requires one can only drop the connection, and the alert is lost.
        message += (
            " (over TLS, presenting no client certificate: a receiver that requires mutual TLS"
            " drops the connection like this; see tls.client_cert)"
        )
    return "http", message


def proxy_auth_reason() -> str:
    """The reason for a 407 from the proxy, on a CONNECT or a plain-http request."""
    return "the proxy refused the credentials (407 Proxy Authentication Required); check the user:password in proxy"


def _dropped(exc: BaseException) -> bool:
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return True
    return isinstance(exc, aiohttp.ClientOSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE)
