"""The SQLite schema, its migrations, the packed rows of the hot-path writes and the
mapping between rows and hookd's values."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson
import structlog

from hookd.models import Delivery, Item
from hookd.search import OBJECT_ROWS, delivery_keys, search_safe
from hookd.store.bodies import body_sql
from hookd.store.packing import Layout

log = structlog.get_logger("hookd.store")

SCHEMA = """
-- Application-chosen occurrence ids within retention_days (idempotency, SPEC §3): the one
-- exact lookup by id. Pruned through occurrence_sets, so no index on received_at: one
-- b-tree row per id instead of two (schema 6).
CREATE TABLE IF NOT EXISTS occurrences (
    id TEXT PRIMARY KEY,
    received_at REAL NOT NULL
) WITHOUT ROWID;
-- The same ids, one row per ingest request, in arrival order (seq): pruning walks the
-- oldest rows and deletes their ids by key. spans is [[start, length], …] of each id's
-- UTF-8 bytes in ids (packing's text layout: an id may hold a NUL).
CREATE TABLE IF NOT EXISTS occurrence_sets (
    seq INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    spans TEXT NOT NULL,
    ids BLOB NOT NULL
);

-- Items waiting in open batches, one row per ingest request and batch key (a chunk):
-- one insert per request, not one per item (SPEC §10). meta holds each item as
-- [pos, id, trigger, event, occurrence_id, deadline, start, length, object_id], its body
-- being chunk_bodies.bodies[start, start + length) (1-based). A batch delivery appends the
-- positions it took to done and lowers left; the chunk goes when left reaches 0.
CREATE TABLE IF NOT EXISTS chunks (
    seq INTEGER PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    batch_key TEXT NOT NULL,
    deadline REAL NOT NULL,
    left INTEGER NOT NULL,
    done TEXT NOT NULL DEFAULT '',  -- consumed positions, each followed by a comma
    meta TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_key ON chunks(webhook_id, batch_key, seq);

-- A chunk's item bodies, each followed by a comma (schema 6; see hookd/store/bodies.py for
-- the layout and the lifetime). Apart from chunks so that neither row is rewritten when the
-- other changes: batch deliveries refer to these bytes, and outlive their chunks rows.
CREATE TABLE IF NOT EXISTS chunk_bodies (
    seq INTEGER PRIMARY KEY,  -- the chunk's
    bodies BLOB NOT NULL
);
-- Which payloads refer to a chunk's bytes: one row per (chunk, batch delivery) pair.
CREATE TABLE IF NOT EXISTS body_refs (
    chunk_seq INTEGER NOT NULL,
    delivery_seq INTEGER NOT NULL,
    PRIMARY KEY (chunk_seq, delivery_seq)
) WITHOUT ROWID;

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
    response TEXT  -- schema 4 and older: the last response (now on each attempts row)
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
    body BLOB,  -- NULL once a lightweight-logs delivery has ended
    coalesced_item_ids TEXT,  -- a coalescing batch's replaced items (JSON), else NULL
    -- Since schema 5 (NULL before): {"e": [...], "o": [...], "k": [...]}, per item its
    -- occurrence id and object id (parallel to item_ids), and the delivery's keys in search
    -- (to take them out again). One column: each packed field costs the insert a parse.
    ids TEXT,
    -- Since schema 6: a batch's body as [[chunk seq, start, length], …] ranges of
    -- chunk_bodies (and body NULL), so each body is written once; NULL: body is the body.
    parts TEXT
);

