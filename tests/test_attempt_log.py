"""The logged request of an attempt, built from the shape's pre-encoded fixed part, the
signer with pre-hashed HMAC pads, the per-webhook meter and the log's time stamp: each
must give exactly what the plain way gives (redaction above all)."""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
import structlog

from hookd.attempt_log import log_record, logged_request
from hookd.config import Config, Webhook
from hookd.http import Response
from hookd.logs import UtcStamper
from hookd.metrics import Metrics
from hookd.payloads import RequestShape
from hookd.redact import redact_headers
from hookd.signing import Signer, secret_key, sign

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def make_webhook(**settings: Any) -> Webhook:
    """A validated webhook with a catch-all trigger."""
    data: dict[str, Any] = {"id": "w", "url": "https://hooks.example.com/h", "events": [{"id": "t", "on": "*"}]}
    data.update(settings)
    return Config.model_validate({"webhooks": [data]}).webhooks[0]


def reference(shape: RequestShape, headers: dict[str, str], params: dict[str, str] | None, via: str | None) -> bytes:
    """The logged request as it was built before the fixed part was pre-encoded: the
    whole header set redacted on every attempt, the whole request encoded."""
    url = shape.shown_url
    if params:
        url += ("&" if "?" in url else "?") + urlencode(params)
    request: dict[str, Any] = {
        "method": shape.method,
        "url": url,
        "headers": redact_headers(headers, shape.secret_headers),
    }
    if via is not None:
        request["proxy"] = via
    return orjson.dumps(request)


SHAPES: dict[str, dict[str, Any]] = {
    "plain": {},
    "signed": {"secret": SECRET},
    "two keys": {"secret": [SECRET, "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"]},
    "basic": {"secret": SECRET, "auth": {"type": "basic", "username": "u", "password": "pw-basic-1"}},
    "bearer": {"auth": {"type": "bearer", "token": "tok-bearer-2"}},
    "header auth": {"auth": {"type": "header", "name": "X-Halo-Key", "value": "val-header-3"}},
    "credential-like": {"headers": {"X-Api-Key": "val-apikey-4", "X-Source": "hookd", "Cookie": "val-cookie-5"}},
    "secret_headers": {"headers": {"X-Tenant": "val-tenant-6", "X-Ok": "1"}, "secret_headers": ["x-tenant"]},
    "url credentials": {"url": "https://user:pw-url-7@hooks.example.com/h?api_key=val-query-8&team=ops"},
    "GET": {"method": "GET", "url": "https://hooks.example.com/h?team=ops"},
    # A configured header spelled like an attempt's own: the attempt's value replaces it.
    "collision": {"headers": {"webhook-id": "configured"}},
    # One of the attempt's own headers named a secret: it is redacted too.
    "secret own header": {"headers": {"Webhook-Id": "val-own-9"}, "secret_headers": ["Webhook-Id"]},
}
# The last: basic auth's "u:pw-basic-1" as sent.
SECRETS = [b"pw-basic-1", b"tok-bearer-2", b"val-header-3", b"val-apikey-4", b"val-cookie-5", b"val-tenant-6",
           b"pw-url-7", b"val-query-8", b"val-own-9", SECRET.encode(), b"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
           b"dTpwdy1iYXNpYy0x"]  # fmt: skip


@pytest.mark.parametrize("name", SHAPES)
@pytest.mark.parametrize("via", [None, "http://proxy.example:3128"])
def test_logged_request_is_the_whole_request_redacted(name: str, via: str | None) -> None:
    """Byte for byte what redacting every header and encoding the whole request gives,
    with and without a proxy, for every kind of credential and header set."""
    shape = RequestShape(make_webhook(**SHAPES[name]))
    params = {"id": "itm_1", "event": "a.b"} if shape.method == "GET" else None
    for message_id in ("msg_1", 'msg_"quoted"\\é'):
        headers, own = shape.attempt(message_id, 1_800_000_000, b'{"a":1}')
        got = logged_request(shape, headers, own, params, via)
        assert got == reference(shape, headers, params, via)
        logged = orjson.loads(got)["headers"]
        assert logged["webhook-timestamp"] == "1800000000"
        assert ("webhook-signature" in logged) == bool(shape.keys)


def test_fixed_part_is_pre_encoded_only_where_exact() -> None:
    """The common shapes take the pre-encoded path; the two odd ones fall back to the whole request."""
    assert RequestShape(make_webhook(**SHAPES["basic"])).logged_prefix is not None
    assert RequestShape(make_webhook(**SHAPES["collision"])).logged_prefix is None
    assert RequestShape(make_webhook(**SHAPES["secret own header"])).logged_prefix is None
    shape = RequestShape(make_webhook(**SHAPES["secret own header"]))
    headers, own = shape.attempt("msg_1", 1, b"{}")
    assert orjson.loads(logged_request(shape, headers, own, None, None))["headers"]["webhook-id"] == "***"


