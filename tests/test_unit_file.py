"""``systemd/hookd.service``: systemd accepts it, and it says what the daemon relies on."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hookd.config import ServerConfig

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "hookd.service"


def settings() -> dict[str, list[str]]:
    """Every ``Key=value`` in the unit, by key; a key may repeat, so values are lists."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if line and line[0] not in "#;[" and "=" in line:
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd-analyze verify accepts the unit without a complaint (ExecStart pointed at a real binary)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    true = shutil.which("true")
    assert true is not None
    text = UNIT.read_text(encoding="utf-8")
    # verify checks that ExecStart's binary exists; hookd is not installed at /usr/local/bin here.
    text, count = re.subn(r"(?m)^ExecStart=\S+", f"ExecStart={true}", text)
    assert count == 1
    copy = tmp_path / "hookd.service"
    copy.write_text(text, encoding="utf-8")
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False)
    output = result.stdout + result.stderr
    # An unknown or misspelled key is only a warning (exit 0), so look at the lines as well.
    complaints = [line for line in output.splitlines() if "hookd.service" in line]
    assert result.returncode == 0, output
    assert complaints == []


def test_notify_reload_and_watchdog() -> None:
    """The unit is Type=notify, reloads with SIGHUP and sets a watchdog the daemon pings."""
    unit = settings()
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert unit["ExecStart"] == ["/usr/local/bin/hookd run -c /etc/hookd/hookd.toml"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["WatchdogSec"] == ["30"]
    assert unit["Restart"] == ["on-failure"]


def test_stop_timeout_outlasts_the_shutdown_grace() -> None:
    """systemd waits longer than the daemon's default shutdown grace, so it never SIGKILLs a clean stop."""
    grace = ServerConfig.model_fields["shutdown_grace_seconds"].default
    assert float(settings()["TimeoutStopSec"][0]) > grace


def test_sandboxing() -> None:
    """The service runs as a dynamic user with a state directory and the usual sandboxing."""
    unit = settings()
    expected = {
        "DynamicUser": "yes",
        "StateDirectory": "hookd",
        "ConfigurationDirectory": "hookd",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "MemoryDenyWriteExecute": "yes",
        "SystemCallFilter": "@system-service",
        "CapabilityBoundingSet": "",
        "UMask": "0077",
        "WantedBy": "multi-user.target",
    }
    assert {key: unit.get(key, [None])[-1] for key in expected} == expected


def test_descriptor_limit_well_above_1024() -> None:
    """LimitNOFILE lifts the 1024 default, so a burst of idle clients cannot starve ingest of sockets."""
    limit = settings()["LimitNOFILE"]
    assert limit == ["65536"]
