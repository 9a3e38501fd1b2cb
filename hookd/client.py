"""The client verbs of ``hookd``: send, deliveries, show, resend, webhooks, recover, batches and
flush, over the admin API.

They need only the file's ``[server]`` table (address and token). This module imports
only the standard library at the top, so loading it costs ``hookd --version`` nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.parse
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "/etc/hookd/hookd.toml"


def config_path(args: argparse.Namespace) -> Path:
    """The config file a verb uses: ``-c``, else ``$HOOKD_CONFIG``, else the default."""
    return Path(args.config or os.environ.get("HOOKD_CONFIG") or DEFAULT_CONFIG)


class ApiError(Exception):
    """The daemon answered with an error, or could not be reached."""


class Client:
    """A small synchronous client of the admin API."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Client:
        """From ``--url``/``--token``, else the config's ``listen`` and first token (whatever its scopes)."""
        token = args.token or os.environ.get("HOOKD_TOKEN")
        if args.url:
            return cls(args.url, token)
        from hookd.config import ConfigError, load_server

        path = config_path(args)
        try:
            # Only [server]: the webhooks' secrets may be readable by the service alone,
            # and the tokens are not needed when --token is given.
            server = load_server(path, deferred=[] if token else None)
        except ConfigError as exc:
            raise ApiError(f"{exc}\n(or give --url)") from None
        if server.port == 0:
            raise ApiError(f"{path}: listen uses port 0; give the daemon's address with --url")
        host = server.host if server.host not in ("0.0.0.0", "::") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        if token is None and server.tokens:
            token = server.tokens[0].token.get_secret_value()  # a plain string or a table's token
        return cls(f"http://{host}:{server.port}", token)

    def call(self, method: str, path: str, body: bytes | None = None) -> Any:
        """One request; the decoded JSON answer, or ApiError."""
        # Imported here: urllib.request pulls in http.client and ssl, which the verbs that
        # never talk to the daemon (--version, secret, check) should not wait for.
        import urllib.error
        import urllib.request

        req = urllib.request.Request(self.url + path, data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                err = json.loads(exc.read())["error"]
                msg = f"{exc.code} {err['code']}: {err['message']}"
                for d in err.get("details") or []:
                    msg += f"\n  {detail_line(d)}"
            except (ValueError, KeyError, TypeError):
                msg = f"{exc.code} {exc.reason}"
            raise ApiError(msg) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(f"cannot reach hookd at {self.url}: {reason}") from None


def detail_line(detail: Any) -> str:
    """One entry of an error's ``details`` as a line: ``[3] object: message``."""
    if not isinstance(detail, dict) or "message" not in detail:
        return json.dumps(detail, ensure_ascii=False)
    where = f"[{detail['index']}] " if detail.get("index") is not None else ""
    path = f"{detail['path']}: " if detail.get("path") else ""
    return f"{where}{path}{detail['message']}"


def cmd_send(args: argparse.Namespace) -> int:
    """POST events from a file (or stdin) to the running daemon."""
    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    answer = Client.from_args(args).call("POST", "/v1/events", raw)
    print(json.dumps(answer, indent=2))
    return 0


# The API's largest page; longer listings follow its ``next`` cursor.
PAGE_LIMIT = 500


def deliveries_query(args: argparse.Namespace) -> dict[str, str]:
    """The filters of ``hookd deliveries`` as GET /v1/deliveries query parameters."""
    from hookd.timespec import format_time

    q = {
        name: value
        for name, value in (
            ("webhook", args.webhook), ("state", args.state), ("event", args.event), ("object_id", args.object_id),
            ("event_id", args.event_id), ("item_id", args.item_id),
        )
        if value is not None
    }  # fmt: skip
    for name in ("since", "until"):
        if getattr(args, name) is not None:  # unix seconds: the parser read RFC 3339 or a duration back from now
            q[name] = format_time(getattr(args, name))
    return q


def cmd_deliveries(args: argparse.Namespace) -> int:
    """List the newest deliveries of all webhooks matching the filters, newest first."""
    client = Client.from_args(args)
    q = deliveries_query(args)
    rows: list[dict[str, Any]] = []
    while len(rows) < args.limit:  # longer listings follow the ``next`` cursor
        q["limit"] = str(min(args.limit - len(rows), PAGE_LIMIT))
        page = client.call("GET", f"/v1/deliveries?{urllib.parse.urlencode(q)}")
        rows.extend(page["deliveries"])
        if not page.get("next"):
            break
        q["before"] = page["next"]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'ID':<36} {'WEBHOOK':<16} {'STATE':<10} {'CODE':>4} {'TRIES':>5} {'ITEMS':>5}  {'CREATED':<24} EVENTS")
    for r in rows:
        code = r["status_code"] if r["status_code"] is not None else (r["error"] or "-")
        print(
            f"{r['id']:<36} {r['webhook_id']:<16} {r['state']:<10} {code!s:>4} {r['attempts']:>5}"
            f" {r['items']:>5}  {r['created_at']:<24} {','.join(r['events'])}"
        )
    return 0