@pytest.mark.parametrize("name", SHAPES)
def test_no_secret_in_the_logged_request(name: str) -> None:
    """No password, token, credential header value, query credential or signing secret
    appears anywhere in what the log keeps, though the request sent carries them."""
    shape = RequestShape(make_webhook(**SHAPES[name]))
    headers, own = shape.attempt("msg_1", 1_800_000_000, b"{}")
    resp = Response(status=200, error=None, via="http://proxy.example:3128")
    request, _ = log_record(shape, headers, own, None, resp, lightweight=False)
    assert request is not None
    for secret in SECRETS:
        assert secret not in request, (name, secret)
    # The check can fail: the headers sent carry the credentials the log must not.
    sent = orjson.dumps(headers)
    assert any(s in sent for s in SECRETS) or name in ("plain", "signed", "two keys", "GET", "collision",
                                                       "url credentials")  # fmt: skip


def test_a_request_never_built_logs_no_headers() -> None:
    """When the request could not be built (no headers), the log shows none, not the fixed ones."""
    shape = RequestShape(make_webhook(**SHAPES["bearer"]))
    request, response = log_record(shape, {}, {}, None, Response(status=None, error="http", message="x"), False)
    assert request is not None
    assert orjson.loads(request)["headers"] == {}
    assert response == {"status": None, "error": "http", "message": "x"}


def test_lightweight_logs_keep_nothing() -> None:
    shape = RequestShape(make_webhook())
    headers, own = shape.attempt("msg_1", 1, b"{}")
    assert log_record(shape, headers, own, None, Response(status=200, error=None), True) == (None, None)


@pytest.mark.parametrize("lengths", [[16], [32], [64], [65], [200], [32, 17, 100]])
def test_signer_matches_sign(lengths: list[int]) -> None:
    """The pre-hashed pads give sign()'s value for keys shorter than, equal to and longer than the block."""
    keys = [os.urandom(n) for n in lengths]
    signer = Signer(keys)
    for body in (b"", b"{}", os.urandom(5000)):
        assert signer("msg_1", 1_800_000_000, body) == sign(keys, "msg_1", 1_800_000_000, body)


def test_signer_known_vector() -> None:
    """The Standard Webhooks reference vector."""
    signer = Signer([secret_key(SECRET)])
    got = signer("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert not Signer([])


def test_meter_counts_as_metrics_did() -> None:
    """A webhook's meter fills the same series Metrics.attempt/delivery name."""
    metrics = Metrics()
    meter = metrics.meter("w")
    assert metrics.meter("w") is meter
    for status, error in [(200, None), (204, None), (503, None), (None, "timeout"), (None, None)]:
        meter.attempt(status, error, 12.0)
    metrics.attempt("w", 201, None, 1.0)
    meter.delivery("succeeded")
    metrics.delivery("w", "failed")
    text = metrics.render().decode()
    assert 'hookd_attempts_total{result="2xx",webhook="w"} 3.0' in text
    assert 'hookd_attempts_total{result="5xx",webhook="w"} 1.0' in text
    assert 'hookd_attempts_total{result="timeout",webhook="w"} 1.0' in text
    assert 'hookd_attempts_total{result="error",webhook="w"} 1.0' in text
    assert 'hookd_attempt_duration_seconds_count{webhook="w"} 6.0' in text
    assert 'hookd_deliveries_total{outcome="succeeded",webhook="w"} 1.0' in text
    assert 'hookd_deliveries_total{outcome="failed",webhook="w"} 1.0' in text


def test_stamp_is_structlogs_iso_utc() -> None:
    """The same text as structlog's TimeStamper(fmt="iso", utc=True), whole seconds included."""
    second = 1_795_000_000 * 10**9
    assert UtcStamper(lambda: second)(None, "info", {}) == {"timestamp": "2026-11-18T11:06:40Z"}
    stamp = UtcStamper(lambda: second + 1_234_567)(None, "info", {})["timestamp"]
    assert stamp == "2026-11-18T11:06:40.001234Z"
    theirs = structlog.processors.TimeStamper(fmt="iso", utc=True)(None, "info", {})["timestamp"]
    ours = UtcStamper()(None, "info", {})["timestamp"]
    shape = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")
    assert shape.match(theirs)
    assert shape.match(ours)
    assert ours[:16] == theirs[:16] or ours[:13] != theirs[:13]  # same minute, unless it just turned
