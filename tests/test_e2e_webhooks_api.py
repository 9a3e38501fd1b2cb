"""Webhooks managed at runtime (SPEC §11), through the running daemon's API."""

from __future__ import annotations

import base64
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.support import AppFactory, DaemonFactory, MakeConfig, Receiver, ev, hookd, webhook

pytestmark = pytest.mark.asyncio

# The receivers listen on loopback, which the address guard denies API webhooks by default.
LOOPBACK = {"allow_networks": ["127.0.0.0/8"]}


@pytest.fixture
def make_config(make_config: MakeConfig) -> MakeConfig:
    """The shared fixture, with loopback allowed unless a test says otherwise."""

    def make(*args: Any, **tables: Any) -> Path:
        tables["delivery"] = {**LOOPBACK, **tables.get("delivery", {})}
        return make_config(*args, **tables)

    return make


def api_hook(url: str, id: str | None = "cust-1", on: str = "*", **settings: Any) -> dict[str, Any]:
    """A webhook document as a product would POST it."""
    doc: dict[str, Any] = {"url": url, "events": [{"id": "all", "on": on}], **settings}
    if id is not None:
        doc["id"] = id
    return doc


async def test_create_routes_at_once_and_views_carry_source(
    make_config: MakeConfig, app_factory: AppFactory, receiver: Receiver
) -> None:
    d = await app_factory(make_config([webhook("file", receiver.url + "/file", on="ticket.*")]))
    code, body = await d.request("POST", "/v1/webhooks", json=api_hook(receiver.url + "/api", metadata={"t": "acme"}))
    assert code == 201, body
    assert body["id"] == "cust-1"
    assert body["source"] == "api"
    assert body["metadata"] == {"t": "acme"}
    code, _ = await d.send(ev(1))
    assert code == 202
    (got,) = await receiver.wait_for(1, "/api")
    assert got.json()["webhook_id"] == "cust-1"
    await receiver.wait_for(1, "/file")
    code, listed = await d.request("GET", "/v1/webhooks")
    assert {w["id"]: w["source"] for w in listed["webhooks"]} == {"file": "config", "cust-1": "api"}


async def test_generated_id_and_secret_shown_once(
    make_config: MakeConfig, app_factory: AppFactory, receiver: Receiver
) -> None:
    d = await app_factory(make_config())
    code, body = await d.request("POST", "/v1/webhooks", json=api_hook(receiver.url, id=None, secret="generate"))
    assert code == 201, body
    assert body["id"].startswith("wh_")
    (secret,) = body["config"]["secret"]
    assert secret.startswith("whsec_")
    code, again = await d.request("GET", f"/v1/webhooks/{body['id']}")
    assert again["config"]["secret"] == ["***"]
    await d.send(ev(1))
    (got,) = await receiver.wait_for(1)
    from hookd.signing import secret_key, verify

    h = got.headers
    assert verify([secret_key(secret)], h["webhook-id"], h["webhook-timestamp"], got.body, h["webhook-signature"])
    assert secret not in "\n".join(d.raw)


