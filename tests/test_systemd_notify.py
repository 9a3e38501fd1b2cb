"""The sd_notify client, against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookd._systemd import Notifier, watchdog_loop


class _Stop(Exception):
    """Raised by a fake sleep to end an otherwise endless loop."""


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket in tmp_path and its path, as systemd's notify socket."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)  # a deadline, not a delay: the datagram is queued before sendto returns
        yield sock, str(path)


def _received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def _assert_nothing_sent(sock: socket.socket) -> None:
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(4096)


def test_ready_sends_ready_and_status(listener: tuple[socket.socket, str]) -> None:
    """ready() sends READY=1 and STATUS= together as one datagram."""
    sock, path = listener
    Notifier({"NOTIFY_SOCKET": path}).ready("2 webhooks, 0 pending")
    assert _received(sock) == ["READY=1", "STATUS=2 webhooks, 0 pending"]


def test_ready_without_status(listener: tuple[socket.socket, str]) -> None:
    """ready() with no status text sends READY=1 alone."""
    sock, path = listener
    Notifier({"NOTIFY_SOCKET": path}).ready()
    assert _received(sock) == ["READY=1"]


def test_reloading_sends_monotonic_usec(listener: tuple[socket.socket, str]) -> None:
    """reloading() sends RELOADING=1 with MONOTONIC_USEC read from CLOCK_MONOTONIC."""
    sock, path = listener
    before = time.monotonic_ns() // 1000
    Notifier({"NOTIFY_SOCKET": path}).reloading()
    after = time.monotonic_ns() // 1000
    first, second = _received(sock)
    assert first == "RELOADING=1"
    key, _, value = second.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_stopping(listener: tuple[socket.socket, str]) -> None:
    """stopping() sends STOPPING=1."""
    sock, path = listener
    Notifier({"NOTIFY_SOCKET": path}).stopping()
    assert _received(sock) == ["STOPPING=1"]


def test_status_is_kept_on_one_line(listener: tuple[socket.socket, str]) -> None:
    """The status text goes out as one STATUS= line: newlines, which would start new assignments, are folded."""
    sock, path = listener
    Notifier({"NOTIFY_SOCKET": path}).ready("draining\nREADY=1")
    assert _received(sock) == ["READY=1", "STATUS=draining READY=1"]


def test_watchdog_ping(listener: tuple[socket.socket, str]) -> None:
    """watchdog() sends WATCHDOG=1."""
    sock, path = listener
    Notifier({"NOTIFY_SOCKET": path}).watchdog()
    assert _received(sock) == ["WATCHDOG=1"]


def test_abstract_socket_name() -> None:
    """A NOTIFY_SOCKET starting with @ names a socket in Linux's abstract namespace."""
    name = f"hookd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        notifier = Notifier({"NOTIFY_SOCKET": f"@{name}"})
        assert notifier.enabled
        notifier.ready()
        assert _received(sock) == ["READY=1"]


def test_no_op_without_notify_socket(listener: tuple[socket.socket, str]) -> None:
    """Without NOTIFY_SOCKET the notifier is disabled, sends nothing and has no watchdog."""
    sock, _ = listener
    notifier = Notifier({"WATCHDOG_USEC": "30000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    notifier.ready("up")
    notifier.watchdog()
    notifier.stopping()
    _assert_nothing_sent(sock)


def test_default_environ_is_os_environ(listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """With no mapping given the notifier reads the process environment."""
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    Notifier().stopping()
    assert _received(sock) == ["STOPPING=1"]


def test_missing_socket_does_not_raise(tmp_path: Path) -> None:
    """A NOTIFY_SOCKET naming nothing is swallowed: supervision must never crash the daemon."""
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.enabled
    notifier.ready("up")
    notifier.watchdog()


@pytest.mark.parametrize(
    ("usec", "interval"),
    [
        ("30000000", 15.0),
        ("1000000", 0.5),
        ("3", 1.5e-6),
        ("0", None),
        ("-5", None),
        ("soon", None),
        ("", None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(usec: str, interval: float | None) -> None:
    """watchdog_interval is half of WATCHDOG_USEC in seconds, None when unset or unusable."""
    notifier = Notifier({"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": usec})
    assert notifier.watchdog_interval == (None if interval is None else pytest.approx(interval))


def test_watchdog_interval_unset() -> None:
    """Without WATCHDOG_USEC there is no watchdog to ping."""
    assert Notifier({"NOTIFY_SOCKET": "/run/systemd/notify"}).watchdog_interval is None


def test_watchdog_pid_matching_this_process() -> None:
    """WATCHDOG_PID equal to our pid keeps the watchdog on."""
    env = {
        "NOTIFY_SOCKET": "/run/systemd/notify",
        "WATCHDOG_USEC": "4000000",
        "WATCHDOG_PID": str(os.getpid()),
    }
    assert Notifier(env).watchdog_interval == pytest.approx(2.0)


def test_watchdog_pid_mismatch_disables_watchdog() -> None:
    """WATCHDOG_PID naming another process means the watchdog is not ours to ping."""
    env = {
        "NOTIFY_SOCKET": "/run/systemd/notify",
        "WATCHDOG_USEC": "4000000",
        "WATCHDOG_PID": str(os.getpid() + 1),
    }
    assert Notifier(env).watchdog_interval is None


async def test_watchdog_loop_pings_every_interval(listener: tuple[socket.socket, str]) -> None:
    """watchdog_loop sends WATCHDOG=1, then sleeps the interval, again and again."""
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000000"})
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            raise _Stop

    with pytest.raises(_Stop):
        await watchdog_loop(notifier, sleep)
    assert slept == [10.0, 10.0, 10.0]
    assert [_received(sock) for _ in range(3)] == [["WATCHDOG=1"]] * 3
    _assert_nothing_sent(sock)


async def test_watchdog_loop_refreshes_status(listener: tuple[socket.socket, str]) -> None:
    """Given a status callable, each ping carries a fresh STATUS= in the same datagram."""
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
    counter = iter(range(100))

    async def sleep(_: float) -> None:
        raise _Stop

    with pytest.raises(_Stop):
        await watchdog_loop(notifier, sleep, status=lambda: f"pending={next(counter)}")
    assert _received(sock) == ["WATCHDOG=1", "STATUS=pending=0"]


async def test_watchdog_loop_returns_without_interval(listener: tuple[socket.socket, str]) -> None:
    """Without a watchdog interval the loop returns at once, never sleeping or pinging."""
    sock, path = listener

    async def sleep(_: float) -> None:
        raise AssertionError("watchdog_loop slept without a watchdog")

    await watchdog_loop(Notifier({"NOTIFY_SOCKET": path}), sleep)
    _assert_nothing_sent(sock)
