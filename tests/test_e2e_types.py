"""End to end: the pre-configured types (SPEC §12) as Slack, Teams and Discord receive them,
from an App serving in the test's loop to real local receivers; their config errors as
`hookd check`, start-up and reload report them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from standardwebhooks.webhooks import Webhook

from hookd.config import ConfigError
from hookd.config import Webhook as ConfigWebhook
from hookd.models import Occurrence
from hookd.payloads import body_builder
from hookd.redact import redact_url
from tests.support import SECRET, AppFactory, MakeConfig, Receiver, status, webhook

HOOKD = str(Path(sys.executable).with_name("hookd"))
# Literal braces, a single-select, a missing value, values that need escaping in Slack,
# and the template's own Slack markup (a link), which is never escaped.
TEMPLATE = "{{{event}}} <https://desk.example.com/t/{object_id}|#{object_id}> is {object.status}: {object.summary} [{object.missing}] for {linked.client.name}"  # noqa: E501
CARD = "application/vnd.microsoft.card.adaptive"


def types_config(make_config: MakeConfig, receiver: Receiver, **extra: Any) -> Path:
    """Three webhooks, one of each pre-configured type, all with TEMPLATE, plus one on the default template."""
    return make_config(
        [
            webhook("slack", receiver.url + "/slack", on="ticket.*", type="slack", template=TEMPLATE, **extra),
            webhook("teams", receiver.url + "/teams", on="ticket.*", type="teams", template=TEMPLATE),
            webhook("discord", receiver.url + "/discord", on="ticket.*", type="discord", template=TEMPLATE),
            webhook("plain", receiver.url + "/plain", on="ticket.*", type="slack"),
        ]
    )


def ticket(n: int, summary: str, client: str = "Acme") -> dict[str, Any]:
    """A status change with a single-select status and a linked client."""
    return {
        "id": f"t{n}",
        "event": "ticket.status_changed",
        "object": {"id": 4240 + n, "summary": summary, "status": {"id": 9, "display": "Closed"}},
        "linked": {"client": {"id": 1, "name": client}},
    }


def teams(text: str) -> dict[str, Any]:
    """The Teams Workflows body of ``text``."""
    card = {"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": text, "wrap": True}]}
    return {"type": "message", "attachments": [{"contentType": CARD, "content": card}]}


async def test_each_type_sends_its_services_exact_body(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Slack, Teams and Discord each get their own body with the template rendered: selects by display, missing
    as nothing, doubled braces literal, Slack's characters escaped in values only, Discord cut at 2,000."""
    d = await app_factory(types_config(make_config, receiver))
    code, _ = await d.send([ticket(1, "Printer <on> fire & smoke", client="Acme <Ltd>"), ticket(2, "é" * 3000)])
    assert code == 202
    await receiver.wait_for(8)

    first = "{ticket.status_changed} <https://desk.example.com/t/4241|#4241> is Closed: "
    long = "{ticket.status_changed} <https://desk.example.com/t/4242|#4242> is Closed: " + "é" * 3000 + " [] for Acme"
    slack = [r.json() for r in receiver.at("/slack")]
    assert slack == [
        {"text": first + "Printer &lt;on&gt; fire &amp; smoke [] for Acme &lt;Ltd&gt;"},
        {"text": long},
    ]
    raw_text = first + "Printer <on> fire & smoke [] for Acme <Ltd>"
    assert [r.json() for r in receiver.at("/teams")] == [teams(raw_text), teams(long)]
    discord = [r.json() for r in receiver.at("/discord")]
    assert discord[0] == {"content": raw_text, "allowed_mentions": {"parse": []}}
    assert discord[1] == {"content": long[:1999] + "…", "allowed_mentions": {"parse": []}}
    assert len(discord[1]["content"]) == 2000
    plain = [r.json() for r in receiver.at("/plain")]
    assert plain[0] == {"text": "ticket.status_changed: Printer &lt;on&gt; fire &amp; smoke (4241)"}  # the default

    for r in receiver.requests:
        assert r.method == "POST"
        assert r.headers["Content-Type"] == "application/json"
        assert r.headers["webhook-id"].startswith("msg_")

    # The delivery record names the type and shows the message as sent.
    *_, oldest = await d.wait_deliveries("discord", 2, state="succeeded")  # newest first
    code, record = await d.request("GET", f"/v1/deliveries/{oldest['id']}")
    assert code == 200
    assert (record["webhook_type"], record["text"]) == ("discord", raw_text)
    code, state = await d.request("GET", "/v1/webhooks/slack")
    assert (state["type"], state["config"]["type"], state["config"]["template"]) == ("slack", "slack", TEMPLATE)


