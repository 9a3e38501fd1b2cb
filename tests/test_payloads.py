"""Payload shapes, request headers and Standard Webhooks signatures (SPEC §4)."""

from __future__ import annotations

import base64
import json
import time
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook as SW
from standardwebhooks.webhooks import WebhookVerificationError

from hookd import __version__
from hookd.config import ENVELOPE_KEYS, Config, Webhook
from hookd.models import IdFactory, Occurrence
from hookd.payloads import PayloadBuilder, RequestShape, batch_body, query_params
from hookd.signing import secret_key, sign, verify
from hookd.validate import validate_events

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRET2 = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
SECRET3 = "whsec_YW5vdGhlci1zZWNyZXQta2V5LTI0Ynl0"
ITEM_ID = "3f2b1c9e-1d2a-4b3c-8d4e-5f6a7b8c9d0e"

OBJECT = {
    "id": 4242,
    "summary": "Printer on fire",
    "status": {"id": 9, "display": "Closed"},
    "priority": "P1",
}
ACTION = {"id": 17, "note": "rebooted"}
LINKED = {"client": {"id": 1, "name": "Acme", "tier": {"id": 2, "display": "Gold"}}}


def make_webhook(**settings: Any) -> Webhook:
    """A validated webhook with a catch-all trigger."""
    data: dict[str, Any] = {"id": "servicedesk", "url": "https://hooks.example.com/halo"}
    data.setdefault("events", [{"id": "closed", "on": "*"}])
    data.update(settings)
    return Config.model_validate({"webhooks": [data]}).webhooks[0]


def make_occ(
    action: dict[str, Any] | None = ACTION,
    linked: dict[str, Any] | None = LINKED,
    obj: dict[str, Any] | None = None,
) -> Occurrence:
    """An occurrence with all parts."""
    return Occurrence(
        id="evt_01J",
        event="ticket.status_changed",
        timestamp="2026-11-29T07:00:00.000Z",
        object=dict(OBJECT) if obj is None else obj,
        action=action,
        linked=linked,
        client_id=True,
    )


def build(webhook: Webhook, occ: Occurrence | None = None, trigger: str = "closed") -> dict[str, Any]:
    """The decoded body of one item."""
    raw = PayloadBuilder(webhook).body(occ or make_occ(), ITEM_ID, trigger)
    assert isinstance(raw, bytes)
    body: dict[str, Any] = json.loads(raw)
    return body


ENVELOPE = {
    "id": ITEM_ID,
    "webhook_id": "servicedesk",
    "event": "ticket.status_changed",
    "event_id": "evt_01J",
    "trigger": "closed",
    "object_id": 4242,
    "timestamp": "2026-11-29T07:00:00.000Z",
}


# -- bodies -----------------------------------------------------------------------------------


def test_envelope_fields() -> None:
    """Every body carries exactly the SPEC §4 envelope, with the item, webhook, event and trigger ids."""
    body = build(make_webhook(payload="event_only"))
    assert body == ENVELOPE
    assert set(body) == ENVELOPE_KEYS


def test_object_payload() -> None:
    """`object` sends the envelope, the whole object and the action, but not linked."""
    assert build(make_webhook(payload="object")) == {**ENVELOPE, "object": OBJECT, "action": ACTION}


def test_object_payload_without_action() -> None:
    """Without an action the body has no `action` key at all."""
    body = build(make_webhook(payload="object"), make_occ(action=None))
    assert body == {**ENVELOPE, "object": OBJECT}


def test_object_with_linked_payload() -> None:
    """`object_with_linked` adds `linked` to the object payload."""
    body = build(make_webhook(payload="object_with_linked"))
    assert body == {**ENVELOPE, "object": OBJECT, "action": ACTION, "linked": LINKED}


def test_object_with_linked_without_linked() -> None:
    """`object_with_linked` with no linked objects sends no `linked` key."""
    body = build(make_webhook(payload="object_with_linked"), make_occ(linked=None, action=None))
    assert body == {**ENVELOPE, "object": OBJECT}


def test_event_only_payload() -> None:
    """`event_only` sends the envelope and nothing else."""
    assert build(make_webhook(payload="event_only")) == ENVELOPE


