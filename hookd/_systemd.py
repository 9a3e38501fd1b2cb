"""The sd_notify protocol: tell systemd we are ready, reloading, stopping, and alive.

A ``Type=notify`` service sends newline-separated ``KEY=VALUE`` lines as one datagram to
the ``AF_UNIX`` socket named by ``$NOTIFY_SOCKET``; ``WatchdogSec=`` in the unit sets
``$WATCHDOG_USEC`` and systemd kills the service when ``WATCHDOG=1`` stops arriving. See
sd_notify(3) and sd_watchdog_enabled(3). Only the standard library is used, so the
daemon needs neither libsystemd nor a binding to it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping

__all__ = ["Notifier", "watchdog_loop"]


def _address(value: str) -> str | bytes | None:
    """The socket address named by ``$NOTIFY_SOCKET``, or None when it names none we can use."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        # Linux abstract namespace: the name is the rest, after a leading NUL byte.
        return b"\0" + value[1:].encode()
    # Unset, empty, relative, or a form this module does not speak (e.g. ``vsock:``): as
    # libsystemd does for an unusable address, send nothing rather than guess.
    return None


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Seconds between pings: half of ``$WATCHDOG_USEC``, so one late ping is not fatal."""
    pid = environ.get("WATCHDOG_PID")
    # A WATCHDOG_PID naming another process means the variables were inherited from a
    # parent that is itself supervised; pinging on its behalf would hide its hangs.
    if pid is not None and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000


def _one_line(text: str) -> str:
    # A newline inside a value would start a new KEY=VALUE assignment in the datagram.
    return " ".join(text.splitlines())


class Notifier:
    """Sends sd_notify messages to systemd; every method is a no-op outside systemd.

    ``environ`` defaults to ``os.environ`` and is read once, at construction.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_interval = _watchdog_interval(env) if self._address is not None else None

    @property
    def enabled(self) -> bool:
        """Whether a notification socket was given, i.e. whether messages go anywhere."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between ``WATCHDOG=1`` pings, or None when systemd expects none."""
        return self._watchdog_interval

    def notify(self, *lines: str) -> None:
        """Send ``lines`` as one datagram; never blocks and never raises."""
        if self._address is None or not lines:
            return
        data = "\n".join(lines).encode()
        try:
            # A socket per message, as libsystemd does: nothing to keep open or to close,
            # and notifications are rare (start, reload, stop, a ping every few seconds).
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto(data, self._address)
        except OSError:
            # Supervision is a courtesy to systemd: a full queue or a vanished socket must
            # not take the daemon down, and logging here could flood the journal.
            pass

    def ready(self, status: str | None = None) -> None:
        """Start-up (or a reload) is complete; optionally set the status text too."""
        if status is None:
            self.notify("READY=1")
        else:
            self.notify("READY=1", f"STATUS={_one_line(status)}")

    def reloading(self) -> None:
        """A reload has begun; ``ready()`` ends it."""
        # systemd (Type=notify-reload, v253+) uses MONOTONIC_USEC to tell this reload
        # from an earlier one; it must be CLOCK_MONOTONIC, which time.monotonic reads.
        self.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self) -> None:
        """Shutdown has begun."""
        self.notify("STOPPING=1")

    def watchdog(self) -> None:
        """Tell systemd's watchdog the service is alive."""
        self.notify("WATCHDOG=1")


async def watchdog_loop(
    notifier: Notifier,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    status: Callable[[], str] | None = None,
) -> None:
    """Ping the watchdog every ``notifier.watchdog_interval`` seconds until cancelled.

    Returns at once when systemd expects no pings. The pings come from a task on the
    daemon's own event loop, not a thread, so a loop that is blocked stops pinging and
    systemd restarts it. ``status``, when given, refreshes ``STATUS=`` with each ping.
    """
    interval = notifier.watchdog_interval
    if interval is None:
        return
    while True:
        if status is None:
            notifier.watchdog()
        else:
            notifier.notify("WATCHDOG=1", f"STATUS={_one_line(status())}")
        await sleep(interval)
