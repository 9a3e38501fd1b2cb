"""Webhooks managed at runtime (SPEC §11): kept in the store, put in force like a reload.

``ApiWebhooks`` owns the API's webhooks: it validates each change with the rules of
``hookd.webhooks``, commits it, then hands the whole new set to the App, which swaps the
routing exactly as a reload does (no accepted item lost, open batches and pending
deliveries kept). One lock, shared with reloads, orders every change.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from hookd.config import ApiWebhook, Config, Webhook
from hookd.store import Storage, StoredWebhook
from hookd.webhooks import (
    InvalidWebhook,
    generate_secrets,
    keep_masked,
    merge_patch,
    new_id,
    parse,
    revision,
)

log = structlog.get_logger("hookd.webhooks")

Check = Callable[[ApiWebhook], list[dict[str, str]]]


class NotFound(Exception):
    """No webhook of that id."""


class ManagedByConfig(Exception):
    """The webhook comes from the config file: read-only through the API."""


class Conflict(Exception):
    """A webhook of that id exists already."""


class StaleETag(Exception):
    """``If-Match`` names a version that is no longer current."""


@dataclass(frozen=True, slots=True)
class Change:
    """What a create, replace or patch put in force, for the answer."""

    webhook: ApiWebhook
    etag: str
    generated: list[str]  # secrets made for "generate": shown in this answer only


def etag_of(w: Webhook, stored: StoredWebhook | None) -> str:
    """The ``ETag`` of a webhook: its revision tag, or for a file webhook a digest of its
    settings with the secrets masked (so the tag tells nothing of them)."""
    if stored is not None:
        return f'"{stored.revision}"'
    from hookd.api import webhook_config

    return '"c' + hashlib.sha256(orjson.dumps(webhook_config(w), option=orjson.OPT_SORT_KEYS)).hexdigest()[:16] + '"'


def if_match_ok(header: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.1: no header, ``*``, or a list naming the current (strong) tag."""
    if header is None:
        return True
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or etag in tags


class ApiWebhooks:
    """The API's webhooks: validated, committed, then put in force through ``apply``."""

    def __init__(
        self,
        store: Storage,
        apply: Callable[[Sequence[ApiWebhook]], Awaitable[None]],
        file_config: Callable[[], Config],
        lock: asyncio.Lock,
        checks: Callable[[], Sequence[Check]] = lambda: (),
    ) -> None:
        self._store = store
        self._apply = apply
        self._file = file_config
        self._lock = lock
        self._checks = checks
        self._stored: dict[str, tuple[StoredWebhook, ApiWebhook]] = {}

    async def load(self) -> list[ApiWebhook]:
        """Read the stored webhooks (at start-up). One that no longer passes the rules
        (a newer hookd's, or the catalogue changed meanwhile) is logged and left out of
        the routing, kept in the store for the operator to fix or delete."""
        self._stored.clear()
        for row in await self._store.api_webhooks():
            try:
                w = parse(orjson.loads(row.doc), self._checks())
            except (InvalidWebhook, orjson.JSONDecodeError) as exc:
                log.error("api_webhook_invalid", webhook=row.id, error=str(exc))
                continue
            self._stored[w.id] = (row, w)
        return self.webhooks()

    def webhooks(self) -> list[ApiWebhook]:
        """The API's webhooks in force, oldest first."""
        return [w for _, w in self._stored.values()]

    def stored(self, webhook_id: str) -> StoredWebhook | None:
        """The stored row of an API webhook."""
        found = self._stored.get(webhook_id)
        return found[0] if found else None

    def etag(self, w: Webhook) -> str:
        """The current ETag of any webhook in force."""
        return etag_of(w, self.stored(w.id))

    # -- changes ---------------------------------------------------------------------

    async def create(self, doc: Any, now: float) -> Change:
        """A new webhook from a document (``id`` generated when absent)."""
        if isinstance(doc, dict) and "id" not in doc:
            doc = {"id": new_id(), **doc}
        async with self._lock:
            if isinstance(doc, dict) and isinstance(doc.get("id"), str) and self._taken(doc["id"]):
                raise Conflict(doc["id"])
            return await self._put(doc, None, now)

    async def replace(self, webhook_id: str, doc: Any, now: float, if_match: str | None) -> Change:
        """PUT: the whole webhook anew; an ``id`` in the body must match."""
        async with self._lock:
            stored = self._current(webhook_id, if_match)
            if isinstance(doc, dict):
                if doc.get("id", webhook_id) != webhook_id:
                    raise InvalidWebhook([{"path": "id", "message": f"must be {webhook_id!r}, the webhook's id"}])
                doc = keep_masked({**doc, "id": webhook_id}, orjson.loads(stored.doc))
            return await self._put(doc, stored, now)

    async def patch(self, webhook_id: str, patch: Any, now: float, if_match: str | None) -> Change:
        """PATCH: an RFC 7386 merge patch over the stored document."""
        async with self._lock:
            stored = self._current(webhook_id, if_match)
            old = orjson.loads(stored.doc)
            doc = merge_patch(old, patch)
            if isinstance(doc, dict):
                if doc.get("id") != webhook_id:
                    raise InvalidWebhook([{"path": "id", "message": f"must be {webhook_id!r}, the webhook's id"}])
                doc = keep_masked(doc, old)
            return await self._put(doc, stored, now)

    async def delete(self, webhook_id: str, if_match: str | None) -> None:
        """Remove a webhook; its pending work stays, as for one removed on reload."""
        async with self._lock:
            self._current(webhook_id, if_match)
            await self._store.delete_webhook(webhook_id)
            del self._stored[webhook_id]
            await self._apply(self.webhooks())
            log.info("webhook_deleted", webhook=webhook_id)

    def _taken(self, webhook_id: str) -> bool:
        return webhook_id in self._stored or self._file().webhook(webhook_id) is not None

    def _current(self, webhook_id: str, if_match: str | None) -> StoredWebhook:
        stored = self.stored(webhook_id)
        if stored is None:
            if self._file().webhook(webhook_id) is not None:
                raise ManagedByConfig(webhook_id)
            raise NotFound(webhook_id)
        if not if_match_ok(if_match, f'"{stored.revision}"'):
            raise StaleETag(webhook_id)
        return stored

    async def _put(self, doc: Any, old: StoredWebhook | None, now: float) -> Change:
        doc, generated = generate_secrets(doc) if isinstance(doc, dict) else (doc, [])
        w = parse(doc, self._checks())
        row = StoredWebhook(
            id=w.id,
            doc=orjson.dumps(doc),
            revision=revision(),
            created_at=old.created_at if old else now,
            updated_at=now,
        )
        await self._store.put_webhook(row)
        self._stored[w.id] = (row, w)
        # A webhook replaced keeps its place (dict order): the routing order stays stable.
        await self._apply(self.webhooks())
        log.info("webhook_saved", webhook=w.id, created=old is None)
        return Change(w, f'"{row.revision}"', generated)
