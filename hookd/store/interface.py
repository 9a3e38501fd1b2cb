"""What the rest of hookd asks of its storage: the ``Storage`` protocol and its values.

The SQLite store (``store.sqlite.Store``) implements it; a second backend would implement
the same protocol and nothing else of hookd would change. The promises every
implementation keeps:

- A future or awaitable a write returns resolves only once the write is durable (to the
  configured durability): an ingest's 202 and a delivery's "sent" rest on it.
- Writes are applied in the order they were made; an outcome is never applied ahead of
  its delivery's insert.
- A write that fails for a passing reason is kept and tried again until it lands, except
  an ingest (its client is answered 503 and sends again) and a prune (the next round
  prunes what this one could not).
- Sequence numbers come from the store's counters, so ids and log order need no round trip.
"""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from hookd.models import Delivery, Item, Occurrence
from hookd.search import DeliveryQuery


@dataclass(slots=True)
class Outcome:
    """What one attempt did to a delivery, as the log records it."""

    delivery: Delivery
    n: int
    started_at: float
    duration_ms: float
    status_code: int | None
    error: str | None
    manual: bool
    state: str  # the delivery's state after the attempt
    next_at: float | None
    lightweight: bool
    request: dict[str, Any] | bytes | None = None  # bytes: already JSON (see attempt_log)
    response: dict[str, Any] | None = None


@dataclass(slots=True)
class OpenWork:
    """Deliveries still to be made, as start-up (or a returning webhook) takes them up."""

    # Webhook → seqs of its deliveries due now (pending, or retrying with the time come),
    # ascending: the dispatcher keeps these as numbers and reads them back page by page.
    queued: dict[str, array[int]] = field(default_factory=dict)
    # Retrying deliveries whose next attempt is still to come (bodies not loaded).
    later: list[Delivery] = field(default_factory=list)


@dataclass(slots=True)
class OpenBatch:
    """An open batch as found in the store at start-up."""

    webhook_id: str
    batch_key: str
    deadline: float
    count: int


@dataclass(slots=True)
class Failed:
    """A failed delivery as a recovery reads it: what its resend needs. ``body`` is None
    when it was not kept (lightweight logs), or not asked for (a count)."""

    seq: int
    id: str = ""
    message_id: str = ""
    item_ids: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)
    body: bytes | None = None
    coalesced: list[str] = field(default_factory=list)
    lightweight: bool = False


@dataclass(frozen=True, slots=True)
class StoredWebhook:
    """A webhook created through the API, as the store keeps it."""

    id: str
    doc: bytes  # the JSON document as accepted, secrets inline
    revision: str  # changes on every write: the ETag
    created_at: float
    updated_at: float


@dataclass
class Counters:
    """Sequence numbers the store hands out; kept in memory, seeded from the file."""

    item_seq: int = 0
    delivery_seq: int = 0
    webhook_state: dict[str, tuple[bool, int]] = field(default_factory=dict)


class ActivityRow(NamedTuple):
    """Deliveries of one webhook, minute, outcome and duration bucket."""

    webhook_id: str
    minute: int  # unix minutes: created_at // 60
    state: str
    digits: int | None  # of the whole milliseconds; None: no attempt timed (duration_ms NULL)
    lead: int | None  # the first two of them
    n: int
    max_ms: float | None


class StorageLost(Exception):
    """The database file was deleted or replaced under the running daemon."""