def test_key_fields_trim_object() -> None:
    """key_fields keep only those fields of the object (unknown names are simply absent)."""
    body = build(make_webhook(payload="object", key_fields=["id", "status", "nope"]))
    assert body["object"] == {"id": 4242, "status": {"id": 9, "display": "Closed"}}
    assert body["object_id"] == 4242
    assert body["action"] == ACTION


def test_key_fields_envelope_keeps_object_id() -> None:
    """Trimming the id out of the object still leaves object_id in the envelope."""
    body = build(make_webhook(payload="object_with_linked", key_fields=["summary"]))
    assert body["object"] == {"summary": "Printer on fire"}
    assert body["object_id"] == 4242
    assert body["linked"] == LINKED


def test_object_without_id() -> None:
    """An object without an id gives object_id null."""
    body = build(make_webhook(payload="event_only"), make_occ(obj={"summary": "x"}))
    assert body["object_id"] is None


FIELDS = [
    {"key": "status", "source": "object.status"},
    {"key": "status_id", "source": "object.status", "send_id": True},
    {"key": "summary", "source": "object.summary"},
    {"key": "summary_id", "source": "object.summary", "send_id": True},
    {"key": "note", "source": "action.note"},
    {"key": "client", "source": "linked.client.name"},
    {"key": "tier", "source": "linked.client.tier"},
    {"key": "tier_id", "source": "linked.client.tier", "send_id": True},
    {"key": "type", "source": "event"},
    {"key": "missing", "source": "object.nope"},
    {"key": "missing_deep", "source": "linked.site.name"},
    {"key": "whole_action", "source": "action"},
]


def test_custom_payload() -> None:
    """`custom` sends the envelope plus one key per field; selects send display, or id with send_id."""
    body = build(make_webhook(payload="custom", fields=FIELDS))
    assert body == {
        **ENVELOPE,
        "status": "Closed",
        "status_id": 9,
        "summary": "Printer on fire",
        "summary_id": "Printer on fire",
        "note": "rebooted",
        "client": "Acme",
        "tier": "Gold",
        "tier_id": 2,
        "type": "ticket.status_changed",
        "missing": None,
        "missing_deep": None,
        "whole_action": ACTION,
    }


def test_custom_payload_missing_sources_are_null() -> None:
    """A custom field whose source is absent (no action, no linked) is sent as null, not left out."""
    body = build(make_webhook(payload="custom", fields=FIELDS), make_occ(action=None, linked=None))
    for key in ("note", "client", "tier", "tier_id", "missing", "missing_deep", "whole_action"):
        assert key in body
        assert body[key] is None, key
    assert "object" not in body


# The exact bytes each kind sends, as the encoder wrote them before bodies were tuned for
# speed: key order and spacing included, which decoded comparisons above would not see.
ENV = (
    b'{"id":"3f2b1c9e-1d2a-4b3c-8d4e-5f6a7b8c9d0e","webhook_id":"servicedesk","event":"ticket.status_changed",'
    b'"event_id":"evt_01J","trigger":"closed","object_id":4242,"timestamp":"2026-11-29T07:00:00.000Z"'
)
OBJ = b'"object":{"id":4242,"summary":"Printer on fire","status":{"id":9,"display":"Closed"},"priority":"P1"}'
ACT = b'"action":{"id":17,"note":"rebooted"}'
LNK = b'"linked":{"client":{"id":1,"name":"Acme","tier":{"id":2,"display":"Gold"}}}'