async def test_put_and_patch_apply_to_new_deliveries(
    make_config: MakeConfig, app_factory: AppFactory, receiver: Receiver
) -> None:
    d = await app_factory(make_config())
    code, body = await d.request("POST", "/v1/webhooks", json=api_hook(receiver.url + "/one", secret="generate"))
    secret = body["config"]["secret"][0]
    code, got = await d.request("GET", "/v1/webhooks/cust-1")
    # Sending back the view shown (secrets as ***) keeps the stored secret.
    doc = got["config"] | {"url": receiver.url + "/two"}
    code, put = await d.request("PUT", "/v1/webhooks/cust-1", json=doc)
    assert code == 200, put
    await d.send(ev(1))
    (first,) = await receiver.wait_for(1, "/two")
    from hookd.signing import secret_key, verify

    h = first.headers
    assert verify([secret_key(secret)], h["webhook-id"], h["webhook-timestamp"], first.body, h["webhook-signature"])
    patch = {"url": receiver.url + "/three", "payload": "event_only", "metadata": {"t": "x"}}
    code, patched = await d.request(
        "PATCH", "/v1/webhooks/cust-1", data=json.dumps(patch), headers={"Content-Type": "application/merge-patch+json"}
    )
    assert code == 200, patched
    assert patched["config"]["payload"] == "event_only"
    assert patched["metadata"] == {"t": "x"}
    await d.send(ev(2))
    (second,) = await receiver.wait_for(1, "/three")
    assert "object" not in second.json()
    # null removes a key (RFC 7386): the metadata goes back to its default.
    code, patched = await d.request("PATCH", "/v1/webhooks/cust-1", json={"metadata": None})
    assert code == 200
    assert patched["metadata"] == {}


async def test_put_of_the_view_keeps_the_urls_credentials(
    make_config: MakeConfig, app_factory: AppFactory, receiver: Receiver
) -> None:
    """A PUT that sends back the URL as the view showed it (no user:password@, ``token=***``) keeps the stored URL."""
    d = await app_factory(make_config())
    secret_url = receiver.url.replace("http://", "http://svc:s3cret@") + "/in?token=abc&x=1"
    code, _ = await d.request("POST", "/v1/webhooks", json=api_hook(secret_url))
    assert code == 201
    code, got = await d.request("GET", "/v1/webhooks/cust-1")
    shown = got["config"]["url"]
    assert "s3cret" not in shown
    assert "abc" not in shown
    code, put = await d.request("PUT", "/v1/webhooks/cust-1", json=got["config"] | {"name": "renamed"})
    assert code == 200, put
    assert put["config"]["url"] == shown
    await d.send(ev(1))
    (first,) = await receiver.wait_for(1, "/in")
    assert first.query == {"token": "abc", "x": "1"}
    assert first.headers["Authorization"] == "Basic " + base64.b64encode(b"svc:s3cret").decode()
    # A URL that differs from the one shown is taken as written, credentials gone.
    code, put = await d.request("PUT", "/v1/webhooks/cust-1", json=got["config"] | {"url": receiver.url + "/in?x=2"})
    assert code == 200, put
    await d.send(ev(2))
    (_, second) = await receiver.wait_for(2, "/in")
    assert second.query == {"x": "2"}
    assert "Authorization" not in second.headers


async def test_etag_and_if_match(make_config: MakeConfig, app_factory: AppFactory, receiver: Receiver) -> None:
    d = await app_factory(make_config())
    async with __import__("aiohttp").ClientSession() as s:
        async with s.post(d.url + "/v1/webhooks", json=api_hook(receiver.url)) as r:
            assert r.status == 201
            tag = r.headers["ETag"]
        async with s.get(d.url + "/v1/webhooks/cust-1") as r:
            assert r.headers["ETag"] == tag
        async with s.patch(d.url + "/v1/webhooks/cust-1", json={"name": "a"}, headers={"If-Match": tag}) as r:
            assert r.status == 200
            newer = r.headers["ETag"]
            assert newer != tag
        # The first admin's tag is stale now: their change is refused, not applied over.
        for method in ("PATCH", "PUT", "DELETE"):
            kw: dict[str, Any] = {"headers": {"If-Match": tag}}
            if method != "DELETE":
                kw["json"] = {"name": "b"} if method == "PATCH" else api_hook(receiver.url)
            async with s.request(method, d.url + "/v1/webhooks/cust-1", **kw) as r:
                assert r.status == 412, method
                assert (await r.json())["error"]["code"] == "precondition_failed"
        async with s.delete(d.url + "/v1/webhooks/cust-1", headers={"If-Match": newer}) as r:
            assert r.status == 204


