"""The admin API (SPEC §8): webhooks, the delivery log, resend, enable, event types, health, metrics.

Who may call what is decided before a handler runs, in auth.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web

from hookd.auth import token_view
from hookd.catalogue import event_types_view
from hookd.config import Config, Webhook
from hookd.deliver import Dispatcher
from hookd.egress import shown_proxy
from hookd.messages import message_text
from hookd.metrics import Metrics
from hookd.models import IdFactory, delivery_seq, format_timestamp, new_delivery
from hookd.responses import error, json_response
from hookd.search import parse_query
from hookd.store import Storage

_DIGITS = re.compile(r"[0-9]{1,18}")
_CURSOR = re.compile(r"[1-9][0-9]{0,17}")  # as the OpenAPI document states it
STATES = ("pending", "delivering", "retrying", "succeeded", "failed")


def _iso(ts: float | None) -> str | None:
    return format_timestamp(ts) if ts is not None else None


def present(rec: dict[str, Any], delivering: bool) -> dict[str, Any]:
    """A log record as the API shows it: ISO times, and ``delivering`` while in an attempt."""
    out = dict(rec)
    out.pop("seq", None)
    for key in ("created_at", "next_attempt_at", "finished_at"):
        out[key] = _iso(out.get(key))
    if delivering:
        out["state"] = "delivering"
    if "attempt_log" in out:
        out["attempts"] = [_attempt(a) for a in out.pop("attempt_log")]
        body = out.pop("body")
        if out.get("request") is not None:
            out["request"]["body"] = body.decode("utf-8", "replace") if body else ""
            if out["request"]["method"] == "GET":
                out["request"]["body"] = ""
    return out


def _attempt(a: dict[str, Any]) -> dict[str, Any]:
    """One attempt as the record shows it: its own response, or why it got none (SPEC §13);
    ``response`` and ``message`` are null under lightweight logs."""
    kept = a["response"]
    answered = kept is not None and kept.get("status") is not None
    return {
        **a,
        "started_at": _iso(a["started_at"]),
        "trigger": "manual" if a["manual"] else "scheduled",
        "response": {k: kept.get(k) for k in ("status", "headers", "body", "truncated")} if answered else None,
        "message": kept.get("message") if kept is not None and not answered else None,
    }


def webhook_config(w: Webhook) -> dict[str, Any]:
    """A webhook's settings with every secret shown as ``***``."""
    data = w.model_dump(mode="json")
    data["url"] = w.shown_url
    data["secret"] = ["***" for _ in w.secret]
    # Extra headers may carry credentials under any name: shown masked, names only.
    data["headers"] = dict.fromkeys(w.headers, "***")
    if w.proxy is not None:
        data["proxy"] = shown_proxy(w.proxy)  # its credentials are secrets (SPEC §14)
    auth = data.get("auth", {})
    for key in ("password", "token", "value"):
        if key in auth:
            auth[key] = "***"
    return data


