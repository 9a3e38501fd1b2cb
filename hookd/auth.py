"""Who may call what: bearer tokens, the scope each call needs (SPEC §11), the middleware.

The scope a call needs follows from its method and route alone (``access``), so a route
added later falls under the rule without an edit here: ``POST /v1/events`` needs
``ingest``, every other ``GET`` under ``/v1/`` needs ``read``, every other ``/v1`` call
``manage``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from aiohttp import web

from hookd.config import SCOPES, Scope, Token
from hookd.responses import error, json_response

Access = Literal["open", "token", "ingest", "read", "manage"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Where the middleware leaves the caller's scopes for the handlers (GET /v1/token).
SCOPES_KEY = web.RequestKey("hookd_scopes", tuple[Scope, ...])
TOKEN_ROUTE = "/v1/token"


def access(method: str, route: str) -> Access:
    """What a call needs: ``open`` (nothing), ``token`` (any valid token) or a scope.

    ``route`` is the matched route's template (``/v1/webhooks/{id}``), or the request's
    path when no route matched. ``GET /v1/token`` needs only a valid token: it is how the
    page learns what its token may do.
    """
    if not route.startswith("/v1/") or route == "/v1/openapi.json":
        return "open"
    if route == TOKEN_ROUTE:
        return "token"
    if route == "/v1/events" and method == "POST":
        return "ingest"
    if method in ("GET", "HEAD"):
        return "read"
    return "manage"


def token_scopes(header: str | None, tokens: Sequence[Token]) -> tuple[Scope, ...] | None:
    """The scopes of the token ``Authorization: Bearer <t>`` names, or None when it names
    none of ``tokens`` (constant time).

    The scheme is case-insensitive (RFC 9110 §11.1). The header arrives decoded with
    ``surrogateescape``, so its bytes are recovered exactly, whatever they are, and a value
    that is not UTF-8 is simply a wrong token. Both sides are hashed first, so neither the
    comparison's time nor its early exit on a length mismatch tells anything about a token.
    """
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    given = credentials.strip(" ")
    if scheme.lower() != "bearer" or not given or " " in given:
        return None
    digest = hashlib.sha256(given.encode("utf-8", "surrogateescape")).digest()
    found = None
    for t in tokens:
        # Compare against every token so timing does not tell which one was close.
        secret = t.token.get_secret_value().encode("utf-8", "surrogateescape")
        if hmac.compare_digest(digest, hashlib.sha256(secret).digest()):
            found = t.scopes
    return found


def token_ok(header: str | None, tokens: Sequence[Token]) -> bool:
    """True when ``Authorization: Bearer <t>`` names one of ``tokens`` (constant time)."""
    return token_scopes(header, tokens) is not None


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


def auth_middleware(tokens: Callable[[], Sequence[Token]]) -> Any:
    """Bearer tokens and their scopes on every /v1 route; the health check, metrics, the
    OpenAPI document and the page stay open. With no tokens configured (allowed on a
    loopback address only) every caller has every scope."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        need = access(request.method, _route(request))
        current = tokens()
        if need != "open":
            scopes = token_scopes(request.headers.get("Authorization"), current) if current else SCOPES
            if scopes is None:
                return error(401, "unauthorized", "a valid bearer token is required",
                             headers={"WWW-Authenticate": 'Bearer realm="hookd"'})  # fmt: skip
            if need != "token" and need not in scopes:
                return error(403, "forbidden", f"this token lacks the {need!r} scope, which this call needs")
            request[SCOPES_KEY] = scopes
        try:
            return await handler(request)
        except web.HTTPException as exc:
            # aiohttp's own 404/405 answers get the documented error body too.
            if exc.status >= 400:
                code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
                return error(exc.status, code, exc.reason, headers=_allow(exc))
            raise

    return middleware


def _allow(exc: web.HTTPException) -> dict[str, str] | None:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else None


async def token_view(request: web.Request) -> web.Response:
    """``GET /v1/token``: the scopes of the caller's own token, so the page can hide what it cannot do."""
    scopes = set(request.get(SCOPES_KEY, SCOPES))
    return json_response({"scopes": [s for s in SCOPES if s in scopes]})
