"""End to end: the HTTP contract of SPEC §3, §4 and §8 as an application, a receiver and an
operator see it, against an App serving in the test's loop; the stop under SIGTERM against
the real ``hookd run`` subprocess."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

import hookd
from tests.support import (
    SECRET,
    AppFactory,
    Client,
    DaemonFactory,
    InProcess,
    MakeConfig,
    Receiver,
    fail_first,
    hang,
    status,
    webhook,
)

SECRET2 = "whsec_" + base64.b64encode(bytes(range(32))).decode()
ENVELOPE = {"id", "webhook_id", "event", "event_id", "trigger", "object_id", "timestamp"}
STATES = {"pending", "delivering", "retrying", "succeeded", "failed"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
JSON = {"Content-Type": "application/json"}


def ticket(**over: Any) -> dict[str, Any]:
    """A ``ticket.status_changed`` event with a single-select status; keys in ``over`` replace."""
    ev: dict[str, Any] = {
        "event": "ticket.status_changed",
        "object": {
            "id": 4242,
            "summary": "Printer on fire",
            "status": {"id": 9, "display": "Closed"},
            "priority": "P1",
        },
    }
    ev.update(over)
    return ev


async def start(
    make_config: MakeConfig,
    app_factory: AppFactory,
    *hooks: dict[str, Any],
    env: dict[str, str] | None = None,
    **tables: Any,
) -> InProcess:
    """Write a config with ``hooks`` (and table overrides) and serve an App on it."""
    return await app_factory(make_config(webhooks=list(hooks), **tables), env=env)


def lower(headers: dict[str, str]) -> dict[str, str]:
    """Headers with lower-case names, as HTTP compares them."""
    return {k.lower(): v for k, v in headers.items()}


async def raw(d: Client, method: str, path: str, **kw: Any) -> tuple[int, dict[str, str], Any]:
    """One API call keeping the answer's headers: (status, headers, decoded JSON or text)."""
    async with aiohttp.ClientSession() as s, s.request(method, d.url + path, **kw) as resp:
        text = await resp.text()
        try:
            body = json.loads(text)
        except ValueError:
            body = text
        return resp.status, dict(resp.headers), body


def assert_error(code: int, body: Any, status_: int, err_code: str) -> dict[str, Any]:
    """Assert the documented error body ``{"error": {"code", "message", "details"}}``; return the error."""
    assert code == status_, body
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    err: dict[str, Any] = body["error"]
    assert set(err) == {"code", "message", "details"}, err
    assert err["code"] == err_code, err
    assert isinstance(err["message"], str), err
    assert err["message"], err
    assert isinstance(err["details"], list), err
    return err