@pytest.mark.parametrize(
    ("settings", "occ", "expected"),
    [
        ({"payload": "object"}, make_occ(), ENV + b"," + OBJ + b"," + ACT + b"}"),
        ({"payload": "object"}, make_occ(action=None), ENV + b"," + OBJ + b"}"),
        ({"payload": "object_with_linked"}, make_occ(), ENV + b"," + OBJ + b"," + ACT + b"," + LNK + b"}"),
        ({"payload": "object_with_linked"}, make_occ(linked=None), ENV + b"," + OBJ + b"," + ACT + b"}"),
        ({"payload": "event_only"}, make_occ(), ENV + b"}"),
        (
            {"payload": "object", "key_fields": ["status", "id", "nope"]},
            make_occ(),
            ENV + b',"object":{"id":4242,"status":{"id":9,"display":"Closed"}},' + ACT + b"}",
        ),
        (
            {"payload": "object_with_linked", "key_fields": ["summary"]},
            make_occ(),
            ENV + b',"object":{"summary":"Printer on fire"},' + ACT + b"," + LNK + b"}",
        ),
        (
            {"payload": "custom", "fields": FIELDS},
            make_occ(),
            ENV + b',"status":"Closed","status_id":9,"summary":"Printer on fire","summary_id":"Printer on fire",'
            b'"note":"rebooted","client":"Acme","tier":"Gold","tier_id":2,"type":"ticket.status_changed",'
            b'"missing":null,"missing_deep":null,"whole_action":{"id":17,"note":"rebooted"}}',
        ),
        (
            {"payload": "custom", "fields": FIELDS},
            make_occ(action=None, linked=None),
            ENV + b',"status":"Closed","status_id":9,"summary":"Printer on fire","summary_id":"Printer on fire",'
            b'"note":null,"client":null,"tier":null,"tier_id":null,"type":"ticket.status_changed",'
            b'"missing":null,"missing_deep":null,"whole_action":null}',
        ),
    ],
    ids=[
        "object", "object-no-action", "object_with_linked", "object_with_linked-no-linked", "event_only",
        "key_fields", "key_fields-linked", "custom", "custom-no-action-no-linked",
    ],
)  # fmt: skip
def test_body_exact_bytes(settings: dict[str, Any], occ: Occurrence, expected: bytes) -> None:
    """Every payload kind encodes to exactly the same bytes, in the same key order."""
    body = PayloadBuilder(make_webhook(**settings)).body(occ, ITEM_ID, "closed")
    assert type(body) is bytes
    assert body == expected


def test_body_holds_only_its_own_length() -> None:
    """A body is an exact-size copy, not orjson's working buffer (about 4 KiB whatever the JSON)."""
    builder = PayloadBuilder(make_webhook(payload="object"))
    occ = make_occ()
    tracemalloc.start()
    try:
        bodies = [builder.body(occ, f"item-{n}", "closed") for n in range(200)]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The object header and the list's slot come on top of the bytes; 4 KiB would not fit.
    assert held / len(bodies) < len(bodies[0]) + 100


def test_timestamp_from_occurred_at() -> None:
    """The envelope timestamp is occurred_at in UTC with milliseconds."""
    occs, errors = validate_events(
        {"event": "ticket.created", "object": {"id": 1}, "occurred_at": "2026-11-29T09:00:00.5+02:00"},
        IdFactory(),
        "2000-01-01T00:00:00.000Z",
        10,
    )
    assert errors == []
    body = build(make_webhook(payload="event_only"), occs[0])
    assert body["timestamp"] == "2026-11-29T07:00:00.500Z"


def test_timestamp_defaults_to_ingest_time() -> None:
    """Without occurred_at the envelope timestamp is the ingest time."""
    occs, _ = validate_events({"event": "ticket.created", "object": {}}, IdFactory(), "2026-11-29T07:00:01.250Z", 10)
    assert build(make_webhook(payload="event_only"), occs[0])["timestamp"] == "2026-11-29T07:00:01.250Z"


def test_batch_body_is_json_array_in_order() -> None:
    """A batch body is the item bodies as one JSON array, in the order given."""
    builder = PayloadBuilder(make_webhook(payload="object"))
    bodies = [builder.body(make_occ(obj={"id": n}), f"item-{n}", "closed") for n in range(5)]
    raw = batch_body(bodies)
    decoded = json.loads(raw)
    assert isinstance(decoded, list)
    assert [b["id"] for b in decoded] == [f"item-{n}" for n in range(5)]
    assert [b["object_id"] for b in decoded] == list(range(5))
    assert decoded == [json.loads(b) for b in bodies]


def test_batch_body_of_one_and_none() -> None:
    """A batch of one is still an array; no bodies make an empty array."""
    assert json.loads(batch_body([b'{"a":1}'])) == [{"a": 1}]
    assert json.loads(batch_body([])) == []


def test_query_params_for_get() -> None:
    """GET's query string carries the envelope's scalar fields as strings, nothing from the object."""
    builder = PayloadBuilder(make_webhook(payload="object", method="GET"))
    params = query_params(builder.body(make_occ(), ITEM_ID, "closed"))
    assert params == {k: str(v) for k, v in ENVELOPE.items()}
    assert params["object_id"] == "4242"


