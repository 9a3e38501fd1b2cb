"""The configuration file (SPEC §2): loading, every documented error, secrets, paths, `hookd check`."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from hookd.config import Config, ConfigError, reload_config

HOOKD = str(Path(sys.executable).with_name("hookd"))
REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "etc" / "hookd.toml"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def base() -> dict[str, Any]:
    """A small valid config."""
    return {
        "server": {"listen": "127.0.0.1:0"},
        "webhooks": [
            {"id": "first", "url": "https://hooks.example.com/a", "events": [{"id": "t", "on": "ticket.*"}]},
        ],
    }


def write(folder: Path, data: dict[str, Any] | str | bytes, name: str = "hookd.toml") -> Path:
    """Write a config file (a dict as TOML, or raw text/bytes) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(data, dict):
        path.write_text(tomli_w.dumps(data), encoding="utf-8")
    elif isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def problems(path: Path) -> list[str]:
    """The lines of the ConfigError that loading ``path`` raises; each must start with the file."""
    with pytest.raises(ConfigError) as info:
        Config.load(path)
    err = info.value
    lines = str(err).splitlines()
    assert lines
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    assert err.path == path
    return [line.removeprefix(f"{path}: ") for line in lines]


def with_webhook(**settings: Any) -> dict[str, Any]:
    """The base config with its webhook changed (``None`` removes a key)."""
    data = base()
    w = data["webhooks"][0]
    for key, value in settings.items():
        if value is None:
            w.pop(key, None)
        else:
            w[key] = value
    return data


def two_webhooks(**second: Any) -> dict[str, Any]:
    """The base config plus a second webhook with ``second`` settings."""
    data = base()
    w = {"id": "second", "url": "https://hooks.example.com/b", "events": [{"id": "t", "on": "*"}]}
    w.update(second)
    data["webhooks"].append(w)
    return data


def cond(**c: Any) -> list[dict[str, Any]]:
    """A trigger list with one condition."""
    return [{"id": "t", "on": "*", "conditions": [c]}]


