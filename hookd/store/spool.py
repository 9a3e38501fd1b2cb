"""A spool round's read: the oldest items of many batch keys in one statement.

The keys travel as packed rows (see packing); SQLite picks each key's chunks in seq order
up to its limit and answers with a few rows, not one per chunk: each holds the picked
chunks as one JSON array of ``[key index, seq, done, bodies' length, meta]`` (meta is
spliced in as the JSON text orjson made at ingest, so SQLite never parses it) and their
bodies as one blob, in the same order. Python decodes each array once with orjson.

Why: fetching row by row, the connection thread retakes the GIL at every row, and with
the event loop busy each retake waits out a switch interval. A round of 10,000 keys took
one statement and one fetch per key: 0.4 s with the loop idle, 1-2.3 s with it busy
(bench/spool.py, README "Performance").

A row holds at most about ``PART_BYTES`` of meta and bodies (one chunk may exceed it),
far under SQLite's 1 GB limit on one value, however large the round.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import orjson

from hookd.models import Item
from hookd.store.packing import Layout
from hookd.store.schema import chunk_items

PART_BYTES = 32 << 20

# One wanted batch: its index in the round, how many items it takes, and its key. Plain
# JSON strings, as the chunks row stores them: a webhook id, event name or trigger id
# holds no NUL (their patterns), and encoding them for the blob cost 15 % of this read.
WANTED = Layout(("i", "limit", "webhook_id", "batch_key"))

# ``ranked``: each wanted key's chunks (the chunks_key index), with how many untaken items
# come before each one; a chunk is picked while that is under the key's limit, as a loop
# over the chunks in seq order would stop. ``picked`` numbers the output row (part) each
# goes to by the running size. Only small columns pass through the windows' sorters; the
# meta and bodies are read once, by the join of the last step.
ROUND = WANTED.sql(
    "WITH want AS (SELECT {i} AS i, {limit} AS lim, {webhook_id} AS webhook_id, {batch_key} AS batch_key"
    " FROM json_each(?1)),"
    " ranked AS (SELECT want.i, c.seq, want.lim, length(c.bodies) + length(c.meta) AS size,"
    " sum(c.left) OVER (PARTITION BY want.i ORDER BY c.seq) - c.left AS before"
    " FROM want JOIN chunks AS c ON c.webhook_id = want.webhook_id AND c.batch_key = want.batch_key),"
    " picked AS (SELECT i, seq, sum(size) OVER (ORDER BY i, seq) / ?3 AS part FROM ranked WHERE before < lim)"
    " SELECT '[' || group_concat('[' || p.i || ',' || p.seq || ',\"' || c.done || '\",' || length(c.bodies)"
    " || ',' || c.meta || ']') || ']', CAST(group_concat(c.bodies, '') AS BLOB)"
    " FROM picked AS p JOIN chunks AS c ON c.seq = p.seq GROUP BY p.part"
)

_order = itemgetter(0, 1)  # key index, then seq: a key's chunks in arrival order


def read_round(conn: sqlite3.Connection, batches: Sequence[tuple[str, str, int]]) -> list[list[Item]]:
    """For each (webhook, key, limit), that batch's oldest items not yet taken; one statement."""
    if not batches:
        return []
    packed = WANTED.pack([(i, limit, wid, key) for i, (wid, key, limit) in enumerate(batches)])
    # (key index, seq, done, meta, bodies, offset), one per picked chunk. Within a row the
    # array and the blob list the chunks in the same order (one aggregate pass): each
    # chunk's bodies start where the previous ones' end.
    found: list[tuple[int, int, str, list[list[Any]], bytes, int]] = []
    for text, blob in ROUND.run(conn, packed, PART_BYTES):
        at = 0
        for i, seq, done, size, meta in orjson.loads(text):
            found.append((i, seq, done, meta, blob, at))
            at += size
    # SQLite aggregates in the order the rows come; sorting makes the order this read
    # promises not depend on that (and costs one pass when it already holds).
    found.sort(key=_order)
    out: list[list[Item]] = [[] for _ in batches]
    for i, seq, done, meta, blob, at in found:
        wid, key, limit = batches[i]
        got = out[i]
        if len(got) < limit:
            got += chunk_items(wid, key, seq, done, meta, blob, at)
    for i, (_, _, limit) in enumerate(batches):
        if len(out[i]) > limit:
            del out[i][limit:]
    return out
