"""What each store operation does to the tables: plain functions over a sqlite3 connection.

They run on the connection thread, a write inside the writer's transaction, a read on
its own; ``sqlite.Store`` queues and awaits them. Each writes or reads a whole request's
or a whole flush's rows with a few statements (see packing for why).
"""

from __future__ import annotations

import sqlite3
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import orjson

from hookd.models import Delivery, Item, Occurrence
from hookd.store import bodies as body_store
from hookd.store.interface import Counters, OpenBatch, OpenWork, StoredWebhook
from hookd.store.schema import (
    ADD_SEEN_TYPES,
    ATTEMPT,
    CHUNK,
    CLAIM_OCCURRENCES,
    CONSUME_CHUNKS,
    COPY_BODIES,
    DELETE_CHUNKS,
    DELETE_CONSUMED,
    DELETE_OCCURRENCE_SETS,
    DELETE_SET_OCCURRENCES,
    DELIVERY_COLUMNS,
    DELIVERY_UPDATE,
    DROP_BODIES,
    FIND_TAKEN_WHOLE,
    INSERT_ATTEMPTS,
    INSERT_CHUNK_BODIES,
    INSERT_CHUNKS,
    INSERT_DELIVERIES,
    INSERT_OBJECTS,
    INSERT_OCCURRENCE_SET,
    INSERT_PAYLOADS,
    INSERT_SEARCH,
    NEW_DELIVERY,
    OCCURRENCE_ID,
    OLD_OCCURRENCE_SETS,
    PAYLOAD_KEYS,
    PAYLOAD_OBJECTS,
    SEEN_HOUR,
    SEEN_TYPE,
    TAKEN,
    UPDATE_DELIVERIES,
    Attempt,
    DeliveryUpdate,
    NewDelivery,
    by_seq,
    chunk_items,
    chunk_rows,
    delivery_from_row,
    new_delivery,
    taken,
)

# -- writes ----------------------------------------------------------------------------


def ingest(
    conn: sqlite3.Connection,
    occurrences: Sequence[Occurrence],
    received_at: float,
    deliveries: Sequence[tuple[int, Delivery, bool]],
    items: Sequence[tuple[int, Item]],
) -> set[int]:
    """Write one request's work but that of its duplicate occurrences; return their indexes."""
    dupes = claim_occurrences(conn, occurrences, received_at)
    if deliveries:
        insert_deliveries(conn, [new_delivery(d, lw) for i, d, lw in deliveries if i not in dupes])
    if items:
        kept = [it for i, it in items if i not in dupes]
        if kept:
            packed = CHUNK.pack(chunk_rows(kept))
            INSERT_CHUNKS.run(conn, packed)
            INSERT_CHUNK_BODIES.run(conn, packed)
    # A duplicate was counted when it first came. One row per distinct type, one statement:
    # about 0.15 µs per event (Counter runs in C), under 1% of this write (measured).
    fresh_events = occurrences if not dupes else [o for i, o in enumerate(occurrences) if i not in dupes]
    if fresh_events:
        seen = Counter(map(_event, fresh_events))
        hour = received_at - received_at % SEEN_HOUR
        ADD_SEEN_TYPES.run(conn, SEEN_TYPE.pack(seen.items()), hour, received_at)
    return dupes


_event = attrgetter("event")


def claim_occurrences(conn: sqlite3.Connection, occurrences: Sequence[Occurrence], received_at: float) -> set[int]:
    """Record the request's application-chosen ids; return the indexes of the occurrences
    whose id was seen before (or earlier in the list): the duplicates.

    One statement does both: INSERT OR IGNORE … RETURNING answers the ids it inserted, so
    an id it leaves out was there already. A probe, then an insert of the new ids, walked
    the b-tree twice (3.5 against 2.0 µs per id, measured) and packed the ids twice."""
    ids = [o.id for o in occurrences if o.client_id]
    if not ids:
        return set()
    packed = OCCURRENCE_ID.pack_texts(ids)
    new: set[str] = {r[0] for r in CLAIM_OCCURRENCES.run(conn, packed, received_at)}
    dupes = set()
    if len(new) < len(ids):
        for i, o in enumerate(occurrences):
            if not o.client_id:
                continue
            if o.id in new:
                new.discard(o.id)  # the first of its id in the request; a later one is a duplicate
            else:
                dupes.add(i)
        packed = OCCURRENCE_ID.pack_texts([o.id for i, o in enumerate(occurrences) if o.client_id and i not in dupes])
    if packed.rows != b"[]":
        conn.execute(INSERT_OCCURRENCE_SET, (packed.rows, packed.blob, received_at))
    return dupes