async def test_config_webhooks_are_read_only(
    make_config: MakeConfig, app_factory: AppFactory, receiver: Receiver
) -> None:
    d = await app_factory(make_config([webhook("file", receiver.url)]))
    for method, kw in (("PUT", {"json": api_hook(receiver.url, id="file")}), ("PATCH", {"json": {"name": "x"}}),
                       ("DELETE", {})):  # fmt: skip
        code, body = await d.request(method, "/v1/webhooks/file", **kw)
        assert code == 409
        assert body["error"]["code"] == "managed_by_config", method
    code, body = await d.request("POST", "/v1/webhooks", json=api_hook(receiver.url, id="file"))
    assert code == 409
    assert body["error"]["code"] == "conflict"
    code, body = await d.request("POST", "/v1/webhooks", json=api_hook(receiver.url))
    code, body = await d.request("POST", "/v1/webhooks", json=api_hook(receiver.url))
    assert code == 409
    assert body["error"]["code"] == "conflict"
    code, body = await d.request("PATCH", "/v1/webhooks/nope", json={})
    assert code == 404


@pytest.mark.parametrize(
    ("doc", "path", "words"),
    [
        ({"url": "ftp://x", "events": [{"id": "a", "on": "*"}]}, "url", "http(s)"),
        ({"url": "http://x", "events": []}, "events", "at least one trigger"),
        ({"url": "http://x", "events": [{"id": "a", "on": "Bad"}]}, "events[0].on", "not an event type"),
        (
            {"url": "http://x", "events": [{"id": "a", "on": "*", "conditions": [{"field": "object.a", "op": "eqq"}]}]},
            "events[0].conditions[0].op",
            "should be",
        ),
        ({"url": "http://x", "events": [{"id": "a", "on": "*"}], "evnts": 1}, "evnts", "did you mean `events`"),
        ({"url": "http://x", "events": [{"id": "a", "on": "*"}], "secret": "env:HOME"}, "secret", "not allowed"),
        (
            {
                "url": "http://x",
                "events": [{"id": "a", "on": "*"}],
                "auth": {"type": "bearer", "token": "file:/etc/passwd"},
            },
            "auth.token",
            "not allowed",
        ),
        ({"url": "http://x", "events": [{"id": "a", "on": "*"}], "id": "Bad Id"}, "id", "must match"),
        ({"url": "http://x", "events": [{"id": "a", "on": "*"}], "metadata": {"k": "v" * 300}}, "metadata.k", "256"),
        ({"url": "http://x", "events": [{"id": "a", "on": "*"}], "payload": "custom"}, "", "needs at least one fields"),
        ({"url": "http://x", "events": [{"id": "a", "on": "*"}], "batch_wait_seconds": "30"}, "batch_wait_seconds", ""),
        ([1, 2], "", "JSON object"),
    ],
)
async def test_invalid_webhooks_are_422_with_key_paths(
    make_config: MakeConfig, app_factory: AppFactory, doc: Any, path: str, words: str
) -> None:
    d = await app_factory(make_config())
    code, body = await d.request("POST", "/v1/webhooks", json=doc)
    assert code == 422, body
    assert body["error"]["code"] == "invalid_webhook"
    assert any(p["path"] == path and words in p["message"] for p in body["error"]["details"]), body
    code, listed = await d.request("GET", "/v1/webhooks")
    assert listed["webhooks"] == []


async def test_bad_bodies(make_config: MakeConfig, app_factory: AppFactory, receiver: Receiver) -> None:
    d = await app_factory(make_config(server={"max_body_bytes": 2048}))
    code, body = await d.request("POST", "/v1/webhooks", data=b"{", headers={"Content-Type": "application/json"})
    assert code == 400
    assert body["error"]["code"] == "malformed_json"
    code, body = await d.request("POST", "/v1/webhooks", data=b"{}", headers={"Content-Type": "text/plain"})
    assert code == 415
    code, body = await d.request("POST", "/v1/webhooks", json=api_hook(receiver.url, name="x" * 4000))
    assert code == 413
    await d.request("POST", "/v1/webhooks", json=api_hook(receiver.url))
    code, body = await d.request("PUT", "/v1/webhooks/cust-1", json=api_hook(receiver.url, id="other"))
    assert code == 422
    assert body["error"]["details"][0]["path"] == "id"
    code, body = await d.request("PATCH", "/v1/webhooks/cust-1", json={"id": "other"})
    assert code == 422


