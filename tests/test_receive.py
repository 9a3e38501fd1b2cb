"""``hookd receive``: a real listener on port 0, fed real requests signed by a Standard Webhooks library."""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from standardwebhooks.webhooks import Webhook

from hookd.receive import add_arguments, secret_key, serve_receiver, signature_problems

SECRET = "whsec_" + base64.b64encode(b"receive-test-secret-0123456789ab").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another-secret-for-key-rotation!").decode()
PAYLOAD = {"id": "3f1c", "event": "ticket.created", "object": {"id": 4242, "summary": "Printer on fire"}}
REPO = Path(__file__).resolve().parents[1]


def signed_headers(
    body: str, *secrets: str, msg_id: str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", at: datetime | None = None
) -> dict[str, str]:
    """Standard Webhooks headers for ``body``, signed by the reference library with each secret (now, or ``at``)."""
    now = at or datetime.now(UTC)
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(Webhook(s).sign(msg_id, now, body) for s in secrets),
    }


@asynccontextmanager
async def running(secrets: Sequence[str] = (), status: int = 200) -> AsyncIterator[tuple[str, io.StringIO]]:
    """Run serve_receiver in-process on 127.0.0.1 port 0; yield its base URL and its output."""
    out = io.StringIO()
    started, stop = asyncio.Event(), asyncio.Event()
    server = asyncio.create_task(serve_receiver("127.0.0.1", 0, secrets, status, out, started=started, stop=stop))
    ready = asyncio.create_task(started.wait())
    try:
        await asyncio.wait({server, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if server.done():
            server.result()  # a start-up failure: raise it here, not as a hang
        assert started.is_set(), "receiver did not start"
        first = out.getvalue().splitlines()[0]
        assert first.startswith("listening on http://127.0.0.1:")
        yield first.removeprefix("listening on "), out
    finally:
        ready.cancel()
        stop.set()
        await server


async def post(url: str, body: str | bytes, headers: dict[str, str], method: str = "POST") -> tuple[int, Any]:
    """Send one request; return the status and the decoded JSON answer."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


async def test_signed_request_is_printed_and_valid() -> None:
    """A correctly signed POST prints method, path, query, headers, indented JSON and `signature: valid`."""
    body = json.dumps(PAYLOAD, separators=(",", ":"))
    headers = signed_headers(body, SECRET)
    async with running([SECRET]) as (url, out):
        code, answer = await post(f"{url}/hooks/servicedesk?source=test&n=1", body, headers)
    text = out.getvalue()
    assert (code, answer) == (200, {"ok": True})
    assert "\nPOST /hooks/servicedesk?source=test&n=1\n" in text
    assert f"webhook-id: {headers['webhook-id']}" in text
    assert f"webhook-signature: {headers['webhook-signature']}" in text
    assert "Content-Type: application/json" in text
    assert json.dumps(PAYLOAD, indent=2) in text
    assert text.rstrip().endswith("signature: valid")


async def test_tampered_body_is_invalid() -> None:
    """A body changed after signing prints `signature: invalid` because no key matched."""
    body = json.dumps(PAYLOAD)
    headers = signed_headers(body, SECRET)
    async with running([SECRET]) as (url, out):
        code, _ = await post(f"{url}/hook", body.replace("4242", "4243"), headers)
    assert code == 200
    assert "signature: invalid (no key matched)" in out.getvalue().splitlines()
    assert "signature: valid" not in out.getvalue()


async def test_any_matching_secret_or_signature_is_valid() -> None:
    """With several secrets and several signatures, one match makes the request valid (key rotation)."""
    body = json.dumps(PAYLOAD)
    unknown = "whsec_" + base64.b64encode(b"a secret the receiver does not know").decode()
    async with running([SECRET, OTHER_SECRET]) as (url, out):
        await post(f"{url}/a", body, signed_headers(body, unknown, OTHER_SECRET))
        await post(f"{url}/b", body, signed_headers(body, unknown))
    assert [line for line in out.getvalue().splitlines() if line.startswith("signature:")] == [
        "signature: valid",
        "signature: invalid (no key matched)",
    ]


async def test_missing_signature_headers_are_invalid() -> None:
    """A request without the webhook-* headers is reported invalid when a secret is set, saying which is missing."""
    body = json.dumps(PAYLOAD)
    headers = signed_headers(body, SECRET)
    async with running([SECRET]) as (url, out):
        await post(f"{url}/none", body, {"Content-Type": "application/json"})
        await post(f"{url}/no-id", body, {k: v for k, v in headers.items() if k != "webhook-id"})
        await post(f"{url}/no-ts", body, {k: v for k, v in headers.items() if k != "webhook-timestamp"})
    assert [line for line in out.getvalue().splitlines() if line.startswith("signature:")] == [
        "signature: invalid (no webhook-signature header)",
        "signature: invalid (no webhook-id/webhook-timestamp header)",
        "signature: invalid (no webhook-id/webhook-timestamp header)",
    ]


async def test_stale_or_future_timestamp_is_invalid_and_says_so() -> None:
    """A correctly signed request whose timestamp is over five minutes off this clock is invalid, saying how far;
    a bad signature on top is reported too."""
    body = json.dumps(PAYLOAD)
    old = datetime.now(UTC) - timedelta(minutes=10)
    new = datetime.now(UTC) + timedelta(minutes=10)
    async with running([SECRET]) as (url, out):
        await post(f"{url}/old", body, signed_headers(body, SECRET, at=old))
        await post(f"{url}/new", body, signed_headers(body, SECRET, at=new))
        await post(f"{url}/both", body, signed_headers(body, OTHER_SECRET, at=old))
    verdicts = [line for line in out.getvalue().splitlines() if line.startswith("signature:")]
    assert len(verdicts) == 3
    assert verdicts[0].startswith("signature: invalid (timestamp too old: 60")
    assert verdicts[0].endswith("s ago, tolerance 300 s)")
    assert verdicts[1].startswith("signature: invalid (timestamp too new: ")
    assert verdicts[1].endswith("s ahead, tolerance 300 s)")
    assert verdicts[2].startswith("signature: invalid (timestamp too old: ")
    assert verdicts[2].endswith("; no key matched)")


async def test_no_signature_line_without_secret() -> None:
    """Without --secret nothing is said about signatures."""
    body = json.dumps(PAYLOAD)
    async with running() as (url, out):
        await post(f"{url}/hook", body, signed_headers(body, SECRET))
    assert not [line for line in out.getvalue().splitlines() if line.startswith("signature:")]
    assert json.dumps(PAYLOAD, indent=2) in out.getvalue()


async def test_answers_the_configured_status() -> None:
    """--status 500 answers every request with 500 and a body saying it is not ok; a 2xx status answers ok."""
    async with running(status=500) as (url, _):
        assert await post(f"{url}/hook", "{}", {}) == (500, {"ok": False, "status": 500})
    async with (
        running(status=302) as (url, _),
        aiohttp.ClientSession() as session,
        session.post(f"{url}/h", allow_redirects=False) as resp,
    ):
        assert (resp.status, await resp.json(content_type=None)) == (302, {"ok": False, "status": 302})
    async with running(status=202) as (url, _):
        assert await post(f"{url}/hook", "{}", {}) == (202, {"ok": True})


async def test_any_method_any_path_and_text_body() -> None:
    """Any method on any path is accepted; a body that is not JSON is printed as text."""
    async with running() as (url, out):
        assert (await post(f"{url}/deep/er/path", "plain words, not JSON", {}, method="PUT"))[0] == 200
        assert (await post(f"{url}/", b"", {}, method="DELETE"))[0] == 200
    text = out.getvalue()
    assert "\nPUT /deep/er/path\n" in text
    assert "\nplain words, not JSON\n" in text
    assert "\nDELETE /\n" in text


def test_signature_problems_follow_standard_webhooks() -> None:
    """The pure check accepts the reference library's signature over the exact bytes within the time tolerance,
    and names what is wrong with anything else."""
    body = '{"a": 1}'
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    now = at.timestamp()
    headers = {k.lower(): v for k, v in signed_headers(body, SECRET, at=at).items()}
    key = secret_key(SECRET)
    assert signature_problems([key], headers, body.encode(), now) == []
    assert signature_problems([key], headers, body.encode(), now + 300) == []
    assert signature_problems([key], headers, body.encode() + b" ", now) == ["no key matched"]
    assert signature_problems([secret_key(OTHER_SECRET)], headers, body.encode(), now) == ["no key matched"]
    assert signature_problems([key], {**headers, "webhook-signature": "v2,garbage v1,!!!"}, body.encode(), now) == [
        "no key matched"
    ]
    assert signature_problems([key], headers, body.encode(), now + 301) == [
        "timestamp too old: 301 s ago, tolerance 300 s"
    ]
    assert signature_problems([key], headers, body.encode(), now - 400) == [
        "timestamp too new: 400 s ahead, tolerance 300 s"
    ]
    assert signature_problems([key], {**headers, "webhook-timestamp": "soon"}, body.encode(), now) == [
        "webhook-timestamp is not unix seconds",
        "no key matched",
    ]
    assert signature_problems([key], {k: v for k, v in headers.items() if k != "webhook-id"}, body.encode(), now) == [
        "no webhook-id/webhook-timestamp header"
    ]
    assert signature_problems([key], {k: v for k, v in headers.items() if k != "webhook-signature"}, b"", now) == [
        "no webhook-signature header"
    ]


def test_secret_key_decoding() -> None:
    """Secrets decode with or without the whsec_ prefix and padding; non-base64 or empty ones are refused."""
    raw = b"sixteen byte key"
    unpadded = base64.b64encode(raw).decode().rstrip("=")
    assert secret_key("whsec_" + base64.b64encode(raw).decode()) == raw
    assert secret_key(unpadded) == raw
    for bad in ("whsec_not*base64", "whsec_", ""):
        with pytest.raises(ValueError, match="secret"):
            secret_key(bad)


def test_arguments() -> None:
    """add_arguments gives the documented defaults, collects secrets, and refuses bad values."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    assert (args.host, args.port, args.secret, args.status) == ("127.0.0.1", 8788, [], 200)
    args = parser.parse_args(["--secret", SECRET, OTHER_SECRET, "--secret", SECRET, "--status", "503"])
    assert (args.secret, args.status) == ([SECRET, OTHER_SECRET, SECRET], 503)
    for bad in (["--status", "99"], ["--status", "teapot"], ["--secret", "whsec_*"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


@pytest.mark.parametrize("command", [["-m", "hookd.receive"], ["-m", "hookd", "receive"]], ids=["module", "cli"])
async def test_real_command(command: list[str]) -> None:
    """The command, run as a process, prints the port, verifies a signed POST and exits 0 on SIGTERM."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *command,
        "--port",
        "0",
        "--secret",
        SECRET,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            first = (await proc.stdout.readline()).decode()
            assert first.startswith("listening on http://127.0.0.1:"), first
            url = first.split()[-1]
            body = json.dumps(PAYLOAD)
            msg_id = f"msg_{uuid.uuid4().hex}"
            assert (await post(f"{url}/hook", body, signed_headers(body, SECRET, msg_id=msg_id)))[0] == 200
            seen: list[str] = []
            while "signature: valid" not in seen:
                line = await proc.stdout.readline()
                assert line, f"output ended early: {seen}"
                seen.append(line.decode().rstrip("\n"))
            assert f"webhook-id: {msg_id}" in seen
            proc.send_signal(signal.SIGTERM)
            _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
    finally:
        if proc.returncode is None:
            with suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
