"""Token scopes (SPEC §11): the config's two token forms, the scope each route needs, 401
against 403 through a live App, GET /v1/token, ``hookd check``'s summary and the client
verbs with a table token."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from hookd.auth import Access, access, token_scopes
from hookd.cli import main as hookd_main
from hookd.config import Config, ConfigError, Token
from tests.support import HOOKD, AppFactory, MakeConfig, Receiver, ev, free_port, webhook

ALL = ["ingest", "read", "manage"]


def write(tmp_path: Path, tokens: list[Any]) -> Path:
    """A config file with these server.tokens and one webhook."""
    path = tmp_path / "hookd.toml"
    data = {
        "server": {"tokens": tokens},
        "storage": {"path": str(tmp_path / "hookd.db")},
        "webhooks": [{"id": "a", "url": "https://example.com/a", "events": [{"id": "t", "on": "*"}]}],
    }
    path.write_text(tomli_w.dumps(data))
    return path


def problems(tmp_path: Path, tokens: list[Any]) -> list[str]:
    """The config errors of a file with these tokens, without the file's name."""
    with pytest.raises(ConfigError) as info:
        Config.load(write(tmp_path, tokens))
    return info.value.problems


# -- the config ------------------------------------------------------------------------------


def test_plain_and_table_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain string has every scope; a table has its own, and its token may be an env: reference."""
    monkeypatch.setenv("HOOKD_INGEST_TOKEN", "from-env")
    cfg = Config.load(
        write(tmp_path, ["plain", {"token": "env:HOOKD_INGEST_TOKEN", "scopes": ["ingest"]},
                         {"token": "rm", "scopes": ["read", "manage", "read"]}])
    )  # fmt: skip
    got = [(t.token.get_secret_value(), t.scopes) for t in cfg.server.tokens]
    assert got == [("plain", ("ingest", "read", "manage")), ("from-env", ("ingest",)), ("rm", ("read", "manage"))]
    assert "from-env" not in repr(cfg.server)


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        ([{"token": "t", "scopes": ["ingest", "admin"]}], "server.tokens[0].scopes[1]: should be 'ingest', 'read' or"),
        ([{"token": "t", "scopes": []}], "server.tokens[0].scopes: needs at least one scope of ingest, read, manage"),
        ([{"scopes": ["read"]}], "server.tokens[0].token: required key is missing"),
        ([{"token": "t"}], "server.tokens[0].scopes: required key is missing"),
        ([{"token": "t", "scope": ["read"]}], "server.tokens[0].scope: unknown key `scope`; did you mean `scopes`?"),
        ([{"token": "", "scopes": ["read"]}], "server.tokens[0].token: "),
        (["same", {"token": "same", "scopes": ["read"]}], "server.tokens: entry [1] repeats the token of entry [0]"),
    ],
    ids=["unknown-scope", "empty-scopes", "no-token", "no-scopes", "typo", "empty-token", "duplicate"],
)
def test_token_config_errors(tmp_path: Path, tokens: list[Any], expected: str) -> None:
    """Unknown scope names, an empty scopes list, a token given twice and malformed tables are config errors."""
    found = problems(tmp_path, tokens)
    assert any(p.startswith(expected) for p in found), found
    assert not any("same" in p.split(":", 1)[1] for p in found)  # the token itself is never shown


def test_duplicate_tokens_through_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two entries whose references resolve to one token are the same token given twice."""
    monkeypatch.setenv("HOOKD_TOKEN_A", "one-token")
    (tmp_path / "tok").write_text("one-token\n")
    assert problems(tmp_path, ["env:HOOKD_TOKEN_A", {"token": "file:tok", "scopes": ["read"]}]) == [
        "server.tokens: entry [1] repeats the token of entry [0]; give each token once, with all its scopes"
    ]