# (case id, config, key path the line starts with, what the message must say)
ERROR_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown-top-key", {**base(), "servr": {"listen": "x"}}, "servr", "unknown key"),
    ("unknown-server-key", {**base(), "server": {"listen": "127.0.0.1:0", "token": ["x"]}}, "server.token",
     "unknown key"),
    ("unknown-webhook-key", with_webhook(urll="https://x"), "webhooks[0].urll", "unknown key"),
    ("unknown-trigger-key", with_webhook(events=[{"id": "t", "on": "*", "onn": "x"}]), "webhooks[0].events[0].onn",
     "unknown key"),
    ("unknown-condition-key", with_webhook(events=cond(field="object.a", op="eq", value=1, valeu=2)),
     "webhooks[0].events[0].conditions[0].valeu", "unknown key"),
    ("unknown-auth-key", with_webhook(auth={"type": "bearer", "token": "t", "extra": 1}), "webhooks[0].auth.extra",
     "unknown key"),
    ("batching-get", with_webhook(batching="same_event", method="GET"), "webhooks[0]", "method = 'POST'"),
    ("batching-linked", with_webhook(batching="any_event", payload="object_with_linked"), "webhooks[0]",
     "other than 'object_with_linked'"),
    ("fields-without-custom", with_webhook(fields=[{"key": "s", "source": "object.status"}]), "webhooks[0]",
     "fields are only allowed with payload = 'custom'"),
    ("custom-without-fields", with_webhook(payload="custom"), "webhooks[0]", "needs at least one fields entry"),
    ("field-key-envelope", with_webhook(payload="custom", fields=[{"key": "event_id", "source": "object.id"}]),
     "webhooks[0]", "'event_id' collides with an envelope key"),
    ("no-events-key", with_webhook(events=None), "webhooks[0].events", "required"),
    ("empty-events", with_webhook(events=[]), "webhooks[0].events", "at least one trigger"),
    ("url-credentials-and-auth", with_webhook(url="http://u:p@127.0.0.1/x", auth={"type": "bearer", "token": "t"}),
     "webhooks[0]", "carries credentials and auth sets Authorization"),
    ("duplicate-trigger-ids", with_webhook(events=[{"id": "t", "on": "a"}, {"id": "t", "on": "b"}]), "webhooks[0]",
     "duplicate event ids ['t']"),
    ("ftp-url", with_webhook(url="ftp://files.example.com/x"), "webhooks[0].url", "is not an http(s) URL"),
    ("no-scheme-url", with_webhook(url="hooks.example.com/x"), "webhooks[0].url", "is not an http(s) URL"),
    ("tokens-off-loopback", {**base(), "server": {"listen": "0.0.0.0:8787"}}, "server",
     "tokens is empty but listen '0.0.0.0:8787' is not a loopback address"),
    ("bad-regex", with_webhook(events=cond(field="object.a", op="matches", value="(unclosed")),
     "webhooks[0].events[0].conditions[0]", "invalid regular expression"),
    ("in-not-list", with_webhook(events=cond(field="object.a", op="in", value="P1")),
     "webhooks[0].events[0].conditions[0]", "op 'in' needs a list value"),
    ("not-in-not-list", with_webhook(events=cond(field="object.a", op="not_in", value=3)),
     "webhooks[0].events[0].conditions[0]", "op 'not_in' needs a list value"),
    ("bad-secret", with_webhook(secret="not-a-secret!"), "webhooks[0].secret", "secret must be 'whsec_'"),
    ("short-secret", with_webhook(secret="whsec_AAAA"), "webhooks[0].secret", "too short"),
    ("bad-pattern-second-webhook", two_webhooks(events=[{"id": "t", "on": "Ticket.Created"}]),
     "webhooks[1].events[0].on", "is not an event type or pattern"),
    ("bad-webhook-id", with_webhook(id="Bad Id"), "webhooks[0].id", "must match"),
    ("webhook-id-newline", with_webhook(id="ok\n"), "webhooks[0].id", "must match"),
    ("pattern-newline", with_webhook(events=[{"id": "t", "on": "ticket.*\n"}]), "webhooks[0].events[0].on",
     "is not an event type or pattern"),
    ("bad-op", with_webhook(events=cond(field="object.a", op="equals", value=1)),
     "webhooks[0].events[0].conditions[0].op", "should be 'eq', 'ne'"),
    ("bad-field-root", with_webhook(events=cond(field="objekt.a", op="eq", value=1)),
     "webhooks[0].events[0].conditions[0].field", "should match"),
    ("bad-method", with_webhook(method="DELETE"), "webhooks[0].method", "should be 'POST', 'GET', 'PUT' or 'PATCH'"),
    ("bad-listen", {**base(), "server": {"listen": "localhost"}}, "server.listen", "is not host:port"),
    ("client-timeout-zero", {**base(), "server": {"listen": "127.0.0.1:0", "client_timeout_seconds": 0}},
     "server.client_timeout_seconds", "greater than 0"),
    # Pre-configured types and operator events (SPEC §12).
    ("bad-type", with_webhook(type="email"), "webhooks[0].type", "should be 'standard', 'slack', 'teams' or 'discord'"),
    ("slack-payload", with_webhook(type="slack", payload="event_only"), "webhooks[0].payload",
     "webhook 'first': type 'slack' sends its own body, shaped by template; payload does not apply"),
    ("teams-fields", with_webhook(type="teams", fields=[{"key": "s", "source": "object.status"}]),
     "webhooks[0].fields", "type 'teams' sends its own body, shaped by template; fields does not apply"),
    ("discord-key-fields", with_webhook(type="discord", key_fields=["id"]), "webhooks[0].key_fields",
     "type 'discord' sends its own body, shaped by template; key_fields does not apply"),
    ("slack-method", with_webhook(type="slack", method="PUT"), "webhooks[0].method", "type 'slack' always POSTs"),
    ("teams-batching", with_webhook(type="teams", batching="same_event"), "webhooks[0].batching",
     "type 'teams' sends one message per event"),
    ("template-open-brace", with_webhook(type="slack", template="{object.summary"), "webhooks[0].template",
     "webhook 'first': template: unbalanced '{' at character 1"),
    ("template-close-brace", with_webhook(type="teams", template="done } {event}"), "webhooks[0].template",
     "webhook 'first': template: unbalanced '}' at character 6"),
    ("template-unknown-placeholder", with_webhook(type="discord", template="{objekt.summary}"),
     "webhooks[0].template", "webhook 'first': template: unknown placeholder {objekt.summary}"),
    ("template-empty-placeholder", with_webhook(type="slack", template="x {} y"), "webhooks[0].template",
     "template: empty placeholder"),
    ("template-on-standard", with_webhook(template="{event}"), "webhooks[0].template",
     "webhook 'first': template is only for type 'slack', 'teams' or 'discord'"),
    ("operator-event-typo", with_webhook(events=[{"id": "t", "on": "hookd.delivery.fail"}]),
     "webhooks[0].events[0].on", "'hookd.delivery.fail' matches none of hookd's operator events"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "key", "says"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_error_names_file_key_and_problem(tmp_path: Path, data: dict[str, Any], key: str, says: str) -> None:
    """Each documented mistake is reported with the file, the key path and what is wrong."""
    lines = problems(write(tmp_path, data))
    hits = [line for line in lines if line.startswith(f"{key}: ") and says in line]
    assert hits, lines


def test_each_error_has_its_own_message(tmp_path: Path) -> None:
    """No two documented mistakes produce the same message."""
    seen: dict[str, str] = {}
    for case, data, key, says in ERROR_CASES:
        lines = problems(write(tmp_path / case, data))
        (line,) = [line for line in lines if line.startswith(f"{key}: ") and says in line]
        assert line not in seen, (case, seen.get(line))
        seen[line] = case


@pytest.mark.parametrize(
    "events",
    [
        [{"id": "t", "on": "Bad"}],
        [{"id": "t", "on": "*", "onn": "x"}],
        [{"id": "t", "on": "*", "conditions": [{"field": "object.a", "op": "in", "value": "x"}]}],
        [{"id": "ok", "on": "*"}, {"id": "t", "on": "*", "match": "most"}],
    ],
    ids=["bad-pattern", "unknown-key", "bad-condition", "second-trigger"],
)
def test_bad_trigger_reported_once(tmp_path: Path, events: list[dict[str, Any]]) -> None:
    """A mistake inside a trigger gives one line for it, not also a false "events is empty" line."""
    lines = problems(write(tmp_path, with_webhook(events=events)))
    assert len(lines) == 1, lines
    assert lines[0].startswith("webhooks[0].events["), lines


def test_duplicate_webhook_ids_name_key_path(tmp_path: Path) -> None:
    """Duplicate webhook ids are an error whose line names the `webhooks` key path and the id."""
    data = two_webhooks()
    data["webhooks"][1]["id"] = "first"
    lines = problems(write(tmp_path, data))
    assert len(lines) == 1, lines
    assert "duplicate webhook id" in lines[0]
    assert "first" in lines[0]
    assert re.match(r"^webhooks(\[\d+\](\.id)?)?: ", lines[0]), lines


def test_every_problem_reported(tmp_path: Path) -> None:
    """Independent mistakes in different places are all reported at once."""
    data = two_webhooks(url="ftp://x.example.com/")
    data["webhooks"][0]["events"][0]["on"] = "Bad"
    data["storage"] = {"durability": "sometimes"}
    lines = problems(write(tmp_path, data))
    keys = {line.split(": ", 1)[0] for line in lines}
    assert keys >= {"storage.durability", "webhooks[0].events[0].on", "webhooks[1].url"}, lines


@pytest.mark.parametrize("listen", ["127.0.0.1:8787", "127.1.2.3:0", "[::1]:8787", "localhost:8787"])
def test_loopback_without_tokens_allowed(tmp_path: Path, listen: str) -> None:
    """Empty tokens are fine on a loopback listen address."""
    cfg = Config.load(write(tmp_path, {**base(), "server": {"listen": listen}}))
    assert cfg.server.listen == listen
    assert cfg.server.tokens == ()


def test_tokens_allow_public_listen(tmp_path: Path) -> None:
    """A non-loopback listen is accepted once tokens are set."""
    cfg = Config.load(write(tmp_path, {**base(), "server": {"listen": "0.0.0.0:8787", "tokens": ["t0k"]}}))
    assert [t.token.get_secret_value() for t in cfg.server.tokens] == ["t0k"]
    assert cfg.server.host == "0.0.0.0"
    assert cfg.server.port == 8787


# -- the shipped file, and valid files ------------------------------------------------------


def test_shipped_config_loads() -> None:
    """etc/hookd.toml as shipped is valid and says what its comments say."""
    cfg = Config.load(SHIPPED)
    assert cfg.server.listen == "127.0.0.1:8787"
    assert cfg.storage.path.resolve() == (REPO / "var" / "hookd.db").resolve()
    assert cfg.storage.path.is_absolute()
    assert cfg.delivery.retry_schedule == (5, 30, 120, 600, 1800, 7200, 18000, 36000)
    (w,) = cfg.webhooks
    assert w.id == "example"
    assert w.url == "http://127.0.0.1:8788/hook"
    assert w.secret == ()  # shipped without a secret, so readable by others without a warning
    assert w.headers == {"X-Source": "hookd"}
    assert [t.on for t in w.events] == ["ticket.*"]


def test_shipped_config_signs_with_the_readme_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Uncommenting the shipped `secret` line signs with $HOOKD_EXAMPLE_SECRET, as the README's walk-through says."""
    text = SHIPPED.read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("# secret = "))
    monkeypatch.setenv("HOOKD_EXAMPLE_SECRET", SECRET)
    cfg = Config.load(write(tmp_path, text.replace(line, line.removeprefix("# "))))
    assert [s.get_secret_value() for s in cfg.webhooks[0].secret] == [SECRET]


