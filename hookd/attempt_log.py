"""What the delivery log keeps of one attempt's request and response: plain values, no I/O."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from hookd.http import Response
from hookd.payloads import RequestShape


def log_record(
    shape: RequestShape,
    headers: dict[str, str],
    params: dict[str, str] | None,
    resp: Response,
    lightweight: bool,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The attempt's request and response as the log stores them, credentials redacted;
    nothing for a webhook with lightweight logs."""
    if lightweight:
        return None, None
    url = shape.shown_url
    if params:
        url += ("&" if "?" in url else "?") + urlencode(params)
    request: dict[str, Any] = {"method": shape.method, "url": url, "headers": shape.redacted(headers)}
    if resp.via is not None:
        request["proxy"] = resp.via  # without its credentials
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
