"""What the delivery log keeps of one attempt's request and response: plain values, no I/O."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from hookd.http import Response
from hookd.payloads import RequestShape


def logged_request(
    shape: RequestShape, headers: dict[str, str], own: dict[str, str], params: dict[str, str] | None, via: str | None
) -> bytes:
    """The attempt's request as the log stores it (JSON), credentials redacted.

    ``headers`` are those sent, ``own`` the attempt's own part of them (its webhook-*
    headers, see ``RequestShape.attempt``). Usually the fixed part comes encoded and
    redacted from the shape (once per config load) and only ``own`` is encoded here; the
    result is byte for byte what encoding the whole redacted request gives.
    """
    prefix = shape.logged_prefix
    if prefix is not None and own and not params:
        tail = b"}" if via is None else b',"proxy":' + orjson.dumps(via) + b"}"
        return b"".join((prefix, b",", orjson.dumps(own)[1:-1], b"}", tail))
    # A GET's query, a request never built (no headers), a configured header that
    # collides with an attempt's own: the whole request, redacted here.
    url = shape.shown_url
    if params:
        url += ("&" if "?" in url else "?") + urlencode(params)
    request: dict[str, Any] = {"method": shape.method, "url": url, "headers": shape.redacted(headers)}
    if via is not None:
        request["proxy"] = via  # without its credentials
    return orjson.dumps(request)


def log_record(
    shape: RequestShape,
    headers: dict[str, str],
    own: dict[str, str],
    params: dict[str, str] | None,
    resp: Response,
    lightweight: bool,
) -> tuple[bytes | None, dict[str, Any] | None]:
    """The attempt's request (JSON) and response as the log stores them, credentials
    redacted; nothing for a webhook with lightweight logs."""
    if lightweight:
        return None, None
    request = logged_request(shape, headers, own, params, resp.via)
    response: dict[str, Any]
    if resp.status is not None:
        response = {
            "status": resp.status,
            "headers": resp.headers,
            "body": resp.body.decode("utf-8", "replace"),
            "truncated": resp.truncated,
        }
    else:
        response = {"status": None, "error": resp.error, "message": resp.message}
    return request, response
