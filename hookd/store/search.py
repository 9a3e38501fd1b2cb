"""The search of ``GET /v1/deliveries`` (SPEC §13): read-only SQL over the delivery log.

A page is found by walking one source of candidate deliveries newest first and checking
the other filters on each, until the page is full:

- a key of the search index (hookd/search.py), for item, occurrence and object ids and
  event types;
- the (webhook, state, seq) index, one range per webhook and state asked for (a webhook's
  four stored states, or every webhook in one state);
- the deliveries table itself, newest first.

The source is the one with the fewest candidates in the window, counted up to CAP each,
so a rare filter leads and a common one only checks. Times become a window of sequence
numbers first: the log's order is its order of creation (prune relies on it too), so the
bounds are found by bisection, and no index on ``created_at`` costs the hot path.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import orjson

from hookd.search import DeliveryQuery

# A list entry's columns (GET /v1/deliveries and a webhook's deliveries alike).
LIST_COLUMNS = (
    "seq, id, webhook_id, state, created_at, attempts, status_code, duration_ms, items,"
    " events, triggers, message_id, next_at, error, manual, resend_of, finished_at"
)


def summary(r: Sequence[Any]) -> dict[str, Any]:
    """A list entry from the columns LIST_COLUMNS names (``seq`` included, for the cursor)."""
    return {
        "seq": r[0], "id": r[1], "webhook_id": r[2], "state": r[3], "created_at": r[4],
        "attempts": r[5], "status_code": r[6], "duration_ms": r[7], "items": r[8],
        "events": orjson.loads(r[9]), "triggers": orjson.loads(r[10]), "message_id": r[11],
        "next_attempt_at": r[12] if r[3] == "retrying" else None, "error": r[13],
        "manual": bool(r[14]), "resend_of": r[15], "finished_at": r[16],
    }  # fmt: skip


CAP = 20_000  # candidates counted per source, at most, to choose among them
Key = tuple[str, Any]  # (index table, key): see DeliveryQuery.keys
_KEY_COLUMN = {"search": "key", "search_objects": "id"}
STORED_STATES = ("pending", "retrying", "succeeded", "failed")  # delivering is memory's alone
_COLUMNS = ", ".join(f"d.{c.strip()}" for c in LIST_COLUMNS.split(","))


def seq_bound(conn: sqlite3.Connection, at: float, top: int) -> int:
    """A sequence number B such that the deliveries below B were created before ``at`` and
    those from B on at or after it (``top``: the largest sequence number)."""
    lo, hi = 0, top + 1
    while lo < hi:
        mid = (lo + hi) // 2
        sql = "SELECT seq, created_at FROM deliveries WHERE seq >= ? ORDER BY seq LIMIT 1"
        r = conn.execute(sql, (mid,)).fetchone()
        if r is None or r[1] >= at:
            hi = mid
        else:
            lo = r[0] + 1
    return lo


class _Filters:
    """The SQL conditions of a query on deliveries (as ``{t}``), bar the source's own."""

    def __init__(self, q: DeliveryQuery, lo: int, hi: int, keys: list[Key], skip: Key | None) -> None:
        self.sql = ["{t}.seq >= ? AND {t}.seq < ?"]
        self.args: list[Any] = [lo, hi]
        for column, value in (("webhook_id", q.webhook), ("state", q.state)):
            if value is not None:
                self.add(f"{{t}}.{column} = ?", value)
        # The window of sequence numbers already holds these; kept exact should the clock
        # have stepped back while the log was written.
        if q.since is not None:
            self.add("{t}.created_at >= ?", q.since)
        if q.until is not None:
            self.add("{t}.created_at < ?", q.until)
        if q.only is not None:
            self.add("{t}.seq IN (SELECT value FROM json_each(?))", orjson.dumps(q.only))
        for k in keys:
            if k != skip:  # the source's own key
                table, column = k[0], _KEY_COLUMN[k[0]]
                self.add(f"EXISTS (SELECT 1 FROM {table} x WHERE x.{column} = ? AND x.seq = {{t}}.seq)", k[1])

    def add(self, sql: str, *args: Any) -> None:
        """One more condition."""
        self.sql.append(sql)
        self.args.extend(args)

    def where(self, table: str = "d") -> str:
        """The conditions joined, on the deliveries table named ``table``."""
        return " AND ".join(self.sql).format(t=table)


def _parts(q: DeliveryQuery) -> tuple[str, list[Any]] | None:
    """The (webhook, state) ranges of the deliveries_webhook index a query covers, as the
    ``parts(w, st)`` table of a WITH clause; None when it names neither."""
    if q.webhook is None and q.state is None:
        return None
    if q.webhook is not None:
        states = [q.state] if q.state is not None else list(STORED_STATES)
        rows = ", ".join("(?, ?)" for _ in states)
        return f"parts(w, st) AS (VALUES {rows})", [a for st in states for a in (q.webhook, st)]
    # Every webhook the log holds, by skipping through the index (one seek per webhook).
    hooks = (
        "hooks(id) AS (SELECT min(webhook_id) FROM deliveries UNION ALL"
        " SELECT (SELECT min(webhook_id) FROM deliveries WHERE webhook_id > hooks.id) FROM hooks"
        " WHERE hooks.id IS NOT NULL)"
    )
    return f"{hooks}, parts(w, st) AS (SELECT id, ? FROM hooks WHERE id IS NOT NULL)", [q.state]


def _count(conn: sqlite3.Connection, sql: str, args: list[Any]) -> int:
    n: int = conn.execute(f"SELECT count(*) FROM ({sql} LIMIT {CAP})", args).fetchone()[0]
    return n