def test_check_prints_scopes_never_tokens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``hookd check`` lists each token's scopes, and none of the tokens."""
    path = write(tmp_path, ["tok-everything", {"token": "tok-ingest", "scopes": ["ingest"]}])
    assert hookd_main(["check", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "  tokens      2\n" in out
    assert "    tokens[0]  ingest, read, manage (every scope)\n" in out
    assert "    tokens[1]  ingest\n" in out
    assert "tok-" not in out


def test_check_defers_an_unreadable_table_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A table's token that is a reference this shell cannot read is a warning naming its key, as a string's is."""
    path = write(tmp_path, ["env:HOOKD_NOT_SET_A", {"token": "env:HOOKD_NOT_SET_B", "scopes": ["ingest"]}])
    assert hookd_main(["check", "-c", str(path)]) == 0
    err = capsys.readouterr().err
    assert "warning: server.tokens[0]: environment variable HOOKD_NOT_SET_A is not set here" in err
    assert "warning: server.tokens[1].token: environment variable HOOKD_NOT_SET_B is not set here" in err


# -- the rule, on its own --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "route", "need"),
    [
        ("POST", "/v1/events", "ingest"),
        ("GET", "/v1/webhooks", "read"),
        ("HEAD", "/v1/webhooks/{id}", "read"),
        ("GET", "/v1/webhooks/{id}/deliveries", "read"),
        ("GET", "/v1/deliveries/{id}", "read"),
        ("GET", "/v1/event-types", "read"),
        ("GET", "/v1/events", "read"),  # no such route (405), but not an ingest
        ("POST", "/v1/deliveries/{id}/resend", "manage"),
        ("POST", "/v1/webhooks/{id}/enable", "manage"),
        # Routes to come fall under the rule as they are.
        ("POST", "/v1/webhooks", "manage"),
        ("PUT", "/v1/webhooks/{id}", "manage"),
        ("PATCH", "/v1/webhooks/{id}", "manage"),
        ("DELETE", "/v1/webhooks/{id}", "manage"),
        ("POST", "/v1/webhooks/{id}/test", "manage"),
        ("POST", "/v1/webhooks/{id}/recover", "manage"),
        ("POST", "/v1/webhooks/{id}/batches/flush", "manage"),
        ("GET", "/v1/webhooks/{id}/batches", "read"),
        ("GET", "/v1/token", "token"),
        ("GET", "/v1/openapi.json", "open"),
        ("GET", "/healthz", "open"),
        ("GET", "/metrics", "open"),
        ("GET", "/ui/", "open"),
        ("GET", "/v1", "open"),
    ],
)
def test_access_rule(method: str, route: str, need: Access) -> None:
    """POST /v1/events needs ingest, other GETs under /v1/ read, every other /v1 call manage."""
    assert access(method, route) == need


def test_token_scopes_compares_every_token() -> None:
    """The bearer token's scopes, or None for a wrong, missing or non-bearer credential."""
    tokens = [Token(token="a-tok", scopes=("ingest",)), Token(token="b-tok", scopes=("read", "manage"))]  # type: ignore[arg-type]
    assert token_scopes("Bearer b-tok", tokens) == ("read", "manage")
    assert token_scopes("bearer  a-tok ", tokens) == ("ingest",)
    assert token_scopes("Bearer c-tok", tokens) is None
    assert token_scopes("Basic a-tok", tokens) is None
    assert token_scopes(None, tokens) is None
    assert token_scopes("Bearer a-tok b-tok", tokens) is None


# -- through a live App ----------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


async def test_each_scope_against_each_kind_of_route(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """An ingest-only token cannot read, change a webhook or resend; read-only cannot enable or ingest;
    manage-only cannot ingest or read; a wrong or missing token is 401, a missing scope 403 naming it."""
    tokens = [
        {"token": "ing", "scopes": ["ingest"]},
        {"token": "rd", "scopes": ["read"]},
        {"token": "mg", "scopes": ["manage"]},
        "all",
    ]
    d = await app_factory(make_config([webhook("a", receiver.url + "/a")], server={"tokens": tokens}))
    code, body = await d.send(ev(1), headers=bearer("ing"))
    assert code == 202, body
    [dl] = await d.wait_deliveries("a", 1, state="succeeded", headers=bearer("all"))
    resend = f"/v1/deliveries/{dl['id']}/resend"
    webhook_doc = {"id": "new", "url": receiver.url + "/new", "events": [{"id": "t", "on": "*"}]}

    async def refused(token: str, method: str, path: str, scope: str, **kw: Any) -> None:
        code, body = await d.request(method, path, headers=bearer(token), **kw)
        assert code == 403, (token, method, path, body)
        assert body["error"]["code"] == "forbidden"
        assert repr(scope) in body["error"]["message"]

    for path in ("/v1/webhooks", "/v1/webhooks/a", "/v1/webhooks/a/deliveries", f"/v1/deliveries/{dl['id']}",
                 "/v1/event-types"):  # fmt: skip
        await refused("ing", "GET", path, "read")
        await refused("mg", "GET", path, "read")
        assert (await d.request("GET", path, headers=bearer("rd")))[0] == 200, path
    await refused("ing", "POST", "/v1/webhooks", "manage", json=webhook_doc)
    await refused("ing", "POST", resend, "manage")
    await refused("ing", "POST", "/v1/webhooks/a/enable", "manage")
    await refused("rd", "POST", "/v1/webhooks/a/enable", "manage")
    await refused("rd", "POST", resend, "manage")
    await refused("rd", "POST", "/v1/events", "ingest", json=ev(2))
    await refused("mg", "POST", "/v1/events", "ingest", json=ev(3))
    assert (await d.request("GET", "/v1/webhooks/a/deliveries", headers=bearer("all")))[1]["deliveries"] == [dl]

    code, body = await d.request("POST", resend, headers=bearer("mg"))
    assert code == 202, body
    code, body = await d.request("POST", "/v1/webhooks/a/enable", headers=bearer("mg"))
    assert code == 200, body
    for headers in ({}, bearer("wrong"), {"Authorization": "Basic all"}):
        code, body = await d.request("POST", resend, headers=headers)
        assert code == 401, headers
        assert body["error"]["code"] == "unauthorized"
    for token, scopes in (("ing", ["ingest"]), ("rd", ["read"]), ("mg", ["manage"]), ("all", ALL)):
        assert await d.request("GET", "/v1/token", headers=bearer(token)) == (200, {"scopes": scopes})
    assert (await d.request("GET", "/v1/token"))[0] == 401
    assert (await d.request("GET", "/healthz"))[0] == 200
    assert (await d.request("GET", "/v1/openapi.json"))[0] == 200


async def test_without_tokens_every_call_has_every_scope(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """With no tokens (loopback only) GET /v1/token answers every scope and no call is refused."""
    d = await app_factory(make_config([webhook("a", receiver.url + "/a")]))
    assert await d.request("GET", "/v1/token") == (200, {"scopes": ALL})
    assert (await d.send(ev(1)))[0] == 202
    [dl] = await d.wait_deliveries("a", 1, state="succeeded")
    assert (await d.request("POST", f"/v1/deliveries/{dl['id']}/resend"))[0] == 202


async def test_client_verbs_use_a_table_tokens_token(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory, tmp_path: Path
) -> None:
    """The client verbs take the first token's string from a table entry, and a call beyond its scopes
    exits 1 with the 403."""
    config = make_config(
        [webhook("a", receiver.url + "/a")],
        server={"listen": f"127.0.0.1:{free_port()}",
                "tokens": [{"token": "cli-tok", "scopes": ["ingest", "read"]}, "admin-tok"]},
    )  # fmt: skip
    config.chmod(0o600)
    await app_factory(config)
    events = tmp_path / "one.json"
    events.write_text(json.dumps(ev(7)))
    code, out, err = await run_hookd("send", str(events), "-c", str(config))
    assert code == 0, err
    assert json.loads(out)["ids"] == ["e7"]
    await receiver.wait_for(1, "/a")
    code, out, err = await run_hookd("deliveries", "--json", "-c", str(config))
    assert code == 0, err
    [dl] = json.loads(out)
    code, out, err = await run_hookd("resend", dl["id"], "-c", str(config))
    assert code == 1
    assert "403 forbidden" in err
    assert "'manage'" in err


async def run_hookd(*args: str) -> tuple[int, str, str]:
    """``hookd ARGS`` as a subprocess, without HOOKD_TOKEN or HOOKD_CONFIG from the outside."""
    env = {k: v for k, v in os.environ.items() if k not in ("HOOKD_CONFIG", "HOOKD_TOKEN")}
    proc = await asyncio.create_subprocess_exec(
        HOOKD, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
