"""Operations end to end: sd_notify, logs and refusals to start through the real ``hookd run``;
metrics and tokens against an App in the test's loop."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import sqlite3
from pathlib import Path

from aiohttp import web

from tests.support import HOOKD, SECRET, AppFactory, DaemonFactory, MakeConfig, Receiver, refused_start, webhook


class NotifySocket:
    """A real unix datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    async def wait_for(self, line: str, timeout: float = 10.0) -> str:
        """Collect datagrams until one holds ``line``; return that datagram."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while True:
                for m in self.messages:
                    if line in m.split("\n"):
                        return m
                data = await loop.sock_recv(self.sock, 65536)
                self.messages.append(data.decode())

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


async def test_sd_notify_ready_watchdog_reloading_stopping(
    tmp_path: Path, receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """Under a notify socket hookd says READY, pings WATCHDOG, wraps a reload in RELOADING/READY, says STOPPING."""
    notify = NotifySocket(tmp_path / "notify.sock")
    try:
        config = make_config([webhook("a", receiver.url + "/a")])
        d = await daemon_factory(config, env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "200000"})
        ready = await notify.wait_for("READY=1")
        assert any(line.startswith("STATUS=") for line in ready.split("\n"))
        await notify.wait_for("WATCHDOG=1")
        notify.messages.clear()
        await d.signal(signal.SIGHUP)
        reloading = await notify.wait_for("RELOADING=1")
        assert re.search(r"^MONOTONIC_USEC=\d+$", reloading, re.M)
        await notify.wait_for("READY=1")
        await d.wait_line("reloaded")
        notify.messages.clear()
        assert await d.stop() == 0
        await notify.wait_for("STOPPING=1")
    finally:
        notify.close()


async def test_every_stdout_line_is_json_one_per_attempt_and_no_secret(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """Off a terminal, every line is JSON, each attempt has its own line, and no secret appears anywhere."""
    receiver.behave["/a"] = _fail_once
    config = make_config(
        [
            webhook("a", receiver.url + "/a", secret=SECRET,
                    auth={"type": "basic", "username": "svc", "password": "pw-SENTINEL-1"}),
            webhook("b", receiver.url + "/b", auth={"type": "bearer", "token": "tok-SENTINEL-2"}),
        ],
        server={"tokens": ["api-SENTINEL-3"]},
    )  # fmt: skip
    d = await daemon_factory(config)
    headers = {"Authorization": "Bearer api-SENTINEL-3"}
    code, _ = await d.send([{"event": "x.y", "object": {"id": 1}}], headers=headers)
    assert code == 202
    await receiver.wait_for(2, "/a")
    await receiver.wait_for(1, "/b")
    await d.wait_line("attempt", where=lambda r: r["webhook"] == "a", count=2)
    assert await d.stop() == 0
    for raw in d.raw:
        json.loads(raw)  # raises on any line that is not JSON
        for secret in ("SENTINEL", SECRET, "Authorization"):
            assert secret not in raw
    attempts = [r for r in d.lines if r["event"] == "attempt"]
    assert sorted((r["webhook"], r["attempt"], r["status"]) for r in attempts) == [
        ("a", 1, 500), ("a", 2, 200), ("b", 1, 200),
    ]  # fmt: skip
    for r in attempts:
        assert {"delivery", "duration_ms", "outcome"} <= r.keys()


async def _fail_once(request: web.Request, n: int) -> web.StreamResponse:
    return web.Response(status=500 if n == 1 else 200)


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:]+)(\{[^}]*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return 0.0


async def test_metrics_counters_move(receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory) -> None:
    """/metrics is Prometheus text whose counters and histograms move as events are delivered."""
    config = make_config([webhook("a", receiver.url + "/a"), webhook("b", receiver.url + "/b", on="never.*")])
    d = await app_factory(config)
    code, before = await d.request("GET", "/metrics")
    assert code == 200
    assert _metric(before, "hookd_events_ingested_total") == 0
    code, _ = await d.send([{"event": "x.y", "object": {"id": i}} for i in range(3)])
    assert code == 202
    await receiver.wait_for(3, "/a")
    await d.wait_deliveries("a", 3, state="succeeded")
    _, after = await d.request("GET", "/metrics")
    assert _metric(after, "hookd_events_ingested_total") == 3
    assert _metric(after, "hookd_items_routed_total", webhook="a") == 3
    assert _metric(after, "hookd_deliveries_total", webhook="a", outcome="succeeded") == 3
    assert _metric(after, "hookd_attempts_total", webhook="a", result="2xx") == 3
    assert _metric(after, "hookd_attempt_duration_seconds_count", webhook="a") == 3
    assert _metric(after, "hookd_ingest_request_seconds_count") == 1
    assert _metric(after, "hookd_webhook_disabled", webhook="a") == 0
    assert "hookd_pending_items" in after
    assert "hookd_spool_items" in after
    await d.request("POST", "/v1/events", data=b"{", headers={"Content-Type": "application/json"})
    _, last = await d.request("GET", "/metrics")
    assert _metric(last, "hookd_ingest_rejected_total", status="400") == 1


async def test_tokens_missing_wrong_and_each_valid(
    tmp_path: Path, receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Every /v1 route wants one of the tokens (inline, env: or file:); health and metrics stay open."""
    (tmp_path / "token.txt").write_text("from-a-file\n")
    config = make_config(
        [webhook("a", receiver.url + "/a")],
        server={"tokens": ["inline-token", "env:HOOKD_TEST_TOKEN", "file:token.txt"]},
    )
    d = await app_factory(config, env={"HOOKD_TEST_TOKEN": "from-the-env"})
    for path in ("/v1/webhooks", "/v1/webhooks/a", "/v1/webhooks/a/deliveries", "/v1/deliveries/x"):
        code, body = await d.request("GET", path)
        assert code == 401, path
        assert body["error"]["code"] == "unauthorized"
        code, _ = await d.request("GET", path, headers={"Authorization": "Bearer wrong"})
        assert code == 401
    code, _ = await d.send({"event": "x.y", "object": {}}, headers={"Authorization": "Basic inline-token"})
    assert code == 401
    for token in ("inline-token", "from-the-env", "from-a-file"):
        code, _ = await d.request("GET", "/v1/webhooks", headers={"Authorization": f"Bearer {token}"})
        assert code == 200, token
    code, answer = await d.send({"event": "x.y", "object": {}}, headers={"Authorization": "Bearer from-a-file"})
    assert code == 202
    assert answer["items"] == 1
    assert (await d.request("GET", "/healthz"))[0] == 200
    assert (await d.request("GET", "/metrics"))[0] == 200