def insert_deliveries(
    conn: sqlite3.Connection, rows: Sequence[NewDelivery], refs: Sequence[tuple[int, int]] = ()
) -> None:
    """Write new deliveries: their rows, their payloads and their rows in the search index.
    ``refs``: (chunk seq, delivery seq) of each chunk a row's ``parts`` refer to."""
    if not rows:
        return
    packed = NEW_DELIVERY.pack(rows)
    INSERT_DELIVERIES.run(conn, packed)
    INSERT_PAYLOADS.run(conn, packed)
    if refs:
        conn.execute(body_store.INSERT_REFS, (orjson.dumps(refs),))
        # A range whose bytes are gone (never expected: a chunk's bytes stay while it has
        # items) would lose part of a body: such rows keep their bytes instead. One lookup
        # per chunk and flush.
        gone = body_store.missing(conn, {c for c, _ in refs})
        if gone:
            copied = orjson.dumps(sorted({d for c, d in refs if c in gone}))
            COPY_BODIES.run(conn, packed, copied)
    keys, objects = by_seq(rows)
    conn.execute(INSERT_SEARCH, (keys,))
    conn.execute(INSERT_OBJECTS, (objects,))


@dataclass(slots=True)
class NewDeliveries:
    """New deliveries (flushed batches, resends) and the batched items they took: one write
    that deliveries queued back to back join."""

    alone: bool = False  # joined by no other
    rows: list[NewDelivery] = field(default_factory=list)
    refs: list[tuple[int, int]] = field(default_factory=list)  # (chunk seq, delivery seq): see bodies
    taken: dict[int, list[int]] = field(default_factory=dict)  # chunk seq → positions
    # (replaced item ids as JSON, delivery seq) of coalesced batches: a statement of their
    # own, so the rows every other delivery writes stay as they are.
    coalesced: list[tuple[bytes, int]] = field(default_factory=list)

    def __call__(self, conn: sqlite3.Connection) -> None:
        insert_deliveries(conn, self.rows, self.refs)
        if self.coalesced:
            conn.executemany("UPDATE payloads SET coalesced_item_ids = ? WHERE seq = ?", self.coalesced)
        if self.taken:
            take_items(conn, self.taken)


def take_items(conn: sqlite3.Connection, positions: dict[int, list[int]]) -> None:
    """Mark the items at ``positions`` (chunk seq → positions) as taken by new batch
    deliveries; chunks left empty go (see FIND_TAKEN_WHOLE for the steps)."""
    packed = TAKEN.pack([taken(seq, ps) for seq, ps in positions.items()])
    (whole,) = FIND_TAKEN_WHOLE.run(conn, packed).fetchone()
    if whole != "[]":
        conn.execute(DELETE_CHUNKS, (whole,))
    CONSUME_CHUNKS.run(conn, packed)
    seqs = orjson.dumps(list(positions))
    conn.execute(DELETE_CONSUMED, (seqs,))
    # Bytes no new payload refers to (coalesced away, sent alone) go with their chunks.
    body_store.free(conn, seqs)


