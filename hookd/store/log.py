"""The delivery log as the admin API reads it: read-only queries, on the store's connection."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from hookd.models import delivery_seq
from hookd.search import DeliveryQuery
from hookd.store.activity import activity_rows
from hookd.store.bodies import body_sql
from hookd.store.connection import Reads
from hookd.store.interface import ActivityRow
from hookd.store.search import LIST_COLUMNS, search, summary


class LogReader:
    """Read-only queries over the delivery log (a ``DeliveryLog``); every timestamp is unix seconds."""

    def __init__(self, conn: Reads, unsaved: Callable[[], dict[int, str]]) -> None:
        self._conn = conn  # see Reads: never the writer's thread when the store is a file
        self._unsaved = unsaved  # see Store.unsaved

    async def counts(self, webhook_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """Deliveries per webhook (of ``webhook_ids``) and state.

        New deliveries whose row is not committed yet (a write waiting for the lock, a
        full disk) count as pending: they are, and they are sent once their row lands.
        """
        wanted = set(webhook_ids)
        # Taken before the read, and only those the read does not find count: a row that
        # lands in between is counted once.
        unsaved = {seq: wid for seq, wid in self._unsaved().items() if wid in wanted}

        def read(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {}
            marks = ",".join("?" * len(webhook_ids))
            for wid, state, n in conn.execute(
                "SELECT webhook_id, state, count(*) FROM deliveries"
                f" WHERE webhook_id IN ({marks}) GROUP BY webhook_id, state",
                list(webhook_ids),
            ):
                out.setdefault(wid, {})[state] = n
            if unsaved:
                found = conn.execute(
                    "SELECT seq FROM deliveries WHERE seq IN (SELECT value FROM json_each(?))",
                    (orjson.dumps(list(unsaved)),),
                )
                for seq in unsaved.keys() - {r[0] for r in found}:
                    counts = out.setdefault(unsaved[seq], {})
                    counts["pending"] = counts.get("pending", 0) + 1
            return out

        return await self._conn.run(read)

    async def last_attempts(self, webhook_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Each webhook's most recent tried delivery: its status, error and time."""

        def read(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
            out = {}
            for wid in webhook_ids:
                # max(seq) per state rides the (webhook_id, state, seq) index.
                seqs = [
                    conn.execute(
                        "SELECT max(seq) FROM deliveries WHERE webhook_id = ? AND state = ?", (wid, st)
                    ).fetchone()[0]
                    for st in ("succeeded", "failed", "retrying")
                ]
                newest = max((s for s in seqs if s is not None), default=None)
                if newest is None:
                    continue
                r = conn.execute(
                    "SELECT status_code, error, coalesce(finished_at, created_at), state FROM deliveries WHERE seq = ?",
                    (newest,),
                ).fetchone()
                out[wid] = {"status_code": r[0], "error": r[1], "at": r[2], "state": r[3]}
            return out

        return await self._conn.run(read)

    async def deliveries(
        self, webhook_id: str, state: str | None, limit: int, before: int | None
    ) -> list[dict[str, Any]]:
        """A page of a webhook's deliveries, newest first."""

        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            sql = f"SELECT {LIST_COLUMNS} FROM deliveries WHERE webhook_id = ?"
            args: list[Any] = [webhook_id]
            if state is not None:
                sql += " AND state = ?"
                args.append(state)
            if before is not None:
                sql += " AND seq < ?"
                args.append(before)
            sql += " ORDER BY seq DESC LIMIT ?"
            args.append(limit)
            return [summary(r) for r in conn.execute(sql, args)]

        return await self._conn.run(read)

    async def search(self, q: DeliveryQuery) -> list[dict[str, Any]]:
        """The first page of deliveries of every webhook matching ``q``, newest first."""
        return await self._conn.run(lambda conn: search(conn, q))

    async def summaries(self, delivery_ids: Sequence[str]) -> list[dict[str, Any]]:
        """List entries for the given delivery ids, newest first."""

        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            marks = ",".join("?" * len(delivery_ids))
            seqs = [delivery_seq(i) or 0 for i in delivery_ids]
            sql = f"SELECT {LIST_COLUMNS} FROM deliveries WHERE seq IN ({marks}) ORDER BY seq DESC"
            return [summary(r) for r in conn.execute(sql, seqs) if r[1] in delivery_ids]

        return await self._conn.run(read) if delivery_ids else []

    async def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        """One delivery's whole record, attempts (each with its response) and request included."""
        seq = delivery_seq(delivery_id)
        if seq is None:
            return None

        def read(conn: sqlite3.Connection) -> dict[str, Any] | None:
            r = conn.execute(
                f"SELECT {LIST_COLUMNS}, p.item_ids, lightweight, {body_sql()}, request, response,"
                " p.coalesced_item_ids, p.ids"
                " FROM deliveries LEFT JOIN payloads p USING (seq) WHERE seq = ?",
                (seq,),
            ).fetchone()
            if r is None or r[1] != delivery_id:
                return None
            rec = summary(r)
            rec["item_ids"] = orjson.loads(r[17]) if r[17] else []
            rec["lightweight_logs"] = bool(r[18])
            rec["body"] = r[19]
            rec["request"] = orjson.loads(r[20]) if r[20] else None
            rec["coalesced_item_ids"] = orjson.loads(r[22]) if r[22] else []
            # Deliveries logged before schema 5 have no event or object ids.
            ids = orjson.loads(r[23]) if r[23] else {}
            rec["event_ids"] = ids.get("e", [])
            rec["object_ids"] = ids.get("o", [])
            rec["attempt_log"] = [
                {"n": a[0], "started_at": a[1], "duration_ms": a[2], "status_code": a[3],
                 "error": a[4], "manual": bool(a[5]), "response": orjson.loads(a[6]) if a[6] else None}
                for a in conn.execute(
                    "SELECT n, started_at, duration_ms, status_code, error, manual, response FROM attempts"
                    " WHERE delivery_seq = ? ORDER BY n",
                    (r[0],),
                )
            ]  # fmt: skip
            # The last attempt's response; a delivery of schema 4 or older kept it on its row.
            last = rec["attempt_log"][-1]["response"] if rec["attempt_log"] else None
            rec["response"] = last if last is not None else (orjson.loads(r[21]) if r[21] else None)
            return rec

        return await self._conn.run(read)

    async def activity(self, since: float, webhook_id: str | None) -> list[ActivityRow]:
        """Deliveries created at or after ``since`` by webhook, minute, outcome and duration bucket."""
        return await self._conn.run(lambda conn: activity_rows(conn, since, webhook_id))
