"""The ``hookd`` client verbs (send, deliveries, show, resend, secret) run as real
subprocesses, as an operator types them (SPEC §9), against an App serving in the test's
loop, or the real ``hookd run`` where what it prints is looked at."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook

from tests.support import (
    SECRET,
    AppFactory,
    DaemonFactory,
    MakeConfig,
    Receiver,
    free_port,
    hookd,
    status,
    webhook,
)


def ticket(eid: str, oid: int = 4242) -> dict[str, Any]:
    """A ``ticket.created`` event with id ``eid``."""
    return {"id": eid, "event": "ticket.created", "object": {"id": oid, "summary": "Printer on fire"}}


def table_rows(out: str) -> list[list[str]]:
    """The data rows of ``hookd deliveries`` (header dropped), split on whitespace."""
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines, out
    assert lines[0].split()[:3] == ["ID", "WEBHOOK", "STATE"], lines[0]
    return [line.split() for line in lines[1:]]


async def test_send_file(receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory, tmp_path: Path) -> None:
    """``hookd send FILE --url`` posts the file's events and prints the daemon's 202 answer."""
    d = await app_factory(make_config(webhooks=[webhook("a", receiver.url + "/a")]))
    events = tmp_path / "events.json"
    events.write_text(json.dumps(ticket("cli-file")))
    run = await hookd("send", str(events), "--url", d.url)
    assert run.code == 0, run.err
    assert json.loads(run.out) == {"accepted": 1, "duplicates": 0, "items": 1, "ids": ["cli-file"]}
    (got,) = await receiver.wait_for(1, "/a")
    assert got.json()["event_id"] == "cli-file"
    assert got.json()["object"] == {"id": 4242, "summary": "Printer on fire"}


async def test_send_stdin(receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory) -> None:
    """``hookd send - --url`` reads an array of events from stdin and prints their ids in order."""
    d = await app_factory(make_config(webhooks=[webhook("a", receiver.url + "/a")]))
    run = await hookd("send", "-", "--url", d.url, stdin=json.dumps([ticket("in-1", 1), ticket("in-2", 2)]).encode())
    assert run.code == 0, run.err
    assert json.loads(run.out) == {"accepted": 2, "duplicates": 0, "items": 2, "ids": ["in-1", "in-2"]}
    got = await receiver.wait_for(2, "/a")
    assert sorted(r.json()["event_id"] for r in got) == ["in-1", "in-2"]


async def test_send_invalid_events_exits_1_with_the_details(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """``hookd send`` of invalid events exits 1 and prints the status, error code and each detail on stderr."""
    d = await app_factory(make_config(webhooks=[webhook("a", receiver.url + "/a")]))
    run = await hookd("send", "-", "--url", d.url, stdin=b'{"event": "ticket.created", "objects": {}}')
    assert run.code == 1
    assert run.out == ""
    assert "422" in run.err
    assert "invalid_events" in run.err
    assert "objects" in run.err
    code, page = await d.request("GET", "/v1/webhooks/a/deliveries")
    assert code == 200
    assert page["deliveries"] == []
    assert receiver.requests == []


async def test_deliveries_table_filters_and_json(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """``hookd deliveries`` prints every webhook's deliveries as a table; ``--webhook`` and ``--state`` filter it and
    ``--json`` prints the raw list."""
    receiver.behave["/b"] = status(400)
    hooks = [webhook("a", receiver.url + "/a"), webhook("b", receiver.url + "/b")]
    d = await app_factory(make_config(webhooks=hooks))
    code, _ = await d.send([ticket("d-1", 1), ticket("d-2", 2)])
    assert code == 202
    a_ids = {x["id"] for x in await d.wait_deliveries("a", 2, state="succeeded")}
    b_ids = {x["id"] for x in await d.wait_deliveries("b", 2, state="failed")}

    run = await hookd("deliveries", "--url", d.url)
    assert run.code == 0, run.err
    rows = {r[0]: r for r in table_rows(run.out)}
    assert set(rows) == a_ids | b_ids
    for did in a_ids:
        assert rows[did][1:6] == ["a", "succeeded", "200", "1", "1"]
        assert rows[did][-1] == "ticket.created"
    for did in b_ids:
        assert rows[did][1:6] == ["b", "failed", "400", "1", "1"]

    run = await hookd("deliveries", "--url", d.url, "--webhook", "a", "--state", "succeeded")
    assert run.code == 0, run.err
    assert {r[0] for r in table_rows(run.out)} == a_ids
    run = await hookd("deliveries", "--url", d.url, "--webhook", "b", "--state", "succeeded")
    assert run.code == 0, run.err
    assert table_rows(run.out) == []

    run = await hookd("deliveries", "--url", d.url, "--json")
    assert run.code == 0, run.err
    listed = json.loads(run.out)
    assert {x["id"] for x in listed} == a_ids | b_ids
    outcomes = {(x["webhook_id"], x["state"], x["status_code"]) for x in listed}
    assert outcomes == {("a", "succeeded", 200), ("b", "failed", 400)}
    run = await hookd("deliveries", "--url", d.url, "--json", "--webhook", "b", "--state", "failed")
    assert {x["id"] for x in json.loads(run.out)} == b_ids


async def test_show_prints_the_whole_record(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """``hookd show ID --json`` prints the delivery's whole record as JSON, the same as the API's."""
    d = await app_factory(make_config(webhooks=[webhook("a", receiver.url + "/a")]))
    await d.send(ticket("show-1"))
    (entry,) = await d.wait_deliveries("a", 1, state="succeeded")
    run = await hookd("show", entry["id"], "--url", d.url, "--json")
    assert run.code == 0, run.err
    shown = json.loads(run.out)
    code, api = await d.request("GET", f"/v1/deliveries/{entry['id']}")
    assert code == 200
    assert shown == api
    assert shown["state"] == "succeeded"
    assert [a["status_code"] for a in shown["attempts"]] == [200]
    assert json.loads(shown["request"]["body"])["event_id"] == "show-1"


async def test_resend_prints_the_new_delivery_id(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """``hookd resend ID`` prints the new delivery's id, and the receiver gets the same body and webhook-id again."""
    d = await app_factory(make_config(webhooks=[webhook("a", receiver.url + "/a")]))
    await d.send(ticket("again"))
    (entry,) = await d.wait_deliveries("a", 1, state="succeeded")
    run = await hookd("resend", entry["id"], "--url", d.url)
    assert run.code == 0, run.err
    new_id = run.out.strip()
    assert run.out == new_id + "\n"
    assert new_id
    assert new_id != entry["id"]
    first, second = await receiver.wait_for(2, "/a")
    assert second.body == first.body
    ids = [{k.lower(): v for k, v in r.headers.items()}["webhook-id"] for r in (first, second)]
    assert ids[0] == ids[1]
    code, rec = await d.request("GET", f"/v1/deliveries/{new_id}")
    assert code == 200
    assert rec["resend_of"] == entry["id"]