@dataclass(slots=True)
class Outcomes:
    """Attempt rows and delivery updates written together, one statement each: one write
    that outcomes queued back to back join."""

    attempts: list[Attempt] = field(default_factory=list)
    # A later attempt of the same delivery folds into its entry.
    updates: dict[int, DeliveryUpdate] = field(default_factory=dict)

    def add(self, attempt: Attempt, update: DeliveryUpdate) -> None:
        """Add one attempt's rows."""
        self.attempts.append(attempt)
        earlier = self.updates.get(update.seq)
        if earlier is not None and update.request is None:  # keep the request an earlier attempt recorded
            update = update._replace(request=earlier.request)
        self.updates[update.seq] = update

    def __call__(self, conn: sqlite3.Connection) -> None:
        INSERT_ATTEMPTS.run(conn, ATTEMPT.pack(self.attempts))
        packed = DELIVERY_UPDATE.pack(self.updates.values())
        UPDATE_DELIVERIES.run(conn, packed)
        dropped = [u.seq for u in self.updates.values() if u.drop_body]
        if dropped:  # lightweight logs: the body goes once ended
            seqs = orjson.dumps(dropped)
            referred = body_store.release(conn, seqs)
            conn.execute(DROP_BODIES, (seqs,))
            body_store.free(conn, referred)


def save_webhook_state(conn: sqlite3.Connection, row: tuple[str, int, int, float]) -> None:
    """Write a webhook's auto-disable state, failure streak and when they changed."""
    conn.execute(
        "INSERT INTO webhook_state VALUES (?,?,?,?) ON CONFLICT(webhook_id) DO UPDATE"
        " SET disabled=excluded.disabled, failures=excluded.failures,"
        " changed_at=excluded.changed_at",
        row,
    )


def prune(conn: sqlite3.Connection, cutoff: float, kept: bytes, limit: int) -> int:
    """Delete up to ``limit`` deliveries older than ``cutoff`` that ended or whose webhook is
    not in ``kept`` (a JSON list), their attempts and payloads, and older occurrences and
    orphaned chunks; return how many deliveries went."""
    # Sequence order is creation order, so the oldest rows come first in the
    # table's own order and the scan stops at the first row inside the window
    # (no index on created_at to keep up on the hot path). Each step is one
    # statement: a row-by-row loop here would wait for the GIL at every row.
    (found,) = conn.execute(
        "SELECT json_group_array(seq) FROM (SELECT seq FROM deliveries WHERE seq < coalesce("
        " (SELECT seq FROM deliveries WHERE created_at >= ?1 ORDER BY seq LIMIT 1), 1 << 62)"
        " AND (state IN ('succeeded', 'failed') OR webhook_id NOT IN (SELECT value FROM json_each(?2)))"
        " ORDER BY seq LIMIT ?3)",
        (cutoff, kept, limit),
    ).fetchone()
    seqs = orjson.loads(found)
    # The search rows first, while the payloads rows still name their keys.
    pruned = "p.seq IN (SELECT value FROM json_each(?1))"
    conn.execute(f"DELETE FROM search WHERE (key, seq) IN ({PAYLOAD_KEYS.format(where=pruned)})", (found,))
    conn.execute(f"DELETE FROM search_objects WHERE (id, seq) IN ({PAYLOAD_OBJECTS.format(where=pruned)})", (found,))
    conn.execute("DELETE FROM attempts WHERE delivery_seq IN (SELECT value FROM json_each(?))", (found,))
    conn.execute("DELETE FROM deliveries WHERE seq IN (SELECT value FROM json_each(?))", (found,))
    referred = body_store.release(conn, found)
    conn.execute("DELETE FROM payloads WHERE seq IN (SELECT value FROM json_each(?))", (found,))
    body_store.free(conn, referred)
    (old,) = conn.execute(OLD_OCCURRENCE_SETS, (cutoff,)).fetchone()
    if old != "[]":
        conn.execute(DELETE_SET_OCCURRENCES, (old,))
        conn.execute(DELETE_OCCURRENCE_SETS, (old,))
    conn.execute("DELETE FROM event_types_seen WHERE last_at < ?", (cutoff,))
    (orphans,) = conn.execute(
        "SELECT json_group_array(seq) FROM chunks WHERE deadline < ?"
        " AND webhook_id NOT IN (SELECT value FROM json_each(?))",
        (cutoff, kept),
    ).fetchone()
    if orphans != "[]":
        conn.execute(DELETE_CHUNKS, (orphans,))
        body_store.free(conn, orphans)
    return len(seqs)


