"""The HTTP side of webhooks managed at runtime (SPEC §11): create, replace, patch,
delete and test, with ``ETag``/``If-Match`` and one error body per kind of refusal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from hookd.config import Config, Webhook
from hookd.deliver import Dispatcher
from hookd.ingest import Routing, read_json
from hookd.manage import ApiWebhooks, Change, Conflict, ManagedByConfig, NotFound, StaleETag
from hookd.models import IdFactory, Occurrence, format_timestamp, new_delivery
from hookd.payloads import batch_body
from hookd.responses import error, json_response
from hookd.store import Storage
from hookd.webhooks import InvalidWebhook

PING_EVENT = "hookd.ping"
PING_TRIGGER = "ping"
_JSON = ("application/json",)
_PATCH = ("application/merge-patch+json", "application/json")


class WebhookRoutes:
    """Route handlers that change webhooks, over the App's ``ApiWebhooks``."""

    def __init__(
        self,
        webhooks: ApiWebhooks,
        view: Callable[[Webhook], Awaitable[dict[str, Any]]],
        routing: Callable[[], Routing],
        store: Storage,
        dispatcher: Dispatcher,
        ids: IdFactory,
        now: Callable[[], float],
    ) -> None:
        self._webhooks = webhooks
        self._view = view
        self._routing = routing
        self._store = store
        self._dispatcher = dispatcher
        self._ids = ids
        self._now = now

    def add_routes(self, app: web.Application) -> None:
        """Register the change routes on ``app``."""
        app.router.add_post("/v1/webhooks", self.create)
        app.router.add_put("/v1/webhooks/{id}", self.replace)
        app.router.add_patch("/v1/webhooks/{id}", self.patch)
        app.router.add_delete("/v1/webhooks/{id}", self.delete)
        app.router.add_post("/v1/webhooks/{id}/test", self.test)

    @property
    def _config(self) -> Config:
        return self._routing().config

    async def create(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/webhooks: 201 with the view and its ETag."""
        doc = await self._body(request, _JSON)
        if isinstance(doc, web.StreamResponse):
            return doc
        return await self._answer(lambda: self._webhooks.create(doc, self._now()), 201)

    async def replace(self, request: web.Request) -> web.StreamResponse:
        """PUT /v1/webhooks/{id}: the whole webhook anew."""
        doc = await self._body(request, _JSON)
        if isinstance(doc, web.StreamResponse):
            return doc
        wid, match = request.match_info["id"], request.headers.get("If-Match")
        return await self._answer(lambda: self._webhooks.replace(wid, doc, self._now(), match), 200)

    async def patch(self, request: web.Request) -> web.StreamResponse:
        """PATCH /v1/webhooks/{id}: a JSON Merge Patch (RFC 7386)."""
        doc = await self._body(request, _PATCH)
        if isinstance(doc, web.StreamResponse):
            return doc
        wid, match = request.match_info["id"], request.headers.get("If-Match")
        return await self._answer(lambda: self._webhooks.patch(wid, doc, self._now(), match), 200)

    async def delete(self, request: web.Request) -> web.StreamResponse:
        """DELETE /v1/webhooks/{id}: 204; its pending work stays as on a removal by reload."""
        wid = request.match_info["id"]
        try:
            await self._webhooks.delete(wid, request.headers.get("If-Match"))
        except (NotFound, ManagedByConfig, StaleETag) as exc:
            return _refusal(exc, wid)
        return web.Response(status=204)

    async def test(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/webhooks/{id}/test: one ``hookd.ping`` delivery now, outside batching."""
        wid = request.match_info["id"]
        routing = self._routing()
        w = routing.config.webhook(wid)
        if w is None:
            return error(404, "not_found", f"no webhook {wid!r}")
        now = self._now()
        occ = Occurrence(
            id=self._ids.uuid(), event=PING_EVENT, timestamp=format_timestamp(now),
            object={"id": "ping"}, action=None, linked=None, client_id=False,
        )  # fmt: skip
        item_id = self._ids.uuid()
        body = routing.builders[w.id].body(occ, item_id, PING_TRIGGER)
        if w.batching != "per_occurrence":  # the shape its receiver expects: an array
            body = batch_body([body])
        d = new_delivery(
            self._ids, self._store.next_delivery_seq(), w.id, body, [item_id], [PING_EVENT], [PING_TRIGGER], now,
            event_ids=[occ.id], object_ids=["ping"],
        )  # fmt: skip
        await self._store.add_delivery(d, w.lightweight_logs, alone=True)  # committed: readable at once
        self._dispatcher.submit(d)
        return json_response({"delivery_id": d.id}, status=202)

    async def _answer(self, change: Callable[[], Awaitable[Change]], status: int) -> web.StreamResponse:
        try:
            done = await change()
        except InvalidWebhook as exc:
            n = len(exc.details)
            return error(422, "invalid_webhook", f"{n} problem(s) in the webhook", exc.details[:100])
        except Conflict as exc:
            return error(409, "conflict", f"a webhook {exc.args[0]!r} exists already")
        except (NotFound, ManagedByConfig, StaleETag) as exc:
            return _refusal(exc, str(exc.args[0]))
        view = await self._view(done.webhook)
        if done.generated:
            # The one time a generated secret is shown; every later view masks it.
            shown = iter(done.generated)
            made = set(done.generated)
            secrets = [s.get_secret_value() for s in done.webhook.secret]
            view["config"]["secret"] = [next(shown) if s in made else "***" for s in secrets]
        return json_response(view, status=status, headers={"ETag": done.etag})

    async def _body(self, request: web.Request, types: tuple[str, ...]) -> Any:
        """The parsed JSON body, or the refusal to answer with."""
        return await read_json(request, self._config.server.max_body_bytes, types)


def _refusal(exc: Exception, wid: str) -> web.Response:
    if isinstance(exc, ManagedByConfig):
        return error(409, "managed_by_config", f"webhook {wid!r} comes from the config file; change it there")
    if isinstance(exc, StaleETag):
        return error(412, "precondition_failed", f"webhook {wid!r} has changed since that ETag; read it again")
    return error(404, "not_found", f"no webhook {wid!r}")