def test_query_params_skip_null_object_id() -> None:
    """A null object_id is left out of the query string rather than sent as 'None'."""
    builder = PayloadBuilder(make_webhook(payload="event_only", method="GET"))
    params = query_params(builder.body(make_occ(obj={}), ITEM_ID, "closed"))
    assert "object_id" not in params
    assert "None" not in params.values()
    assert params["event"] == "ticket.status_changed"


# -- headers ----------------------------------------------------------------------------------


def test_headers_auth_none() -> None:
    """Without auth the fixed headers are User-Agent and Content-Type only."""
    shape = RequestShape(make_webhook())
    assert shape.headers == {"User-Agent": f"hookd/{__version__}", "Content-Type": "application/json"}
    assert shape.method == "POST"
    assert shape.url == "https://hooks.example.com/halo"


def test_headers_basic_auth() -> None:
    """Basic auth sends base64(username:password)."""
    shape = RequestShape(make_webhook(auth={"type": "basic", "username": "svc", "password": "pä:ss"}))
    value = shape.headers["Authorization"]
    assert value.startswith("Basic ")
    assert base64.b64decode(value[6:]).decode() == "svc:pä:ss"


def test_headers_bearer_auth() -> None:
    """Bearer auth sends the token."""
    shape = RequestShape(make_webhook(auth={"type": "bearer", "token": "tok-123"}))
    assert shape.headers["Authorization"] == "Bearer tok-123"


def test_headers_header_auth() -> None:
    """Header auth sends the named header, and no Authorization."""
    shape = RequestShape(make_webhook(auth={"type": "header", "name": "X-Api-Key", "value": "k-456"}))
    assert shape.headers["X-Api-Key"] == "k-456"
    assert "Authorization" not in shape.headers


def test_extra_headers() -> None:
    """Configured headers are added to every request."""
    shape = RequestShape(make_webhook(headers={"X-Source": "hookd", "X-Tenant": "42"}))
    headers = shape.attempt_headers("msg_1", 1_800_000_000, b"{}")
    assert headers["X-Source"] == "hookd"
    assert headers["X-Tenant"] == "42"
    assert headers["User-Agent"] == f"hookd/{__version__}"


def test_get_has_no_content_type() -> None:
    """GET requests carry no Content-Type; other methods carry application/json."""
    assert "Content-Type" not in RequestShape(make_webhook(method="GET")).attempt_headers("m", 1, b"")
    for method in ("POST", "PUT", "PATCH"):
        shape = RequestShape(make_webhook(method=method))
        assert shape.attempt_headers("m", 1, b"{}")["Content-Type"] == "application/json"
        assert shape.method == method


def test_attempt_headers_without_secret() -> None:
    """Every attempt has webhook-id and webhook-timestamp; no secret means no signature."""
    headers = RequestShape(make_webhook()).attempt_headers("msg_abc", 1_800_000_123, b"{}")
    assert headers["webhook-id"] == "msg_abc"
    assert headers["webhook-timestamp"] == "1800000123"
    assert "webhook-signature" not in headers


def test_attempt_headers_do_not_leak_between_attempts() -> None:
    """Each attempt gets its own headers; the shape's fixed headers stay unchanged."""
    shape = RequestShape(make_webhook(secret=SECRET))
    before = dict(shape.headers)
    first = shape.attempt_headers("msg_1", 100, b"a")
    second = shape.attempt_headers("msg_1", 200, b"a")
    assert shape.headers == before
    assert first["webhook-timestamp"] == "100"
    assert second["webhook-timestamp"] == "200"
    assert first["webhook-signature"] != second["webhook-signature"]


# -- signatures -------------------------------------------------------------------------------