-- The search index (SPEC §13, see hookd/search.py for the keys): one row per distinct key
-- of a delivery, written with it; the only indexes besides deliveries_webhook. Found by
-- key newest first, and removed with the delivery through its payloads row.
CREATE TABLE IF NOT EXISTS search (
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,  -- the delivery's
    PRIMARY KEY (key, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS search_objects (
    id NOT NULL,  -- an integer or a text: no affinity, so neither is turned into the other
    seq INTEGER NOT NULL,
    PRIMARY KEY (id, seq)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS attempts (
    delivery_seq INTEGER NOT NULL,
    n INTEGER NOT NULL,
    started_at REAL NOT NULL,
    duration_ms REAL NOT NULL,
    status_code INTEGER,
    error TEXT,
    manual INTEGER NOT NULL,
    response BLOB,  -- JSON, as attempt_log keeps it; empty under lightweight logs (schema 5)
    PRIMARY KEY (delivery_seq, n)
) WITHOUT ROWID;

-- Webhooks created through the API (SPEC §11): the document as accepted (secrets inline,
-- as the signing needs them) and a random revision tag for ETag/If-Match.
CREATE TABLE IF NOT EXISTS api_webhooks (
    id TEXT PRIMARY KEY,
    doc BLOB NOT NULL,
    revision TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;

-- How often each event type was ingested, per hour (GET /v1/event-types): a request adds
-- one row per distinct type, and pruning drops hours wholly older than retention_days.
-- A table new files and old ones both get from CREATE IF NOT EXISTS: an older hookd
-- opening the file only ignores it, so the schema version stays as it is.
CREATE TABLE IF NOT EXISTS event_types_seen (
    name TEXT NOT NULL,
    hour REAL NOT NULL,  -- unix seconds at the start of the hour
    count INTEGER NOT NULL,
    last_at REAL NOT NULL,
    PRIMARY KEY (name, hour)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS webhook_state (
    webhook_id TEXT PRIMARY KEY,
    disabled INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    changed_at REAL
);
"""

# The packed rows of the hot-path writes (see packing): each declaration is the one order
# of a row's fields, for the JSON the Python packs and for the SQL that reads it.


class NewDelivery(NamedTuple):
    """A new delivery (from ingest, a flushed batch or a resend): its deliveries and payloads rows.

    The per-item lists arrive as JSON text made by orjson, cut from the blob: nested in the
    rows' JSON, SQLite 3.40 would parse and copy each list again for every column it fills.
    """

    seq: int
    id: str
    message_id: str
    webhook_id: str
    created_at: float
    next_at: float | None
    events: Sequence[str]
    triggers: Sequence[str]
    lightweight: int
    manual: int
    resend_of: str | None
    items: int
    item_ids: bytes  # JSON array
    ids: bytes  # JSON object: see the payloads table
    parts: bytes | None  # JSON: the body's ranges of chunk_bodies (see bodies), or None
    body: bytes


_LISTS = ("item_ids", "ids")
NEW_DELIVERY = Layout(NewDelivery._fields, json=("events", "triggers"), texts=(*_LISTS, "parts"), blobs=("body",))
INSERT_DELIVERIES = NEW_DELIVERY.insert("deliveries", skip=(*_LISTS, "parts", "body"), state="'pending'")
# The same rows, their item ids and their bodies: a batch's ranges instead of its bytes when
# it has them (the body travels anyway, for the rare range whose bytes are gone: see bodies).
INSERT_PAYLOADS = NEW_DELIVERY.insert(
    "payloads", only=("seq", *_LISTS, "parts"), body="CASE WHEN {parts} IS NULL THEN coalesce({body}, x'') END"
)
# The same rows' bodies, for those of ?3 (a JSON array of seqs) whose ranges are missing.
COPY_BODIES = NEW_DELIVERY.sql(
    "UPDATE payloads SET body = coalesce({body}, x''), parts = NULL FROM json_each(?1) AS u"
    " WHERE payloads.seq = {seq} AND payloads.seq IN (SELECT value FROM json_each(?3))",
    alias="u.value",
)
# Their rows in the search index, from by_seq's JSON objects of each row's keys and of its
# object ids (whose rows are made here). Not read from the packed rows: there, each field
# costs SQLite 3.40 a copy and a parse of the whole row (about 2 µs, measured), which for
# one-item deliveries cost more than the index rows themselves.
INSERT_SEARCH = (
    "INSERT OR IGNORE INTO search (key, seq)"
    " SELECT k.value, CAST(r.key AS INTEGER) FROM json_each(?1) AS r, json_each(r.value) AS k"
)
INSERT_OBJECTS = "INSERT OR IGNORE INTO search_objects (id, seq) " + OBJECT_ROWS.format(
    rows="json_each(?1) AS r", seq="CAST(r.key AS INTEGER)", ids="r.value"
)


def by_seq(rows: Sequence[NewDelivery]) -> tuple[bytes, bytes]:
    """``{"<seq>": [keys], …}`` and ``{"<seq>": [object ids], …}`` of the rows, as
    INSERT_SEARCH and INSERT_OBJECTS read them: cut out of each row's ids, whose "o" follows
    an array of strings (which cannot hold an unescaped ``,"o":``) and whose "k" is last."""
    keys, objects = [], []
    for r in rows:
        o, k = r.ids.index(b',"o":'), r.ids.rindex(b',"k":')
        keys.append(b'"%d":%s' % (r.seq, r.ids[k + 5 : -1]))
        objects.append(b'"%d":%s' % (r.seq, r.ids[o + 5 : k]))
    return b"{" + b",".join(keys) + b"}", b"{" + b",".join(objects) + b"}"


# The index rows of the payloads rows ``p`` that match ``{where}``, to take them out again.
PAYLOAD_KEYS = "SELECT k.value, p.seq FROM payloads p, json_each(p.ids, '$.k') AS k WHERE {where}"
PAYLOAD_OBJECTS = OBJECT_ROWS.format(rows="payloads p", seq="p.seq", ids="p.ids, '$.o'") + " AND {where}"


class Attempt(NamedTuple):
    """One attempt's attempts row; ``response`` is JSON bytes, or None under lightweight logs."""

    delivery_seq: int
    n: int
    started_at: float
    duration_ms: float
    status_code: int | None
    error: str | None
    manual: int
    response: bytes | None


ATTEMPT = Layout(Attempt._fields, blobs=("response",))
INSERT_ATTEMPTS = ATTEMPT.insert("attempts", verb="INSERT OR REPLACE")


class DeliveryUpdate(NamedTuple):
    """A delivery's state after an attempt. ``request`` is JSON bytes, or None to keep what
    an earlier attempt recorded. (Each attempt's response is on its attempts row; the
    deliveries row's ``response`` column is only read for deliveries of schema 4 and older.)"""

    seq: int
    state: str
    next_at: float | None
    attempts: int
    status_code: int | None
    error: str | None
    duration_ms: float
    finished_at: float | None
    drop_body: int  # 1: a lightweight-logs delivery that has ended, whose body goes
    request: bytes | None


DELIVERY_UPDATE = Layout(DeliveryUpdate._fields, blobs=("request",))
UPDATE_DELIVERIES = DELIVERY_UPDATE.update("deliveries", "seq", skip=("drop_body",))
DROP_BODIES = "UPDATE payloads SET body = NULL, parts = NULL WHERE seq IN (SELECT value FROM json_each(?))"


class Chunk(NamedTuple):
    """One request's items of one webhook and batch key (see the chunks table)."""

    seq: int
    webhook_id: str
    batch_key: str | None  # never None for a batched item (the column refuses it)
    deadline: float
    left: int
    meta: bytes  # JSON (see chunks), made by orjson and cut from the blob: SQLite need not parse it
    bodies: bytes  # see chunk_bodies


CHUNK = Layout(Chunk._fields, texts=("meta",), blobs=("bodies",))
INSERT_CHUNKS = CHUNK.insert("chunks", skip=("bodies",))
INSERT_CHUNK_BODIES = CHUNK.insert("chunk_bodies", only=("seq", "bodies"))


class Taken(NamedTuple):
    """Positions of a chunk's items that new batch deliveries took: distinct, how many, and
    as ``done`` lists them."""

    seq: int
    n: int  # how many
    listed: str  # "p,p,…,": each position followed by a comma
    positions: list[int]


def taken(seq: int, positions: Sequence[int]) -> Taken:
    """The Taken row of a chunk's taken positions (repeats counted once)."""
    distinct = sorted(set(positions))
    return Taken(
        seq=seq,
        n=len(distinct),
        listed="".join((",".join(map(str, distinct)), ",")) if distinct else "",
        positions=distinct,
    )


TAKEN = Layout(Taken._fields, json=("positions",))
# A flush takes items from chunks in three steps, each one or two statements for all its
# chunks:
#
# 1. Chunks nothing was taken from before (done is empty) and taken whole now go, without
#    being rewritten. This is the common case: a request's items leave in the batches of
#    one flush. SQLite rewrites a whole row on update, and a chunk carries its items'
#    bodies (a 1,000-item request's: 500 KB); updating it before the delete cost about
#    2.5 ms a chunk and as much again at the commit. They are found first (one row: their
#    seqs as a JSON array) and deleted by that flat array, because a function call in a
#    DELETE's subquery (even value->>0 or abs(value)) made SQLite read each deleted row
#    whole first: 1 ms for a 500 KB chunk against 0.06 ms (SQLite 3.40, bench/).
FIND_TAKEN_WHOLE = TAKEN.sql(
    "SELECT json_group_array(chunks.seq) FROM json_each(?1) AS u JOIN chunks ON chunks.seq = {seq}"
    " WHERE chunks.done = '' AND chunks.left <= {n}",
    alias="u.value",
)
DELETE_CHUNKS = "DELETE FROM chunks WHERE seq IN (SELECT value FROM json_each(?))"  # ? a JSON array of seqs
# 2. The others record what was taken. Only positions not yet in done count, so taking an
#    item twice can never empty a chunk that still holds items; a chunk with an empty done
#    counts them all without that scan (about 1 µs a position).
_NEW_POSITIONS = "FROM json_each({positions}) AS p WHERE instr(',' || chunks.done, ',' || p.value || ',') = 0"
_NEW_COUNT = f"CASE WHEN chunks.done = '' THEN {{n}} ELSE (SELECT count(*) {_NEW_POSITIONS}) END"
CONSUME_CHUNKS = TAKEN.sql(
    "UPDATE chunks SET"
    " done = done || CASE WHEN done = '' THEN {listed}"
    f" ELSE coalesce((SELECT group_concat(p.value || ',', '') {_NEW_POSITIONS}), '') END,"
    f" left = left - {_NEW_COUNT}"
    " FROM json_each(?1) AS u WHERE chunks.seq = {seq}",
    alias="u.value",
)
# 3. Chunks that step 2 emptied (taken from before, and of the rest now) go.
DELETE_CONSUMED = "DELETE FROM chunks WHERE seq IN (SELECT value FROM json_each(?)) AND left <= 0"  # ? as DELETE_CHUNKS


# Application-chosen occurrence ids (idempotency), one per row: text, as one may hold a
# NUL. Rows of one field are plain 1-tuples, with no order to keep: a NamedTuple per id
# cost 0.7 µs more, twice per event, about 2 % of a batched event's CPU (measured).
OCCURRENCE_ID = Layout(("id",), texts=("id",))
# The ids it inserted come back; one already there is left as it is (its first arrival).
CLAIM_OCCURRENCES = OCCURRENCE_ID.sql(
    "INSERT OR IGNORE INTO occurrences (id, received_at) SELECT {id}, ?3 FROM json_each(?1) RETURNING id"
)
# The request's row of them: the packed rows are the spans, the blob the ids (see the table).
INSERT_OCCURRENCE_SET = "INSERT INTO occurrence_sets (spans, ids, received_at) VALUES (?1, ?2, ?3)"
# Sets wholly before ?1 (a time): the scan stops at the first one inside the window.
OLD_OCCURRENCE_SETS = (
    "SELECT json_group_array(seq) FROM occurrence_sets WHERE seq < coalesce("
    " (SELECT seq FROM occurrence_sets WHERE received_at >= ?1 ORDER BY seq LIMIT 1), 1 << 62)"
)
_SETS = "SELECT value FROM json_each(?1)"  # ?1 a JSON array of set seqs
DELETE_SET_OCCURRENCES = (
    "DELETE FROM occurrences WHERE id IN (SELECT CAST(substr(s.ids, j.value->>0, j.value->>1) AS TEXT)"
    f" FROM occurrence_sets s, json_each(s.spans) AS j WHERE s.seq IN ({_SETS}))"
)
DELETE_OCCURRENCE_SETS = f"DELETE FROM occurrence_sets WHERE seq IN ({_SETS})"


# A request's event types and how many of its events had each: one row per distinct type.
SEEN_TYPE = Layout(("name", "count"))
ADD_SEEN_TYPES = SEEN_TYPE.sql(
    "INSERT INTO event_types_seen (name, hour, count, last_at) SELECT {name}, ?3, {count}, ?4"
    " FROM json_each(?1) WHERE true"  # the WHERE lets SQLite parse the upsert after a SELECT
    " ON CONFLICT (name, hour) DO UPDATE SET count = count + excluded.count, last_at = max(last_at, excluded.last_at)"
)
SEEN_HOUR = 3600.0


def new_delivery(d: Delivery, lightweight: bool, parts: bytes | None = None) -> NewDelivery:
    """The row of a new delivery, with its keys into the search index; ``parts``: its body's
    ranges of chunk_bodies (see bodies.runs)."""
    # A coalesced batch is found by the items it replaced too: "did item X go out?" is
    # answered by the delivery that carried its object's later state.
    item_ids = [*d.item_ids, *d.coalesced] if d.coalesced else d.item_ids
    keys = orjson.dumps(delivery_keys(item_ids, d.event_ids, d.events))
    if b"\\u0000" in keys:  # SQLite's JSON functions would cut the key there: see search_safe
        keys = orjson.dumps([search_safe(k) for k in orjson.loads(keys)])
    return NewDelivery(
        seq=d.seq, id=d.id, message_id=d.message_id, webhook_id=d.webhook_id, created_at=d.created_at,
        next_at=d.next_at or None, events=d.events, triggers=d.triggers, lightweight=int(lightweight),
        manual=int(d.manual), resend_of=d.resend_of, items=len(d.item_ids), item_ids=orjson.dumps(d.item_ids),
        ids=b'{"e":%s,"o":%s,"k":%s}' % (orjson.dumps(d.event_ids), orjson.dumps(d.object_ids), keys), parts=parts,
        body=d.body,
    )  # fmt: skip


def chunk_rows(items: Sequence[Item]) -> list[Chunk]:
    """The chunks of one request's items (grouped by ``seq``, in order).

    Each body is followed by a comma, at the item's ``start`` (given by the plan, which
    counted the same way; set here when 0): a duplicate dropped from the chunk leaves its
    place as spaces, so the others stay where the batcher's items say they are."""
    groups: dict[int, list[Item]] = {}
    for i in items:
        groups.setdefault(i.seq, []).append(i)
    out = []
    for seq, members in groups.items():
        meta = []
        pieces = []
        at = 1  # the next free byte
        for i in members:
            if i.start > at:
                pieces.append(b" " * (i.start - at))
            elif i.start < at:
                if i.start:
                    raise ValueError(f"item {i.id} starts at {i.start} in chunk {seq}, inside the one before")
                i.start = at
            n = len(i.body)
            meta.append([i.pos, i.id, i.trigger, i.event, i.occurrence_id, i.deadline, i.start, n, i.object_id])
            pieces += (i.body, b",")
            at = i.start + n + 1
        first = members[0]
        out.append(
            Chunk(
                seq=seq, webhook_id=first.webhook_id, batch_key=first.batch_key,
                deadline=min(i.deadline for i in members), left=len(members), meta=orjson.dumps(meta),
                bodies=b"".join(pieces),
            )
        )  # fmt: skip
    return out


def chunk_items(webhook_id: str, batch_key: str, seq: int, done: str, meta: str, bodies: bytes) -> list[Item]:
    """The items of a chunk row not yet taken by a batch, in order."""
    taken = {int(p) for p in done.split(",") if p}
    out = []
    for m in orjson.loads(meta):
        pos, iid, trigger, event, occ, deadline, a, n = m[:8]
        if pos in taken:
            continue
        body = bodies[a - 1 : a - 1 + n]
        # Chunks of schema 4 and older have no object id: it is the body's (every payload
        # kind carries the envelope).
        object_id = m[8] if len(m) > 8 else _object_id(body)
        out.append(
            Item(id=iid, webhook_id=webhook_id, trigger=trigger, event=event, occurrence_id=occ, body=body,
                 batch_key=batch_key, seq=seq, pos=pos, deadline=deadline, object_id=object_id, start=a)
        )  # fmt: skip
    return out


def _object_id(body: bytes) -> Any:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return doc.get("object_id") if isinstance(doc, dict) else None


# An items table of one row per item came before chunks (schema version 0).
MIGRATE_ITEMS = """
INSERT INTO chunks (seq, webhook_id, batch_key, deadline, left, meta)
SELECT seq, webhook_id, batch_key, deadline, 1,
       json_array(json_array(0, id, trigger, event, occurrence_id, deadline, 1, length(body)))
FROM items ORDER BY seq;
INSERT INTO chunk_bodies (seq, bodies) SELECT seq, body FROM items;
DROP TABLE items;
"""
# Deliveries rows carried body and item_ids before payloads (schema versions 0 and 1).
MIGRATE_PAYLOADS = """
INSERT INTO payloads (seq, item_ids, body) SELECT seq, item_ids, body FROM deliveries;
ALTER TABLE deliveries DROP COLUMN body;
ALTER TABLE deliveries DROP COLUMN item_ids;
"""
# Coalescing (schema version 4) lists a batch's replaced items beside its payload.
MIGRATE_COALESCED = "ALTER TABLE payloads ADD COLUMN coalesced_item_ids TEXT;"
# Attempts rows gained each attempt's response, payloads rows their occurrence and object
# ids and search keys (schema 5; the search tables are new, so CREATE makes them).
MIGRATE_SEARCH = "ALTER TABLE payloads ADD COLUMN ids TEXT;"
MIGRATE_ATTEMPTS = "ALTER TABLE attempts ADD COLUMN response BLOB;"
# Chunks rows carried their bodies before chunk_bodies (schema 5 and older). Their bodies
# have no commas between them: each item is a range of its own (bodies.runs), and payloads
# rows of these versions keep their bodies (parts NULL).
MIGRATE_CHUNK_BODIES = """
INSERT INTO chunk_bodies (seq, bodies) SELECT seq, bodies FROM chunks;
ALTER TABLE chunks DROP COLUMN bodies;
"""
MIGRATE_PARTS = "ALTER TABLE payloads ADD COLUMN parts TEXT;"
# Occurrence ids had an index on received_at for pruning (schema 5 and older): each becomes
# a set of its own (exact whatever the id holds), and the index goes.
MIGRATE_OCCURRENCE_SETS = """
INSERT INTO occurrence_sets (received_at, spans, ids)
SELECT received_at, json_array(json_array(1, length(CAST(id AS BLOB)))), CAST(id AS BLOB)
FROM occurrences ORDER BY received_at;
DROP INDEX occurrences_received;
"""
# 3: api_webhooks. An older hookd would open the file and silently route without them.
# 4: payloads.coalesced_item_ids. An older hookd would write coalesced batches it cannot list.
# 5: the search index and each attempt's response: an older hookd would not index what it
# writes (nor take it out again).
# 6: chunk_bodies, body_refs and payloads.parts: an older hookd would read a batch's body
# as empty and delete chunks whose bytes payloads still need; occurrence_sets: it would
# never prune the occurrence ids it wrote.
SCHEMA_VERSION = 6


def migrate(conn: sqlite3.Connection, path: object) -> None:
    """Create the tables, or bring those of an older hookd up to this version, in one
    transaction; refuse a file written by a newer hookd."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise OSError(f"{path} has schema version {version}, written by a newer hookd (this one: {SCHEMA_VERSION})")
    conn.executescript(SCHEMA)
    # Each step checks for the old shape itself, so a file of any older version takes
    # only the steps it needs, all in one transaction; the checks are cheap enough to
    # make every time.
    steps = []
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'items'").fetchone():
        steps.append(MIGRATE_ITEMS)
    if any(r[1] == "body" for r in conn.execute("PRAGMA table_info(deliveries)")):
        steps.append(MIGRATE_PAYLOADS)
    payload_columns = {r[1] for r in conn.execute("PRAGMA table_info(payloads)")}
    if "coalesced_item_ids" not in payload_columns:
        steps.append(MIGRATE_COALESCED)
    if "ids" not in payload_columns:
        steps.append(MIGRATE_SEARCH)
    if not any(r[1] == "response" for r in conn.execute("PRAGMA table_info(attempts)")):
        steps.append(MIGRATE_ATTEMPTS)
    if any(r[1] == "bodies" for r in conn.execute("PRAGMA table_info(chunks)")):
        steps.append(MIGRATE_CHUNK_BODIES)
    if "parts" not in payload_columns:
        steps.append(MIGRATE_PARTS)
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'occurrences_received'").fetchone():
        steps.append(MIGRATE_OCCURRENCE_SETS)
    if steps:  # dropping columns rewrites the deliveries table: say so before it starts
        log.info("store_migrating", from_version=version, to_version=SCHEMA_VERSION)
    try:
        conn.executescript("BEGIN;" + "".join(steps) + f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
    except BaseException:
        if conn.in_transaction:  # executescript leaves a failed transaction open
            conn.execute("ROLLBACK")
        raise
    if steps:
        log.info("store_migrated", to_version=SCHEMA_VERSION)


# A delivery with its body, as delivery_from_row reads it (deliveries d JOIN payloads p).
DELIVERY_COLUMNS = (
    f"d.seq, id, message_id, webhook_id, {body_sql()}, p.item_ids, events, triggers,"
    " created_at, state, attempts, next_at, manual, resend_of"
)


def delivery_from_row(r: Sequence[Any]) -> Delivery:
    """A delivery with its body, from the columns DELIVERY_COLUMNS names."""
    return Delivery(
        seq=r[0], id=r[1], message_id=r[2], webhook_id=r[3], body=r[4] or b"",
        item_ids=orjson.loads(r[5]), events=orjson.loads(r[6]), triggers=orjson.loads(r[7]),
        created_at=r[8], state=r[9], attempts=r[10], next_at=r[11] or 0.0,
        manual=bool(r[12]), resend_of=r[13],
    )  # fmt: skip
