"""The SQLite schema and the mapping between rows and hookd's values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from hookd.models import Delivery, Item

SCHEMA = """
CREATE TABLE IF NOT EXISTS occurrences (
    id TEXT PRIMARY KEY,
    received_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS occurrences_received ON occurrences(received_at);

-- Items waiting in open batches, one row per ingest request and batch key (a chunk):
-- one insert per request, not one per item (SPEC §10). meta holds each item as
-- [pos, id, trigger, event, occurrence_id, deadline, start, length], its body being
-- bodies[start, start + length) (1-based). A batch delivery appends the positions it
-- took to done and lowers left; the chunk goes when left reaches 0.
CREATE TABLE IF NOT EXISTS chunks (
    seq INTEGER PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    batch_key TEXT NOT NULL,
    deadline REAL NOT NULL,
    left INTEGER NOT NULL,
    done TEXT NOT NULL DEFAULT '',  -- consumed positions, each followed by a comma
    meta TEXT NOT NULL,
    bodies BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_key ON chunks(webhook_id, batch_key, seq);

CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,  -- dlv_<seq>_<tag>: found by seq, so no unique index to maintain
    message_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    next_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    status_code INTEGER,
    error TEXT,
    duration_ms REAL,
    items INTEGER NOT NULL,
    events TEXT NOT NULL,
    triggers TEXT NOT NULL,
    lightweight INTEGER NOT NULL,
    manual INTEGER NOT NULL DEFAULT 0,
    resend_of TEXT,
    finished_at REAL,
    request TEXT,
    response TEXT
);
-- The one secondary index: lists, counts, start-up's open deliveries. Every other
-- index would cost each delivery's insert and update on the hot path (SPEC §10).
CREATE INDEX IF NOT EXISTS deliveries_webhook ON deliveries(webhook_id, state, seq);

-- A delivery's body and item ids, written once. Kept apart from its deliveries row
-- because SQLite rewrites a whole row on every update: each attempt's update of a
-- batch's 45 KB row cost 130 µs, of the slim row 5 µs (measured).
CREATE TABLE IF NOT EXISTS payloads (
    seq INTEGER PRIMARY KEY,  -- the delivery's
    item_ids TEXT NOT NULL,
    body BLOB  -- NULL once a lightweight-logs delivery has ended
);

CREATE TABLE IF NOT EXISTS attempts (
    delivery_seq INTEGER NOT NULL,
    n INTEGER NOT NULL,
    started_at REAL NOT NULL,
    duration_ms REAL NOT NULL,
    status_code INTEGER,
    error TEXT,
    manual INTEGER NOT NULL,
    PRIMARY KEY (delivery_seq, n)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS webhook_state (
    webhook_id TEXT PRIMARY KEY,
    disabled INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    changed_at REAL
);
"""

# The hot-path writes are one statement per table per flush, whatever the row count:
# rows travel as one JSON array (unpacked by json_each) and their bodies as one blob
# (cut by substr; coalesced, as substr of an empty blob is NULL). executemany would
# release and retake the GIL around every row, and with the event loop busy each
# retake waits out a switch interval: 100 rows cost 25 ms that way and 1 ms this way
# (bench/ profiles, SPEC §10).
INSERT_DELIVERIES = (
    "INSERT INTO deliveries (seq, id, message_id, webhook_id, state, created_at, next_at,"
    " items, events, triggers, lightweight, manual, resend_of)"
    " SELECT value->>0, value->>1, value->>2, value->>3, 'pending', value->>4, value->>5,"
    " json_array_length(value->6), value->7, value->8, value->>9, value->>10, value->>11"
    " FROM json_each(?1)"
)
# The same rows as INSERT_DELIVERIES, plus the bodies.
INSERT_PAYLOADS = (
    "INSERT INTO payloads (seq, item_ids, body) SELECT value->>0, value->6,"
    " coalesce(substr(?2, value->>12, value->>13), x'')"
    " FROM json_each(?1)"
)
INSERT_CHUNKS = (
    "INSERT INTO chunks (seq, webhook_id, batch_key, deadline, left, meta, bodies)"
    " SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->5,"
    " coalesce(substr(?2, value->>6, value->>7), x'')"
    " FROM json_each(?1)"
)
# ?1: [[chunk seq, [positions]], ...]. Only positions not yet in done count, so taking
# an item twice can never empty a chunk that still holds items.
_NEW_POSITIONS = (
    "FROM json_each(u.value->1) AS p WHERE instr(',' || chunks.done, ',' || p.value || ',') = 0"
)
CONSUME_CHUNKS = (
    "UPDATE chunks SET"
    f" done = done || coalesce((SELECT group_concat(p.value || ',', '') {_NEW_POSITIONS}), ''),"
    f" left = left - (SELECT count(*) {_NEW_POSITIONS})"
    " FROM json_each(?1) AS u WHERE chunks.seq = u.value->>0"
)
DELETE_CONSUMED = "DELETE FROM chunks WHERE seq IN (SELECT value->>0 FROM json_each(?)) AND left <= 0"
# Application-chosen ids travel in the blob, not as JSON strings: SQLite's JSON functions
# cut a string at an escaped NUL (\u0000), and an id may hold one. ?1 and ?2 are
# text_params(ids).
INSERT_OCCURRENCES = (
    "INSERT INTO occurrences (id, received_at)"
    " SELECT CAST(substr(?2, value->>0, value->>1) AS TEXT), ?3 FROM json_each(?1)"
)
SEEN_OCCURRENCES = (
    "SELECT id FROM occurrences WHERE id IN (SELECT CAST(substr(?2, value->>0, value->>1) AS TEXT) FROM json_each(?1))"
)


@dataclass(slots=True)
class Packed:
    """Rows gathered for one packed statement: their fields and their bodies' bytes."""

    rows: list[list[Any]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    size: int = 0

    def add(self, fields: list[Any], *bodies: bytes | None) -> None:
        """Add a row; each body's place in the blob is appended to its fields as (start, length),
        1-based for substr, or (null, null), which substr turns into NULL, for None."""
        for body in bodies:
            if body is None:
                fields += (None, None)
                continue
            fields += (self.size + 1, len(body))
            self.bodies.append(body)
            self.size += len(body)
        self.rows.append(fields)

    def params(self) -> tuple[bytes, bytes]:
        """The statement's two parameters: the rows as JSON, the bodies as one blob."""
        return orjson.dumps(self.rows), b"".join(self.bodies)


def text_params(texts: Sequence[str]) -> tuple[bytes, bytes]:
    """Strings as a packed statement's two parameters: each one's place, and their UTF-8 bytes."""
    packed = Packed()
    for t in texts:
        packed.add([], t.encode())
    return packed.params()


def add_delivery_row(packed: Packed, d: Delivery, lightweight: bool) -> None:
    """Add a new delivery to an INSERT_DELIVERIES batch."""
    packed.add(
        [d.seq, d.id, d.message_id, d.webhook_id, d.created_at, d.next_at or None, d.item_ids, d.events,
         d.triggers, int(lightweight), int(d.manual), d.resend_of],
        d.body,
    )  # fmt: skip


def add_chunk_rows(packed: Packed, items: Sequence[Item]) -> None:
    """Add the chunks of one request's items (grouped by ``seq``, in order) to an INSERT_CHUNKS batch."""
    chunks: dict[int, list[Item]] = {}
    for i in items:
        chunks.setdefault(i.seq, []).append(i)
    for seq, members in chunks.items():
        meta = []
        start = 1
        for i in members:
            meta.append([i.pos, i.id, i.trigger, i.event, i.occurrence_id, i.deadline, start, len(i.body)])
            start += len(i.body)
        first = members[0]
        fields = [seq, first.webhook_id, first.batch_key, min(i.deadline for i in members), len(members), meta]
        packed.add(fields, b"".join(i.body for i in members))


def chunk_items(webhook_id: str, batch_key: str, seq: int, done: str, meta: str, bodies: bytes) -> list[Item]:
    """The items of a chunk row not yet taken by a batch, in order."""
    taken = {int(p) for p in done.split(",") if p}
    return [
        Item(id=iid, webhook_id=webhook_id, trigger=trigger, event=event, occurrence_id=occ,
             body=bodies[a - 1 : a - 1 + n], batch_key=batch_key, seq=seq, pos=pos, deadline=deadline)
        for pos, iid, trigger, event, occ, deadline, a, n in orjson.loads(meta)
        if pos not in taken
    ]  # fmt: skip


# An items table of one row per item came before chunks (schema version 0).
MIGRATE_ITEMS = """
INSERT INTO chunks (seq, webhook_id, batch_key, deadline, left, meta, bodies)
SELECT seq, webhook_id, batch_key, deadline, 1,
       json_array(json_array(0, id, trigger, event, occurrence_id, deadline, 1, length(body))), body
FROM items ORDER BY seq;
DROP TABLE items;
"""
# Deliveries rows carried body and item_ids before payloads (schema versions 0 and 1).
MIGRATE_PAYLOADS = """
INSERT INTO payloads (seq, item_ids, body) SELECT seq, item_ids, body FROM deliveries;
ALTER TABLE deliveries DROP COLUMN body;
ALTER TABLE deliveries DROP COLUMN item_ids;
"""
SCHEMA_VERSION = 2


def delivery_from_row(r: Sequence[Any]) -> Delivery:
    return Delivery(
        seq=r[0], id=r[1], message_id=r[2], webhook_id=r[3], body=r[4] or b"",
        item_ids=orjson.loads(r[5]), events=orjson.loads(r[6]), triggers=orjson.loads(r[7]),
        created_at=r[8], state=r[9], attempts=r[10], next_at=r[11] or 0.0,
        manual=bool(r[12]), resend_of=r[13],
    )  # fmt: skip