async def test_secret_prints_a_standard_webhooks_secret() -> None:
    """``hookd secret`` prints a fresh whsec_ secret that a Standard Webhooks library signs and verifies with."""
    first, second = await hookd("secret"), await hookd("secret")
    assert first.code == 0, first.err
    assert second.code == 0, second.err
    secret = first.out.strip()
    assert first.out == secret + "\n"
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    assert second.out.strip() != secret
    wh = Webhook(secret)
    now = datetime.now(UTC)
    body = '{"event": "ticket.created"}'
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": wh.sign("msg_1", now, body),
    }
    assert wh.verify(body, headers) == {"event": "ticket.created"}


async def test_show_unknown_delivery_exits_1(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """``hookd show nope`` exits 1 with the daemon's 404 on stderr and prints nothing on stdout."""
    d = await app_factory(make_config(webhooks=[webhook("a", receiver.url + "/a")]))
    run = await hookd("show", "nope", "--url", d.url)
    assert run.code == 1
    assert run.out == ""
    assert "404" in run.err
    assert "nope" in run.err
    assert "Traceback" not in run.err


async def test_client_verbs_need_url_when_listen_uses_port_0(make_config: MakeConfig, receiver: Receiver) -> None:
    """With a config whose listen uses port 0, the client verbs exit 1 and say to give --url."""
    config = make_config(webhooks=[webhook("a", receiver.url + "/a")])
    for args in (("deliveries",), ("show", "dlv_x"), ("resend", "dlv_x")):
        run = await hookd(*args, "-c", str(config))
        assert run.code == 1, args
        assert "--url" in run.err
        assert "port 0" in run.err
        assert "Traceback" not in run.err
        assert run.out == ""


async def test_client_finds_daemon_from_config_listen_and_first_token(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory, tmp_path: Path
) -> None:
    """Without --url the verbs use the config's listen and first token (via -c or HOOKD_CONFIG); a wrong --token is
    refused."""
    config = make_config(
        webhooks=[webhook("a", receiver.url + "/a")],
        server={"listen": f"127.0.0.1:{free_port()}", "tokens": ["tok-first", "tok-second"]},
    )
    config.chmod(0o600)
    d = await app_factory(config)
    auth = {"Authorization": "Bearer tok-second"}
    events = tmp_path / "one.json"
    events.write_text(json.dumps(ticket("via-config")))
    run = await hookd("send", str(events), "-c", str(config))
    assert run.code == 0, run.err
    assert json.loads(run.out)["ids"] == ["via-config"]
    (entry,) = await d.wait_deliveries("a", 1, state="succeeded", headers=auth)

    run = await hookd("deliveries", "--json", env={"HOOKD_CONFIG": str(config)})
    assert run.code == 0, run.err
    assert [x["id"] for x in json.loads(run.out)] == [entry["id"]]
    run = await hookd("show", entry["id"], "-c", str(config), "--json")
    assert run.code == 0, run.err
    assert json.loads(run.out)["id"] == entry["id"]

    run = await hookd("deliveries", "-c", str(config), "--token", "wrong")
    assert run.code == 1
    assert "401" in run.err
    run = await hookd("deliveries", "--url", d.url)
    assert run.code == 1
    assert "401" in run.err
    run = await hookd("deliveries", "--url", d.url, env={"HOOKD_TOKEN": "tok-second"})
    assert run.code == 0, run.err
    assert [r[0] for r in table_rows(run.out)] == [entry["id"]]


async def test_unreachable_daemon_exits_1() -> None:
    """A client verb pointed at an address where nothing listens exits 1 saying it cannot reach hookd."""
    run = await hookd("deliveries", "--url", f"http://127.0.0.1:{free_port()}")
    assert run.code == 1
    assert "cannot reach" in run.err
    assert "Traceback" not in run.err


# -- client verbs read only [server]; secret headers; the shipped config --------------------


async def test_client_verbs_do_not_read_webhook_secrets(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory, tmp_path: Path
) -> None:
    """send, deliveries, show and resend work from a config whose webhook secrets this shell cannot read."""
    secret_file = tmp_path / "credentials" / "signing"
    secret_file.parent.mkdir()
    secret_file.write_text(SECRET + "\n")
    auth_file = tmp_path / "credentials" / "auth"
    auth_file.write_text("bearer-from-file\n")
    config = make_config(
        webhooks=[webhook("a", receiver.url + "/a", secret=f"file:{secret_file}",
                          auth={"type": "bearer", "token": f"file:{auth_file}"})],
        server={"listen": f"127.0.0.1:{free_port()}", "tokens": ["tok-first"]},
    )  # fmt: skip
    config.chmod(0o600)
    await app_factory(config)
    # As outside the service: the daemon has read its credentials, this shell cannot.
    secret_file.unlink()
    auth_file.unlink()
    run = await hookd("send", "-", "-c", str(config), stdin=json.dumps(ticket("no-secrets")).encode())
    assert run.code == 0, run.err
    run = await hookd("deliveries", "--json", "-c", str(config))
    assert run.code == 0, run.err
    (entry,) = json.loads(run.out)
    run = await hookd("show", entry["id"], "--json", "-c", str(config))
    assert run.code == 0, run.err
    assert json.loads(run.out)["id"] == entry["id"]
    run = await hookd("resend", entry["id"], "-c", str(config))
    assert run.code == 0, run.err
    await receiver.wait_for(2, "/a")


async def test_client_verbs_still_report_a_bad_server_table(tmp_path: Path) -> None:
    """A client verb with a config whose [server] is invalid exits 1 naming the key, and suggests --url."""
    config = tmp_path / "hookd.toml"
    config.write_text('[server]\nlisten = "nowhere"\n[[webhooks]]\nid = "a"\n')
    run = await hookd("deliveries", "-c", str(config))
    assert run.code == 1
    assert f"{config}: server.listen: " in run.err
    assert "--url" in run.err
    assert "webhooks" not in run.err
    assert "Traceback" not in run.err


async def test_secret_header_masked_in_log_and_config_but_sent(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """A header named in secret_headers reaches the receiver but is `***` in the delivery record and config view."""
    hook = webhook("a", receiver.url + "/a", headers={"X-Custom": "env:HOOKD_T_CUSTOM", "X-Plain": "visible"},
                   secret_headers=["x-custom"])  # fmt: skip
    d = await daemon_factory(make_config(webhooks=[hook]), env={"HOOKD_T_CUSTOM": "custom-secret-value"})
    await d.send(ticket("masked"))
    (got,) = await receiver.wait_for(1, "/a")
    assert got.headers["X-Custom"] == "custom-secret-value"
    assert got.headers["X-Plain"] == "visible"
    (entry,) = await d.wait_deliveries("a", 1, state="succeeded")
    run = await hookd("show", entry["id"], "--json", "--url", d.url)
    assert run.code == 0, run.err
    sent = json.loads(run.out)["request"]["headers"]
    assert sent["X-Custom"] == "***"
    assert sent["X-Plain"] == "visible"
    code, view = await d.request("GET", "/v1/webhooks/a")
    assert code == 200
    assert view["config"]["headers"]["X-Custom"] == "***"
    assert "custom-secret-value" not in run.out
    assert "custom-secret-value" not in json.dumps(view)
    assert not any("custom-secret-value" in line for line in d.raw)


def shipped_config(tmp_path: Path) -> Path:
    """etc/hookd.toml copied into ``tmp_path``, readable by all (as a checkout leaves it), on a free port."""
    text = (Path(__file__).resolve().parent.parent / "etc" / "hookd.toml").read_text()
    for old, new in (('listen = "127.0.0.1:8787"', 'listen = "127.0.0.1:0"'),
                     ('path = "../var/hookd.db"', f'path = "{tmp_path / "hookd.db"}"')):  # fmt: skip
        assert old in text
        text = text.replace(old, new)
    config = tmp_path / "hookd.toml"
    config.write_text(text)
    config.chmod(0o644)
    return config


async def test_shipped_config_runs_without_readable_secret_warning(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    """`hookd run -c etc/hookd.toml` as shipped starts without the config_readable_by_others warning."""
    d = await daemon_factory(shipped_config(tmp_path))
    assert await d.stop() == 0
    assert not any(line.get("event") == "config_readable_by_others" for line in d.lines), d.raw


def newest_ids(rows: list[dict[str, Any]], n: int) -> list[str]:
    """The ids of the ``n`` newest deliveries among ``rows``, by their store sequence number."""
    return [r["id"] for r in sorted(rows, key=lambda r: int(r["id"].split("_")[1]), reverse=True)[:n]]


async def test_deliveries_limit_is_the_newest_overall(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """``hookd deliveries --limit N`` prints the N newest deliveries of all webhooks together, newest first, in the
    table and in ``--json``; a limit above the API's page size pages through; a limit below 1 is refused."""
    hooks = [webhook(w, receiver.url + "/" + w) for w in ("a", "b", "c")]
    d = await app_factory(make_config(webhooks=hooks))
    for n in (1, 2):  # one request each: the three deliveries of a request share created_at
        assert (await d.send(ticket(f"lim-{n}", n)))[0] == 202
        for w in ("a", "b", "c"):
            await d.wait_deliveries(w, n, state="succeeded")
    rows = [r for w in ("a", "b", "c") for r in await d.wait_deliveries(w, 2)]

    for n in (1, 2, 4):
        run = await hookd("deliveries", "--url", d.url, "--limit", str(n))
        assert run.code == 0, run.err
        assert [r[0] for r in table_rows(run.out)] == newest_ids(rows, n)
        run = await hookd("deliveries", "--url", d.url, "--limit", str(n), "--json")
        assert run.code == 0, run.err
        assert [x["id"] for x in json.loads(run.out)] == newest_ids(rows, n)
    run = await hookd("deliveries", "--url", d.url, "--limit", "1000", "--json")
    assert run.code == 0, run.err
    assert [x["id"] for x in json.loads(run.out)] == newest_ids(rows, 6)
    run = await hookd("deliveries", "--url", d.url, "--limit", "0")
    assert run.code == 2
    assert "--limit" in run.err


async def test_show_prints_bodies_as_pretty_json_or_text(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """``hookd show ID`` prints the request and response bodies as indented JSON when they parse, else as text with
    control characters escaped; ``--json`` prints the API's record unchanged."""
    receiver.behave["/text"] = status(400, b"plain words\r\n\x1b[31mnot red")
    hooks = [webhook("a", receiver.url + "/a"), webhook("text", receiver.url + "/text")]
    d = await app_factory(make_config(webhooks=hooks))
    await d.send(ticket("pretty-1"))
    (ok,) = await d.wait_deliveries("a", 1, state="succeeded")
    (bad,) = await d.wait_deliveries("text", 1, state="failed")
    (sent,) = receiver.at("/a")

    run = await hookd("show", ok["id"], "--url", d.url)
    assert run.code == 0, run.err
    assert json.dumps(sent.json(), indent=2, ensure_ascii=False) in run.out
    assert '{\n  "ok": true\n}' in run.out
    assert ok["id"] in run.out
    assert "succeeded" in run.out
    assert "\\n" not in run.out

    run = await hookd("show", bad["id"], "--url", d.url)
    assert run.code == 0, run.err
    assert "\nplain words\n\\x1b[31mnot red\n" in run.out
    assert "\x1b" not in run.out
    assert "failed" in run.out

    run = await hookd("show", ok["id"], "--url", d.url, "--json")
    assert run.code == 0, run.err
    code, api = await d.request("GET", f"/v1/deliveries/{ok['id']}")
    assert code == 200
    assert json.loads(run.out) == api


async def test_invalid_event_details_are_printed_readably(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """The details of a 422 are printed one per line as ``[index] path: message``, not as Python dicts."""
    d = await app_factory(make_config(webhooks=[webhook("a", receiver.url + "/a")]))
    body = json.dumps([ticket("fine"), {"event": "ticket.created", "objects": {}}, "nope"]).encode()
    run = await hookd("send", "-", "--url", d.url, stdin=body)
    assert run.code == 1
    lines = [line.strip() for line in run.err.splitlines()]
    assert "[1] objects: unknown key" in lines
    assert "[1] object: required" in lines
    assert "[2] expected an object, got string" in lines
    assert "{" not in run.err


async def test_every_verb_and_option_has_help() -> None:
    """``hookd VERB --help`` prints a description of the verb for every verb, and every option has a help text."""
    from hookd.cli import parser

    top = parser()
    (verbs,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(verbs.choices) >= {
        "run",
        "check",
        "send",
        "deliveries",
        "show",
        "resend",
        "receive",
        "secret",
        "webhooks",
    }
    # Verbs with verbs of their own (hookd webhooks create) are checked the same way.
    todo: list[tuple[tuple[str, ...], argparse.ArgumentParser]] = [((n,), s) for n, s in verbs.choices.items()]
    while todo:
        names, sub = todo.pop()
        assert sub.description, names
        for action in sub._actions:
            assert action.help, (names, action.dest)
            if isinstance(action, argparse._SubParsersAction):
                assert all(a.help for a in action._choices_actions), names
                todo += [((*names, n), s) for n, s in action.choices.items()]
        run = await hookd(*names, "--help")
        assert run.code == 0, run.err
        assert " ".join(sub.description.split()) in " ".join(run.out.split()), names
    assert all(a.help for a in verbs._choices_actions)


IMPORTS = """
import sys
from hookd.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"aiohttp", "uvloop"})
print("heavy:" + ",".join(heavy), file=sys.stderr)
sys.exit(code)
"""


async def test_version_secret_and_check_do_not_import_aiohttp(make_config: MakeConfig) -> None:
    """``hookd --version``, ``hookd secret`` and ``hookd check`` run without importing aiohttp or uvloop."""
    config = make_config(webhooks=[webhook("a", "https://example.com/hook")])
    for args in (["--version"], ["secret"], ["check", "-c", str(config)]):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", IMPORTS, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
        assert proc.returncode == 0, (args, err.decode())
        assert out
        assert err.decode().splitlines()[-1] == "heavy:", (args, err.decode())