def test_shipped_config_slack_alerts_example(tmp_path: Path) -> None:
    """The failures-to-Slack example, uncommented, is a Slack webhook on hookd.* in three lines plus a trigger."""
    text = SHIPPED.read_text()
    example = text[text.index('# [[webhooks]]\n# id = "alerts"') :]
    lines = [ln.removeprefix("# ").removeprefix("#") for ln in example.splitlines()]
    assert len([ln for ln in lines[1:] if "=" in ln and not ln.startswith(" ")]) == 3
    cfg = Config.load(write(tmp_path, text.replace(example, "\n".join(lines))))
    alerts = cfg.webhook("alerts")
    assert alerts is not None
    assert (alerts.type, alerts.template, [t.on for t in alerts.events]) == ("slack", None, ["hookd.*"])


def test_valid_full_config(tmp_path: Path) -> None:
    """Every documented key is accepted and read back."""
    data = base()
    data["storage"] = {"path": "/abs/hookd.db", "durability": "machine", "retention_days": 7}
    data["delivery"] = {"retry_on": "any_failure", "retry_schedule": [], "jitter": 0}
    data["webhooks"][0].update(
        name="SD", method="POST", enabled=False, auth={"type": "basic", "username": "u", "password": "p"},
        headers={"X-A": "1"}, secret=[SECRET], lightweight_logs=True, payload="custom", key_fields=["id"],
        batching="same_event_type", batch_wait_seconds=86400, max_items_per_batch=10000, coalesce=True,
        per_webhook_concurrency=2, ordered=True, auto_disable_after=5,
        fields=[{"key": "status", "source": "object.status", "send_id": True}],
        events=[{"id": "closed", "on": "ticket.status_changed", "match": "any", "conditions": [
            {"field": "object.status", "op": "eq", "value": "Closed"},
            {"field": "object.priority", "op": "in", "value": ["P1", "P2"]},
            {"field": "object.x", "op": "exists"},
        ]}],
    )  # fmt: skip
    cfg = Config.load(write(tmp_path, data))
    w = cfg.webhooks[0]
    assert (w.enabled, w.batching, w.ordered, w.auto_disable_after) == (False, "same_event_type", True, 5)
    assert w.coalesce is True
    assert w.auth.type == "basic"
    assert w.events[0].match == "any"
    assert [c.op for c in w.events[0].conditions] == ["eq", "in", "exists"]
    assert w.fields[0].send_id is True
    assert cfg.delivery.retry_schedule == ()
    assert cfg.storage.path == Path("/abs/hookd.db")