# Control characters other than newline and tab, which a receiver's body could use to
# drive the operator's terminal (colours, titles, cursor moves).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with CRLF as LF and every other control character escaped as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text.replace("\r\n", "\n"))


def pretty_body(body: str) -> str:
    """A body as indented JSON when it parses as JSON, else as it is."""
    if not body:
        return "(no body)"
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


def render_delivery(rec: dict[str, Any]) -> str:
    """A delivery record as the API gives it, laid out for reading: fields, attempts, request, response."""
    fields = [
        ("delivery", rec["id"]), ("webhook", rec["webhook_id"]), ("state", rec["state"]),
        ("created", rec["created_at"]), ("finished", rec.get("finished_at")),
        ("next attempt", rec.get("next_attempt_at")), ("message id", rec.get("message_id")),
        ("events", ", ".join(rec.get("events") or [])), ("triggers", ", ".join(rec.get("triggers") or [])),
        ("items", rec.get("items")), ("item ids", ", ".join(rec.get("item_ids") or [])),
        ("resend of", rec.get("resend_of")),
    ]  # fmt: skip
    lines = [f"{name:<13}{value}" for name, value in fields if value not in (None, "")]
    lines += ["", "attempts"]
    for a in rec.get("attempts") or []:
        result = a["status_code"] if a["status_code"] is not None else a.get("error") or "-"
        duration = f"{a['duration_ms']:.1f} ms" if a.get("duration_ms") is not None else "-"
        lines.append(f"  {a['n']:>3}  {a['started_at']}  {duration:>10}  {result!s:<8} {a.get('trigger', '')}")
        if a.get("message"):  # why this attempt got no response
            lines.append(f"       {a['message']}")
    if not rec.get("attempts"):
        lines.append("  none yet")
    req, resp = rec.get("request"), rec.get("response")
    if rec.get("lightweight_logs"):
        lines += ["", "lightweight logs: no request or response was kept"]
    if req:
        lines += ["", "request", f"{req['method']} {req['url']}"]
        lines += [f"{k}: {v}" for k, v in (req.get("headers") or {}).items()]
        lines += ["", pretty_body(req.get("body") or "")]
    if resp:
        lines += ["", "response"]
        if resp.get("status") is None:
            lines.append(f"no response: {resp.get('error')}: {resp.get('message')}")
        else:
            lines.append(str(resp["status"]))
            lines += [f"{k}: {v}" for k, v in (resp.get("headers") or {}).items()]
            lines += ["", pretty_body(resp.get("body") or "")]
            if resp.get("truncated"):
                lines.append("(truncated at delivery.max_response_bytes)")
    return printable("\n".join(lines))


def cmd_show(args: argparse.Namespace) -> int:
    """Print one delivery: readably, or as the API's JSON record with ``--json``."""
    record = Client.from_args(args).call("GET", f"/v1/deliveries/{urllib.parse.quote(args.id, safe='')}")
    print(json.dumps(record, indent=2) if args.json else render_delivery(record))
    return 0


def cmd_resend(args: argparse.Namespace) -> int:
    """Resend a delivery: a new delivery with the same body and webhook-id."""
    answer = Client.from_args(args).call("POST", f"/v1/deliveries/{urllib.parse.quote(args.id)}/resend", b"")
    print(answer["delivery_id"])
    return 0