async def test_metadata_filter(make_config: MakeConfig, app_factory: AppFactory, receiver: Receiver) -> None:
    d = await app_factory(make_config())
    for i, tenant in enumerate(["acme", "globex", "acme"]):
        await d.request("POST", "/v1/webhooks", json=api_hook(receiver.url, id=f"c{i}", metadata={"tenant": tenant}))
    _, body = await d.request("GET", "/v1/webhooks?metadata.tenant=acme")
    assert [w["id"] for w in body["webhooks"]] == ["c0", "c2"]
    _, body = await d.request("GET", "/v1/webhooks?metadata.tenant=acme&metadata.region=eu")
    assert body["webhooks"] == []


async def test_test_sends_a_ping_at_once(make_config: MakeConfig, app_factory: AppFactory, receiver: Receiver) -> None:
    d = await app_factory(make_config([webhook("batched", receiver.url + "/b", batching="any_event",
                                               batch_wait_seconds=3600)]))  # fmt: skip
    await d.request("POST", "/v1/webhooks", json=api_hook(receiver.url + "/a"))
    code, body = await d.request("POST", "/v1/webhooks/cust-1/test")
    assert code == 202
    (got,) = await receiver.wait_for(1, "/a")
    assert got.json()["event"] == "hookd.ping"
    assert got.json()["object"] == {"id": "ping"}
    code, rec = await d.request("GET", f"/v1/deliveries/{body['delivery_id']}")
    assert rec["events"] == ["hookd.ping"]
    # A batched webhook gets its ping at once too, shaped as its batches are.
    code, body = await d.request("POST", "/v1/webhooks/batched/test")
    assert code == 202
    (got,) = await receiver.wait_for(1, "/b")
    assert [i["event"] for i in got.json()] == ["hookd.ping"]
    code, body = await d.request("POST", "/v1/webhooks/nope/test")
    assert code == 404


async def test_delete_keeps_pending_work_like_a_removal(
    make_config: MakeConfig, app_factory: AppFactory, receiver: Receiver
) -> None:
    """A deleted webhook's open batch stays in the store (an orphan, routed nothing new);
    the same id created again takes it up, as a webhook removed and re-added on reload."""
    d = await app_factory(make_config())
    batched = api_hook(receiver.url + "/b", batching="any_event", batch_wait_seconds=0.5)
    await d.request("POST", "/v1/webhooks", json=batched)
    code, body = await d.send(ev(1))
    assert body["items"] == 1
    code, _ = await d.request("DELETE", "/v1/webhooks/cust-1")
    assert code == 204
    code, _ = await d.request("GET", "/v1/webhooks/cust-1")
    assert code == 404
    code, body = await d.send(ev(2))
    assert body["items"] == 0  # nothing routes to it any more
    await d.request("POST", "/v1/webhooks", json=batched)
    (got,) = await receiver.wait_for(1, "/b")
    assert [i["event_id"] for i in got.json()] == ["e1"]