async def record(d: Client, delivery_id: str, state: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """GET /v1/deliveries/{id}, polled until it reaches ``state`` when one is given."""
    async with asyncio.timeout(timeout):
        while True:
            code, body = await d.request("GET", f"/v1/deliveries/{delivery_id}")
            assert code == 200, body
            if state is None or body["state"] == state:
                return dict(body)
            await asyncio.sleep(0.02)


def parse_ts(text: str) -> datetime:
    """An envelope timestamp as an aware datetime."""
    assert TIMESTAMP.match(text), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


# -- envelope and payloads (§4) ------------------------------------------------------------


async def test_envelope_fields_on_received_body(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A received body carries the envelope: a uuid item id, webhook, event, occurrence id, trigger, object id and a UTC
    ms timestamp."""
    d = await start(
        make_config,
        app_factory,
        webhook("sd", receiver.url + "/in", events=[{"id": "closed", "on": "ticket.status_changed"}]),
    )
    code, answer = await d.send(ticket(id="evt-given", occurred_at="2026-11-29T09:00:00.123456+02:00"))
    assert code == 202, answer
    (got,) = await receiver.wait_for(1, "/in")
    body = got.json()
    assert set(body) >= ENVELOPE
    item = uuid.UUID(body["id"])
    assert str(item) == body["id"]
    assert item.version == 7
    assert body["webhook_id"] == "sd"
    assert body["event"] == "ticket.status_changed"
    assert body["event_id"] == "evt-given"
    assert body["trigger"] == "closed"
    assert body["object_id"] == 4242
    assert body["timestamp"] == "2026-11-29T07:00:00.123Z"


async def test_timestamp_defaults_to_ingest_time(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Without ``occurred_at`` the envelope's timestamp is the ingest time, UTC with milliseconds, and the event id is
    generated."""
    d = await start(make_config, app_factory, webhook("sd", receiver.url + "/in"))
    before = datetime.now(UTC)
    code, answer = await d.send(ticket())
    after = datetime.now(UTC)
    assert code == 202, answer
    (got,) = await receiver.wait_for(1, "/in")
    body = got.json()
    ts = parse_ts(body["timestamp"])
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= ts <= after
    assert body["event_id"] == answer["ids"][0]
    assert body["event_id"]


async def test_payload_object_with_and_without_action(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """``object`` sends the envelope plus the whole object, plus ``action`` only when the event has one, never
    ``linked``."""
    d = await start(make_config, app_factory, webhook("obj", receiver.url + "/obj", payload="object"))
    linked = {"client": {"id": 1, "name": "Acme"}}
    code, _ = await d.send([ticket(id="a", action={"id": 17, "note": "done"}, linked=linked), ticket(id="b")])
    assert code == 202
    got = {r.json()["event_id"]: r.json() for r in await receiver.wait_for(2, "/obj")}
    with_action = got["a"]
    assert set(with_action) == ENVELOPE | {"object", "action"}
    assert with_action["object"] == ticket()["object"]
    assert with_action["action"] == {"id": 17, "note": "done"}
    assert set(got["b"]) == ENVELOPE | {"object"}


async def test_payload_object_with_key_fields(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """``key_fields`` trims ``object`` to the listed fields and leaves the envelope and action whole."""
    d = await start(
        make_config,
        app_factory,
        webhook("kf", receiver.url + "/kf", payload="object", key_fields=["id", "status", "absent"]),
    )
    await d.send(ticket(action={"id": 17}))
    (got,) = await receiver.wait_for(1, "/kf")
    body = got.json()
    assert body["object"] == {"id": 4242, "status": {"id": 9, "display": "Closed"}}
    assert body["object_id"] == 4242
    assert body["action"] == {"id": 17}


async def test_payload_object_with_linked(receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory) -> None:
    """``object_with_linked`` adds ``linked`` to the object payload."""
    d = await start(make_config, app_factory, webhook("ln", receiver.url + "/ln", payload="object_with_linked"))
    linked = {"client": {"id": 1, "name": "Acme"}, "site": {"id": 2, "name": "HQ"}}
    await d.send(ticket(action={"id": 17}, linked=linked))
    (got,) = await receiver.wait_for(1, "/ln")
    body = got.json()
    assert set(body) == ENVELOPE | {"object", "action", "linked"}
    assert body["linked"] == linked
    assert body["object"] == ticket()["object"]


async def test_payload_event_only(receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory) -> None:
    """``event_only`` sends the envelope and nothing else."""
    d = await start(make_config, app_factory, webhook("eo", receiver.url + "/eo", payload="event_only"))
    await d.send(ticket(id="e1", action={"id": 17}, linked={"client": {"id": 1}}))
    (got,) = await receiver.wait_for(1, "/eo")
    body = got.json()
    assert set(body) == ENVELOPE
    assert body["event_id"] == "e1"
    assert body["object_id"] == 4242


async def test_payload_custom_fields(receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory) -> None:
    """``custom`` sends one key per field: a single-select's display, or its id with send_id, and null for a missing
    source."""
    fields: list[dict[str, Any]] = [
        {"key": "status", "source": "object.status"},
        {"key": "status_id", "source": "object.status", "send_id": True},
        {"key": "summary", "source": "object.summary", "send_id": True},
        {"key": "note", "source": "action.note"},
        {"key": "client", "source": "linked.client.name"},
        {"key": "nope", "source": "object.nope"},
        {"key": "kind", "source": "event"},
    ]
    d = await start(make_config, app_factory, webhook("cu", receiver.url + "/cu", payload="custom", fields=fields))
    await d.send(
        [
            ticket(id="full", action={"id": 17, "note": "done"}, linked={"client": {"id": 1, "name": "Acme"}}),
            ticket(id="bare"),
        ]
    )
    got = {r.json()["event_id"]: r.json() for r in await receiver.wait_for(2, "/cu")}
    full = got["full"]
    assert set(full) == ENVELOPE | {f["key"] for f in fields}
    assert {k: full[k] for k in ("status", "status_id", "summary", "note", "client", "nope", "kind")} == {
        "status": "Closed",
        "status_id": 9,
        "summary": "Printer on fire",
        "note": "done",
        "client": "Acme",
        "nope": None,
        "kind": "ticket.status_changed",
    }
    bare = got["bare"]
    assert bare["note"] is None
    assert bare["client"] is None
    assert bare["nope"] is None
    assert bare["status"] == "Closed"


# -- methods, headers, signatures (§4) -----------------------------------------------------


async def test_get_sends_envelope_in_query_and_signs_empty_body(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A GET webhook sends no body and no Content-Type, the envelope's scalars in the query, and signs the empty
    body."""
    d = await start(make_config, app_factory, webhook("get", receiver.url + "/get", method="GET", secret=SECRET))
    await d.send(ticket(id="g1", occurred_at="2026-11-29T07:00:00Z"))
    (got,) = await receiver.wait_for(1, "/get")
    assert got.method == "GET"
    assert got.body == b""
    assert set(got.query) == ENVELOPE
    assert got.query["event"] == "ticket.status_changed"
    assert got.query["event_id"] == "g1"
    assert got.query["webhook_id"] == "get"
    assert got.query["trigger"] == "t"
    assert got.query["object_id"] == "4242"
    assert got.query["timestamp"] == "2026-11-29T07:00:00.000Z"
    uuid.UUID(got.query["id"])
    headers = lower(got.headers)
    assert "content-type" not in headers
    assert Webhook(SECRET).verify(b"", got.headers, json_parse=False) is None
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(b"{}", got.headers)


async def test_put_and_patch_carry_bodies(receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory) -> None:
    """PUT and PATCH webhooks send the JSON body with its Content-Type."""
    d = await start(
        make_config,
        app_factory,
        webhook("put", receiver.url + "/put", method="PUT"),
        webhook("patch", receiver.url + "/patch", method="PATCH"),
    )
    await d.send(ticket(id="p1"))
    (put,) = await receiver.wait_for(1, "/put")
    (patch,) = await receiver.wait_for(1, "/patch")
    assert (put.method, patch.method) == ("PUT", "PATCH")
    for got, wid in ((put, "put"), (patch, "patch")):
        assert lower(got.headers)["content-type"] == "application/json"
        body = got.json()
        assert body["webhook_id"] == wid
        assert body["event_id"] == "p1"
        assert body["object"]["summary"] == "Printer on fire"
        assert got.query == {}


async def test_auth_kinds_and_extra_headers(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Each auth kind arrives as its header, extra headers arrive, and every request names hookd/<version> as
    User-Agent."""
    extra = {"X-Source": "hookd", "X-Tenant": "acme"}
    d = await start(
        make_config,
        app_factory,
        webhook("none", receiver.url + "/none", headers=extra),
        webhook(
            "basic", receiver.url + "/basic", auth={"type": "basic", "username": "svc", "password": "env:HOOKD_E2E_PW"}
        ),
        webhook("bearer", receiver.url + "/bearer", auth={"type": "bearer", "token": "tok-123"}),
        webhook("header", receiver.url + "/header", auth={"type": "header", "name": "X-Api-Key", "value": "key-456"}),
        env={"HOOKD_E2E_PW": "pa:ss"},
    )
    await d.send(ticket())
    got = {p: lower((await receiver.wait_for(1, p))[0].headers) for p in ("/none", "/basic", "/bearer", "/header")}
    assert "authorization" not in got["/none"]
    assert got["/none"]["x-source"] == "hookd"
    assert got["/none"]["x-tenant"] == "acme"
    assert got["/basic"]["authorization"] == "Basic " + base64.b64encode(b"svc:pa:ss").decode()
    assert got["/bearer"]["authorization"] == "Bearer tok-123"
    assert got["/header"]["x-api-key"] == "key-456"
    assert "authorization" not in got["/header"]
    for headers in got.values():
        assert headers["user-agent"] == f"hookd/{hookd.__version__}"
        assert headers["content-type"] == "application/json"
        assert headers["webhook-id"]
        assert headers["webhook-timestamp"].isdigit()
        assert "webhook-signature" not in headers


async def test_signature_verifies_with_standardwebhooks_for_each_rotated_secret(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """With two secrets the request carries two v1 signatures and a Standard Webhooks receiver verifies with either
    secret."""
    d = await start(make_config, app_factory, webhook("sig", receiver.url + "/sig", secret=[SECRET, SECRET2]))
    await d.send(ticket(id="s1"))
    (got,) = await receiver.wait_for(1, "/sig")
    sigs = lower(got.headers)["webhook-signature"].split(" ")
    assert len(sigs) == 2
    assert all(s.startswith("v1,") for s in sigs)
    assert Webhook(SECRET).verify(got.body, got.headers)["event_id"] == "s1"
    assert Webhook(SECRET2).verify(got.body, got.headers)["event_id"] == "s1"
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(got.body + b" ", got.headers)


# -- retries, resend, lightweight logs (§4, §8) --------------------------------------------


async def test_webhook_id_is_fixed_across_retries_and_resend(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Retries keep the webhook-id; a resend answers 202 with a new delivery id and carries the same webhook-id
    and body."""
    receiver.behave["/r"] = fail_first(2)
    d = await start(make_config, app_factory, webhook("r", receiver.url + "/r", secret=SECRET))
    await d.send(ticket(id="r1"))
    tries = await receiver.wait_for(3, "/r")
    ids = {lower(t.headers)["webhook-id"] for t in tries}
    assert len(ids) == 1
    assert len({t.body for t in tries}) == 1
    (first,) = await d.wait_deliveries("r", 1, state="succeeded")
    rec = await record(d, first["id"])
    assert rec["message_id"] == ids.pop()
    assert [(a["n"], a["status_code"]) for a in rec["attempts"]] == [(1, 500), (2, 500), (3, 200)]

    code, answer = await d.request("POST", f"/v1/deliveries/{first['id']}/resend")
    assert code == 202, answer
    assert set(answer) == {"delivery_id"}
    new_id = answer["delivery_id"]
    assert new_id != first["id"]
    resent = (await receiver.wait_for(4, "/r"))[3]
    assert lower(resent.headers)["webhook-id"] == rec["message_id"]
    assert resent.body == tries[0].body
    assert Webhook(SECRET).verify(resent.body, resent.headers)["event_id"] == "r1"
    new = await record(d, new_id, state="succeeded")
    assert new["message_id"] == rec["message_id"]
    assert new["resend_of"] == first["id"]
    assert [(a["n"], a["status_code"], a["trigger"]) for a in new["attempts"]] == [(1, 200, "manual")]
    assert len((await record(d, first["id"]))["attempts"]) == 3


async def test_resend_of_unknown_delivery_is_404(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Resending a delivery id that does not exist answers 404 with the error body."""
    d = await start(make_config, app_factory, webhook("r", receiver.url + "/r"))
    code, body = await d.request("POST", "/v1/deliveries/dlv_nope/resend")
    assert_error(code, body, 404, "not_found")
    assert receiver.requests == []


async def test_lightweight_logs_keep_states_codes_and_timings_only(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Under lightweight_logs a delivery record has states, codes and timings but no request or response, and resend is
    409."""
    receiver.behave["/lw"] = fail_first(1, code=503)
    d = await start(
        make_config,
        app_factory,
        webhook("lw", receiver.url + "/lw", lightweight_logs=True, auth={"type": "bearer", "token": "tok-lw"}),
    )
    await d.send(ticket(id="lw1"))
    (entry,) = await d.wait_deliveries("lw", 1, state="succeeded")
    rec = await record(d, entry["id"])
    assert rec["state"] == "succeeded"
    assert rec["status_code"] == 200
    assert [(a["n"], a["status_code"]) for a in rec["attempts"]] == [(1, 503), (2, 200)]
    assert all(isinstance(a["duration_ms"], int | float) and a["duration_ms"] >= 0 for a in rec["attempts"])
    assert all(TIMESTAMP.match(a["started_at"]) for a in rec["attempts"])
    assert rec.get("request") is None
    assert rec.get("response") is None
    assert "body" not in rec
    text = json.dumps(rec)
    assert "Printer on fire" not in text
    assert "tok-lw" not in text
    assert "not yet" not in text
    code, body = await d.request("POST", f"/v1/deliveries/{entry['id']}/resend")
    assert_error(code, body, 409, "lightweight_logs")
    assert len(receiver.at("/lw")) == 2


# -- idempotency and ids (§3) --------------------------------------------------------------


async def test_same_id_twice_delivers_once(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """An id sent twice is answered as a duplicate routed to nothing, and the receiver gets one request for it."""
    d = await start(make_config, app_factory, webhook("id", receiver.url + "/id"))
    code, first = await d.send(ticket(id="once"))
    assert (code, first) == (202, {"accepted": 1, "duplicates": 0, "items": 1, "ids": ["once"]})
    code, second = await d.send(ticket(id="once"))
    assert (code, second) == (202, {"accepted": 1, "duplicates": 1, "items": 0, "ids": ["once"]})
    code, mixed = await d.send([ticket(id="once"), ticket(id="twice")])
    assert (code, mixed) == (202, {"accepted": 2, "duplicates": 1, "items": 1, "ids": ["once", "twice"]})
    await d.wait_deliveries("id", 2, state="succeeded")
    got = await receiver.wait_for(2, "/id")
    assert sorted(r.json()["event_id"] for r in got) == ["once", "twice"]
    code, page = await d.request("GET", "/v1/webhooks/id/deliveries")
    assert len(page["deliveries"]) == 2


async def test_ids_in_request_order_with_generated_ones(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """The 202 lists each event's id in request order, generated ids included, and each delivery carries its id."""
    d = await start(make_config, app_factory, webhook("o", receiver.url + "/o"))
    events = [
        ticket(id="x1", object={"id": 1}),
        ticket(object={"id": 2}),
        ticket(id="x3", object={"id": 3}),
        ticket(object={"id": 4}),
    ]
    code, answer = await d.send(events)
    assert code == 202, answer
    assert answer["accepted"] == 4
    assert answer["items"] == 4
    assert answer["duplicates"] == 0
    ids = answer["ids"]
    assert len(ids) == 4
    assert ids[0] == "x1"
    assert ids[2] == "x3"
    assert all(isinstance(i, str) and i for i in ids)
    assert len(set(ids)) == 4
    got = {r.json()["object_id"]: r.json()["event_id"] for r in await receiver.wait_for(4, "/o")}
    assert got == {1: ids[0], 2: ids[1], 3: ids[2], 4: ids[3]}


async def test_event_matching_no_webhook_is_accepted_with_no_items(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """An event no trigger matches is accepted with items 0 and delivers nothing."""
    d = await start(
        make_config,
        app_factory,
        webhook("only", receiver.url + "/only", on="client.*"),
        webhook("off", receiver.url + "/off", enabled=False),
    )
    code, answer = await d.send(ticket(id="nobody"))
    assert (code, answer) == (202, {"accepted": 1, "duplicates": 0, "items": 0, "ids": ["nobody"]})
    await d.send({"event": "client.updated", "object": {"id": 5}})
    (got,) = await receiver.wait_for(1, "/only")
    assert got.json()["event"] == "client.updated"
    assert [r.path for r in receiver.requests] == ["/only"]


# -- delivery log API (§8) -----------------------------------------------------------------


async def fail_even_objects(request: web.Request, n: int) -> web.StreamResponse:
    """A receiver behaviour: 400 for an even object id (a final failure), 200 otherwise."""
    body = await request.json()
    if body["object"]["id"] % 2 == 0:
        return web.Response(status=400, text="even")
    return web.json_response({"ok": True})


async def test_webhooks_list_shows_every_webhook_with_counts(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """GET /v1/webhooks lists every webhook in config order: URL without credentials, enabled state, counts by
    state."""
    receiver.behave["/b"] = status(400)
    creds_url = receiver.url.replace("http://", "http://user:pw-secret@") + "/a"
    d = await start(
        make_config,
        app_factory,
        webhook("alpha", creds_url, name="Alpha desk"),
        webhook("beta", receiver.url + "/b"),
        webhook("gamma", receiver.url + "/c", enabled=False),
    )
    await d.send([ticket(id="1"), ticket(id="2")])
    await d.wait_deliveries("alpha", 2, state="succeeded")
    await d.wait_deliveries("beta", 2, state="failed")
    code, body = await d.request("GET", "/v1/webhooks")
    assert code == 200, body
    hooks = {w["id"]: w for w in body["webhooks"]}
    assert [w["id"] for w in body["webhooks"]] == ["alpha", "beta", "gamma"]
    assert hooks["alpha"]["url"] == receiver.url + "/a"
    assert hooks["alpha"]["name"] == "Alpha desk"
    assert "pw-secret" not in json.dumps(body)
    zero = {**dict.fromkeys(STATES, 0), "batched": 0}
    assert hooks["alpha"]["counts"] == {**zero, "succeeded": 2}
    assert hooks["beta"]["counts"] == {**zero, "failed": 2}
    assert hooks["gamma"]["counts"] == zero
    assert hooks["alpha"]["enabled"] is True
    assert hooks["beta"]["enabled"] is True
    assert hooks["gamma"]["enabled"] is False
    assert hooks["gamma"]["disabled_reason"] == "config"
    assert receiver.at("/c") == []


async def test_webhook_detail_masks_every_secret(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """GET /v1/webhooks/{id} shows the config with signing secrets, passwords, tokens and header values as ***."""
    creds_url = receiver.url.replace("http://", "http://user:pw-in-url@") + "/h"
    d = await start(
        make_config,
        app_factory,
        webhook(
            "basic",
            receiver.url + "/a",
            secret=[SECRET, SECRET2],
            headers={"X-Source": "hookd"},
            auth={"type": "basic", "username": "svc", "password": "hunter2-pass"},
        ),
        webhook("bearer", receiver.url + "/b", auth={"type": "bearer", "token": "bearer-tok-789"}),
        webhook(
            "header", creds_url, secret=SECRET, auth={"type": "header", "name": "X-Api-Key", "value": "hdr-val-321"}
        ),
    )
    await d.send(ticket())
    await d.wait_deliveries("basic", 1, state="succeeded")
    code, basic = await d.request("GET", "/v1/webhooks/basic")
    assert code == 200, basic
    assert basic["id"] == "basic"
    assert basic["counts"]["succeeded"] == 1
    config = basic["config"]
    assert config["secret"] == ["***", "***"]
    assert config["auth"] == {"type": "basic", "username": "svc", "password": "***"}
    assert config["headers"] == {"X-Source": "***"}  # extra headers may carry credentials: values masked
    _, bearer = await d.request("GET", "/v1/webhooks/bearer")
    assert bearer["config"]["auth"] == {"type": "bearer", "token": "***"}
    assert bearer["config"]["secret"] == []
    _, header = await d.request("GET", "/v1/webhooks/header")
    assert header["config"]["auth"] == {"type": "header", "name": "X-Api-Key", "value": "***"}
    assert header["config"]["secret"] == ["***"]
    assert header["config"]["url"] == receiver.url + "/h"
    assert header["url"] == receiver.url + "/h"
    text = json.dumps([basic, bearer, header])
    for secret in ("hunter2-pass", "bearer-tok-789", "hdr-val-321", "pw-in-url", SECRET[6:], SECRET2[6:]):
        assert secret not in text


async def test_deliveries_list_newest_first_filtered_and_paged(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A webhook's deliveries come newest first with the summary fields, filter by state, honour limit and page by
    ``before``."""
    receiver.behave["/p"] = fail_even_objects
    d = await start(make_config, app_factory, webhook("p", receiver.url + "/p"))
    code, _ = await d.send([ticket(id=f"e{i}", object={"id": i}) for i in range(1, 6)])
    assert code == 202
    await d.wait_deliveries("p", 3, state="succeeded")
    await d.wait_deliveries("p", 2, state="failed")

    obj: dict[str, int] = {}

    async def objects(page: list[dict[str, Any]]) -> list[int]:
        for entry in page:
            if entry["id"] not in obj:
                rec = await record(d, entry["id"])
                obj[entry["id"]] = json.loads(rec["request"]["body"])["object"]["id"]
        return [obj[e["id"]] for e in page]

    code, everything = await d.request("GET", "/v1/webhooks/p/deliveries")
    assert code == 200, everything
    assert everything["next"] is None
    assert await objects(everything["deliveries"]) == [5, 4, 3, 2, 1]
    for entry in everything["deliveries"]:
        assert {
            "id",
            "webhook_id",
            "state",
            "created_at",
            "attempts",
            "status_code",
            "duration_ms",
            "items",
            "events",
        } <= set(entry)
        assert entry["webhook_id"] == "p"
        assert entry["attempts"] == 1
        assert entry["items"] == 1
        assert entry["events"] == ["ticket.status_changed"]
        assert TIMESTAMP.match(entry["created_at"])
        assert isinstance(entry["duration_ms"], int | float)
        assert entry["duration_ms"] >= 0
        odd = obj[entry["id"]] % 2 == 1
        assert (entry["state"], entry["status_code"]) == (("succeeded", 200) if odd else ("failed", 400))

    _, ok = await d.request("GET", "/v1/webhooks/p/deliveries?state=succeeded")
    assert await objects(ok["deliveries"]) == [5, 3, 1]
    _, bad = await d.request("GET", "/v1/webhooks/p/deliveries?state=failed")
    assert await objects(bad["deliveries"]) == [4, 2]

    seen = []
    query = "limit=2"
    pages = 0
    while True:
        code, page = await d.request("GET", f"/v1/webhooks/p/deliveries?{query}")
        assert code == 200, page
        assert len(page["deliveries"]) <= 2
        seen.append(await objects(page["deliveries"]))
        pages += 1
        if page["next"] is None:
            break
        assert isinstance(page["next"], str)
        query = f"limit=2&before={page['next']}"
    assert seen == [[5, 4], [3, 2], [1]]

    _, first = await d.request("GET", "/v1/webhooks/p/deliveries?state=succeeded&limit=2")
    assert await objects(first["deliveries"]) == [5, 3]
    _, rest = await d.request("GET", f"/v1/webhooks/p/deliveries?state=succeeded&limit=2&before={first['next']}")
    assert await objects(rest["deliveries"]) == [1]
    assert rest["next"] is None


async def test_delivery_record_is_whole_with_credentials_redacted(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """GET /v1/deliveries/{id} answers the whole record, attempts as a list, with stored credentials shown as ***."""
    receiver.behave["/rec"] = fail_first(1)
    creds_url = receiver.url.replace("http://", "http://user:url-pw@") + "/u"
    d = await start(
        make_config,
        app_factory,
        webhook(
            "rec",
            receiver.url + "/rec",
            auth={"type": "bearer", "token": "tok-secret-1"},
            headers={"X-Source": "hookd"},
        ),
        webhook("hdr", receiver.url + "/hdr", auth={"type": "header", "name": "X-Api-Key", "value": "key-secret-2"}),
        webhook("url", creds_url),
    )
    await d.send(ticket(id="w1", action={"id": 17}))
    (entry,) = await d.wait_deliveries("rec", 1, state="succeeded")
    tries = receiver.at("/rec")
    rec = await record(d, entry["id"])
    assert rec["id"] == entry["id"]
    assert rec["webhook_id"] == "rec"
    assert rec["state"] == "succeeded"
    assert rec["events"] == ["ticket.status_changed"]
    assert rec["triggers"] == ["t"]
    assert rec["item_ids"] == [tries[0].json()["id"]]
    assert rec["message_id"] == lower(tries[0].headers)["webhook-id"]
    assert TIMESTAMP.match(rec["created_at"])
    attempts = rec["attempts"]
    assert [(a["n"], a["status_code"], a["trigger"]) for a in attempts] == [
        (1, 500, "scheduled"),
        (2, 200, "scheduled"),
    ]
    for a in attempts:
        assert TIMESTAMP.match(a["started_at"])
        assert a["duration_ms"] >= 0
        assert a["error"] is None
    request = rec["request"]
    assert request["method"] == "POST"
    assert request["url"] == receiver.url + "/rec"
    assert json.loads(request["body"]) == tries[-1].json()
    headers = lower(request["headers"])
    assert headers["authorization"] == "***"
    assert headers["x-source"] == "hookd"
    assert headers["user-agent"] == f"hookd/{hookd.__version__}"
    assert headers["webhook-id"] == rec["message_id"]
    assert rec["response"]["status"] == 200
    assert json.loads(rec["response"]["body"]) == {"ok": True}
    assert "tok-secret-1" not in json.dumps(rec)

    (h,) = await d.wait_deliveries("hdr", 1, state="succeeded")
    hdr = await record(d, h["id"])
    assert lower(hdr["request"]["headers"])["x-api-key"] == "***"
    assert "key-secret-2" not in json.dumps(hdr)
    (u,) = await d.wait_deliveries("url", 1, state="succeeded")
    via_url = await record(d, u["id"])
    assert via_url["request"]["url"] == receiver.url + "/u"
    assert "url-pw" not in json.dumps(via_url)


# -- errors (§3, §8) -----------------------------------------------------------------------


async def test_malformed_json_is_400(receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory) -> None:
    """Bodies that are not JSON (truncated, empty, not UTF-8, a lone surrogate) are 400; an infinite number is 422."""
    d = await start(make_config, app_factory, webhook("m", receiver.url + "/m"))
    for data in (
        b'{"event": "ticket.created", "object": {',
        b"",
        b"\xff\xfe{}",
        b'{"event": "\\ud800"}',
        b"{'event': 'x'}",
    ):
        code, body = await d.request("POST", "/v1/events", data=data, headers=JSON)
        assert_error(code, body, 400, "malformed_json")
    # JSON, but a number no double holds: refused as such, not as malformed.
    code, body = await d.request("POST", "/v1/events", data=b"1e999", headers=JSON)
    assert_error(code, body, 422, "invalid_events")
    assert receiver.requests == []


async def test_deeply_nested_json_is_400(receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory) -> None:
    """100000 nested arrays are answered 400, not a crash, and the daemon keeps serving."""
    d = await start(make_config, app_factory, webhook("n", receiver.url + "/n"))
    code, body = await d.request("POST", "/v1/events", data=b"[" * 100_000 + b"]" * 100_000, headers=JSON)
    assert_error(code, body, 400, "malformed_json")
    nested_obj = b'{"event": "ticket.created", "object": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    code, body = await d.request("POST", "/v1/events", data=nested_obj, headers=JSON)
    assert_error(code, body, 400, "malformed_json")
    assert (await d.request("GET", "/healthz"))[0] == 200
    assert receiver.requests == []


async def test_nested_object_too_deep_to_reencode_is_refused_not_5xx(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """An object nested 300 levels deep (parseable, but deeper than a body can be encoded) is refused with a 4xx,
    never a 5xx."""
    d = await start(make_config, app_factory, webhook("deep", receiver.url + "/deep"))
    data = b'{"event": "ticket.created", "object": {"id": 1, "a": ' + b"[" * 300 + b"]" * 300 + b"}}"
    code, body = await d.request("POST", "/v1/events", data=data, headers=JSON)
    assert 400 <= code < 500, (code, body)
    assert set(body) == {"error"}
    assert (await d.request("GET", "/healthz"))[0] == 200
    assert receiver.requests == []


async def test_body_over_max_body_bytes_is_413(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A body over max_body_bytes is 413, whether it declares its length or comes chunked; one at the limit is
    accepted."""
    d = await start(make_config, app_factory, webhook("big", receiver.url + "/big"), server={"max_body_bytes": 2048})

    def padded(size: int) -> bytes:
        base = len(json.dumps(ticket(id="exact", object={"id": 1, "pad": ""})).encode())
        data = json.dumps(ticket(id="exact", object={"id": 1, "pad": "x" * (size - base)})).encode()
        assert len(data) == size
        return data

    exact, over = padded(2048), padded(2049)
    code, body = await d.request("POST", "/v1/events", data=over, headers=JSON)
    assert_error(code, body, 413, "body_too_large")

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(over), 500):
            yield over[i : i + 500]

    code, body = await d.request("POST", "/v1/events", data=chunks(), headers=JSON)
    assert_error(code, body, 413, "body_too_large")
    code, body = await d.request("POST", "/v1/events", data=exact, headers=JSON)
    assert code == 202, body
    assert body["duplicates"] == 0
    (got,) = await receiver.wait_for(1, "/big")
    assert got.json()["event_id"] == "exact"
    await d.wait_deliveries("big", 1, state="succeeded")
    assert len(receiver.requests) == 1


async def test_array_over_max_events_is_413(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """An array longer than max_events_per_request is 413 and delivers none of its events; one at the limit is
    accepted."""
    d = await start(
        make_config, app_factory, webhook("arr", receiver.url + "/arr"), server={"max_events_per_request": 3}
    )
    code, body = await d.send([ticket(id=f"a{i}") for i in range(4)])
    assert_error(code, body, 413, "too_many_events")
    code, body = await d.send([ticket(id=f"b{i}") for i in range(3)])
    assert code == 202, body
    assert body["accepted"] == 3
    got = await receiver.wait_for(3, "/arr")
    await d.wait_deliveries("arr", 3, state="succeeded")
    assert sorted(r.json()["event_id"] for r in got) == ["b0", "b1", "b2"]
    assert len(receiver.requests) == 3


async def test_wrong_content_type_is_415(receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory) -> None:
    """A body sent as anything but application/json is 415, even when it is valid JSON; a charset parameter is fine."""
    d = await start(make_config, app_factory, webhook("ct", receiver.url + "/ct"))
    data = json.dumps(ticket(id="ct")).encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/octet-stream", "application/jsonx"):
        code, body = await d.request("POST", "/v1/events", data=data, headers={"Content-Type": ctype})
        assert_error(code, body, 415, "unsupported_media_type")
    code, body = await d.request("POST", "/v1/events", data=data)  # aiohttp sends application/octet-stream
    assert_error(code, body, 415, "unsupported_media_type")
    code, body = await d.request(
        "POST", "/v1/events", data=data, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert code == 202, body
    (got,) = await receiver.wait_for(1, "/ct")
    assert got.json()["event_id"] == "ct"


async def test_schema_errors_are_422_with_one_detail_each(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Schema errors answer 422 with one {index, path, message} detail per problem, and the valid events of the request
    are not delivered."""
    d = await start(make_config, app_factory, webhook("v", receiver.url + "/v"))
    events = [
        {"event": 5, "object": "x"},
        {"event": "ticket.created", "objects": {"id": 1}},
        {"event": "Ticket.Created", "object": {"id": 1}},
        {"event": "ticket.created"},
        ticket(id="fine"),
        {
            "event": "ticket.created",
            "object": {"id": 1},
            "action": [1],
            "linked": {"client": 5},
            "id": 7,
            "occurred_at": "yesterday",
        },
    ]
    code, body = await d.send(events)
    err = assert_error(code, body, 422, "invalid_events")
    for detail in err["details"]:
        assert set(detail) == {"index", "path", "message"}, detail
        assert isinstance(detail["message"], str)
        assert detail["message"]
    got = sorted((x["index"], x["path"]) for x in err["details"])
    assert got == sorted(
        [
            (0, "event"),
            (0, "object"),
            (1, "objects"),
            (1, "object"),
            (2, "event"),
            (3, "object"),
            (5, "action"),
            (5, "linked.client"),
            (5, "id"),
            (5, "occurred_at"),
        ]
    )
    messages = {(x["index"], x["path"]): x["message"] for x in err["details"]}
    assert "unknown" in messages[(1, "objects")]
    assert "required" in messages[(3, "object")]
    code, body = await d.send(ticket(occurred_at="2026-11-29T07:00:00"))
    err = assert_error(code, body, 422, "invalid_events")
    assert [(x["index"], x["path"]) for x in err["details"]] == [(0, "occurred_at")]
    code, body = await d.send({"event": "ticket.created", "object": {}, "id": "x" * 129})
    err = assert_error(code, body, 422, "invalid_events")
    assert [x["path"] for x in err["details"]] == ["id"]
    for whole in (b'"just a string"', b"null", b"[]", b"[1, 2]", b"42", b"[[]]", b'[{"event": "a"}, null]'):
        code, body = await d.request("POST", "/v1/events", data=whole, headers=JSON)
        assert_error(code, body, 422, "invalid_events")
    code, body = await d.send(ticket(id="fine"))
    assert body["duplicates"] == 0, "a rejected request must leave no trace of its valid events"
    (got_one,) = await receiver.wait_for(1, "/v")
    assert got_one.json()["event_id"] == "fine"


async def test_tokens_guard_the_api_but_not_health(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """With server.tokens every /v1 call needs one of the tokens (401 otherwise), while /healthz and /metrics
    stay open."""
    d = await start(
        make_config, app_factory, webhook("tk", receiver.url + "/tk"), server={"tokens": ["tok-a", "tok-b"]}
    )
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "tok-a"},
        {"Authorization": "Basic dG9rLWE="},
        {"Authorization": "Bearer tok-ab"},
    ):
        code, resp_headers, body = await raw(d, "POST", "/v1/events", json=ticket(id="denied"), headers=headers)
        assert_error(code, body, 401, "unauthorized")
        assert "Bearer" in resp_headers.get("WWW-Authenticate", "")
        code, body = await d.request("GET", "/v1/webhooks", headers=headers)
        assert_error(code, body, 401, "unauthorized")
    assert (await d.request("GET", "/healthz"))[0] == 200
    code, metrics = await d.request("GET", "/metrics")
    assert code == 200
    assert "hookd_" in metrics
    code, body = await d.send(ticket(id="allowed"), headers={"Authorization": "Bearer tok-b"})
    assert code == 202, body
    assert body["duplicates"] == 0
    code, body = await d.request("GET", "/v1/webhooks", headers={"Authorization": "Bearer tok-a"})
    assert code == 200
    assert body["webhooks"][0]["id"] == "tk"
    (got,) = await receiver.wait_for(1, "/tk")
    assert got.json()["event_id"] == "allowed"
    await d.wait_deliveries("tk", 1, state="succeeded", headers={"Authorization": "Bearer tok-a"})
    assert len(receiver.requests) == 1


async def test_unknown_routes_and_ids_are_404(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Unknown routes, webhooks and deliveries answer 404 with the error body."""
    d = await start(make_config, app_factory, webhook("known", receiver.url + "/k"))
    for method, path in (
        ("GET", "/nope"),
        ("GET", "/v1/nope"),
        ("POST", "/v1/event"),
        ("GET", "/v1/webhooks/nope"),
        ("GET", "/v1/webhooks/nope/deliveries"),
        ("POST", "/v1/webhooks/nope/enable"),
        ("GET", "/v1/deliveries/nope"),
        ("POST", "/v1/deliveries/nope/resend"),
    ):
        code, body = await d.request(method, path)
        assert_error(code, body, 404, "not_found")
    assert receiver.requests == []


async def test_wrong_method_is_405(receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory) -> None:
    """A known route asked with the wrong method answers 405 with the error body and an Allow header."""
    d = await start(make_config, app_factory, webhook("known", receiver.url + "/k"))
    for method, path, allowed in (
        ("GET", "/v1/events", "POST"),
        ("PUT", "/v1/events", "POST"),
        ("DELETE", "/v1/webhooks", "GET"),
        ("POST", "/v1/webhooks/known", "GET"),
        ("GET", "/v1/deliveries/x/resend", "POST"),
    ):
        code, headers, body = await raw(d, method, path)
        assert_error(code, body, 405, "method_not_allowed")
        assert allowed in headers.get("Allow", ""), headers
    assert receiver.requests == []


async def test_bad_query_parameters_are_400(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Unusable limit, state or before parameters answer 400 with a detail naming each parameter."""
    d = await start(make_config, app_factory, webhook("q", receiver.url + "/q"))
    for query, paths in (
        ("limit=abc", ["limit"]),
        ("limit=0", ["limit"]),
        ("limit=-1", ["limit"]),
        ("state=bogus", ["state"]),
        ("before=xyz", ["before"]),
        ("limit=abc&state=bogus", ["limit", "state"]),
    ):
        code, body = await d.request("GET", f"/v1/webhooks/q/deliveries?{query}")
        err = assert_error(code, body, 400, "invalid_query")
        assert sorted(x["path"] for x in err["details"]) == paths, (query, err)


async def test_rejected_requests_deliver_nothing_and_never_5xx(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Every kind of rejected request answers its 4xx, none is a 5xx, and none of them delivers anything."""
    d = await start(
        make_config,
        app_factory,
        webhook("all", receiver.url + "/all"),
        server={"max_body_bytes": 2048, "max_events_per_request": 3, "tokens": ["tok"]},
    )
    auth = {"Authorization": "Bearer tok"}
    jauth = {**JSON, **auth}
    good = json.dumps(ticket(id="rejected")).encode()
    cases: list[tuple[int, str, str, dict[str, Any]]] = [
        (400, "POST", "/v1/events", {"data": b'{"event": ', "headers": jauth}),
        (400, "POST", "/v1/events", {"data": b"", "headers": jauth}),
        (400, "POST", "/v1/events", {"data": b"[" * 1030 + b"]" * 1010, "headers": jauth}),
        (413, "POST", "/v1/events", {"data": good + b" " * 2048, "headers": jauth}),
        (413, "POST", "/v1/events", {"json": [ticket(id="rejected")] * 4, "headers": auth}),
        (415, "POST", "/v1/events", {"data": good, "headers": {"Content-Type": "text/plain", **auth}}),
        (422, "POST", "/v1/events", {"json": {**ticket(id="rejected"), "objects": {}}, "headers": auth}),
        (422, "POST", "/v1/events", {"json": [ticket(id="rejected"), {"event": "Bad"}], "headers": auth}),
        (
            422,
            "POST",
            "/v1/events",
            {"json": ticket(id="rejected", occurred_at="0001-01-01T00:00:00+14:00"), "headers": auth},
        ),
        (
            422,
            "POST",
            "/v1/events",
            {"json": ticket(id="rejected", occurred_at="9999-12-31T23:59:59-14:00"), "headers": auth},
        ),
        (422, "POST", "/v1/events", {"json": ticket(id="rejected", occurred_at=""), "headers": auth}),
        (401, "POST", "/v1/events", {"data": good, "headers": JSON}),
        (401, "POST", "/v1/events", {"data": good, "headers": {**JSON, "Authorization": "Bearer nope"}}),
        (404, "POST", "/v1/event", {"data": good, "headers": jauth}),
        (405, "PUT", "/v1/events", {"data": good, "headers": jauth}),
        (400, "GET", "/v1/webhooks/all/deliveries?limit=abc", {"headers": auth}),
        (400, "GET", "/v1/webhooks/all/deliveries?state=bogus", {"headers": auth}),
        (404, "GET", "/v1/webhooks/nope", {"headers": auth}),
        (404, "GET", "/v1/deliveries/nope", {"headers": auth}),
        (404, "POST", "/v1/deliveries/nope/resend", {"headers": auth}),
    ]
    answers = []
    for want, method, path, kw in cases:
        code, body = await d.request(method, path, **kw)
        answers.append((want, code, method, path, body))
    assert [a for a in answers if a[1] >= 500] == []
    assert [(w, c, m, p) for w, c, m, p, _ in answers if w != c] == []
    for *_, body in answers:
        assert set(body) == {"error"}
        assert set(body["error"]) == {"code", "message", "details"}

    code, body = await d.send(ticket(id="rejected"), headers=auth)
    assert (code, body) == (202, {"accepted": 1, "duplicates": 0, "items": 1, "ids": ["rejected"]})
    (got,) = await receiver.wait_for(1, "/all")
    assert got.json()["event_id"] == "rejected"
    deliveries = await d.wait_deliveries("all", 1, state="succeeded", headers=auth)
    assert len(deliveries) == 1
    _, everything = await d.request("GET", "/v1/webhooks/all/deliveries", headers=auth)
    assert len(everything["deliveries"]) == 1
    assert len(receiver.requests) == 1


async def test_ingest_answers_503_with_retry_after_while_stopping(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """While SIGTERM's grace period waits on an in-flight attempt, ingest answers 503 with Retry-After; the stop exits 0
    and keeps no trace of the refused event."""
    receiver.behave["/slow"] = hang(receiver)
    config = make_config(webhooks=[webhook("slow", receiver.url + "/slow")], server={"shutdown_grace_seconds": 10})
    d = await daemon_factory(config)
    await d.send(ticket(id="inflight"))
    await receiver.wait_for(1, "/slow")
    assert d.proc is not None
    d.proc.send_signal(signal.SIGTERM)
    await d.wait_line("stopping")
    code, headers, body = await raw(d, "POST", "/v1/events", json=ticket(id="late"))
    assert_error(code, body, 503, "shutting_down")
    assert int(headers["Retry-After"]) >= 1
    receiver.release.set()
    async with asyncio.timeout(15):
        exit_code = await d.proc.wait()
    assert exit_code == 0
    stopped = await d.wait_line("stopped")
    assert stopped["cut_attempts"] == 0

    again = await daemon_factory(config)
    (entry,) = await again.wait_deliveries("slow", 1, state="succeeded")
    assert entry["items"] == 1
    code, answer = await again.send(ticket(id="late"))
    assert (code, answer["duplicates"], answer["items"]) == (202, 0, 1)
    got = await receiver.wait_for(2, "/slow")
    assert [r.json()["event_id"] for r in got] == ["inflight", "late"]
    assert (await again.stop()) == 0