def put_webhook(conn: sqlite3.Connection, w: StoredWebhook) -> None:
    """Create or replace an API webhook."""
    conn.execute(
        "INSERT INTO api_webhooks VALUES (?,?,?,?,?) ON CONFLICT(id) DO UPDATE"
        " SET doc=excluded.doc, revision=excluded.revision, updated_at=excluded.updated_at",
        (w.id, w.doc, w.revision, w.created_at, w.updated_at),
    )


def delete_webhook(conn: sqlite3.Connection, webhook_id: str) -> None:
    """Remove an API webhook; its deliveries and items stay (orphans until retention)."""
    conn.execute("DELETE FROM api_webhooks WHERE id = ?", (webhook_id,))


# -- reads -----------------------------------------------------------------------------


def api_webhooks(conn: sqlite3.Connection) -> list[StoredWebhook]:
    """Every API webhook, oldest first."""
    rows = conn.execute("SELECT id, doc, revision, created_at, updated_at FROM api_webhooks ORDER BY created_at, id")
    return [StoredWebhook(*r) for r in rows]


def seen_event_types(conn: sqlite3.Connection, since: float) -> dict[str, tuple[int, float]]:
    """Each event type ingested since ``since``: (count, last ingest time). The count is
    by the hour, so it may include events of the hour ``since`` falls in."""
    rows = conn.execute(
        "SELECT name, sum(count), max(last_at) FROM event_types_seen WHERE last_at >= ? GROUP BY name", (since,)
    )
    return {name: (count, last) for name, count, last in rows}


def read_counters(conn: sqlite3.Connection, c: Counters) -> None:
    """Seed the counters from the file (at open)."""
    # A chunk's bytes (and the references to them) outlive its row while a delivery needs
    # them: a new chunk must not take the seq of one whose bytes are still kept.
    c.item_seq = conn.execute(
        "SELECT max((SELECT coalesce(max(seq), 0) FROM chunks), (SELECT coalesce(max(seq), 0) FROM chunk_bodies),"
        " (SELECT coalesce(max(chunk_seq), 0) FROM body_refs))"
    ).fetchone()[0]
    c.delivery_seq = conn.execute("SELECT coalesce(max(seq), 0) FROM deliveries").fetchone()[0]
    for wid, disabled, failures in conn.execute("SELECT webhook_id, disabled, failures FROM webhook_state"):
        c.webhook_state[wid] = (bool(disabled), failures)


def open_deliveries(conn: sqlite3.Connection, wanted: Sequence[str]) -> list[Delivery]:
    """Deliveries still to be made (pending or retrying) for these webhooks, oldest first,
    without their bodies (``loaded=False``)."""
    marks = ",".join("?" * len(wanted))
    rows = conn.execute(
        f"SELECT {SLIM_COLUMNS} FROM deliveries"
        f" WHERE webhook_id IN ({marks}) AND state IN ('pending', 'retrying') ORDER BY seq",
        wanted,
    )
    return [slim(r) for r in rows]


# The columns of a delivery taken up without its body (``slim`` makes it).
SLIM_COLUMNS = "seq, id, message_id, webhook_id, created_at, state, attempts, next_at, manual, resend_of"


def slim(r: Sequence[Any]) -> Delivery:
    """A delivery from SLIM_COLUMNS, its body, item ids and event types left in the store."""
    return Delivery(
        seq=r[0], id=r[1], message_id=r[2], webhook_id=r[3], body=b"", item_ids=(), events=(),
        triggers=(), created_at=r[4], state=r[5], attempts=r[6], next_at=r[7] or 0.0,
        manual=bool(r[8]), resend_of=r[9], loaded=False,
    )  # fmt: skip