Verify = Callable[[Any], bool]


def _verifiers(q: DeliveryQuery) -> tuple[list[str], list[Verify]]:
    """Extra columns to read, and checks on them, for the ids whose index keys are shared."""
    columns: list[str] = []
    checks: list[Verify] = []
    # An item id is the delivery's own or one its coalescing replaced (coalesced_item_ids).
    wanted_in = (
        (q.item_id, None, ("item_ids", "coalesced_item_ids")), (q.event_id, "e", ("ids",)),
    )  # fmt: skip
    for wanted, member, names in wanted_in:
        if wanted is not None:
            first = len(LIST_COLUMNS.split(",")) + len(columns)
            columns += [f"(SELECT {name} FROM payloads WHERE seq = d.seq)" for name in names]
            checks.append(partial(_holds, range(first, first + len(names)), member, wanted))
    return columns, checks


def _holds(columns: range, member: str | None, wanted: str, row: Any) -> bool:
    """Whether a JSON array in one of ``columns`` of ``row`` (or in its ``member``) holds
    ``wanted`` (checked in Python: SQLite's JSON functions cut a string at a NUL)."""
    for at in columns:
        if row[at]:
            found = orjson.loads(row[at])
            if wanted in (found if member is None else found.get(member, [])):
                return True
    return False


def search(conn: sqlite3.Connection, q: DeliveryQuery) -> list[dict[str, Any]]:
    """The first ``q.limit`` deliveries matching ``q``, newest first (summaries, with ``seq``)."""
    top = conn.execute("SELECT coalesce(max(seq), 0) FROM deliveries").fetchone()[0]
    lo = seq_bound(conn, q.since, top) if q.since is not None else 0
    hi = top + 1
    if q.until is not None:
        hi = min(hi, seq_bound(conn, q.until, top))
    if q.before is not None:
        hi = min(hi, q.before)
    if lo >= hi:
        return []
    keys = q.keys()
    extra, checks = _verifiers(q)
    cols = ", ".join([_COLUMNS, *extra])

    # Each source: (estimated candidates, a function of (hi, limit) giving its SQL and args).
    sources: list[tuple[int, Callable[[int, int], tuple[str, list[Any]]]]] = []
    if q.only is not None:
        sources.append((len(q.only), partial(_scan, q, cols, keys, lo)))
    for k in keys:
        est = _count(
            conn, f"SELECT 1 FROM {k[0]} WHERE {_KEY_COLUMN[k[0]]} = ? AND seq >= ? AND seq < ?", [k[1], lo, hi]
        )
        sources.append((est, partial(_by_key, q, cols, keys, k, lo)))
    parts = _parts(q)
    if parts is not None:
        with_parts, part_args = parts
        est = _count(
            conn,
            f"WITH RECURSIVE {with_parts} SELECT 1 FROM parts p JOIN deliveries d"
            " ON d.webhook_id = p.w AND d.state = p.st AND d.seq >= ? AND d.seq < ?",
            [*part_args, lo, hi],
        )
        sources.append((est, partial(_by_parts, q, cols, keys, with_parts, part_args, lo)))
    sources.append((hi - lo, partial(_scan, q, cols, keys, lo)))
    _, source = min(sources, key=lambda s: s[0])  # the first of equals: keys before ranges before the scan

    found: list[dict[str, Any]] = []
    while hi > lo and len(found) < q.limit:
        want = q.limit - len(found)
        sql, args = source(hi, want)
        rows = conn.execute(sql, args).fetchall()
        found += [summary(r) for r in rows if all(check(r) for check in checks)]
        if len(rows) < want:
            break
        hi = rows[-1][0]  # only shared keys' false matches were dropped: read on past them
    return found


def _scan(q: DeliveryQuery, cols: str, keys: list[Key], lo: int, hi: int, n: int) -> tuple[str, list[Any]]:
    f = _Filters(q, lo, hi, keys, None)
    return f"SELECT {cols} FROM deliveries d WHERE {f.where()} ORDER BY d.seq DESC LIMIT ?", [*f.args, n]


def _by_key(q: DeliveryQuery, cols: str, keys: list[Key], key: Key, lo: int, hi: int, n: int) -> tuple[str, list[Any]]:
    f = _Filters(q, lo, hi, keys, key)
    table, column = key[0], _KEY_COLUMN[key[0]]
    # CROSS JOIN keeps the index key's rows the outer loop, newest first.
    sql = (
        f"SELECT {cols} FROM {table} s CROSS JOIN deliveries d ON d.seq = s.seq"
        f" WHERE s.{column} = ? AND s.seq >= ? AND s.seq < ? AND {f.where()} ORDER BY s.seq DESC LIMIT ?"
    )
    return sql, [key[1], lo, hi, *f.args, n]


def _by_parts(
    q: DeliveryQuery, cols: str, keys: list[Key], with_parts: str, part_args: list[Any], lo: int, hi: int, n: int
) -> tuple[str, list[Any]]:
    f = _Filters(q, lo, hi, keys, None)
    # Each part's newest n that pass, then the newest n of those: every part is a range of
    # the index in seq order, so nothing newer is left behind.
    sql = (
        f"WITH RECURSIVE {with_parts} SELECT {cols} FROM parts p JOIN deliveries d ON d.seq IN"
        f" (SELECT y.seq FROM deliveries y WHERE y.webhook_id = p.w AND y.state = p.st AND {f.where('y')}"
        " ORDER BY y.seq DESC LIMIT ?) ORDER BY d.seq DESC LIMIT ?"
    )
    return sql, [*part_args, *f.args, n, n]