async def test_refuses_non_loopback_listen_without_tokens(make_config: MakeConfig, tmp_path: Path) -> None:
    """hookd will not start on a non-loopback address with no tokens, and says why."""
    config = make_config([], server={"listen": "0.0.0.0:0"})
    assert any("not a loopback address" in e for e in await refused_start(config))


async def test_warns_when_config_with_inline_secrets_is_readable_by_others(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """A config holding inline secrets that others can read gets a warning naming the keys."""
    config = make_config([webhook("a", receiver.url + "/a", secret=SECRET)])
    config.chmod(0o644)
    d = await daemon_factory(config)
    line = await d.wait_line("config_readable_by_others")
    assert line["keys"] == ["webhooks[0].secret[0]"]
    assert SECRET not in json.dumps(line)


async def test_refuses_a_store_written_by_a_newer_hookd_and_exits(make_config: MakeConfig, tmp_path: Path) -> None:
    """A database of a newer schema version: hookd logs start_failed and exits 1 at once
    (the store's connection thread must not keep the process alive)."""
    db = tmp_path / "hookd.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    config = make_config([])
    proc = await asyncio.create_subprocess_exec(
        HOOKD, "run", "-c", str(config), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    line = json.loads(out.decode().strip().splitlines()[-1])
    assert line["event"] == "start_failed"
    assert "schema version 99, written by a newer hookd" in line["error"]
