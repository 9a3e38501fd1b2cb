"""Fixtures: real receivers on 127.0.0.1 port 0, config files in tmp_path, and hookd run as
the real ``hookd`` command in a subprocess or as an App in the test's own loop. The helpers
they hand out live in tests/support.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from hookd.config import Config
from tests.browser import CHROMEDRIVER, CHROMIUM, Browser, start_chromium
from tests.support import AppFactory, Daemon, DaemonFactory, InProcess, LogLines, MakeConfig, Proxy, Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A recording receiver on a free loopback port."""
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
def make_config(tmp_path: Path) -> MakeConfig:
    """Write a config file with small timings; keyword tables override the defaults (arrays of tables replace)."""

    def make(webhooks: list[dict[str, Any]] | None = None, name: str = "hookd.toml", **tables: Any) -> Path:
        data: dict[str, Any] = {
            "server": {"listen": "127.0.0.1:0", "shutdown_grace_seconds": 2},
            "storage": {"path": str(tmp_path / "hookd.db")},
            "delivery": {"retry_schedule": [0.05, 0.1], "jitter": 0, "timeout_seconds": 5,
                         "connect_timeout_seconds": 2},
            "batching": {"spool_poll_seconds": 0.05},
        }  # fmt: skip
        for key, value in tables.items():
            if isinstance(value, list):  # an array of tables, such as event_types
                data[key] = value
            else:
                data.setdefault(key, {}).update(value)
        data["webhooks"] = webhooks or []
        path = tmp_path / name
        path.write_text(tomli_w.dumps(data))
        return path

    return make


@pytest.fixture
async def daemon_factory() -> AsyncIterator[DaemonFactory]:
    """Start real ``hookd run`` processes; every one is stopped (or killed) at the end."""
    started: list[Daemon] = []

    async def start(config: Path, env: dict[str, str] | None = None, args: list[str] | None = None) -> Daemon:
        d = Daemon(config, env=env or {}, args=args or [])
        started.append(d)
        await d.start()
        return d

    yield start
    for d in started:
        await d.kill()


@pytest.fixture
async def app_factory(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AppFactory]:
    """Serve Apps in the test's loop (``env`` goes into os.environ for the test); every one is stopped at the end."""
    logs = LogLines()
    started: list[InProcess] = []

    async def start(
        config: Path,
        env: dict[str, str] | None = None,
        level: str = "info",
        prepare: Callable[[Config], Config] | None = None,
    ) -> InProcess:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        app = InProcess(config, logs, logging.getLevelNamesMapping()[level.upper()], prepare)
        started.append(app)
        await app.start()
        return app

    try:
        yield start
    finally:
        try:
            # Every App gets its stop even when one fails; the first failure is raised.
            errors = [await _stopped(app) for app in started if not app.stopped]
            for error in errors:
                if error is not None:
                    raise error
        finally:
            logs.uninstall()


async def _stopped(app: InProcess) -> BaseException | None:
    try:
        await app.stop()
    except Exception as exc:
        return exc
    return None


@pytest.fixture
async def proxy_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Proxy]]]:
    """Start real HTTP proxies (proxy.py) on free loopback ports; every one is stopped at the end."""
    started: list[Proxy] = []

    async def start(auth: str | None = None) -> Proxy:
        p = Proxy(tmp_path, auth)
        started.append(p)
        await p.start()
        return p

    yield start
    for p in started:
        await p.stop()


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    """Headless Chromium with a fresh profile; fails the test on a JavaScript error."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"needs Debian's chromium and chromium-driver ({', '.join(missing)} missing)")
    driver = await asyncio.to_thread(start_chromium, tmp_path / "chromium-profile")
    b = Browser(driver)
    try:
        yield b
        errors = await asyncio.to_thread(b.errors)
        assert not errors, errors
    finally:
        await asyncio.to_thread(driver.quit)