def test_fractional_durations(tmp_path: Path) -> None:
    """Every duration may be fractional."""
    data = base()
    data["server"]["shutdown_grace_seconds"] = 0.5
    data["server"]["client_timeout_seconds"] = 0.25
    data["delivery"] = {"retry_schedule": [0.2, 0.5], "timeout_seconds": 0.75, "connect_timeout_seconds": 0.25}
    data["batching"] = {"spool_after_seconds": 0.5, "spool_poll_seconds": 0.05}
    data["webhooks"][0].update(batching="any_event", batch_wait_seconds=0.3)
    cfg = Config.load(write(tmp_path, data))
    assert cfg.delivery.retry_schedule == (0.2, 0.5)
    assert cfg.delivery.timeout_seconds == 0.75
    assert cfg.delivery.connect_timeout_seconds == 0.25
    assert cfg.batching.spool_after_seconds == 0.5
    assert cfg.batching.spool_poll_seconds == 0.05
    assert cfg.server.shutdown_grace_seconds == 0.5
    assert cfg.server.client_timeout_seconds == 0.25
    assert cfg.webhooks[0].batch_wait_seconds == 0.3


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"batch_wait_seconds": 0}, "webhooks[0].batch_wait_seconds"),
        ({"batch_wait_seconds": 86401}, "webhooks[0].batch_wait_seconds"),
        ({"max_items_per_batch": 0}, "webhooks[0].max_items_per_batch"),
        ({"max_items_per_batch": 10001}, "webhooks[0].max_items_per_batch"),
    ],
)
def test_batch_limits(tmp_path: Path, settings: dict[str, Any], key: str) -> None:
    """batch_wait_seconds is > 0 … 86400 and max_items_per_batch 1 … 10000."""
    (line,) = problems(write(tmp_path, with_webhook(**settings)))
    assert line.startswith(f"{key}: ")


def test_coalesce_needs_batching(tmp_path: Path) -> None:
    """coalesce = true on a per_occurrence webhook is refused with its own message; the default is off."""
    (line,) = problems(write(tmp_path, with_webhook(coalesce=True)))
    assert "coalesce = true needs batching other than 'per_occurrence'" in line
    assert Config.load(write(tmp_path, with_webhook())).webhooks[0].coalesce is False


def test_negative_retry_delay_refused(tmp_path: Path) -> None:
    """A negative retry delay is refused at its index."""
    data = base()
    data["delivery"] = {"retry_schedule": [1, -2]}
    (line,) = problems(write(tmp_path, data))
    assert line.startswith("delivery.retry_schedule[1]: ")


# -- secrets --------------------------------------------------------------------------------


def test_env_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`env:NAME` values are read from the environment: tokens, auth credentials and secrets."""
    monkeypatch.setenv("HOOKD_T_TOKEN", "tok-from-env")
    monkeypatch.setenv("HOOKD_T_PW", "pw-from-env")
    monkeypatch.setenv("HOOKD_T_SECRET", SECRET)
    data = with_webhook(
        auth={"type": "basic", "username": "svc", "password": "env:HOOKD_T_PW"}, secret="env:HOOKD_T_SECRET"
    )
    data["server"]["tokens"] = ["env:HOOKD_T_TOKEN", "inline"]
    cfg = Config.load(write(tmp_path, data))
    assert [t.token.get_secret_value() for t in cfg.server.tokens] == ["tok-from-env", "inline"]
    w = cfg.webhooks[0]
    assert w.auth.password.get_secret_value() == "pw-from-env"  # type: ignore[union-attr]
    assert [s.get_secret_value() for s in w.secret] == [SECRET]


def test_file_references_relative_to_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`file:PATH` reads the file relative to the config's folder, trailing newline stripped."""
    folder = tmp_path / "conf"
    (folder / "secrets").mkdir(parents=True)
    (folder / "secrets" / "token").write_text("tok-from-file\n")
    (folder / "secrets" / "signing").write_text(SECRET + "\n")
    absolute = tmp_path / "elsewhere" / "key"
    absolute.parent.mkdir()
    absolute.write_text("abs-key\r\n")
    data = with_webhook(
        auth={"type": "header", "name": "X-Api-Key", "value": f"file:{absolute}"}, secret=["file:secrets/signing"]
    )
    data["server"]["tokens"] = ["file:secrets/token"]
    path = write(folder, data)
    other = tmp_path / "cwd"
    other.mkdir()
    monkeypatch.chdir(other)
    cfg = Config.load(path)
    assert [t.token.get_secret_value() for t in cfg.server.tokens] == ["tok-from-file"]
    assert cfg.webhooks[0].auth.value.get_secret_value() == "abs-key"  # type: ignore[union-attr]
    assert [s.get_secret_value() for s in cfg.webhooks[0].secret] == [SECRET]