def webhook_document(path: str) -> bytes:
    """A webhook file as the API's JSON body: JSON as it is, or TOML with the webhook's
    keys at the top level and its triggers as ``[[events]]`` (``-`` reads stdin)."""
    raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    if path.endswith(".toml"):
        import tomllib

        try:
            doc = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ApiError(f"{path}: invalid TOML: {exc}") from None
        try:
            return json.dumps(doc).encode()
        except TypeError as exc:  # a TOML date or time: no JSON form
            raise ApiError(f"{path}: {exc}") from None
    return raw


def cmd_webhooks_create(args: argparse.Namespace) -> int:
    """Create a webhook through the API from a JSON or TOML file; print its view (with a
    generated secret, the one time it is shown)."""
    answer = Client.from_args(args).call("POST", "/v1/webhooks", webhook_document(args.file))
    print(json.dumps(answer, indent=2))
    return 0


def cmd_webhooks_delete(args: argparse.Namespace) -> int:
    """Delete a webhook made through the API."""
    Client.from_args(args).call("DELETE", f"/v1/webhooks/{urllib.parse.quote(args.id, safe='')}")
    print(f"deleted {args.id}")
    return 0


def cmd_webhooks_test(args: argparse.Namespace) -> int:
    """Send a hookd.ping delivery to a webhook now; print the delivery's id."""
    answer = Client.from_args(args).call("POST", f"/v1/webhooks/{urllib.parse.quote(args.id, safe='')}/test", b"")
    print(answer["delivery_id"])
    return 0


def _webhook_path(webhook_id: str, tail: str) -> str:
    return f"/v1/webhooks/{urllib.parse.quote(webhook_id, safe='')}/{tail}"


def recover_body(since: str, until: str | None, dry_run: bool, now: float) -> bytes:
    """The body of a recovery: each time RFC 3339, or a duration back from ``now`` turned into one."""
    from hookd.timespec import format_time, parse_since

    try:
        doc: dict[str, Any] = {"since": format_time(parse_since(since, now))}
        if until is not None:
            doc["until"] = format_time(parse_since(until, now))
    except ValueError as exc:
        raise ApiError(str(exc)) from None
    except (OverflowError, OSError):  # a duration reaching before year 1
        raise ApiError("that time is out of range") from None
    if dry_run:
        doc["dry_run"] = True
    return json.dumps(doc).encode()


def cmd_recover(args: argparse.Namespace) -> int:
    """Resend a webhook's failed deliveries of a time window (or count them with --dry-run)."""
    import time

    body = recover_body(args.since, args.until, args.dry_run, time.time())
    client = Client.from_args(args)
    answer = client.call("POST", _webhook_path(args.id, "recover"), body)
    if args.json:
        print(json.dumps(answer, indent=2))
    elif args.dry_run:
        print(f"would resend {answer['would_resend']}, skip {answer['skipped']} (lightweight logs: no body kept)")
    else:
        print(f"resent {answer['resent']}, skipped {answer['skipped']} (lightweight logs: no body kept)")
    return 0


def cmd_batches(args: argparse.Namespace) -> int:
    """List a webhook's open batches, the one due first first."""
    batches = Client.from_args(args).call("GET", _webhook_path(args.id, "batches"))["batches"]
    if args.json:
        print(json.dumps(batches, indent=2))
        return 0
    if not batches:
        print(f"no open batches for {args.id}")
        return 0
    print(f"{'KEY':<32} {'ITEMS':>6}  {'OPENED':<24} {'DEADLINE':<24} SPOOLED")
    for b in batches:
        key = printable(b["key"])
        print(f"{key:<32} {b['items']:>6}  {b['opened_at']:<24} {b['deadline']:<24} {'yes' if b['spooled'] else 'no'}")
    return 0


def cmd_flush(args: argparse.Namespace) -> int:
    """Send every open batch of a webhook now."""
    answer = Client.from_args(args).call("POST", _webhook_path(args.id, "batches/flush"), b"")
    n = answer["deliveries"]
    print(f"flushed {n} batch{'es' if n != 1 else ''} of {args.id}")
    return 0
