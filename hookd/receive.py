"""``hookd receive``: a local HTTP receiver that prints every request, for trying a config out.

It answers any method on any path, prints the request (method, path and query, headers,
the body as indented JSON when it parses) and, given one or more ``--secret``, whether
the Standard Webhooks signature is valid, and if not, why.

aiohttp is imported only once a receiver starts: ``hookd``'s parser imports this module
for its options, and ``hookd --version`` should not pay for aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from aiohttp import web

from hookd.signing import verify

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "add_arguments",
    "main",
    "secret_key",
    "serve_receiver",
    "signature_problems",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8788
SECRET_PREFIX = "whsec_"
SEPARATOR = "-" * 72
# hookd batches many items into one body, so allow far more than aiohttp's 1 MiB default.
MAX_BODY_BYTES = 64 * 1024 * 1024
# Statuses whose responses carry no body (RFC 9110); aiohttp must not be handed one.
_NO_BODY = frozenset({204, 304})
# How far webhook-timestamp may be from this clock: the Standard Webhooks libraries' default.
TOLERANCE_SECONDS = 300


def secret_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64 after an optional ``whsec_`` prefix."""
    # Looser than hookd.signing.secret_key on purpose: the secrets checked here may come from
    # other senders, while that one judges the secrets hookd itself signs with.
    raw = secret.removeprefix(SECRET_PREFIX).strip()
    try:
        # Padding is optional in the wild (the reference libraries add it back), so do too.
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except binascii.Error:
        raise ValueError("secret is not base64 (after an optional whsec_ prefix)") from None
    if not key:
        raise ValueError("secret is empty")
    return key


def signature_problems(keys: Sequence[bytes], headers: Mapping[str, str], body: bytes, now: float) -> list[str]:
    """Why a request's Standard Webhooks signature is not valid; empty when it is.

    Valid means ``webhook-signature`` holds a ``v1`` HMAC-SHA256 of id.timestamp.body under
    any key and ``webhook-timestamp`` is within ``TOLERANCE_SECONDS`` of ``now``, what a
    receiver using the reference libraries accepts. Both are checked, so a replayed old
    request with a wrong key says both. ``headers`` must look names up case-insensitively
    (aiohttp's do) or use lower case.
    """
    header = headers.get("webhook-signature")
    if not header:
        return ["no webhook-signature header"]
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    if not (msg_id and timestamp):
        return ["no webhook-id/webhook-timestamp header"]
    problems = []
    try:
        age = now - int(timestamp)
    except ValueError:
        problems.append("webhook-timestamp is not unix seconds")
    else:
        if age > TOLERANCE_SECONDS:
            problems.append(f"timestamp too old: {age:.0f} s ago, tolerance {TOLERANCE_SECONDS} s")
        elif age < -TOLERANCE_SECONDS:
            problems.append(f"timestamp too new: {-age:.0f} s ahead, tolerance {TOLERANCE_SECONDS} s")
    if not verify(keys, msg_id, timestamp, body, header):
        problems.append("no key matched")
    return problems


def _render_body(body: bytes) -> str:
    if not body:
        return "(no body)"
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:  # not JSON, or not UTF-8 (UnicodeDecodeError is a ValueError)
        return body.decode("utf-8", errors="replace")


class _Receiver:
    """The request handler: prints each request as one block and answers ``status``."""

    def __init__(self, keys: Sequence[bytes], status: int, out: TextIO) -> None:
        self._keys = list(keys)
        self._status = status
        self._out = out

    async def handle(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web  # already imported by serve_receiver: a dictionary look-up

        body = await request.read()
        lines = [SEPARATOR, f"{request.method} {request.raw_path}"]
        lines += [f"{name}: {value}" for name, value in request.headers.items()]
        lines += ["", _render_body(body)]
        if self._keys:
            problems = signature_problems(self._keys, request.headers, body, time.time())
            lines.append(f"signature: invalid ({'; '.join(problems)})" if problems else "signature: valid")
        # One write per request, with no await in between, so concurrent requests never
        # interleave their lines; flushed so a pipe reader sees them at once.
        print("\n".join(lines), file=self._out, flush=True)
        if self._status in _NO_BODY:
            return web.Response(status=self._status)
        # The body says what the status says, so nobody reads {"ok": true} on a 500.
        answer = {"ok": True} if 200 <= self._status < 300 else {"ok": False, "status": self._status}
        return web.json_response(answer, status=self._status)


async def serve_receiver(
    host: str,
    port: int,
    secrets: Sequence[str],
    status: int,
    out: TextIO,
    *,
    started: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set (forever when None), printing each request to ``out``.

    The first line printed is ``listening on http://HOST:PORT`` with the port actually
    bound, so port 0 works; ``started`` is set right after it. Raises ValueError for a
    secret that is not base64 and OSError when the address cannot be bound.
    """
    from aiohttp import web

    keys = [secret_key(s) for s in secrets]
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_route("*", "/{tail:.*}", _Receiver(keys, status, out).handle)
    # The caller owns signals (main() installs them); the printed block is the access log.
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        shown = f"[{host}]" if ":" in host else host
        print(f"listening on http://{shown}:{bound}", file=out, flush=True)
        if started is not None:
            started.set()
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()


def _secret_arg(value: str) -> str:
    # Reject a bad secret at parse time, with argparse's usage message.
    try:
        secret_key(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _status_arg(value: str) -> int:
    try:
        code = int(value)
    except ValueError:
        code = 0
    # 1xx cannot be a final answer; aiohttp would send a broken response.
    if not 200 <= code <= 599:
        raise argparse.ArgumentTypeError(f"{value!r} is not an HTTP status from 200 to 599")
    return code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``receive``'s options to ``parser``."""
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port; 0 picks a free one (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--secret",
        type=_secret_arg,
        nargs="+",
        action="extend",
        default=[],
        metavar="S",
        help="whsec_ secret to verify webhook-signature with; repeatable, any one matching is valid. "
        "An invalid signature is printed with the reason",
    )
    parser.add_argument(
        "--status",
        type=_status_arg,
        default=200,
        metavar="CODE",
        help='HTTP status to answer every request with, 200-599 (default 200); the body is {"ok": true} for 2xx, '
        'else {"ok": false, "status": CODE}',
    )


def main(args: argparse.Namespace) -> int:
    """Run the receiver until SIGINT or SIGTERM; 0 on a clean stop, 1 when it cannot listen."""
    import uvloop  # chosen here, at the entry point; library modules leave the loop alone

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Installed before the listener opens, so a signal sent once it is up always stops cleanly.
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve_receiver(args.host, args.port, args.secret, args.status, sys.stdout, stop=stop)

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run())
    except (OSError, ValueError) as exc:
        print(f"hookd receive: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="hookd receive", description="Print every request received.")
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