def test_missing_env_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing environment variable is a config error naming the key and the variable."""
    monkeypatch.delenv("HOOKD_T_ABSENT", raising=False)
    data = with_webhook(auth={"type": "bearer", "token": "env:HOOKD_T_ABSENT"})
    (line,) = problems(write(tmp_path, data))
    assert line.startswith("webhooks[0].auth.token: ")
    assert "HOOKD_T_ABSENT" in line
    assert "not set" in line


def test_missing_secret_file(tmp_path: Path) -> None:
    """A missing secret file is a config error naming the key and the resolved path."""
    data = with_webhook(secret="file:nope/secret")
    path = write(tmp_path / "conf", data)
    (line,) = problems(path)
    assert line.startswith("webhooks[0].secret: ")
    assert str(tmp_path / "conf" / "nope" / "secret") in line


def test_env_secret_still_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A signing secret read from the environment must still be a valid whsec_ secret."""
    monkeypatch.setenv("HOOKD_T_BAD", "plain")
    (line,) = problems(write(tmp_path, with_webhook(secret="env:HOOKD_T_BAD")))
    assert line.startswith("webhooks[0].secret: ")
    assert "whsec_" in line


def test_secrets_never_print(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials do not appear in the config's repr."""
    monkeypatch.setenv("HOOKD_T_PW", "pw-hidden-value")
    data = with_webhook(auth={"type": "basic", "username": "u", "password": "env:HOOKD_T_PW"}, secret=SECRET)
    data["server"]["tokens"] = ["tok-hidden-value"]
    text = repr(Config.load(write(tmp_path, data)))
    assert "pw-hidden-value" not in text
    assert "tok-hidden-value" not in text
    assert SECRET not in text


# -- paths ----------------------------------------------------------------------------------


def test_relative_storage_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative storage path resolves against the config file's folder, not the working directory."""
    monkeypatch.chdir(tmp_path)
    data = base()
    data["storage"] = {"path": "var/state.db"}
    cfg = Config.load(write(tmp_path / "conf", data))
    assert cfg.storage.path == (tmp_path / "conf" / "var" / "state.db").resolve()


def test_relative_storage_path_from_relative_config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a config by a relative path still anchors its storage at the config's folder."""
    data = base()
    data["storage"] = {"path": "state.db"}
    write(tmp_path / "conf", data)
    monkeypatch.chdir(tmp_path)
    cfg = Config.load(Path("conf/hookd.toml"))
    assert cfg.storage.path == (tmp_path / "conf" / "state.db").resolve()


def test_default_storage_path_relative_to_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a [storage] table the default var/hookd.db also resolves against the config's folder."""
    monkeypatch.chdir(tmp_path)
    cfg = Config.load(write(tmp_path / "conf", base()))
    assert cfg.storage.path == (tmp_path / "conf" / "var" / "hookd.db").resolve()


def test_absolute_storage_path_kept(tmp_path: Path) -> None:
    """An absolute storage path is used as written."""
    data = base()
    data["storage"] = {"path": str(tmp_path / "x" / "h.db")}
    assert Config.load(write(tmp_path / "conf", data)).storage.path == tmp_path / "x" / "h.db"


# -- unreadable files -----------------------------------------------------------------------


def test_invalid_toml(tmp_path: Path) -> None:
    """A file that is not TOML is reported as such, with the file."""
    (line,) = problems(write(tmp_path, '[server\nlisten = "x"\n'))
    assert line.startswith("invalid TOML")


def test_not_utf8(tmp_path: Path) -> None:
    """A file that is not UTF-8 is reported as such, with the file."""
    (line,) = problems(write(tmp_path, b'[server]\nlisten = "\xff\xfe"\n'))
    assert line.startswith("not UTF-8")


def test_missing_file(tmp_path: Path) -> None:
    """A config file that does not exist is a ConfigError naming it."""
    lines = problems(tmp_path / "absent.toml")
    assert lines[0].startswith("cannot read")


# -- hookd check ----------------------------------------------------------------------------


def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    """`hookd check -c path`."""
    return subprocess.run([HOOKD, "check", "-c", str(path)], capture_output=True, text=True, timeout=60, check=False)


def test_check_valid(tmp_path: Path) -> None:
    """`hookd check` on a valid file prints a summary and exits 0."""
    data = two_webhooks(url="https://user:pw@hooks.example.com:8443/b", enabled=False, batching="any_event")
    data["storage"] = {"path": "state/check.db", "durability": "machine"}
    path = write(tmp_path, data)
    done = run_check(path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert f"{path}: OK" in done.stdout
    assert "127.0.0.1:0" in done.stdout
    assert str(tmp_path / "state" / "check.db") in done.stdout
    assert "machine" in done.stdout
    assert "first" in done.stdout
    assert "second" in done.stdout
    assert "https://hooks.example.com/a" in done.stdout
    assert "https://hooks.example.com:8443/b" in done.stdout
    assert "user:pw" not in done.stdout
    assert "disabled" in done.stdout
    assert "ticket.*" in done.stdout


def test_check_shipped() -> None:
    """`hookd check` accepts the shipped etc/hookd.toml."""
    done = run_check(SHIPPED)
    assert done.returncode == 0, done.stderr
    assert "example" in done.stdout


def test_check_invalid(tmp_path: Path) -> None:
    """`hookd check` on a bad file prints every problem with file and key path on stderr and exits 1."""
    data = two_webhooks(url="ftp://x.example.com/")
    data["webhooks"][0]["events"][0]["on"] = "Bad"
    path = write(tmp_path, data)
    done = run_check(path)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    assert any(line.startswith(f"{path}: webhooks[0].events[0].on: ") for line in lines), lines
    assert any(line.startswith(f"{path}: webhooks[1].url: ") for line in lines), lines


def test_check_unreadable(tmp_path: Path) -> None:
    """`hookd check` on invalid TOML exits 1 naming the file."""
    path = write(tmp_path, "nonsense = = 1")
    done = run_check(path)
    assert done.returncode == 1
    assert str(path) in done.stderr
    assert "invalid TOML" in done.stderr


# -- strict types, plain messages, suggestions ------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "key", "says"),
    [
        ({"enabled": "yes"}, "webhooks[0].enabled", "should be true or false"),
        ({"enabled": 1}, "webhooks[0].enabled", "should be true or false"),
        ({"max_items_per_batch": "100"}, "webhooks[0].max_items_per_batch", "should be a whole number"),
        ({"max_items_per_batch": 1.5}, "webhooks[0].max_items_per_batch", "should be a whole number"),
        ({"batch_wait_seconds": "30"}, "webhooks[0].batch_wait_seconds", "should be a number"),
        ({"batch_wait_seconds": True}, "webhooks[0].batch_wait_seconds", "should be a number"),
        ({"name": 5}, "webhooks[0].name", "should be a string"),
        ({"key_fields": "id"}, "webhooks[0].key_fields", "should be an array"),
        ({"secret": 7}, "webhooks[0].secret", "should be an array"),
        ({"headers": ["X-A"]}, "webhooks[0].headers", "should be a table"),
        ({"auth": "none"}, "webhooks[0].auth", "should be a table"),
        ({"auth": {"type": "magic"}}, "webhooks[0].auth.type", "should be one of 'none', 'basic', 'bearer', 'header'"),
        ({"auth": {"token": "t"}}, "webhooks[0].auth.type", "is missing"),
        ({"events": {"id": "t", "on": "*"}}, "webhooks[0].events", "should be an array"),
        ({"method": "DELETE"}, "webhooks[0].method", "should be 'POST', 'GET', 'PUT' or 'PATCH'"),
        ({"url": None}, "webhooks[0].url", "is missing"),
    ],
)
def test_types_are_strict_and_errors_plain(tmp_path: Path, settings: dict[str, Any], key: str, says: str) -> None:
    """A value of the wrong TOML type is refused, not coerced, with a message in plain words."""
    lines = problems(write(tmp_path, with_webhook(**settings)))
    assert any(line.startswith(f"{key}: ") and says in line for line in lines), lines


def test_error_messages_do_not_leak_pydantic_wording(tmp_path: Path) -> None:
    """No documented mistake or type error shows pydantic's wording (Input should…, class names, dictionary)."""
    cases = [c[1] for c in ERROR_CASES]
    cases += [with_webhook(enabled="yes"), with_webhook(key_fields="id"), with_webhook(auth="bearer"),
              {**base(), "server": "127.0.0.1:0"}, {**base(), "webhooks": {"id": "x"}}]  # fmt: skip
    for i, data in enumerate(cases):
        for line in problems(write(tmp_path / str(i), data)):
            for leak in ("Input should", "dictionary", "tuple", "Config", "Field required", "Value error"):
                assert leak not in line, line


def test_integers_stay_valid_where_numbers_are_wanted(tmp_path: Path) -> None:
    """TOML integers are accepted for fractional settings, and arrays for lists."""
    data = base()
    data["server"]["shutdown_grace_seconds"] = 3
    data["delivery"] = {"timeout_seconds": 15, "jitter": 0, "retry_schedule": [1, 2.5]}
    data["storage"] = {"retention_days": 7}
    cfg = Config.load(write(tmp_path, data))
    assert cfg.delivery.timeout_seconds == 15
    assert cfg.delivery.retry_schedule == (1, 2.5)
    assert cfg.server.shutdown_grace_seconds == 3
    assert cfg.storage.retention_days == 7


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (with_webhook(batch_wait_second=5),
         "webhooks[0].batch_wait_second: unknown key `batch_wait_second`; did you mean `batch_wait_seconds`?"),
        ({**base(), "servr": {}}, "servr: unknown key `servr`; did you mean `server`?"),
        ({**base(), "server": {"listen": "127.0.0.1:0", "token": ["x"]}},
         "server.token: unknown key `token`; did you mean `tokens`?"),
        (with_webhook(auth={"type": "bearer", "tokn": "t"}),
         "webhooks[0].auth.tokn: unknown key `tokn`; did you mean `token`?"),
        (with_webhook(events=[{"id": "t", "on": "*", "conditions": [{"field": "event", "op": "exists", "vale": 1}]}]),
         "webhooks[0].events[0].conditions[0].vale: unknown key `vale`; did you mean `value`?"),
        (with_webhook(zzzz=1), "webhooks[0].zzzz: unknown key `zzzz`"),
    ],
    ids=["webhook", "top", "server", "auth", "condition", "no-match"],
)  # fmt: skip
def test_unknown_key_suggests_the_closest(tmp_path: Path, data: dict[str, Any], line: str) -> None:
    """An unknown key is named, with the closest valid key at that place suggested when one is close."""
    assert line in problems(write(tmp_path, data))


