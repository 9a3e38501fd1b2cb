"""The ``hookd`` command: run the daemon, check a config, and talk to a running one."""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import re
import secrets
import sys
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hookd.config import Config

DEFAULT_CONFIG = "/etc/hookd/hookd.toml"


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get("HOOKD_CONFIG") or DEFAULT_CONFIG)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT."""
    import uvloop

    from hookd import logs
    from hookd.app import App
    from hookd.config import Config, ConfigError
    from hookd.listener import ListenError

    writer = logs.configure(args.log_level)
    import structlog

    log = structlog.get_logger("hookd")
    path = _config_path(args)
    try:
        config = Config.load(path)
    except ConfigError as exc:
        log.error("config_invalid", path=str(path), errors=exc.problems)
        return 1
    _warn_readable(path, log)

    async def main() -> None:
        await App(config, path).serve()

    # The hot path allocates many short-lived containers (parsed events, headers), which
    # made the default generation-0 threshold run the collector ~10% of the time
    # (bench/ profiles). Freezing start-up objects and collecting less often removes it;
    # reference counting still frees almost everything at once.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    # The store's thread needs the GIL back after every SQLite call; while the loop is
    # busy it waits up to one switch interval for it. 1 ms instead of 5 ms shortens
    # group commits under load (and so the 202s waiting on them); bench/ measures it.
    sys.setswitchinterval(0.001)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    except Exception as exc:
        # What fails inside the App's TaskGroup (the listener) arrives wrapped in an ExceptionGroup.
        cause = _sole_cause(exc)
        if isinstance(cause, ListenError):
            log.error("start_failed", listen=cause.listen, error=cause.strerror)
        elif isinstance(cause, OSError):
            log.error("start_failed", error=str(cause))
        else:
            log.exception("crashed")
        return 1
    finally:
        writer.flush()
    return 0


def _sole_cause(exc: BaseException) -> BaseException:
    """The one exception inside (nested) exception groups, or ``exc`` when there are several."""
    inner = exc
    while isinstance(inner, BaseExceptionGroup):
        if len(inner.exceptions) != 1:
            return exc
        inner = inner.exceptions[0]
    return inner


def _warn_readable(path: Path, log: Any) -> None:
    """Warn when the file holds inline secrets and users other than its owner may read it."""
    from hookd.config import inline_secrets

    try:
        readable = path.stat().st_mode & 0o044
        found = inline_secrets(path)
    except (OSError, ValueError):
        return
    if readable and found:
        log.warning(
            "config_readable_by_others", path=str(path), keys=found,
            hint="chmod 600 the file, or use env:NAME / file:PATH references",
        )  # fmt: skip


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a config file: print a summary, or every problem, and exit 0 or 1.

    A secret reference that cannot be read here (a systemd credential, the service's
    environment) is a warning, read for real when the daemon starts; ``--strict`` makes it
    an error.
    """
    from hookd.config import Config, ConfigError

    path = _config_path(args)
    unread: list[str] = []
    try:
        config = Config.load(path, deferred=unread)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        _report_unread(path, unread, args.strict)
        return 1
    _report_unread(path, unread, args.strict)
    if unread and args.strict:
        return 1
    s = summary(config)
    print(f"{path}: OK")
    print(f"  listen      {s['listen']}")
    print(f"  storage     {s['storage']} ({s['durability']})")
    print(f"  webhooks    {len(s['webhooks'])}")
    for w in s["webhooks"]:
        state = "enabled" if w["enabled"] else "disabled"
        print(f"    {w['id']:<20} {state:<9} {w['batching']:<16} {w['url']}  on {', '.join(w['events'])}")
    return 0


def summary(config: Config) -> Mapping[str, Any]:
    """What ``hookd check`` prints about a valid file."""
    from hookd.redact import redact_url

    return {
        "listen": config.server.listen,
        "storage": str(config.storage.path),
        "durability": config.storage.durability,
        "webhooks": [
            {
                "id": w.id,
                "url": redact_url(w.url),
                "enabled": w.enabled,
                "events": [t.on for t in w.events],
                "batching": w.batching,
            }
            for w in config.webhooks
        ],
    }


def _report_unread(path: Path, unread: list[str], strict: bool) -> None:
    for line in unread:
        print(f"{path}: {line}" if strict else f"{path}: warning: {line}", file=sys.stderr)