async def test_restart_keeps_api_webhooks_and_sighup_leaves_them_alone(
    make_config: MakeConfig, daemon_factory: DaemonFactory, receiver: Receiver
) -> None:
    config = make_config([webhook("file", receiver.url + "/file")])
    d = await daemon_factory(config)
    code, made = await d.request("POST", "/v1/webhooks", json=api_hook(receiver.url + "/api", secret="generate"))
    assert code == 201
    assert await d.stop() == 0
    d = await daemon_factory(config)
    code, body = await d.request("GET", "/v1/webhooks/cust-1")
    assert code == 200
    assert body["source"] == "api"
    # The file changes (its webhook goes, another comes): the API's webhook is untouched.
    make_config([webhook("other", receiver.url + "/other")])
    await d.signal(signal.SIGHUP)
    line = await d.wait_line("reloaded")
    assert line["removed"] == ["file"]
    assert line["added"] == ["other"]
    await d.send(ev(1))
    (got,) = await receiver.wait_for(1, "/api")
    from hookd.signing import secret_key, verify

    h = got.headers
    key = secret_key(made["config"]["secret"][0])
    assert verify([key], h["webhook-id"], h["webhook-timestamp"], got.body, h["webhook-signature"])
    await receiver.wait_for(1, "/other")
    assert receiver.at("/file") == []
    # A file webhook taking the API webhook's id is refused; the running config stays.
    make_config([webhook("cust-1", receiver.url + "/clash")])
    await d.signal(signal.SIGHUP)
    failed = await d.wait_line("reload_failed")
    assert "cust-1" in failed["errors"][0]
    assert "API" in failed["errors"][0]
    await d.send(ev(2))
    await receiver.wait_for(2, "/api")
    await receiver.wait_for(2, "/other")
    assert receiver.at("/clash") == []


async def test_cli_webhooks_create_test_delete(
    make_config: MakeConfig, app_factory: AppFactory, receiver: Receiver, tmp_path: Path
) -> None:
    d = await app_factory(make_config())
    toml = tmp_path / "hook.toml"
    toml.write_text(
        f'id = "from-toml"\nurl = "{receiver.url}/t"\nsecret = "generate"\n'
        '[metadata]\ntenant = "acme"\n[[events]]\nid = "all"\non = "ticket.*"\n'
    )
    run = await hookd("webhooks", "create", str(toml), "--url", d.url)
    assert run.code == 0, run.err
    shown = json.loads(run.out)
    assert shown["id"] == "from-toml"
    assert shown["metadata"] == {"tenant": "acme"}
    assert shown["config"]["secret"][0].startswith("whsec_")
    js = tmp_path / "hook.json"
    js.write_text(json.dumps(api_hook(receiver.url + "/j", id="from-json")))
    run = await hookd("webhooks", "create", str(js), "--url", d.url)
    assert run.code == 0, run.err
    run = await hookd("webhooks", "create", str(js), "--url", d.url)
    assert run.code == 1
    assert "409 conflict" in run.err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"url": "ftp://x", "events": [{"id": "a", "on": "*"}]}))
    run = await hookd("webhooks", "create", str(bad), "--url", d.url)
    assert run.code == 1
    assert "422 invalid_webhook" in run.err
    assert "url:" in run.err
    run = await hookd("webhooks", "test", "from-toml", "--url", d.url)
    assert run.code == 0, run.err
    (got,) = await receiver.wait_for(1, "/t")
    assert got.json()["event"] == "hookd.ping"
    code, rec = await d.request("GET", f"/v1/deliveries/{run.out.strip()}")
    assert code == 200
    assert rec["webhook_id"] == "from-toml"
    run = await hookd("webhooks", "delete", "from-json", "--url", d.url)
    assert run.code == 0, run.err
    code, _ = await d.request("GET", "/v1/webhooks/from-json")
    assert code == 404
    run = await hookd("webhooks", "delete", "from-json", "--url", d.url)
    assert run.code == 1
    assert "404" in run.err