@pytest.mark.parametrize(
    "url",
    ["ftp://u:pw-hidden@files.example.com/x", "http://u:pw-hidden@host.example.com:99999/x",
     "u:pw-hidden@host.example.com/x", "https://u:pw-hidden@/x"],
)  # fmt: skip
def test_url_errors_do_not_echo_passwords(tmp_path: Path, url: str) -> None:
    """A refused URL is echoed in the error without its password."""
    lines = problems(write(tmp_path, with_webhook(url=url)))
    assert any(line.startswith("webhooks[0].url: ") for line in lines), lines
    assert not any("pw-hidden" in line for line in lines), lines


def test_url_error_keeps_the_rest_of_the_url(tmp_path: Path) -> None:
    """The redacted URL in an error still shows scheme, host and path, so the operator can find it."""
    (line,) = problems(write(tmp_path, with_webhook(url="ftp://u:pw@files.example.com/x")))
    assert line == "webhooks[0].url: 'ftp://files.example.com/x' is not an http(s) URL"


# -- secret_headers -------------------------------------------------------------------------


def test_secret_headers_resolve_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Values of headers named in secret_headers may be env:/file: references; other headers stay literal."""
    monkeypatch.setenv("HOOKD_T_HDR", "hdr-from-env")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "hdr").write_text("hdr-from-file\n")
    data = with_webhook(
        headers={"X-Custom": "env:HOOKD_T_HDR", "X-Other": "file:hdr", "X-Plain": "env:HOOKD_T_HDR"},
        secret_headers=["x-custom", "X-Other"],
    )
    cfg = Config.load(write(tmp_path / "conf", data))
    w = cfg.webhooks[0]
    assert w.headers == {"X-Custom": "hdr-from-env", "X-Other": "hdr-from-file", "X-Plain": "env:HOOKD_T_HDR"}
    assert w.secret_headers == ("x-custom", "X-Other")
    assert "hdr-from-env" not in repr(cfg)
    assert "hdr-from-file" not in repr(cfg)


def test_secret_header_must_be_in_headers(tmp_path: Path) -> None:
    """A name in secret_headers that is not among the webhook's headers is an error naming it."""
    (line,) = problems(write(tmp_path, with_webhook(headers={"X-A": "1"}, secret_headers=["X-B"])))
    assert line.startswith("webhooks[0]")
    assert "'X-B'" in line
    assert "secret_headers" in line