def open_work(conn: sqlite3.Connection, wanted: Sequence[str], now: float) -> OpenWork:
    """Deliveries still to be made for these webhooks: the seqs of those due by ``now``,
    ascending, and the retries still to come as deliveries without their bodies."""
    work = OpenWork()
    for wid in wanted:
        # One statement and one parse for a webhook's whole backlog: a row-by-row fetch
        # would retake the GIL at every row, against a busy loop.
        (pending,) = conn.execute(
            "SELECT json_group_array(seq) FROM (SELECT seq FROM deliveries"
            " WHERE webhook_id = ? AND state = 'pending' ORDER BY seq)",
            (wid,),
        ).fetchone()
        seqs: list[int] = orjson.loads(pending)
        retrying = conn.execute(
            f"SELECT {SLIM_COLUMNS} FROM deliveries WHERE webhook_id = ? AND state = 'retrying' ORDER BY seq", (wid,)
        )
        due = []
        for r in retrying:
            d = slim(r)
            if d.next_at > now:
                work.later.append(d)
            else:
                due.append(d.seq)
        seqs += due
        # json_group_array keeps the subquery's order in practice, which SQLite does not
        # promise; sorting what is sorted already costs one pass.
        seqs.sort()
        if seqs:
            work.queued[wid] = array("q", seqs)
    return work


def page(conn: sqlite3.Connection, seqs: bytes, body_bytes: int) -> list[Delivery]:
    """Those of the deliveries ``seqs`` (a JSON array) still open, in sequence order; each
    with its body, item ids and event types when the body is at most ``body_bytes``."""
    rows = conn.execute(
        "SELECT d.seq, d.id, d.message_id, d.webhook_id, d.created_at, d.state, d.attempts, d.next_at,"
        " d.manual, d.resend_of, CASE WHEN length(p.body) <= ?2 THEN p.body END, p.item_ids, d.events"
        " FROM deliveries d LEFT JOIN payloads p ON p.seq = d.seq"
        " WHERE d.seq IN (SELECT value FROM json_each(?1)) AND d.state IN ('pending', 'retrying')"
        " ORDER BY d.seq",
        (seqs, body_bytes),
    )
    out = []
    for r in rows:
        d = slim(r)
        if r[10] is not None:
            d.body, d.item_ids, d.events, d.loaded = r[10], orjson.loads(r[11]), orjson.loads(r[12]), True
        out.append(d)
    return out


def body_of(conn: sqlite3.Connection, seq: int) -> tuple[bytes, str, str] | None:
    """An open delivery's body, item ids and event types (JSON), or None when it is no longer open."""
    row: tuple[bytes, str, str] | None = conn.execute(
        f"SELECT {body_store.body_sql()}, p.item_ids, d.events FROM deliveries d JOIN payloads p ON p.seq = d.seq"
        " WHERE d.seq = ? AND d.state IN ('pending', 'retrying') AND (p.body IS NOT NULL OR p.parts IS NOT NULL)",
        (seq,),
    ).fetchone()
    return row


def delivery_by_seq(conn: sqlite3.Connection, seq: int) -> Delivery | None:
    """One open delivery with its body."""
    r = conn.execute(
        f"SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN payloads p ON p.seq = d.seq"
        " WHERE d.seq = ? AND state IN ('pending', 'retrying')",
        (seq,),
    ).fetchone()
    return delivery_from_row(r) if r else None


def open_batches(conn: sqlite3.Connection) -> list[OpenBatch]:
    """Every open batch in the spool, with its original deadline."""
    return [
        OpenBatch(*r)
        for r in conn.execute(
            "SELECT webhook_id, batch_key, min(deadline), sum(left) FROM chunks GROUP BY webhook_id, batch_key"
        )
    ]


def batch_items_many(conn: sqlite3.Connection, batches: Sequence[tuple[str, str, int]]) -> list[list[Item]]:
    """For each (webhook, key, limit), that batch's oldest items."""
    out: list[list[Item]] = []
    for webhook_id, batch_key, limit in batches:
        got: list[Item] = []
        rows = conn.execute(
            "SELECT c.seq, done, meta, b.bodies FROM chunks c JOIN chunk_bodies b USING (seq)"
            " WHERE webhook_id = ? AND batch_key = ? ORDER BY c.seq",
            (webhook_id, batch_key),
        )
        for seq, done, meta, bodies in rows:
            got += chunk_items(webhook_id, batch_key, seq, done, meta, bodies)
            if len(got) >= limit:
                break
        out.append(got[:limit])
    return out