def cmd_secret(args: argparse.Namespace) -> int:
    """Print a new Standard Webhooks signing secret."""
    print("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
    return 0


class ApiError(Exception):
    """The daemon answered with an error, or could not be reached."""


class Client:
    """A small synchronous client of the admin API."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Client:
        """From ``--url``/``--token``, else the config's ``listen`` and first token."""
        token = args.token or os.environ.get("HOOKD_TOKEN")
        if args.url:
            return cls(args.url, token)
        from hookd.config import ConfigError, load_server

        path = _config_path(args)
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
            token = server.tokens[0].get_secret_value()
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


def _webhook_deliveries(client: Client, webhook_id: str, state: str | None, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` of one webhook's deliveries, newest first, over as many pages as it takes."""
    rows: list[dict[str, Any]] = []
    q = {"state": state} if state else {}
    path = f"/v1/webhooks/{urllib.parse.quote(webhook_id, safe='')}/deliveries"
    while len(rows) < limit:
        q["limit"] = str(min(limit - len(rows), PAGE_LIMIT))
        page = client.call("GET", f"{path}?{urllib.parse.urlencode(q)}")
        rows.extend(page["deliveries"])
        if not page.get("next"):
            break
        q["before"] = page["next"]
    return rows


def newest(rows: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The ``limit`` newest of deliveries listed per webhook, newest first.

    Deliveries made by one ingest request share ``created_at`` to the millisecond; the
    sequence number in the id (the store's order of creation) breaks the tie.
    """
    from hookd.models import delivery_seq

    return sorted(rows, key=lambda r: (r["created_at"], delivery_seq(r["id"]) or 0), reverse=True)[:limit]


def cmd_deliveries(args: argparse.Namespace) -> int:
    """List the newest deliveries of all webhooks (or one), newest first."""
    client = Client.from_args(args)
    if args.webhook:
        webhooks = [args.webhook]
    else:
        webhooks = [w["id"] for w in client.call("GET", "/v1/webhooks")["webhooks"]]
    # Each webhook's newest ``limit`` are enough to hold the newest ``limit`` overall.
    rows = newest([r for wid in webhooks for r in _webhook_deliveries(client, wid, args.state, args.limit)], args.limit)
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


def cmd_receive(args: argparse.Namespace) -> int:
    """Run the local test receiver."""
    from hookd.receive import main

    return main(args)


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least 1")
    return n


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="hookd", description="Self-hosted outbound-webhook engine.")
    from hookd import __version__

    p.add_argument("--version", action="version", version=f"hookd {__version__}", help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True)

    def verb(name: str, help: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=description)

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("-c", "--config", help=f"config file (default $HOOKD_CONFIG or {DEFAULT_CONFIG})")
        return sp

    def with_client(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        with_config(sp)
        sp.add_argument("--url", help="the daemon's base URL (needed when listen uses port 0)")
        sp.add_argument("--token", help="bearer token (default $HOOKD_TOKEN or the config's first)")
        return sp

    run = with_config(verb(
        "run", "run the daemon",
        "Run the daemon in the foreground until SIGTERM or SIGINT; SIGHUP reloads the config. It logs to "
        "stdout: JSON lines when that is not a terminal, each starting with its syslog priority under journald.",
    ))  # fmt: skip
    run.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"],
        help="log this level and above (default info); debug adds routing, batch timer, spool and retry lines",
    )  # fmt: skip
    run.set_defaults(func=cmd_run)
    check = with_config(verb(
        "check", "validate a config file",
        "Validate a config file without starting anything: print a summary and exit 0, or every problem and exit 1. "
        "An env:/file: secret that cannot be read here is a warning (it is read when the daemon starts).",
    ))  # fmt: skip
    check.add_argument(
        "--strict", action="store_true", help="an env:/file: secret that cannot be read here is an error, not a warning"
    )
    check.set_defaults(func=cmd_check)
    send = with_client(verb(
        "send", "send events from a JSON file (or - for stdin)",
        "POST events to the running daemon: one event object or an array of them. Prints the daemon's answer; "
        "when it refuses them, prints each problem as [index] path: message and exits 1.",
    ))  # fmt: skip
    send.add_argument("file", help="a JSON file of events, or - to read stdin")
    send.set_defaults(func=cmd_send)
    dl = with_client(verb(
        "deliveries", "list deliveries, newest first",
        "List the newest deliveries of every webhook together (or of one), newest first, as a table or as JSON.",
    ))  # fmt: skip
    dl.add_argument("--webhook", metavar="ID", help="only this webhook's deliveries")
    dl.add_argument(
        "--state", choices=["pending", "delivering", "retrying", "succeeded", "failed"],
        help="only deliveries in this state",
    )  # fmt: skip
    dl.add_argument("--limit", type=_positive, default=50, metavar="N", help="list the N newest (default 50)")
    dl.add_argument("--json", action="store_true", help="print the deliveries as a JSON array")
    dl.set_defaults(func=cmd_deliveries)
    show = with_client(verb(
        "show", "show one delivery",
        "Print one delivery: its fields, its attempts, and the last request and response with their headers; "
        "bodies are shown as indented JSON when they are JSON, else as text.",
    ))  # fmt: skip
    show.add_argument("id", help="the delivery's id (dlv_...)")
    show.add_argument("--json", action="store_true", help="print the API's JSON record as it is")
    show.set_defaults(func=cmd_show)
    resend = with_client(verb(
        "resend", "resend a delivery",
        "Send a delivery again: a new delivery with the same body and webhook-id. Prints the new delivery's id.",
    ))  # fmt: skip
    resend.add_argument("id", help="the id of the delivery to send again")
    resend.set_defaults(func=cmd_resend)
    from hookd.receive import add_arguments

    receive = verb(
        "receive", "a local receiver that prints what it gets",
        "Listen for HTTP requests and print each one: method, path, headers and body (indented when JSON). "
        "Given --secret, also check its Standard Webhooks signature and say why one is invalid.",
    )  # fmt: skip
    add_arguments(receive)
    receive.set_defaults(func=cmd_receive)
    verb(
        "secret", "print a new whsec_ signing secret",
        "Print a new random Standard Webhooks signing secret (whsec_ and 32 bytes in base64) for a webhook.",
    ).set_defaults(func=cmd_secret)  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hookd`` console script."""
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ApiError as exc:
        print(f"hookd: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"hookd: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code