class DeliveryLog(Protocol):
    """The delivery log as the admin API reads it; every timestamp is unix seconds."""

    async def counts(self, webhook_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """Deliveries per webhook (of ``webhook_ids``) and state; new deliveries not yet
        written count as pending."""
        ...

    async def last_attempts(self, webhook_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Each webhook's most recent tried delivery: its status, error and time."""
        ...

    async def deliveries(
        self, webhook_id: str, state: str | None, limit: int, before: int | None
    ) -> list[dict[str, Any]]:
        """A page of a webhook's deliveries, newest first."""
        ...

    async def search(self, q: DeliveryQuery) -> list[dict[str, Any]]:
        """The first page (``q.limit``) of deliveries of every webhook matching ``q``, newest
        first; each entry carries its ``seq``, the next page's ``before``."""
        ...

    async def summaries(self, delivery_ids: Sequence[str]) -> list[dict[str, Any]]:
        """List entries for the given delivery ids, newest first."""
        ...

    async def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        """One delivery's whole record: its attempts, each with its own response (none under
        lightweight logs), the request, and the item, occurrence and object ids."""
        ...

    async def activity(self, since: float, webhook_id: str | None) -> list[ActivityRow]:
        """Deliveries created at or after ``since`` by webhook, minute, outcome and duration
        bucket (the page's activity chart)."""
        ...


class Storage(Protocol):
    """Pending work, the batch spool, the delivery log and webhook state."""

    # -- lifecycle: open, run writer() and watch() as tasks, drain, close ----------------

    async def open(self) -> None:
        """Open (creating) the storage and read the counters."""
        ...

    async def writer(self) -> None:
        """Apply queued writes until cancelled, then write what is left."""
        ...

    async def watch(self) -> None:
        """Watch that the storage is still there; sets ``lost`` when it is not (runs until
        cancelled, or until lost)."""
        ...

    async def drain(self) -> None:
        """Wait until every write queued so far is committed."""
        ...

    async def close(self) -> None:
        """Write what is queued (giving up, logged, what keeps failing), then close."""
        ...

    @property
    def lost(self) -> bool:
        """The storage is gone (a deleted file): nothing more is accepted."""
        ...

    @property
    def flushes(self) -> int:
        """Commits made so far (the stop summary reports them)."""
        ...

    @property
    def counters(self) -> Counters:
        """The sequence counters and every webhook's stored auto-disable state."""
        ...

    @property
    def log(self) -> DeliveryLog:
        """The delivery log's reads."""
        ...

    def next_item_seq(self) -> int:
        """A new item sequence number (store order)."""
        ...

    def next_delivery_seq(self) -> int:
        """A new delivery sequence number (log order, newest last)."""
        ...

    # -- writes ------------------------------------------------------------------------

    async def ingest(
        self,
        occurrences: Sequence[Occurrence],
        received_at: float,
        deliveries: Sequence[tuple[int, Delivery, bool]],
        items: Sequence[tuple[int, Item]],
    ) -> set[int]:
        """Commit one request's work (deliveries with their lightweight flag, batched items,
        each with the index of its occurrence) and count its event types, in one
        transaction; return the indexes of duplicate occurrences, whose work is dropped
        (and which are not counted). Raises StorageLost, or the storage's error, at once."""
        ...

    def add_delivery(
        self,
        d: Delivery,
        lightweight: bool,
        consumed: Iterable[Item] = (),
        alone: bool = False,
        body_items: Sequence[Item] = (),
    ) -> asyncio.Future[None]:
        """Record a new delivery (a flushed batch, a resend) and take the batched items it
        carries out of the spool. ``alone``: its future fails with no other write.
        ``body_items``: the items whose bodies make its batch body, in order (it may refer
        to their stored bytes rather than copy them)."""
        ...

    def record(self, o: Outcome) -> asyncio.Future[Any]:
        """Log an attempt and the delivery's new state."""
        ...

    def set_webhook_state(self, webhook_id: str, disabled: bool, failures: int, now: float) -> None:
        """Persist a webhook's auto-disable state and failure streak (and update ``counters``)."""
        ...

    def prune(self, cutoff: float, configured: set[str], limit: int = 5000) -> asyncio.Future[int]:
        """Delete ended deliveries (and those of webhooks not ``configured``), occurrences and
        event-type counts older than ``cutoff``, at most ``limit`` deliveries; return how
        many deliveries went."""
        ...

    async def put_webhook(self, w: StoredWebhook) -> None:
        """Create or replace an API webhook; returns once committed."""
        ...

    async def delete_webhook(self, webhook_id: str) -> None:
        """Remove an API webhook (its deliveries stay, as for a webhook removed on reload);
        returns once committed."""
        ...

    # -- reads -------------------------------------------------------------------------

    async def api_webhooks(self) -> list[StoredWebhook]:
        """Every API webhook, oldest first."""
        ...

    async def open_deliveries(self, webhook_ids: Iterable[str]) -> list[Delivery]:
        """Deliveries still to be made for these webhooks, oldest first, bodies not loaded."""
        ...

    async def open_work(self, webhook_ids: Iterable[str], now: float) -> OpenWork:
        """Deliveries still to be made for these webhooks: those due by ``now`` as seqs
        only (a million of them cost 8 MB), the retries still to come as deliveries."""
        ...

    async def page(self, seqs: Sequence[int]) -> list[Delivery]:
        """Those of the deliveries ``seqs`` still open, in sequence order: one read however
        many. Small bodies may come with them (``loaded``); ``load`` reads the others when
        the attempt comes."""
        ...

    async def load(self, d: Delivery) -> bool:
        """Fill in the body, item ids and event types of a delivery from open_deliveries;
        False when it is no longer open."""
        ...

    async def delivery_by_seq(self, seq: int) -> Delivery | None:
        """One open delivery with its body (a spooled retry coming due)."""
        ...

    async def open_batches(self) -> list[OpenBatch]:
        """Every open batch in the spool, with its original deadline."""
        ...

    async def batch_items_many(self, batches: Sequence[tuple[str, str, int]]) -> list[list[Item]]:
        """For each (webhook, key, limit), that batch's oldest items not yet taken."""
        ...

    async def seen_event_types(self, since: float) -> dict[str, tuple[int, float]]:
        """Each event type ingested (duplicates not counted again) since ``since``: (count,
        last ingest time). Counts may be kept by the hour: they may then include events of
        the hour ``since`` falls in. Pruning drops what is older than its cutoff."""
        ...

    async def window_seqs(self, since: float, until: float | None) -> tuple[int, int]:
        """A delivery sequence range [lo, hi) holding every delivery created in [since,
        until), found without a scan (sequence order is creation order)."""
        ...

    async def failed(
        self, webhook_id: str, since: float, until: float | None, after: int, before: int, limit: int, bodies: bool
    ) -> list[Failed]:
        """Up to ``limit`` failed deliveries of the webhook created in [since, until) with
        ``after < seq < before``, oldest first; with ``bodies`` what a resend needs, else
        their seq and lightweight flag only."""
        ...
