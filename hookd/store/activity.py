"""Deliveries per webhook, minute and outcome, with a histogram of their durations: what the
page's activity chart draws (GET /v1/activity), read in one statement.

The window is found as a range of seqs (sequence order is creation order, see
``failed.window_seqs``), so the statement reads only the rows of the window, never the log.
"""

from __future__ import annotations

import sqlite3

from hookd.store.failed import window_seqs
from hookd.store.interface import ActivityRow

# A duration goes into a bucket of its first two significant digits: an integer of up to
# 99 ms exactly, above that 100-109, 110-119, ... 1000-1099 and so on. At most a few dozen
# buckets per webhook and minute, and no math functions needed of SQLite.
_DIGITS = "length(CAST(CAST(duration_ms AS INTEGER) AS TEXT))"
_LEAD = "CAST(substr(CAST(CAST(duration_ms AS INTEGER) AS TEXT), 1, 2) AS INTEGER)"

# Outcomes the chart draws; pending and delivering have none yet.
OUTCOMES = ("succeeded", "failed", "retrying")


def activity_rows(conn: sqlite3.Connection, since: float, webhook_id: str | None) -> list[ActivityRow]:
    """The deliveries created at or after ``since``, grouped by webhook, minute of creation,
    outcome and duration bucket."""
    lo, hi = window_seqs(conn, since, None)
    sql = (
        f"SELECT webhook_id, CAST(created_at / 60 AS INTEGER), state, {_DIGITS}, {_LEAD}, count(*), max(duration_ms)"
        " FROM deliveries WHERE seq >= ? AND seq < ? AND created_at >= ?"
        " AND state IN ('succeeded', 'failed', 'retrying')"
    )
    args: list[object] = [lo, hi, since]
    if webhook_id is not None:
        sql += " AND webhook_id = ?"
        args.append(webhook_id)
    sql += " GROUP BY 1, 2, 3, 4, 5"
    return [ActivityRow(*r) for r in conn.execute(sql, args)]