def test_sign_known_vector() -> None:
    """sign() reproduces the Standard Webhooks reference test vector."""
    got = sign([secret_key(SECRET)], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_verifies_with_standardwebhooks() -> None:
    """A signed attempt verifies with the standardwebhooks library, and a tampered body does not."""
    shape = RequestShape(make_webhook(secret=SECRET))
    body = PayloadBuilder(make_webhook()).body(make_occ(), ITEM_ID, "closed")
    ts = int(time.time())
    headers = shape.attempt_headers("msg_2Lq", ts, body)
    assert headers["webhook-signature"].startswith("v1,")
    assert " " not in headers["webhook-signature"]
    assert SW(SECRET).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        SW(SECRET).verify(body.replace(b"4242", b"4243"), headers)
    with pytest.raises(WebhookVerificationError):
        SW(SECRET2).verify(body, headers)


def test_several_secrets_each_verify() -> None:
    """With several secrets the header holds one space-separated v1 signature each, every one verifying."""
    shape = RequestShape(make_webhook(secret=[SECRET, SECRET2, SECRET3]))
    body = b'[{"id":"x"}]'
    ts = int(time.time())
    headers = shape.attempt_headers("msg_rot", ts, body)
    parts = headers["webhook-signature"].split(" ")
    assert len(parts) == 3
    assert len(set(parts)) == 3
    assert all(p.startswith("v1,") for p in parts)
    for s in (SECRET, SECRET2, SECRET3):
        assert SW(s).verify(body, headers) == [{"id": "x"}]
    # Each signature on its own is the one for its secret, in config order.
    for s, part in zip((SECRET, SECRET2, SECRET3), parts, strict=True):
        assert SW(s).verify(body, {**headers, "webhook-signature": part}) == [{"id": "x"}]


def test_get_signs_empty_body() -> None:
    """A GET attempt signs the empty body."""
    shape = RequestShape(make_webhook(secret=SECRET, method="GET"))
    ts = int(time.time())
    headers = shape.attempt_headers("msg_get", ts, b"")
    assert SW(SECRET).verify(b"", headers, json_parse=False) is None


def test_redacted_hides_credentials() -> None:
    """redacted() replaces Authorization and a header-auth credential by *** and keeps the rest."""
    for auth, name in [
        ({"type": "basic", "username": "u", "password": "pw-secret"}, "Authorization"),
        ({"type": "bearer", "token": "tok-secret"}, "Authorization"),
        ({"type": "header", "name": "X-Api-Key", "value": "key-secret"}, "X-Api-Key"),
    ]:
        shape = RequestShape(make_webhook(auth=auth, secret=SECRET, headers={"X-Source": "hookd"}))
        headers = shape.attempt_headers("msg_r", 1_800_000_000, b"{}")
        red = shape.redacted(headers)
        assert red[name] == "***"
        assert "secret" not in json.dumps(red)
        assert red["X-Source"] == "hookd"
        assert red["webhook-id"] == "msg_r"
        assert red["webhook-signature"] == headers["webhook-signature"]
        assert set(red) == set(headers)
        assert headers[name] != "***"


def test_redacted_is_case_insensitive() -> None:
    """Credential headers are redacted whatever their case in the logged headers."""
    shape = RequestShape(make_webhook(auth={"type": "header", "name": "X-Api-Key", "value": "k"}))
    assert shape.redacted({"x-api-key": "k", "AUTHORIZATION": "Bearer t", "Other": "v"}) == {
        "x-api-key": "***",
        "AUTHORIZATION": "***",
        "Other": "v",
    }


def test_verify_helper() -> None:
    """verify() accepts a matching signature for any of the keys and refuses everything else."""
    body = b'{"a":1}'
    key, key2 = secret_key(SECRET), secret_key(SECRET2)
    header = sign([key], "msg_v", 1_800_000_000, body)
    assert verify([key], "msg_v", "1800000000", body, header)
    assert verify([key2, key], "msg_v", "1800000000", body, header)
    assert verify([key], "msg_v", "1800000000", body, "v1,bm9wZQ== " + header)
    assert not verify([key2], "msg_v", "1800000000", body, header)
    assert not verify([], "msg_v", "1800000000", body, header)
    assert not verify([key], "msg_v", "1800000001", body, header)
    assert not verify([key], "msg_w", "1800000000", body, header)
    assert not verify([key], "msg_v", "1800000000", b'{"a":2}', header)
    assert not verify([key], "msg_v", "not-a-number", body, header)
    assert not verify([key], "msg_v", "1800000000", body, "")
    assert not verify([key], "msg_v", "1800000000", body, header.removeprefix("v1,"))
    with pytest.raises(ValueError, match="base64"):
        secret_key("whsec_!!!")


def test_verify_accepts_the_reference_library_signature() -> None:
    """verify() accepts what the standardwebhooks library signs, so both sides follow the standard, not each other."""
    body = b'{"a":1}'
    when = datetime.fromtimestamp(1_800_000_000, tz=UTC)
    header = SW(SECRET).sign("msg_ref", when, body.decode())
    assert verify([secret_key(SECRET)], "msg_ref", "1800000000", body, header)
    assert not verify([secret_key(SECRET2)], "msg_ref", "1800000000", body, header)
