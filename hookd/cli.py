"""The ``hookd`` command: run the daemon, check a config, and talk to a running one."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hookd.client import (
    DEFAULT_CONFIG,
    ApiError,
    cmd_batches,
    cmd_deliveries,
    cmd_flush,
    cmd_recover,
    cmd_resend,
    cmd_send,
    cmd_show,
    cmd_webhooks_create,
    cmd_webhooks_delete,
    cmd_webhooks_test,
    config_path,
)

if TYPE_CHECKING:
    from hookd.config import Config


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
    path = config_path(args)
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
    from hookd.config import SCOPES, Config, ConfigError

    path = config_path(args)
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
    print(f"  tokens      {len(s['tokens']) or 'none (loopback only: every caller may do everything)'}")
    for i, scopes in enumerate(s["tokens"]):
        print(f"    tokens[{i}]  {', '.join(scopes)}{' (every scope)' if len(scopes) == len(SCOPES) else ''}")
    if s["event_types"]:
        strict = " (strict: ingest refuses other types)" if s["strict_event_types"] else ""
        print(f"  event types {len(s['event_types'])}{strict}")
        for t in s["event_types"]:
            print(f"    {t['name']:<28} {'schema' if t['schema'] else 'no schema':<9}  {t['description']}".rstrip())
    print(f"  webhooks    {len(s['webhooks'])}")
    for w in s["webhooks"]:
        state = "enabled" if w["enabled"] else "disabled"
        # A pre-configured type never batches: its column says which service it posts to.
        how = w["batching"] if w["type"] == "standard" else w["type"]
        print(f"    {w['id']:<20} {state:<9} {how:<16} {w['url']}  on {', '.join(w['events'])}")
    return 0


def summary(config: Config) -> Mapping[str, Any]:
    """What ``hookd check`` prints about a valid file."""
    return {
        "listen": config.server.listen,
        "storage": str(config.storage.path),
        "durability": config.storage.durability,
        # Each token's scopes only: a token itself is never printed.
        "tokens": [list(t.scopes) for t in config.server.tokens],
        "strict_event_types": config.server.strict_event_types,
        "event_types": [
            {"name": t.name, "description": t.description, "schema": t.schema_ is not None} for t in config.event_types
        ],
        "webhooks": [
            {
                "id": w.id,
                "url": w.shown_url,
                "enabled": w.enabled,
                "events": [t.on for t in w.events],
                "batching": w.batching,
                "type": w.type,
            }
            for w in config.webhooks
        ],
    }


def _report_unread(path: Path, unread: list[str], strict: bool) -> None:
    for line in unread:
        print(f"{path}: {line}" if strict else f"{path}: warning: {line}", file=sys.stderr)


def cmd_secret(args: argparse.Namespace) -> int:
    """Print a new Standard Webhooks signing secret."""
    from hookd.signing import new_secret

    print(new_secret())
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


def _when(value: str) -> float:
    """A ``--since``/``--until`` time as unix seconds: RFC 3339, or a duration back from now."""
    import time

    from hookd.timespec import parse_since

    try:
        return parse_since(value, time.time())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: {exc}") from None


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
        "deliveries", "list and search deliveries, newest first",
        "List the newest deliveries of every webhook together, newest first, as a table or as JSON; the filters "
        "combine (GET /v1/deliveries). A time T is RFC 3339 (2026-11-29T07:00:00Z) or a duration back from now: "
        "90s, 15m, 2h, 7d, 1w.",
    ))  # fmt: skip
    dl.add_argument("--webhook", metavar="ID", help="only this webhook's deliveries")
    dl.add_argument(
        "--state", choices=["pending", "delivering", "retrying", "succeeded", "failed"],
        help="only deliveries in this state",
    )  # fmt: skip
    dl.add_argument(
        "--object-id", metavar="X", help='only deliveries carrying this object (4242 finds 4242 and "4242")'
    )
    dl.add_argument("--event", metavar="E", help="only deliveries carrying an event of this type")
    dl.add_argument("--event-id", metavar="ID", help="only deliveries carrying this occurrence")
    dl.add_argument("--item-id", metavar="ID", help="only the deliveries carrying this item")
    dl.add_argument("--since", metavar="T", type=_when, help="only deliveries created at or after T")
    dl.add_argument("--until", metavar="T", type=_when, help="only deliveries created before T")
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
    when = "RFC 3339 (2026-11-29T07:00:00Z) or a duration back from now (90s, 15m, 2h, 7d)"
    recover = with_client(verb(
        "recover", "resend a webhook's failed deliveries of a time window",
        "Resend every failed delivery of a webhook created in a time window, oldest first, each as a new delivery "
        "with its original webhook-id; they go out through the webhook's queue and concurrency. Deliveries of "
        "lightweight logs are skipped (no body was kept). Prints how many were resent and skipped.",
    ))  # fmt: skip
    recover.add_argument("id", help="the webhook's id")
    recover.add_argument("--since", required=True, metavar="T", help=f"start of the window (inclusive): {when}")
    recover.add_argument("--until", metavar="T", help=f"end of the window (exclusive; default now): {when}")
    recover.add_argument("--dry-run", action="store_true", help="only count what would be resent")
    recover.add_argument("--json", action="store_true", help="print the API's answer as it is")
    recover.set_defaults(func=cmd_recover)
    batches = with_client(verb(
        "batches", "list a webhook's open batches",
        "List the open batches of a webhook, timer and spooled alike: batch key, items waiting, when it opened and "
        "its deadline, the one due first first.",
    ))  # fmt: skip
    batches.add_argument("id", help="the webhook's id")
    batches.add_argument("--json", action="store_true", help="print the batches as a JSON array")
    batches.set_defaults(func=cmd_batches)
    flush = with_client(verb(
        "flush", "send a webhook's open batches now",
        "Send every open batch of a webhook now, without waiting for its deadline; prints how many batches left.",
    ))  # fmt: skip
    flush.add_argument("id", help="the webhook's id")
    flush.set_defaults(func=cmd_flush)
    webhooks = verb(
        "webhooks", "create, delete or test webhooks made through the API",
        "Manage webhooks kept by the daemon (SPEC §11); those of the config file change in the file.",
    )  # fmt: skip
    wsub = webhooks.add_subparsers(dest="webhooks_command", required=True, help="what to do")
    create = with_client(wsub.add_parser(
        "create", help="create a webhook from a JSON or TOML file",
        description="Create a webhook from a file: JSON of one webhook, or TOML (.toml) with the webhook's keys at "
        "the top level and its triggers as [[events]]. Prints the new webhook; a secret = \"generate\" is shown "
        "this once.",
    ))  # fmt: skip
    create.add_argument("file", help="the webhook file (.json or .toml), or - for JSON on stdin")
    create.set_defaults(func=cmd_webhooks_create)
    delete = with_client(wsub.add_parser(
        "delete", help="delete a webhook", description="Delete a webhook made through the API; its pending work "
        "stays in the store as for a webhook removed from the file.",
    ))  # fmt: skip
    delete.add_argument("id", help="the webhook's id")
    delete.set_defaults(func=cmd_webhooks_delete)
    test = with_client(wsub.add_parser(
        "test", help="send a hookd.ping delivery now",
        description="Send one hookd.ping delivery to a webhook at once, outside batching; prints its delivery id "
        "(follow it with hookd show ID).",
    ))  # fmt: skip
    test.add_argument("id", help="the webhook's id")
    test.set_defaults(func=cmd_webhooks_test)
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