async def test_address_guard_refuses_literals_and_blocks_resolved_names(
    make_config: MakeConfig, app_factory: AppFactory, receiver: Receiver
) -> None:
    d = await app_factory(make_config(delivery={"allow_networks": []}))
    for url, network in (("http://127.0.0.1:9/x", "127.0.0.0/8"), ("http://[::ffff:10.1.2.3]/", "10.0.0.0/8"),
                         ("http://169.254.169.254/latest", "169.254.0.0/16")):  # fmt: skip
        code, body = await d.request("POST", "/v1/webhooks", json=api_hook(url))
        assert code == 422, url
        (detail,) = body["error"]["details"]
        assert detail["path"] == "url"
        assert network in detail["message"]
    # A name is checked on connect, against what it resolves to: localhost is loopback.
    code, body = await d.request("POST", "/v1/webhooks", json=api_hook(f"http://localhost:{receiver.port}/x"))
    assert code == 201, body
    await d.send(ev(1))
    (failed,) = await d.wait_deliveries("cust-1", 1, state="failed")
    assert failed["attempts"] == 1  # blocked is never retried
    assert failed["error"] == "blocked"
    assert receiver.requests == []


async def test_egress_keys_are_the_operators(make_config: MakeConfig, app_factory: AppFactory, tmp_path: Path) -> None:
    """tls paths and proxies name the daemon's files and routes: refused before any file is read."""
    d = await app_factory(make_config())
    doc = api_hook("http://example.test", tls={"ca_file": "/etc/shadow"}, proxy="http://10.0.0.1:3128")
    code, body = await d.request("POST", "/v1/webhooks", json=doc)
    assert code == 422
    assert {p["path"] for p in body["error"]["details"]} == {"tls", "proxy"}


async def test_only_manage_tokens_change_webhooks(
    make_config: MakeConfig, app_factory: AppFactory, receiver: Receiver
) -> None:
    """A product's ingest client cannot add a destination; a reader cannot change one."""
    tokens = [{"token": "ingest", "scopes": ["ingest"]}, {"token": "reader", "scopes": ["read"]}, "admin"]
    d = await app_factory(make_config(server={"tokens": tokens}))
    doc = api_hook(receiver.url)
    for token in ("ingest", "reader"):
        auth = {"Authorization": f"Bearer {token}"}
        code, body = await d.request("POST", "/v1/webhooks", json=doc, headers=auth)
        assert code == 403, token
        assert body["error"]["code"] == "forbidden"
    code, _ = await d.request("POST", "/v1/webhooks", json=doc, headers={"Authorization": "Bearer admin"})
    assert code == 201
    for method, path in (("PATCH", "/v1/webhooks/cust-1"), ("DELETE", "/v1/webhooks/cust-1"),
                         ("POST", "/v1/webhooks/cust-1/test")):  # fmt: skip
        code, _ = await d.request(method, path, json={}, headers={"Authorization": "Bearer reader"})
        assert code == 403, (method, path)
    code, body = await d.request("GET", "/v1/webhooks/cust-1", headers={"Authorization": "Bearer reader"})
    assert code == 200


CATALOGUE = [{"name": "ticket.created", "description": "A ticket was logged"}]


async def test_api_webhooks_follow_the_catalogue(
    make_config: MakeConfig, daemon_factory: DaemonFactory, receiver: Receiver
) -> None:
    config = make_config(event_types=CATALOGUE)
    d = await daemon_factory(config)
    code, body = await d.request("POST", "/v1/webhooks", json=api_hook(receiver.url, on="ticket.craeted"))
    assert code == 422
    (detail,) = body["error"]["details"]
    assert detail["path"] == "events[0].on"
    assert "did you mean 'ticket.created'" in detail["message"]
    code, _ = await d.request("POST", "/v1/webhooks", json=api_hook(receiver.url, on="ticket.*"))
    assert code == 201
    # A catalogue that no longer lists what the API webhook listens to is refused on reload.
    make_config(event_types=[{"name": "client.updated"}])
    await d.signal(signal.SIGHUP)
    failed = await d.wait_line("reload_failed")
    assert any("cust-1" in e and "events[0].on" in e for e in failed["errors"]), failed
    await d.send(ev(1))
    await receiver.wait_for(1)
