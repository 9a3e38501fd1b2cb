"""The HTTP side of a webhook's backlog (SPEC §13): recover its failed deliveries of a time
window, list its open batches and send them now."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from hookd.batcher import Batcher, OpenBatch
from hookd.config import Config, Webhook
from hookd.ingest import read_json
from hookd.models import format_timestamp
from hookd.recover import Recovery, RecoveryRunning, RecoveryStopped, Window, parse_window
from hookd.responses import error, json_response
from hookd.store import Storage


def batch_view(b: OpenBatch) -> dict[str, Any]:
    """An open batch as GET /v1/webhooks/{id}/batches shows it."""
    return {
        "key": b.key,
        "items": b.count,
        "opened_at": format_timestamp(b.opened_at),
        "deadline": format_timestamp(b.deadline),
        "spooled": b.spooled,
    }


class BacklogRoutes:
    """Route handlers over the App's batcher and recoveries."""

    def __init__(self, config: Callable[[], Config], store: Storage, batcher: Batcher, recovery: Recovery) -> None:
        self._config = config
        self._store = store
        self._batcher = batcher
        self._recovery = recovery

    def add_routes(self, app: web.Application) -> None:
        """Register the backlog routes on ``app``."""
        app.router.add_post("/v1/webhooks/{id}/recover", self.recover)
        app.router.add_get("/v1/webhooks/{id}/batches", self.batches)
        app.router.add_post("/v1/webhooks/{id}/batches/flush", self.flush)

    def _find(self, request: web.Request) -> Webhook | web.Response:
        wid = request.match_info["id"]
        w = self._config().webhook(wid)
        return w if w is not None else error(404, "not_found", f"no webhook {wid!r}")

    async def recover(self, request: web.Request) -> web.Response:
        """Resend the webhook's failed deliveries of a window (202 once all are made), or
        count them (``dry_run``, 200)."""
        w = self._find(request)
        if isinstance(w, web.Response):
            return w
        window = await self._window(request)
        if isinstance(window, web.Response):
            return window
        if self._store.lost:
            return error(503, "storage_unavailable", "the database file was deleted or replaced; restart hookd")
        if window.dry_run:
            counted = await self._recovery.count(w.id, window)
            return json_response({"resent": 0, "would_resend": counted.would_resend, "skipped": counted.skipped})
        try:
            done = await self._recovery.run(w, window)
        except RecoveryRunning:
            return error(409, "recovery_running", f"a recovery of webhook {w.id!r} is under way; wait for it to end")
        except RecoveryStopped:
            return error(
                503, "shutting_down", "hookd is stopping; the resends made so far go out after the restart",
                headers={"Retry-After": "5"},
            )  # fmt: skip
        return json_response({"resent": done.resent, "skipped": done.skipped}, status=202)

    async def _window(self, request: web.Request) -> Window | web.Response:
        doc = await read_json(request, self._config().server.max_body_bytes)
        if isinstance(doc, web.Response):
            return doc
        got = parse_window(doc)
        if isinstance(got, list):
            return error(422, "invalid_request", f"{len(got)} problem(s) in the request", got)
        return got

    async def batches(self, request: web.Request) -> web.Response:
        """The webhook's open batches, timer and spooled alike, the one due first first."""
        w = self._find(request)
        if isinstance(w, web.Response):
            return w
        return json_response({"batches": [batch_view(b) for b in self._batcher.batches(w.id)]})

    async def flush(self, request: web.Request) -> web.Response:
        """Send every open batch of the webhook now: 202 once their deliveries are in the log."""
        w = self._find(request)
        if isinstance(w, web.Response):
            return w
        n = await self._batcher.flush_webhook(w.id)
        if n:
            await self._store.drain()  # committed: the log lists them when the answer comes
        return json_response({"deliveries": n}, status=202)
