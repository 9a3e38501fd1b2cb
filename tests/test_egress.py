"""Egress (SPEC §14): private CAs, mutual TLS and HTTP proxies, end to end against real TLS
receivers on loopback (certificates made here by trustme) and a real proxy process (proxy.py)."""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
import trustme

from hookd import http
from hookd.config import ApiWebhook, Config, ConfigError, inline_secrets
from hookd.egress import DIRECT, Egress, Guard, choose_proxy, proxy_environment
from hookd.failures import scrub
from hookd.tls import client_context
from tests.support import (
    HOOKD,
    AppFactory,
    InProcess,
    MakeConfig,
    Proxy,
    Receiver,
    ev,
    free_port,
    hang,
    until,
    webhook,
)

ProxyFactory = Callable[..., Awaitable[Proxy]]
Receivers = Callable[[ssl.SSLContext | None], Awaitable[Receiver]]
PASSWORD = "s3cret-pw"


class Pki:
    """A private CA made for one test, its certificates written as PEM files in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca = trustme.CA()
        self.ca_file = self._write("ca.pem", self.ca.cert_pem.bytes())

    def _write(self, name: str, data: bytes) -> str:
        path = self.folder / name
        path.write_bytes(data)
        return str(path)

    def server(self, *names: str, expired: bool = False, clients_from: trustme.CA | None = None) -> ssl.SSLContext:
        """A server context with a certificate for ``names``; requiring a client certificate from ``clients_from``."""
        when: dict[str, Any] = {}
        if expired:
            past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
            when = {"not_before": past, "not_after": past + datetime.timedelta(days=1)}
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*names, **when).configure_cert(ctx)
        if clients_from is not None:
            clients_from.configure_trust(ctx)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def ca_bundle(self, *cas: trustme.CA) -> None:
        """Rewrite ca_file to hold ``cas``."""
        self._write("ca.pem", b"".join(ca.cert_pem.bytes() for ca in cas))

    def drop_ca_file(self) -> None:
        """Remove ca_file."""
        Path(self.ca_file).unlink()

    def client(self, name: str = "client") -> tuple[str, str]:
        """A client certificate and its key, as two files."""
        leaf = self.ca.issue_cert(f"{name}@hookd.test")
        return self._write(f"{name}.pem", leaf.cert_chain_pems[0].bytes()), self._write(
            f"{name}.key", leaf.private_key_pem.bytes()
        )


def read(path: str) -> str:
    """A file's text."""
    return Path(path).read_text()


@pytest.fixture
async def receivers() -> AsyncIterator[Receivers]:
    """Start receivers, https when given a server context; all stopped at the end."""
    started: list[Receiver] = []

    async def start(ctx: ssl.SSLContext | None = None) -> Receiver:
        r = Receiver(ctx)
        started.append(r)
        await r.start()
        return r

    yield start
    for r in started:
        await r.stop()


async def outcome(app: InProcess, webhook_id: str, state: str) -> dict[str, Any]:
    """The webhook's one delivery once it is in ``state``, read whole."""
    (summary,) = await app.wait_deliveries(webhook_id, 1, state=state)
    code, detail = await app.request("GET", f"/v1/deliveries/{summary['id']}")
    assert code == 200, detail
    return dict(detail)


# -- TLS -----------------------------------------------------------------------------------


async def test_private_ca_is_trusted_only_with_ca_file(
    tmp_path: Path, make_config: MakeConfig, app_factory: AppFactory, receivers: Receivers
) -> None:
    """A receiver with a private CA's certificate fails as tls (unknown CA) until tls.ca_file names that CA."""
    pki = Pki(tmp_path)
    r = await receivers(pki.server("127.0.0.1"))
    hooks = [webhook("plain", r.url + "/plain"), webhook("private", r.url + "/private", tls={"ca_file": pki.ca_file})]
    app = await app_factory(make_config(hooks, delivery={"retry_schedule": []}))
    assert (await app.send([ev(1)]))[0] == 202
    ok = await outcome(app, "private", "succeeded")
    assert ok["attempts"][0]["error"] is None
    failed = await outcome(app, "plain", "failed")
    assert failed["attempts"][0]["error"] == "tls"
    assert failed["response"]["message"].startswith("certificate verify failed: unknown CA")
    assert "tls.ca_file" in failed["response"]["message"]
    assert [x.path for x in r.requests] == ["/private"]


