"""The failed deliveries of a time window, as a recovery reads them (SPEC §13).

Read in pages, each a short statement of its own on the connection thread, so the
writer's commits go on between them however many deliveries a window holds.
"""

from __future__ import annotations

import sqlite3

import orjson

from hookd.store.bodies import body_sql
from hookd.store.interface import Failed

# Sequence order is creation order: a delivery's seq and its created_at are taken together,
# with no await between them. Only a step of the wall clock breaks that, so the range found
# is widened by this much on each side and the exact window is still checked row by row.
SLACK_SECONDS = 60.0
_FOREVER = 1e300  # no until: the window has no end


def _first_at_or_after(conn: sqlite3.Connection, t: float) -> int:
    """The lowest seq that may hold a delivery created at or after ``t``: a binary search on
    the primary key (about 20 lookups for a million rows), where a scan would read them all."""
    lo, top = conn.execute("SELECT coalesce(min(seq), 1), coalesce(max(seq), 0) FROM deliveries").fetchone()
    hi = top + 1  # past the last row: nothing there is older than t
    while lo < hi:
        mid = (lo + hi) // 2
        row = conn.execute("SELECT seq, created_at FROM deliveries WHERE seq >= ? ORDER BY seq LIMIT 1", (mid,))
        found = row.fetchone()
        if found is None or found[1] >= t:
            hi = mid
        else:
            lo = found[0] + 1
    return int(lo)


def window_seqs(conn: sqlite3.Connection, since: float, until: float | None) -> tuple[int, int]:
    """A seq range [lo, hi) holding every delivery created in [since, until)."""
    lo = _first_at_or_after(conn, since - SLACK_SECONDS)
    hi = _first_at_or_after(conn, until + SLACK_SECONDS) if until is not None else 1 << 62
    return lo, hi


def page(
    conn: sqlite3.Connection,
    webhook_id: str,
    since: float,
    until: float | None,
    after: int,
    before: int,
    limit: int,
    bodies: bool,
) -> list[Failed]:
    """Up to ``limit`` failed deliveries of the webhook created in [since, until) with
    ``after < seq < before``, oldest first; ``bodies``: with what a resend needs."""
    # The (webhook_id, state, seq) index walks only this webhook's failed rows in the range.
    where = (
        " FROM deliveries d WHERE d.webhook_id = ? AND d.state = 'failed' AND d.seq > ? AND d.seq < ?"
        " AND d.created_at >= ? AND d.created_at < ? ORDER BY d.seq LIMIT ?"
    )
    args = (webhook_id, after, before, since, until if until is not None else _FOREVER, limit)
    if not bodies:
        rows = conn.execute("SELECT d.seq, d.lightweight" + where, args)
        return [Failed(seq=r[0], lightweight=bool(r[1])) for r in rows]
    rows = conn.execute(
        f"SELECT d.seq, d.id, d.message_id, p.item_ids, d.events, d.triggers, {body_sql()}, p.coalesced_item_ids,"
        " d.lightweight" + where.replace(" WHERE", " LEFT JOIN payloads p ON p.seq = d.seq WHERE", 1),
        args,
    )
    return [
        Failed(
            seq=r[0], id=r[1], message_id=r[2], item_ids=orjson.loads(r[3]) if r[3] else [],
            events=orjson.loads(r[4]), triggers=orjson.loads(r[5]), body=None if r[8] else r[6],
            coalesced=orjson.loads(r[7]) if r[7] else [], lightweight=bool(r[8]),
        )
        for r in rows
    ]  # fmt: skip