def test_secret_header_reference_must_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A marked header's env: reference that is not set is a config error naming the header."""
    monkeypatch.delenv("HOOKD_T_ABSENT", raising=False)
    data = with_webhook(headers={"X-Custom": "env:HOOKD_T_ABSENT"}, secret_headers=["X-Custom"])
    (line,) = problems(write(tmp_path, data))
    assert line.startswith("webhooks[0].headers")
    assert "HOOKD_T_ABSENT" in line


# -- hookd check: references it cannot read --------------------------------------------------


def test_check_warns_about_unreadable_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`hookd check` reports file:/env: references it cannot read as warnings saying when they are read, and exits 0."""
    monkeypatch.delenv("HOOKD_T_ABSENT", raising=False)
    data = with_webhook(
        secret=["file:/run/credentials/hookd.service/signing"],
        auth={"type": "bearer", "token": "env:HOOKD_T_ABSENT"},
        headers={"X-Custom": "file:/run/credentials/hookd.service/custom"},
        secret_headers=["X-Custom"],
    )
    data["server"]["tokens"] = ["file:/run/credentials/hookd.service/token"]
    path = write(tmp_path, data)
    done = run_check(path)
    assert done.returncode == 0, done.stderr
    assert f"{path}: OK" in done.stdout
    lines = done.stderr.splitlines()
    assert f"{path}: warning: webhooks[0].secret[0]: file /run/credentials/hookd.service/signing cannot be read " \
           "here; it will be read when the daemon starts" in lines  # fmt: skip
    assert f"{path}: warning: server.tokens[0]: file /run/credentials/hookd.service/token cannot be read here; " \
           "it will be read when the daemon starts" in lines  # fmt: skip
    assert f"{path}: warning: webhooks[0].auth.token: environment variable HOOKD_T_ABSENT is not set here; it will " \
           "be read when the daemon starts" in lines  # fmt: skip
    assert any(line.startswith(f"{path}: warning: webhooks[0].headers.X-Custom: file ") for line in lines), lines
    assert len(lines) == 4, lines


def test_check_strict_makes_unreadable_references_errors(tmp_path: Path) -> None:
    """`hookd check --strict` treats a reference it cannot read as an error and exits 1."""
    path = write(tmp_path, with_webhook(secret="file:/run/credentials/hookd.service/signing"))
    done = subprocess.run([HOOKD, "check", "--strict", "-c", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1, done.stdout
    assert done.stdout == ""
    assert f"{path}: webhooks[0].secret[0]: file /run/credentials/hookd.service/signing cannot be read here" \
        in done.stderr  # fmt: skip
    assert "warning" not in done.stderr


def test_check_still_validates_readable_references(tmp_path: Path) -> None:
    """A reference `hookd check` can read is validated as usual: a bad signing secret in the file is an error."""
    (tmp_path / "bad").write_text("not-a-secret\n")
    path = write(tmp_path, with_webhook(secret="file:bad"))
    done = run_check(path)
    assert done.returncode == 1
    assert "secret must be 'whsec_'" in done.stderr


def test_run_still_fails_on_an_unreadable_secret(tmp_path: Path) -> None:
    """`hookd run` refuses a config whose secret file cannot be read, naming the key."""
    data = with_webhook(secret="file:/run/credentials/hookd.service/signing")
    data["storage"] = {"path": str(tmp_path / "h.db")}
    path = write(tmp_path, data)
    done = subprocess.run([HOOKD, "run", "-c", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "config_invalid" in done.stdout
    assert "cannot read secret file" in done.stdout
    assert "webhooks[0].secret" in done.stdout


# -- reload ---------------------------------------------------------------------------------


async def test_reload_cannot_switch_auth_off_on_a_public_listen(
    receiver: Any, make_config: Any, daemon_factory: Any
) -> None:
    """A SIGHUP that empties tokens while the public listen stays in force (it needs a restart) is refused."""
    hooks = [{"id": "a", "url": receiver.url + "/a", "events": [{"id": "t", "on": "*"}]}]
    config = make_config(hooks, server={"listen": "0.0.0.0:0", "tokens": ["tok-public"]})
    config.chmod(0o600)
    d = await daemon_factory(config)
    make_config(hooks, server={"listen": "127.0.0.1:0", "tokens": []})
    await d.signal(signal.SIGHUP)
    failed = await d.wait_line("reload_failed")
    assert any("tokens is empty" in e and "0.0.0.0:0" in e for e in failed["errors"]), failed
    assert not any(line.get("event") == "reloaded" for line in d.lines)
    code, _ = await d.request("GET", "/v1/webhooks")
    assert code == 401
    code, body = await d.request("GET", "/v1/webhooks", headers={"Authorization": "Bearer tok-public"})
    assert code == 200, body


async def test_reload_keeps_restart_keys_and_applies_the_rest(
    receiver: Any, make_config: Any, daemon_factory: Any, tmp_path: Path
) -> None:
    """A SIGHUP that moves listen and storage keeps both until a restart and still applies valid changes."""
    hooks = [{"id": "a", "url": receiver.url + "/a", "secret": SECRET, "events": [{"id": "t", "on": "*"}]}]
    config = make_config(hooks, server={"tokens": ["tok-old"]})
    config.chmod(0o600)
    d = await daemon_factory(config)
    hooks.append({"id": "b", "url": receiver.url + "/b", "auth": {"type": "bearer", "token": "b-token"},
                  "events": [{"id": "t", "on": "*"}]})  # fmt: skip
    make_config(hooks, server={"listen": "127.0.0.1:1", "tokens": ["tok-new"]},
                storage={"path": str(tmp_path / "elsewhere.db")})  # fmt: skip
    await d.signal(signal.SIGHUP)
    assert (await d.wait_line("reloaded"))["added"] == ["b"]
    assert (await d.wait_line("reload_needs_restart"))["keys"] == ["server.listen", "storage"]
    code, body = await d.send([{"id": "e1", "event": "ticket.created", "object": {"id": 1}}],
                              headers={"Authorization": "Bearer tok-new"})  # fmt: skip
    assert code == 202, body
    (got,) = await receiver.wait_for(1, "/b")
    assert got.headers["Authorization"] == "Bearer b-token"
    assert not (tmp_path / "elsewhere.db").exists()


def test_reload_keeps_the_running_client_timeout(tmp_path: Path) -> None:
    """client_timeout_seconds is set on the listener at start, so a reload keeps the running value and says so."""
    path = tmp_path / "hookd.toml"
    old = Config.parse(b"[server]\nclient_timeout_seconds = 30\n", path)
    new = Config.parse(b"[server]\nclient_timeout_seconds = 0.5\nmax_body_bytes = 2048\n", path)
    applied, kept = reload_config(new, old, path)
    assert kept == ["server.client_timeout_seconds"]
    assert applied.server.client_timeout_seconds == 30
    assert applied.server.max_body_bytes == 2048
    assert reload_config(old, old, path) == (old, [])