async def test_expired_and_wrong_host_certificates_fail_as_tls_with_the_reason(
    tmp_path: Path, make_config: MakeConfig, app_factory: AppFactory, receivers: Receivers
) -> None:
    """An expired certificate and one for another host each fail as tls, the log saying which."""
    pki = Pki(tmp_path)
    expired = await receivers(pki.server("127.0.0.1", expired=True))
    elsewhere = await receivers(pki.server("receiver.example.test"))
    hooks = [webhook("expired", expired.url + "/"), webhook("elsewhere", elsewhere.url + "/")]
    config = make_config(hooks, delivery={"retry_schedule": [], "tls": {"ca_file": pki.ca_file}})
    app = await app_factory(config)
    await app.send([ev(1)])
    old = await outcome(app, "expired", "failed")
    assert old["attempts"][0]["error"] == "tls"
    assert old["response"]["message"] == "certificate verify failed: expired (certificate has expired)"
    wrong = await outcome(app, "elsewhere", "failed")
    assert wrong["attempts"][0]["error"] == "tls"
    assert wrong["response"]["message"].startswith("certificate verify failed: hostname mismatch (")
    assert "127.0.0.1" in wrong["response"]["message"]
    assert expired.requests == elsewhere.requests == []


async def test_mutual_tls_is_accepted_with_the_client_certificate_and_refused_without(
    tmp_path: Path,
    make_config: MakeConfig,
    app_factory: AppFactory,
    receivers: Receivers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A receiver that requires a client certificate takes the webhook presenting one (its key read from
    env:, the CA inherited from [delivery] key by key) and refuses the one without."""
    pki = Pki(tmp_path)
    r = await receivers(pki.server("127.0.0.1", clients_from=pki.ca))
    cert, key = pki.client()
    monkeypatch.setenv("HOOKD_T_CLIENT_KEY", read(key))
    hooks = [
        webhook("with", r.url + "/with", tls={"client_cert": cert, "client_key": "env:HOOKD_T_CLIENT_KEY"}),
        webhook("without", r.url + "/without"),
    ]
    app = await app_factory(make_config(hooks, delivery={"retry_schedule": [], "tls": {"ca_file": pki.ca_file}}))
    await app.send([ev(1)])
    await outcome(app, "with", "succeeded")
    refused = await outcome(app, "without", "failed")
    assert refused["attempts"][0]["error"] in ("http", "tls")
    assert "tls.client_cert" in refused["response"]["message"]
    assert [x.path for x in r.requests] == ["/with"]
    code, view = await app.request("GET", "/v1/webhooks/with")
    assert code == 200
    assert view["config"]["tls"] == {"ca_file": None, "client_cert": cert, "client_key": "***"}
    assert "PRIVATE KEY" not in json.dumps(view)


async def test_ssl_contexts_are_built_once_per_distinct_combination(
    tmp_path: Path,
    make_config: MakeConfig,
    app_factory: AppFactory,
    receivers: Receivers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Webhooks naming the same files share one SSL context, made at start, none per attempt; a reload
    that changes a file's contents makes one for the new contents."""
    built: list[object] = []

    def counting(material: Any) -> ssl.SSLContext:
        built.append(material)
        return client_context(material)

    monkeypatch.setattr(http, "client_context", counting)
    pki = Pki(tmp_path)
    r = await receivers(pki.server("127.0.0.1"))
    (tmp_path / "other").mkdir()
    other = Pki(tmp_path / "other")
    hooks = [
        webhook("a", r.url + "/a", tls={"ca_file": pki.ca_file}),
        webhook("b", r.url + "/b", tls={"ca_file": pki.ca_file}),
        webhook("c", r.url + "/c", tls={"ca_file": other.ca_file}),
    ]
    path = make_config(hooks, delivery={"retry_schedule": []})
    app = await app_factory(path)
    assert len(built) == 2
    await app.send([ev(n) for n in range(1, 4)])
    await app.wait_deliveries("a", 3, state="succeeded")
    await app.wait_deliveries("b", 3, state="succeeded")
    await app.wait_deliveries("c", 3, state="failed")  # the other CA does not vouch for this receiver
    assert len(built) == 2
    # Both CAs in one bundle: contents no other webhook has, so a context of its own.
    other.ca_bundle(other.ca, pki.ca)
    assert app.app is not None
    assert await app.app.reload()
    assert len(built) == 3
    await app.send([ev(9)])
    await until(lambda: len(r.at("/c")) == 1, "webhook c delivered after the reload")
    assert len(built) == 3


# -- proxies -------------------------------------------------------------------------------


async def test_http_and_https_go_through_the_proxy_with_credentials_never_shown(
    tmp_path: Path,
    make_config: MakeConfig,
    app_factory: AppFactory,
    receivers: Receivers,
    proxy_factory: ProxyFactory,
) -> None:
    """With proxy set, http goes to the proxy as an absolute-form request and https as a CONNECT, the
    credentials reaching the proxy (it answers 407 without them) and appearing in no view, log or record."""
    proxy = await proxy_factory(f"hookd:{PASSWORD}")
    with_credentials = f"http://hookd:{PASSWORD}@127.0.0.1:{proxy.port}"
    pki = Pki(tmp_path)
    plain = await receivers(None)
    secure = await receivers(pki.server("127.0.0.1"))
    hooks = [webhook("plain", plain.url + "/p"), webhook("secure", secure.url + "/s", proxy=with_credentials)]
    config = make_config(
        hooks, delivery={"retry_schedule": [], "proxy": with_credentials, "tls": {"ca_file": pki.ca_file}}
    )
    app = await app_factory(config)
    await app.send([ev(1)])
    sent = [await outcome(app, "plain", "succeeded"), await outcome(app, "secure", "succeeded")]
    assert [d["request"]["proxy"] for d in sent] == [f"http://***@127.0.0.1:{proxy.port}"] * 2
    code, view = await app.request("GET", "/v1/webhooks/secure")
    assert code == 200
    assert view["config"]["proxy"] == f"http://***@127.0.0.1:{proxy.port}"
    code, listed = await app.request("GET", "/v1/webhooks")
    # proxy.py writes its access line when a connection closes: hookd's close at stop.
    await app.stop()
    await until(lambda: proxy.saw("POST", f"127.0.0.1:{plain.port}/p"), "proxy.py's line for the POST")
    await until(lambda: proxy.saw("CONNECT", f"127.0.0.1:{secure.port}"), "proxy.py's line for the CONNECT")
    shown = json.dumps([sent, view, listed]) + "\n".join(app.raw)
    assert PASSWORD not in shown
    assert "Proxy-Authorization" not in json.dumps(plain.requests[0].headers)


async def test_proxy_failures_are_kind_proxy_with_the_reason(
    tmp_path: Path,
    make_config: MakeConfig,
    app_factory: AppFactory,
    receivers: Receivers,
    proxy_factory: ProxyFactory,
) -> None:
    """No or wrong credentials (407, on a CONNECT and on plain http), a refused CONNECT and an
    unreachable proxy each end the attempt as kind proxy with a reason; the password is never in it."""
    proxy = await proxy_factory(f"hookd:{PASSWORD}")
    pki = Pki(tmp_path)
    plain = await receivers(None)
    secure = await receivers(pki.server("127.0.0.1"))
    bare, wrong = proxy.url, f"http://hookd:not-{PASSWORD}@127.0.0.1:{proxy.port}"
    good = f"http://hookd:{PASSWORD}@127.0.0.1:{proxy.port}"
    hooks = [
        webhook("bare-https", secure.url + "/", proxy=bare),
        webhook("bare-http", plain.url + "/", proxy=bare),
        webhook("wrong", secure.url + "/", proxy=wrong),
        webhook("refused", f"https://127.0.0.1:{free_port()}/", proxy=good),
        webhook("down", secure.url + "/", proxy=f"http://hookd:{PASSWORD}@127.0.0.1:{free_port()}"),
    ]
    app = await app_factory(make_config(hooks, delivery={"retry_schedule": [], "tls": {"ca_file": pki.ca_file}}))
    await app.send([ev(1)])
    expected = {
        "bare-https": "the proxy refused the credentials (407 Proxy Authentication Required)",
        "bare-http": "the proxy refused the credentials (407 Proxy Authentication Required)",
        "wrong": "the proxy refused the credentials (407 Proxy Authentication Required)",
        "refused": "the proxy refused the CONNECT (502 Bad Gateway)",
        "down": "cannot reach the proxy 127.0.0.1:",
    }
    for hook, reason in expected.items():
        d = await outcome(app, hook, "failed")
        assert d["attempts"][0]["error"] == "proxy", (hook, d)
        assert d["response"]["message"].startswith(reason), (hook, d["response"])
        assert PASSWORD not in json.dumps(d)
    assert plain.requests == secure.requests == []


async def test_env_proxy_honours_no_proxy(
    make_config: MakeConfig,
    app_factory: AppFactory,
    receivers: Receivers,
    proxy_factory: ProxyFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """proxy = "env" sends through HTTP_PROXY, except to the hosts NO_PROXY names, which go direct."""
    proxy = await proxy_factory()
    r = await receivers(None)
    for name in ("http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    env = {"HTTP_PROXY": proxy.url, "HTTPS_PROXY": proxy.url, "NO_PROXY": "localhost,.internal.test"}
    hooks = [webhook("via", r.url + "/via"), webhook("bypass", f"http://localhost:{r.port}/bypass")]
    app = await app_factory(make_config(hooks, delivery={"retry_schedule": [], "proxy": "env"}), env=env)
    await app.send([ev(1)])
    via = await outcome(app, "via", "succeeded")
    bypass = await outcome(app, "bypass", "succeeded")
    assert via["request"]["proxy"] == proxy.url
    assert "proxy" not in bypass["request"]
    await app.stop()  # proxy.py writes its access line when a connection closes
    await until(lambda: proxy.saw("POST", f"127.0.0.1:{r.port}/via"), "proxy.py's line for the POST")
    assert not any("bypass" in line for line in proxy.lines)


def test_env_proxy_choice() -> None:
    """HTTP_PROXY/HTTPS_PROXY per scheme, lower case first, NO_PROXY by suffix and host:port, scheme added."""
    env = proxy_environment({"HTTPS_PROXY": "corp:3128", "http_proxy": "http://a:1", "HTTP_PROXY": "http://b:2",
                             "NO_PROXY": "internal.test,10.0.0.7:8443"})  # fmt: skip
    assert env == {"http": "http://a:1", "https": "corp:3128", "no": "internal.test,10.0.0.7:8443"}
    assert choose_proxy("env", "https", "example.com", None, env) == "http://corp:3128"
    assert choose_proxy("env", "http", "example.com", 8080, env) == "http://a:1"
    assert choose_proxy("env", "https", "hooks.internal.test", None, env) is None
    assert choose_proxy("env", "https", "10.0.0.7", 8443, env) is None
    assert choose_proxy("env", "https", "10.0.0.7", 9443, env) == "http://corp:3128"
    assert choose_proxy("env", "https", "example.com", None, {}) is None
    assert choose_proxy("http://p:1", "https", "internal.test", None, env) == "http://p:1"
    assert choose_proxy(None, "https", "example.com", None, env) is None


# -- config errors -------------------------------------------------------------------------


def check(path: Path) -> subprocess.CompletedProcess[str]:
    """`hookd check -c path`."""
    return subprocess.run([HOOKD, "check", "-c", str(path)], capture_output=True, text=True, timeout=60, check=False)


def bad_configs(pki: Pki, tmp_path: Path) -> list[tuple[dict[str, Any], dict[str, Any], str]]:
    """([delivery] keys, webhook keys, the error line expected after the file name)."""
    cert, key = pki.client()
    _, other_key = pki.client("other")
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n")
    missing = str(tmp_path / "missing.pem")
    junk = str(tmp_path / "junk.pem")
    return [
        ({"tls": {"ca_file": missing}}, {},
         f"delivery.tls.ca_file: cannot read '{missing}': No such file or directory"),
        ({}, {"tls": {"ca_file": "junk.pem"}}, f"webhooks[0].tls.ca_file: '{junk}' holds no PEM certificate"),
        ({"tls": {"client_cert": cert, "client_key": other_key}}, {},
         "delivery.tls: client_cert and client_key do not match"),
        ({"tls": {"client_cert": cert, "client_key": key}}, {"tls": {"client_key": other_key}},
         "webhooks[0].tls: client_cert and client_key do not match"),
        ({}, {"tls": {"client_cert": cert}}, "webhooks[0].tls.client_cert needs tls.client_key"),
        ({"tls": {"client_cert": cert, "client_key": str(encrypted)}}, {},
         f"delivery.tls.client_key: '{encrypted}' is encrypted"),
        ({"proxy": "https://proxy.example:3128"}, {},
         "delivery.proxy: 'https://proxy.example:3128' should be \"env\", \"direct\""),
        ({}, {"proxy": f"http://u:{PASSWORD}@proxy.example:99999"},
         "webhooks[0].proxy: 'http://proxy.example:99999' is not a proxy URL"),
        ({"deny_networks": ["10.0.0.0/8", "10.0.0.1/8"]}, {},
         "delivery.deny_networks[1]: '10.0.0.1/8' has host bits set; the network is '10.0.0.0/8'"),
        ({"allow_networks": ["intranet"]}, {}, "delivery.allow_networks[0]: 'intranet' is not a network in CIDR form"),
    ]  # fmt: skip


def test_each_config_error_names_its_key_in_check_and_at_start_up(tmp_path: Path, make_config: MakeConfig) -> None:
    """Each bad egress key is refused at load with one line naming it, no secret in it; `hookd check` and
    `hookd run` (the same load) print that line and fail."""
    pki = Pki(tmp_path)
    for i, (delivery, hook, line) in enumerate(bad_configs(pki, tmp_path)):
        path = make_config([webhook("a", "https://hooks.example.com/", **hook)], name=f"bad{i}.toml", delivery=delivery)
        with pytest.raises(ConfigError) as refused:
            Config.load(path)
        assert refused.value.problems == [line] or refused.value.problems[0].startswith(line), refused.value.problems
        assert PASSWORD not in str(refused.value)
        if i not in (0, 3):  # the commands, on two of them: a subprocess each is slow
            continue
        done = check(path)
        assert done.returncode == 1, (line, done.stdout)
        assert f"{path}: {line}" in done.stderr, (line, done.stderr)
        run = subprocess.run([HOOKD, "run", "-c", str(path)], capture_output=True, text=True, timeout=60, check=False)
        assert run.returncode != 0
        assert line in run.stdout + run.stderr


def test_check_defers_a_client_key_it_cannot_read(
    tmp_path: Path, make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client key `hookd check` cannot read (the service's credential) is a warning, not an error."""
    pki = Pki(tmp_path)
    cert, _ = pki.client()
    monkeypatch.delenv("HOOKD_T_ABSENT", raising=False)
    path = make_config(delivery={"tls": {"client_cert": cert, "client_key": "env:HOOKD_T_ABSENT"}})
    done = check(path)
    assert done.returncode == 0, done.stderr
    assert "delivery.tls.client_key: environment variable HOOKD_T_ABSENT is not set here" in done.stderr


async def test_reload_refuses_a_missing_file_and_keeps_delivering_with_the_loaded_one(
    tmp_path: Path, make_config: MakeConfig, app_factory: AppFactory, receivers: Receivers
) -> None:
    """The CA file is read at load: a reload naming a missing file fails naming the key, and the running
    config still trusts the CA, even with its file gone."""
    pki = Pki(tmp_path)
    r = await receivers(pki.server("127.0.0.1"))
    hooks = [webhook("a", r.url + "/a", tls={"ca_file": pki.ca_file})]
    app = await app_factory(make_config(hooks, delivery={"retry_schedule": []}))
    pki.drop_ca_file()
    make_config(hooks, delivery={"retry_schedule": []})
    assert app.app is not None
    assert not await app.app.reload()
    failed = await app.wait_line("reload_failed")
    assert any(e.startswith("webhooks[0].tls.ca_file: cannot read") for e in failed["errors"]), failed
    await app.send([ev(1)])
    await outcome(app, "a", "succeeded")


def test_a_config_carries_the_loaded_files_through_a_revalidation(tmp_path: Path) -> None:
    """A config validated again (a reload keeping restart-only keys) keeps the text read at load."""
    pki = Pki(tmp_path)
    path = tmp_path / "hookd.toml"
    path.write_text(f'[delivery]\ntls = {{ ca_file = "{pki.ca_file}" }}\n')
    config = Config.load(path)
    Path(pki.ca_file).unlink()
    again = Config.model_validate(config.model_dump(), context={"resolved": True})
    assert again == config
    assert again.delivery.tls.ca_file is not None
    assert "BEGIN CERTIFICATE" in again.delivery.tls.ca_file.pem


# -- the address guard (SPEC §11), at connect time -------------------------------------------


def as_api(*ids: str) -> Callable[[Config], Config]:
    """A ``prepare`` that turns the named webhooks into API webhooks, as if created through the API."""

    def prepare(config: Config) -> Config:
        hooks = tuple(
            ApiWebhook.model_validate(w.model_dump(), context={"resolved": True}) if w.id in ids else w
            for w in config.webhooks
        )
        return config.model_copy(update={"webhooks": hooks})

    return prepare


async def test_guard_blocks_api_webhooks_reaching_denied_networks_without_retrying(
    make_config: MakeConfig, app_factory: AppFactory, receivers: Receivers
) -> None:
    """An API webhook whose host is, or resolves to, a denied address ends as blocked after one attempt (even
    with retry_on = "any_failure"), naming address and network; a config-file webhook to the same place is trusted."""
    r = await receivers(None)
    hooks = [
        webhook("by-name", f"http://localhost:{r.port}/by-name"),
        webhook("literal", r.url + "/literal"),
        webhook("mapped", f"http://[::ffff:127.0.0.1]:{r.port}/mapped"),
        webhook("folded", f"http://①②⑦.0.0.1:{r.port}/folded"),  # IDNA makes it 127.0.0.1
        webhook("trusted", r.url + "/trusted"),
    ]
    config = make_config(hooks, delivery={"retry_schedule": [0.05, 0.05], "retry_on": "any_failure"})
    app = await app_factory(config, prepare=as_api("by-name", "literal", "mapped", "folded"))
    await app.send([ev(1)])
    await outcome(app, "trusted", "succeeded")
    by_name = await outcome(app, "by-name", "failed")
    literal = await outcome(app, "literal", "failed")
    mapped = await outcome(app, "mapped", "failed")
    folded = await outcome(app, "folded", "failed")
    for d in (by_name, literal, mapped, folded):
        assert [a["error"] for a in d["attempts"]] == ["blocked"], d
    assert by_name["response"]["message"] in (
        "localhost resolves to 127.0.0.1, which is in the denied network 127.0.0.0/8 (delivery.deny_networks)",
        "localhost resolves to ::1, which is in the denied network ::1/128 (delivery.deny_networks)",
    )
    assert literal["response"]["message"] == "127.0.0.1 is in the denied network 127.0.0.0/8 (delivery.deny_networks)"
    assert mapped["response"]["message"].startswith("::ffff:127.0.0.1 (the address ::ffff:7f00:1) is in the denied")
    assert "network 127.0.0.0/8" in mapped["response"]["message"]
    assert [x.path for x in r.requests] == ["/trusted"]


async def test_allow_networks_lets_an_api_webhook_through(
    make_config: MakeConfig, app_factory: AppFactory, receivers: Receivers
) -> None:
    """allow_networks carves the loopback out of the denied networks: API webhooks reach it, by name and address."""
    r = await receivers(None)
    hooks = [webhook("by-name", f"http://localhost:{r.port}/by-name"), webhook("literal", r.url + "/literal")]
    config = make_config(hooks, delivery={"retry_schedule": [], "allow_networks": ["127.0.0.0/8", "::1/128"]})
    app = await app_factory(config, prepare=as_api("by-name", "literal"))
    await app.send([ev(1)])
    await outcome(app, "by-name", "succeeded")
    await outcome(app, "literal", "succeeded")


async def test_guard_through_a_proxy_checks_literal_targets_and_leaves_names_to_the_proxy(
    make_config: MakeConfig, app_factory: AppFactory, receivers: Receivers, proxy_factory: ProxyFactory
) -> None:
    """Through a proxy the guard never checks the proxy's own (operator-chosen) address; a literal target in a
    denied network is blocked, and a host name is the proxy's to resolve and police."""
    proxy = await proxy_factory()
    r = await receivers(None)
    hooks = [
        webhook("literal", r.url + "/literal", proxy=proxy.url),
        webhook("by-name", f"http://localhost:{r.port}/by-name", proxy=proxy.url),
    ]
    app = await app_factory(make_config(hooks, delivery={"retry_schedule": []}), prepare=as_api("literal", "by-name"))
    await app.send([ev(1)])
    blocked = await outcome(app, "literal", "failed")
    assert blocked["attempts"][0]["error"] == "blocked"
    assert blocked["response"]["message"].startswith("127.0.0.1 is in the denied network 127.0.0.0/8")
    await outcome(app, "by-name", "succeeded")
    assert [x.path for x in r.requests] == ["/by-name"]


def test_proxy_credentials_count_as_secrets_in_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy URL with inline credentials is an inline secret (config_readable_by_others); written as
    env: it is read from the environment; a client key's path is never an inline secret."""
    pki = Pki(tmp_path)
    cert, key = pki.client()
    path = tmp_path / "hookd.toml"
    path.write_text(
        f'[delivery]\nproxy = "http://u:{PASSWORD}@proxy.example:3128"\n'
        f'tls = {{ client_cert = "{cert}", client_key = "{key}" }}\n'
        '[[webhooks]]\nid = "a"\nurl = "https://hooks.example.com/"\nproxy = "http://proxy.example:3128"\n'
        'events = [{ id = "t", on = "*" }]\n'
    )
    assert inline_secrets(path) == ["delivery.proxy"]
    monkeypatch.setenv("HOOKD_T_PROXY", f"http://u:{PASSWORD}@proxy.example:3128")
    path.write_text('[delivery]\nproxy = "env:HOOKD_T_PROXY"\n')
    assert inline_secrets(path) == []
    assert Config.load(path).delivery.proxy == f"http://u:{PASSWORD}@proxy.example:3128"
    assert PASSWORD not in repr(Config.load(path))


def test_scrub_masks_credentials_in_quoted_urls() -> None:
    """A reason quoting a URL (aiohttp's own messages do) never carries its user:password."""
    quoted = f"407, message='Proxy Authentication Required', url='http://hookd:{PASSWORD}@127.0.0.1:3128'"
    assert scrub(quoted) == "407, message='Proxy Authentication Required', url='http://***@127.0.0.1:3128'"
    assert scrub("Cannot connect to host example.com:443") == "Cannot connect to host example.com:443"


async def test_sessions_no_webhook_uses_after_a_reload_close_once_no_attempt_uses_them(
    receiver: Receiver,
) -> None:
    """configure() retires the sessions of destinations no webhook uses any more (an
    egress taken away, a webhook deleted); close_retired() closes the idle ones at once,
    and one an attempt is still using closes when that attempt ends, not at stop. The
    destinations still in use keep their sessions."""
    receiver.behave["/slow"] = hang(receiver)
    other = Receiver()
    await other.start()
    sender = http.Sender(5.0, 5.0, 1024)
    old, busy_egress = Egress(guard=Guard((), ())), Egress(guard=Guard((), (ip_network("127.0.0.0/8"),)))
    try:
        assert (await sender.send("POST", f"{receiver.url}/a", {}, b"{}", egress=old)).status == 200
        assert (await sender.send("POST", f"{other.url}/gone", {}, b"{}")).status == 200
        assert (await sender.send("POST", f"{receiver.url}/kept", {}, b"{}")).status == 200
        slow = asyncio.get_running_loop().create_task(
            sender.send("POST", f"{receiver.url}/slow", {}, b"{}", egress=busy_egress)
        )
        await receiver.wait_for(1, "/slow")
        sessions = {k: r.session for k, r in sender._routes.items()}
        idle = sessions[("http", "127.0.0.1", receiver.port, old)]
        gone = sessions[("http", "127.0.0.1", other.port, DIRECT)]
        kept = sessions[("http", "127.0.0.1", receiver.port, DIRECT)]
        busy = sessions[("http", "127.0.0.1", receiver.port, busy_egress)]
        sender.configure(5.0, 5.0, 1024, [(f"{receiver.url}/kept", DIRECT)])
        await sender.close_retired()
        assert idle.closed
        assert gone.closed
        assert not busy.closed  # the slow attempt still reads from it
        assert not kept.closed
        assert (await sender.send("POST", f"{receiver.url}/kept", {}, b"{}")).status == 200
        assert sender._routes[("http", "127.0.0.1", receiver.port, DIRECT)].session is kept
        receiver.release.set()
        assert (await slow).status == 200
        assert busy.closed
        assert sender._retired == set()
    finally:
        await sender.close()
        await other.stop()
