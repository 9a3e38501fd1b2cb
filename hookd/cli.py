"""The ``hookd`` command: run the daemon, check a config, and talk to a running one."""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
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
    except OSError as exc:
        log.error("start_failed", error=str(exc))
        return 1
    except Exception:
        log.exception("crashed")
        return 1
    finally:
        writer.flush()
    return 0


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
                    msg += f"\n  {d}"
            except (ValueError, KeyError, TypeError):
                msg = f"{exc.code} {exc.reason}"
            raise ApiError(msg) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(f"cannot reach hookd at {self.url}: {reason}") from None


def cmd_send(args: argparse.Namespace) -> int:
    """POST events from a file (or stdin) to the running daemon."""
    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    answer = Client.from_args(args).call("POST", "/v1/events", raw)
    print(json.dumps(answer, indent=2))
    return 0


def cmd_deliveries(args: argparse.Namespace) -> int:
    """List deliveries, newest first."""
    client = Client.from_args(args)
    if args.webhook:
        webhooks = [args.webhook]
    else:
        webhooks = [w["id"] for w in client.call("GET", "/v1/webhooks")["webhooks"]]
    rows = []
    for wid in webhooks:
        q = {"limit": str(args.limit)}
        if args.state:
            q["state"] = args.state
        page = client.call("GET", f"/v1/webhooks/{urllib.parse.quote(wid)}/deliveries?{urllib.parse.urlencode(q)}")
        rows.extend(page["deliveries"])
    rows.sort(key=lambda r: r["created_at"], reverse=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'ID':<36} {'WEBHOOK':<16} {'STATE':<10} {'CODE':>4} {'TRIES':>5} {'ITEMS':>5}  {'CREATED':<24} EVENTS")
    for r in rows[: args.limit]:
        code = r["status_code"] if r["status_code"] is not None else (r["error"] or "-")
        print(
            f"{r['id']:<36} {r['webhook_id']:<16} {r['state']:<10} {code!s:>4} {r['attempts']:>5}"
            f" {r['items']:>5}  {r['created_at']:<24} {','.join(r['events'])}"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Print one delivery's whole record."""
    record = Client.from_args(args).call("GET", f"/v1/deliveries/{urllib.parse.quote(args.id)}")
    print(json.dumps(record, indent=2))
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


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="hookd", description="Self-hosted outbound-webhook engine.")
    from hookd import __version__

    p.add_argument("--version", action="version", version=f"hookd {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("-c", "--config", help=f"config file (default $HOOKD_CONFIG or {DEFAULT_CONFIG})")
        return sp

    def with_client(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        with_config(sp)
        sp.add_argument("--url", help="the daemon's base URL (needed when listen uses port 0)")
        sp.add_argument("--token", help="bearer token (default $HOOKD_TOKEN or the config's first)")
        return sp

    run = with_config(sub.add_parser("run", help="run the daemon"))
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=cmd_run)
    check = with_config(sub.add_parser("check", help="validate a config file"))
    check.add_argument(
        "--strict", action="store_true", help="an env:/file: secret that cannot be read here is an error, not a warning"
    )
    check.set_defaults(func=cmd_check)
    send = with_client(sub.add_parser("send", help="send events from a JSON file (or - for stdin)"))
    send.add_argument("file")
    send.set_defaults(func=cmd_send)
    dl = with_client(sub.add_parser("deliveries", help="list deliveries, newest first"))
    dl.add_argument("--webhook")
    dl.add_argument("--state", choices=["pending", "delivering", "retrying", "succeeded", "failed"])
    dl.add_argument("--limit", type=int, default=50)
    dl.add_argument("--json", action="store_true", help="print the raw JSON")
    dl.set_defaults(func=cmd_deliveries)
    show = with_client(sub.add_parser("show", help="show one delivery"))
    show.add_argument("id")
    show.set_defaults(func=cmd_show)
    resend = with_client(sub.add_parser("resend", help="resend a delivery"))
    resend.add_argument("id")
    resend.set_defaults(func=cmd_resend)
    from hookd.receive import add_arguments

    receive = sub.add_parser("receive", help="a local receiver that prints what it gets")
    add_arguments(receive)
    receive.set_defaults(func=cmd_receive)
    sub.add_parser("secret", help="print a new whsec_ signing secret").set_defaults(func=cmd_secret)
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
