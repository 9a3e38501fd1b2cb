"""Occurrence ids kept per request (schema 6): the duplicate check stays exact, and pruning
finds the ids that left the window through their requests' rows, with no index on time."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hookd.models import IdFactory, Occurrence
from hookd.store.schema import SCHEMA_VERSION
from tests.support import running_store

# Ids an application may choose: a NUL inside (SQLite's JSON functions would cut it there),
# the same text before the NUL, quotes, non-ASCII and an astral character.
ODD = ["x\x00y", "x", '"q\\"', "é", "\U0001f600"]


def _occ(ids: IdFactory, oid: str | None) -> Occurrence:
    return Occurrence(oid or ids.make("evt"), "x.created", "2026-11-29T07:00:00.000Z", {"id": 1}, None, None,
                      oid is not None)  # fmt: skip


async def test_pruned_ids_are_accepted_again_and_kept_ones_stay_duplicates(tmp_path: Path) -> None:
    """Ids of requests older than the cutoff leave the window, exactly those (an id holding a
    NUL and its prefix apart); a repeat inside the window is still a duplicate, within one
    request and across requests."""
    ids = IdFactory()
    async with running_store(tmp_path / "t.db") as store:
        assert await store.ingest([_occ(ids, ODD[0]), _occ(ids, None), _occ(ids, ODD[2])], 1.0, [], []) == set()
        assert await store.ingest([_occ(ids, o) for o in ODD[1:]] + [_occ(ids, "x")], 5.0, [], []) == {1, 4}
        await store.prune(3.0, {"w"})
        stored = await store.run(lambda c: sorted(r[0] for r in c.execute("SELECT id FROM occurrences")))
        assert stored == sorted([ODD[1], ODD[3], ODD[4]])  # ODD[2] came in the first request
        assert await store.run(lambda c: [r[0] for r in c.execute("SELECT received_at FROM occurrence_sets")]) == [5.0]
        # x\0y and "q" left the window and are new again; x and the others are still duplicates.
        assert await store.ingest([_occ(ids, o) for o in ODD], 6.0, [], []) == {1, 3, 4}
        await store.prune(10.0, {"w"})
        assert await store.run(lambda c: c.execute("SELECT count(*) FROM occurrences").fetchone()[0]) == 0
        assert await store.ingest([_occ(ids, o) for o in ODD], 11.0, [], []) == set()


async def test_a_store_of_schema_5_keeps_its_ids_and_prunes_them(tmp_path: Path) -> None:
    """Ids written by schema 5 (one row each, an index on received_at) are still duplicates
    after the migration, the index is gone, and pruning takes the old ones by their time."""
    path = tmp_path / "v5.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE occurrences (id TEXT PRIMARY KEY, received_at REAL NOT NULL) WITHOUT ROWID;"
        "CREATE INDEX occurrences_received ON occurrences(received_at);"
        "PRAGMA user_version = 5;"
    )
    conn.executemany("INSERT INTO occurrences VALUES (?, ?)", [(ODD[0], 1.0), (ODD[1], 1.0), (ODD[3], 7.0)])
    conn.commit()
    conn.close()
    ids = IdFactory()
    async with running_store(path) as store:
        assert await store.run(lambda c: c.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION
        index = "SELECT name FROM sqlite_master WHERE name = 'occurrences_received'"
        assert await store.run(lambda c: c.execute(index).fetchall()) == []
        assert await store.ingest([_occ(ids, o) for o in ODD], 8.0, [], []) == {0, 1, 3}
        await store.prune(5.0, {"w"})
        assert await store.ingest([_occ(ids, o) for o in ODD], 9.0, [], []) == {2, 3, 4}