async def test_a_standard_delivery_has_no_message(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A standard webhook's delivery record says so, with no message text."""
    d = await app_factory(make_config([webhook("std", receiver.url + "/std")]))
    await d.send(ticket(1, "x"))
    [dlv] = await d.wait_deliveries("std", 1, state="succeeded")
    code, record = await d.request("GET", f"/v1/deliveries/{dlv['id']}")
    assert (code, record["webhook_type"], record["text"]) == (200, "standard", None)


async def test_types_are_signed_and_carry_auth_and_headers(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A pre-configured type keeps secret, auth and headers: the signature verifies over the exact body sent."""
    config = make_config(
        [
            webhook("slack", receiver.url + "/slack", type="slack", secret=SECRET, headers={"X-Team": "ops"},
                    auth={"type": "bearer", "token": "tok3n"}, template="{object.summary}"),
        ]
    )  # fmt: skip
    d = await app_factory(config)
    await d.send(ticket(1, "Signed & sealed"))
    [got] = await receiver.wait_for(1, "/slack")
    assert Webhook(SECRET).verify(got.body, got.headers) == {"text": "Signed &amp; sealed"}
    assert got.headers["Authorization"] == "Bearer tok3n"
    assert got.headers["X-Team"] == "ops"


async def test_a_reload_compiles_the_new_template_and_refuses_a_bad_one(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory, tmp_path: Path
) -> None:
    """SIGHUP's reload puts a new template in force; one with unbalanced braces is refused, naming the webhook,
    and the running one stays."""
    path = make_config([webhook("chat", receiver.url + "/chat", type="teams", template="one: {object.summary}")])
    d = await app_factory(path)
    assert d.app is not None
    await d.send(ticket(1, "a"))
    await receiver.wait_for(1)

    path.write_text(path.read_text().replace("one: {object.summary}", "two: {object.summary}"))
    assert await d.app.reload()
    await d.send(ticket(2, "b"))
    await receiver.wait_for(2)

    path.write_text(path.read_text().replace("two: {object.summary}", "three: {object.summary"))
    assert not await d.app.reload()
    line = await d.wait_line("reload_failed")
    assert any("webhooks[0].template: webhook 'chat': template: unbalanced '{'" in e for e in line["errors"]), line
    await d.send(ticket(3, "c"))
    await receiver.wait_for(3)
    texts = [r.json()["attachments"][0]["content"]["body"][0]["text"] for r in receiver.requests]
    assert texts == ["one: a", "two: b", "two: c"]


async def test_start_up_refuses_a_type_config_error(make_config: MakeConfig, app_factory: AppFactory) -> None:
    """An App does not start on a file with a pre-configured type's error; the error names key and webhook."""
    path = make_config([webhook("chat", "https://hooks.example.com/x", type="discord", batching="any_event")])
    with pytest.raises(ConfigError) as info:
        await app_factory(path)
    assert "webhooks[0].batching: webhook 'chat': type 'discord' sends one message per event" in str(info.value)


def test_check_reports_type_errors_and_accepts_valid_types(tmp_path: Path) -> None:
    """`hookd check` exits 1 on each type error with its own line, and 0 on valid webhooks of every type."""
    hooks = [
        {"id": "s", "url": "https://hooks.slack.com/services/x", "type": "slack", "template": "{object.summary}}",
         "events": [{"id": "t", "on": "ticket.*"}]},
        {"id": "m", "url": "https://example.webhook.office.com/x", "type": "teams", "payload": "custom",
         "fields": [{"key": "k", "source": "object.id"}], "events": [{"id": "t", "on": "hookd.*"}]},
    ]  # fmt: skip
    bad = tmp_path / "bad.toml"
    bad.write_text(tomli_w.dumps({"server": {"listen": "127.0.0.1:0"}, "webhooks": hooks}))
    out = subprocess.run([HOOKD, "check", "-c", str(bad)], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 1, out
    lines = out.stderr.splitlines()
    why = "unbalanced '}' at character 17 (write '}}' for a literal brace)"
    assert f"{bad}: webhooks[0].template: webhook 's': template: {why}" in lines, lines
    assert any(line.startswith(f"{bad}: webhooks[1].payload: webhook 'm': type 'teams'") for line in lines), lines
    assert any(line.startswith(f"{bad}: webhooks[1].fields: webhook 'm': type 'teams'") for line in lines), lines

    hooks[0]["template"] = "{{literal}} {object.summary}"
    del hooks[1]["payload"], hooks[1]["fields"]
    hooks.append({"id": "d", "url": "https://discord.com/api/webhooks/1/x", "type": "discord", "method": "POST",
                  "payload": "object", "secret": SECRET,
                  "events": [{"id": "t", "on": "hookd.delivery.failed"}]})  # fmt: skip
    good = tmp_path / "good.toml"
    good.write_text(tomli_w.dumps({"server": {"listen": "127.0.0.1:0"}, "webhooks": hooks}))
    out = subprocess.run([HOOKD, "check", "-c", str(good)], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out
    # The column that shows a standard webhook's batching shows a pre-configured one's type.
    for wid, kind in (("s", "slack"), ("m", "teams"), ("d", "discord")):
        assert re.search(rf"^    {wid} +enabled +{kind} +https://", out.stdout, re.MULTILINE), out.stdout


async def test_a_type_change_leaves_the_page_no_wrong_message(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """After a webhook changes type, its older deliveries show no message rather than a misread one."""
    path = make_config([webhook("chat", receiver.url + "/chat", type="slack")])
    d = await app_factory(path)
    assert d.app is not None
    await d.send(ticket(1, "before"))
    [old] = await d.wait_deliveries("chat", 1, state="succeeded")
    path.write_text(path.read_text().replace('type = "slack"', 'type = "discord"'))
    assert await d.app.reload()
    code, record = await d.request("GET", f"/v1/deliveries/{old['id']}")
    assert (code, record["webhook_type"], record["text"]) == (200, "discord", None)
    await d.send(ticket(2, "after"))
    await receiver.wait_for(2)
    assert receiver.requests[1].json()["content"] == "ticket.status_changed: after (4242)"


def test_token_in_path_is_masked() -> None:
    """For Slack and Discord the URL's last path segment is the credential: shown as ***, the rest kept."""
    assert redact_url("https://hooks.slack.com/services/T01/B02/s3cr3t", token_in_path=True) == (
        "https://hooks.slack.com/services/T01/B02/***"
    )
    assert redact_url("https://discord.com/api/webhooks/123/t0k3n/?wait=true", token_in_path=True) == (
        "https://discord.com/api/webhooks/123/***?wait=true"
    )
    assert redact_url("https://example.com/", token_in_path=True) == "https://example.com/"
    assert redact_url("https://u:p@example.com/a/b") == "https://example.com/a/b"


async def test_slack_and_discord_urls_never_show_their_token(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """The token ending a Slack or Discord URL shows nowhere: API views, the delivery log, operator events, logs."""
    receiver.behave["/services/T01/B02/s3cr3t"] = status(404, b"no_service")
    config = make_config(
        [
            webhook("slack", receiver.url + "/services/T01/B02/s3cr3t", on="ticket.*", type="slack"),
            webhook("ops", receiver.url + "/ops", on="hookd.delivery.failed"),
        ]
    )
    d = await app_factory(config)
    await d.send(ticket(1, "x"))
    [op] = await receiver.wait_for(1, "/ops")
    shown = receiver.url + "/services/T01/B02/***"
    assert op.json()["object"]["url"] == shown
    [failed] = await d.wait_deliveries("slack", 1, state="failed")
    _, record = await d.request("GET", f"/v1/deliveries/{failed['id']}")
    _, one = await d.request("GET", "/v1/webhooks/slack")
    _, every = await d.request("GET", "/v1/webhooks")
    assert record["request"]["url"] == one["url"] == one["config"]["url"] == every["webhooks"][0]["url"] == shown
    await d.wait_deliveries("ops", 1, state="succeeded")
    assert "s3cr3t" not in " ".join(d.raw)


def test_the_readmes_slack_example_sends_the_body_it_shows() -> None:
    """The README's Slack webhook example loads, and renders the very body the README quotes for it."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme[readme.index('[[webhooks]]\nid = "desk-chat"') :]
    block = block[: block.index("```")]
    config = tomllib.loads(block)["webhooks"][0]
    body = body_builder(ConfigWebhook.model_validate(config)).body(
        Occurrence("e1", "ticket.status_changed", "2026-11-29T07:00:00.000Z",
                   {"id": 4242, "summary": "Printer <on> fire & smoke", "status": {"id": 9, "display": "Closed"}},
                   None, {"client": {"id": 1, "name": "Acme"}}, False),
        "i", "closed",
    )  # fmt: skip
    quoted = re.search(r"the body is\n`(\{\"text\".*?\})`", readme)
    assert quoted is not None
    assert json.loads(body) == json.loads(quoted.group(1))
