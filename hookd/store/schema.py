"""The SQLite schema and the mapping between rows and hookd's values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from hookd.models import Delivery, Item

SCHEMA = """
CREATE TABLE IF NOT EXISTS occurrences (
    id TEXT PRIMARY KEY,
    received_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS occurrences_received ON occurrences(received_at);

-- Items waiting in an open batch; deleted when their batch becomes a delivery.
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    batch_key TEXT NOT NULL,
    trigger TEXT NOT NULL,
    event TEXT NOT NULL,
    occurrence_id TEXT NOT NULL,
    deadline REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS items_key ON items(webhook_id, batch_key, seq);

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
    item_ids TEXT NOT NULL,
    events TEXT NOT NULL,
    triggers TEXT NOT NULL,
    lightweight INTEGER NOT NULL,
    manual INTEGER NOT NULL DEFAULT 0,
    resend_of TEXT,
    finished_at REAL,
    body BLOB,
    request TEXT,
    response TEXT
);
-- The one secondary index: lists, counts, start-up's open deliveries. Every other
-- index would cost each delivery's insert and update on the hot path (SPEC §10).
CREATE INDEX IF NOT EXISTS deliveries_webhook ON deliveries(webhook_id, state, seq);

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

INSERT_DELIVERY = (
    "INSERT INTO deliveries (seq, id, message_id, webhook_id, state, created_at, next_at,"
    " items, item_ids, events, triggers, lightweight, manual, resend_of, body)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
INSERT_ITEM = "INSERT INTO items VALUES (?,?,?,?,?,?,?,?,?)"


def delivery_row(d: Delivery, lightweight: bool) -> tuple[Any, ...]:
    """The deliveries row of a new delivery."""
    return (
        d.seq, d.id, d.message_id, d.webhook_id, "pending", d.created_at, d.next_at or None,
        len(d.item_ids), orjson.dumps(d.item_ids), orjson.dumps(d.events),
        orjson.dumps(d.triggers), int(lightweight), int(d.manual), d.resend_of, d.body,
    )  # fmt: skip


def item_row(i: Item) -> tuple[Any, ...]:
    """The items row of an item waiting in an open batch."""
    return (
        i.seq, i.id, i.webhook_id, i.batch_key, i.trigger, i.event, i.occurrence_id,
        i.deadline, i.body,
    )  # fmt: skip


def delivery_from_row(r: Sequence[Any]) -> Delivery:
    return Delivery(
        seq=r[0], id=r[1], message_id=r[2], webhook_id=r[3], body=r[4] or b"",
        item_ids=orjson.loads(r[5]), events=orjson.loads(r[6]), triggers=orjson.loads(r[7]),
        created_at=r[8], state=r[9], attempts=r[10], next_at=r[11] or 0.0,
        manual=bool(r[12]), resend_of=r[13],
    )  # fmt: skip