class Api:
    """Route handlers over the live daemon's parts."""

    def __init__(
        self,
        config: Callable[[], Config],
        store: Storage,
        dispatcher: Dispatcher,
        ids: IdFactory,
        metrics: Metrics,
        clock_now: Callable[[], float],
        etag: Callable[[Webhook], str],
        batched: Callable[[], Mapping[str, int]],
    ) -> None:
        self._config = config
        self._batched = batched  # items waiting in open batches, per webhook
        self._etag = etag
        self._store = store
        self._log = store.log
        self._dispatcher = dispatcher
        self._ids = ids
        self._metrics = metrics
        self._now = clock_now
        self._openapi: bytes | None = None

    def add_routes(self, app: web.Application) -> None:
        """Register every admin route on ``app``."""
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/v1/webhooks", self.webhooks)
        app.router.add_get("/v1/webhooks/{id}", self.webhook)
        app.router.add_get("/v1/webhooks/{id}/deliveries", self.deliveries)
        app.router.add_post("/v1/webhooks/{id}/enable", self.enable)
        app.router.add_get("/v1/deliveries", self.search)
        app.router.add_get("/v1/deliveries/{id}", self.delivery)
        app.router.add_post("/v1/deliveries/{id}/resend", self.resend)
        app.router.add_get("/v1/openapi.json", self.openapi)
        app.router.add_get("/v1/token", token_view)
        app.router.add_get("/v1/event-types", self.event_types)

    async def openapi(self, request: web.Request) -> web.Response:
        """The OpenAPI document (open, like /healthz, so tools can read it)."""
        if self._openapi is None:
            from hookd.openapi import document

            self._openapi = orjson.dumps(document())
        return web.Response(body=self._openapi, content_type="application/json")

    async def healthz(self, request: web.Request) -> web.Response:
        """200 while the loop runs and the database file is the one opened; 503 once it was
        deleted or replaced (only a restart brings hookd back)."""
        if self._store.lost:
            return error(503, "storage_unavailable", "the database file was deleted or replaced; restart hookd")
        return json_response({"status": "ok"})

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus text format."""
        return web.Response(
            body=self._metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )

    async def _states(self, hooks: list[Webhook]) -> list[dict[str, Any]]:
        """The health of each of ``hooks``: state, counts by delivery state, last result."""
        ids = [w.id for w in hooks]
        counts = await self._log.counts(ids)
        last = await self._log.last_attempts(ids)
        batched = self._batched()
        return [self._state(w, counts, last, batched.get(w.id, 0)) for w in hooks]

    def _state(
        self, w: Webhook, counts: dict[str, dict[str, int]], last: dict[str, Any], batched: int
    ) -> dict[str, Any]:
        health = self._dispatcher.health(w.id)
        by_state = dict.fromkeys(STATES, 0)
        by_state.update(counts.get(w.id, {}))
        for logged in health.delivering.values():
            by_state["delivering"] += 1
            if by_state.get(logged, 0) > 0:
                by_state[logged] -= 1
        # Items, not deliveries: routed and waiting for their batch to leave (SPEC §13).
        by_state["batched"] = batched
        reason = "config" if not w.enabled else "auto" if health.auto_disabled else None
        info = last.get(w.id)
        return {
            "id": w.id,
            "name": w.name,
            "source": w.source,
            "metadata": w.metadata,
            "url": w.shown_url,
            "enabled": reason is None,
            "disabled_reason": reason,
            "consecutive_failures": health.failures,
            "counts": by_state,
            "last_status": info["status_code"] if info else None,
            "last_error": info["error"] if info else None,
            "last_at": _iso(info["at"]) if info else None,
            "type": w.type,
        }

    async def webhooks(self, request: web.Request) -> web.Response:
        """Every webhook with its health; ``?metadata.KEY=VALUE`` (repeatable) filters."""
        wanted = [(k[9:], v) for k, v in request.query.items() if k.startswith("metadata.")]
        hooks = [w for w in self._config().webhooks if all(w.metadata.get(k) == v for k, v in wanted)]
        return json_response({"webhooks": await self._states(hooks)})

    async def view(self, w: Webhook) -> dict[str, Any]:
        """One webhook as GET /v1/webhooks/{id} shows it: health, counts and config."""
        (state,) = await self._states([w])
        return {**state, "config": webhook_config(w)}

    def _find(self, request: web.Request) -> Webhook | None:
        return self._config().webhook(request.match_info["id"])

    async def webhook(self, request: web.Request) -> web.Response:
        """One webhook, its config (secrets masked) and counts."""
        w = self._find(request)
        if w is None:
            return error(404, "not_found", f"no webhook {request.match_info['id']!r}")
        return json_response(await self.view(w), headers={"ETag": self._etag(w)})

    async def deliveries(self, request: web.Request) -> web.Response:
        """A webhook's deliveries, newest first, paged by ``before``."""
        wid = request.match_info["id"]
        if self._config().webhook(wid) is None:
            return error(404, "not_found", f"no webhook {wid!r}")
        q = request.query
        problems = []
        # A parameter given empty is refused like any other bad value (the schema's rule).
        state = q.get("state")
        if state is not None and state not in STATES:
            problems.append({"path": "state", "message": f"must be one of {', '.join(STATES)}"})
        limit = _int(q.get("limit"), 50) if q.get("limit") != "" else None
        if limit is None or not 1 <= limit <= 500:
            problems.append({"path": "limit", "message": "must be an integer from 1 to 500"})
        raw_before = q.get("before")
        before = int(raw_before) if raw_before and _CURSOR.fullmatch(raw_before) else None
        if raw_before is not None and before is None:
            problems.append({"path": "before", "message": "must be a cursor from a previous page's next"})
        if problems:
            return error(400, "invalid_query", "bad query parameters", problems)
        assert limit is not None
        delivering = self._dispatcher.delivering
        if state == "delivering":
            # Only memory knows what is in an attempt right now: no paging needed.
            ids = list(self._dispatcher.health(wid).delivering)[:limit]
            rows = await self._log.summaries(ids)
            return json_response({"deliveries": [present(r, delivering(r["id"])) for r in rows], "next": None})
        rows = await self._log.deliveries(wid, state, limit, before)
        nxt = str(rows[-1]["seq"]) if len(rows) == limit else None
        return json_response({"deliveries": [present(r, delivering(r["id"])) for r in rows], "next": nxt})

    async def search(self, request: web.Request) -> web.Response:
        """Deliveries of every webhook, newest first, filtered and paged by ``before`` (SPEC §13)."""
        repeated = sorted({k for k in request.query if len(request.query.getall(k)) > 1})
        q, problems = parse_query({k: request.query[k] for k in request.query}, repeated)
        if problems:
            return error(400, "invalid_query", "bad query parameters", problems)
        if q.state == "delivering":
            # Only memory knows what is in an attempt right now.
            hooks = [q.webhook] if q.webhook is not None else [w.id for w in self._config().webhooks]
            held = [delivery_seq(i) for wid in hooks for i in self._dispatcher.health(wid).delivering]
            q = replace(q, state=None, only=tuple(s for s in held if s is not None))
        rows = await self._log.search(q)
        nxt = str(rows[-1]["seq"]) if len(rows) == q.limit else None
        delivering = self._dispatcher.delivering
        return json_response({"deliveries": [present(r, delivering(r["id"])) for r in rows], "next": nxt})

    async def delivery(self, request: web.Request) -> web.Response:
        """One delivery's whole record."""
        rec = await self._log.delivery(request.match_info["id"])
        if rec is None:
            return error(404, "not_found", f"no delivery {request.match_info['id']!r}")
        # A pre-configured type's message as its service shows it (SPEC §12), read from the body.
        w = self._config().webhook(rec["webhook_id"])
        kind = w.type if w is not None else None
        text = message_text(kind, rec["body"]) if kind is not None else None
        return json_response(
            {**present(rec, self._dispatcher.delivering(rec["id"])), "webhook_type": kind, "text": text}
        )

    async def resend(self, request: web.Request) -> web.Response:
        """A new delivery of the same body and ``webhook-id``."""
        rec = await self._log.delivery(request.match_info["id"])
        if rec is None:
            return error(404, "not_found", f"no delivery {request.match_info['id']!r}")
        if rec["lightweight_logs"] or rec["body"] is None:
            return error(409, "lightweight_logs", "the webhook keeps lightweight logs: the body was not kept")
        w = self._config().webhook(rec["webhook_id"])
        if w is None:
            return error(409, "unknown_webhook", f"webhook {rec['webhook_id']!r} is no longer configured")
        d = new_delivery(
            self._ids, self._store.next_delivery_seq(), w.id, rec["body"], rec["item_ids"], rec["events"],
            rec["triggers"], self._now(), message_id=rec["message_id"], resend_of=rec["id"],
            event_ids=rec["event_ids"], object_ids=rec["object_ids"],
        )  # fmt: skip
        d.coalesced = rec["coalesced_item_ids"]  # the same body: the same items left out of it
        await self._store.add_delivery(d, w.lightweight_logs, alone=True)  # committed: readable at once
        self._dispatcher.submit(d)
        return json_response({"delivery_id": d.id}, status=202)

    async def event_types(self, request: web.Request) -> web.Response:
        """The catalogue and every type ingested within retention_days, with counts."""
        config = self._config()
        seen = await self._store.seen_event_types(self._now() - config.storage.retention_days * 86400)
        return json_response({"event_types": event_types_view(config.event_types, seen)})

    async def enable(self, request: web.Request) -> web.Response:
        """Re-enable an auto-disabled webhook and deliver what it kept."""
        w = self._find(request)
        if w is None:
            return error(404, "not_found", f"no webhook {request.match_info['id']!r}")
        if not w.enabled:
            return error(409, "disabled_in_config", "the webhook is disabled in the config file (enabled = false)")
        self._dispatcher.enable(w.id)
        (state,) = await self._states([w])
        return json_response(state)


def _int(raw: str | None, default: int | None) -> int | None:
    # int() would take "+5", " 5", "1_0" and other digits than ASCII; a cursor is plain.
    if raw is None or raw == "":
        return default
    return int(raw) if _DIGITS.fullmatch(raw) else None
