"""Many rows as one statement: the packing behind every hot-path write.

A flush writes each table with one statement, whatever its row count. The rows travel as
one JSON array, bound to ``?1`` and unpacked by ``json_each``: each row is an array read
by position (``value->>i`` for a plain value, ``value->i`` for a list kept as JSON text).
Their bytes travel as one blob, bound to ``?2``, and each row carries the 1-based start
and the length of its piece, cut out by ``substr(?2, start, length)``.

Why: executemany releases and retakes the GIL around every row, and with the event loop
busy each retake waits out a switch interval: 100 rows cost 25 ms that way and 1 ms this
way (bench/ profiles, SPEC §10).

Bytes go in the blob, never into the JSON: a body need not be UTF-8, and SQLite's JSON
functions cut a string at an escaped NUL (``\\u0000``), which an id chosen by an
application may hold. Such ids are ``texts``: their UTF-8 bytes go in the blob and come
back out as TEXT. ``substr`` of an empty blob is NULL (so is the place of a None), which
an insert turns into ``x''`` and an update into "keep the column as it is".

A row's shape is declared once, as a NamedTuple: its fields' order is the order of the
JSON arrays, and the statements are generated from it by field name, so the positions in
the SQL and in the Python cannot drift apart; code builds rows by keyword, which mypy
checks against the same declaration. Blob and text fields come last (their places are
appended after the plain fields).
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Packed:
    """Rows ready for a packed statement: ``rows`` for ?1, ``blob`` for ?2."""

    rows: bytes
    blob: bytes


@dataclass(frozen=True, slots=True)
class Statement:
    """SQL over packed rows: ?1 the rows, ?2 the blob, ?3 on any further parameters."""

    sql: str

    def run(self, conn: sqlite3.Connection, packed: Packed, *extra: Any) -> sqlite3.Cursor:
        """Execute on ``conn``; SQLite refuses parameters a statement does not read, so
        the blob is bound only when the statement reads it (or a later parameter)."""
        if extra or "?2" in self.sql:
            return conn.execute(self.sql, (packed.rows, packed.blob, *extra))
        return conn.execute(self.sql, (packed.rows,))


class Layout:
    """The declared shape of one kind of packed row, and the statements made from it."""

    def __init__(
        self, fields: Sequence[str], *, json: Sequence[str] = (), blobs: Sequence[str] = (), texts: Sequence[str] = ()
    ) -> None:
        bytes_fields = [f for f in fields if f in blobs or f in texts]
        unknown = {*json, *blobs, *texts} - set(fields)
        if unknown or list(fields[len(fields) - len(bytes_fields) :]) != bytes_fields:
            raise ValueError(f"bad layout {fields}: unknown {sorted(unknown)}, or blob/text fields not last")
        self.fields = tuple(fields)
        self._plain = len(fields) - len(bytes_fields)
        self._bytes = bool(bytes_fields)
        self._refs: dict[str, str] = {}
        for i, f in enumerate(fields[: self._plain]):
            self._refs[f] = f"{{v}}->{i}" if f in json else f"{{v}}->>{i}"
        for k, f in enumerate(bytes_fields):
            at = self._plain + 2 * k
            cut = f"substr(?2, {{v}}->>{at}, {{v}}->>{at + 1})"
            self._refs[f] = f"CAST({cut} AS TEXT)" if f in texts else cut
        self._blobs = set(blobs)

    def ref(self, name: str, alias: str = "value") -> str:
        """The SQL expression reading field ``name`` of the row ``alias`` (json_each's value)."""
        return self._refs[name].format(v=alias)

    def sql(self, template: str, alias: str = "value") -> Statement:
        """A hand-written statement with ``{field}`` in place of each field's expression."""
        return Statement(template.format(**{f: self.ref(f, alias) for f in self.fields}))

    def insert(
        self, table: str, *, only: Sequence[str] = (), skip: Sequence[str] = (), verb: str = "INSERT", **computed: str
    ) -> Statement:
        """``<verb> INTO table`` one row per packed row: a column per field (``only`` those, or
        all but ``skip``), named as the field, plus ``computed`` columns (SQL, ``{field}`` allowed)."""
        names = [f for f in self.fields if (f in only if only else f not in skip)]
        exprs = [self._value(f, "x''") for f in names]
        exprs += [e.format(**{f: self.ref(f) for f in self.fields}) for e in computed.values()]
        columns = ", ".join([*names, *computed])
        return Statement(f"{verb} INTO {table} ({columns}) SELECT {', '.join(exprs)} FROM json_each(?1)")

    def update(self, table: str, key: str, *, skip: Sequence[str] = ()) -> Statement:
        """``UPDATE table`` the row whose ``key`` column equals the field of that name, setting
        a column per other field (but ``skip``); a blob field that is None keeps the column."""
        sets = ", ".join(f"{f} = {self._value(f, f, 'u.value')}" for f in self.fields if f != key and f not in skip)
        where = f"{table}.{key} = {self.ref(key, 'u.value')}"
        return Statement(f"UPDATE {table} SET {sets} FROM json_each(?1) AS u WHERE {where}")

    def _value(self, name: str, empty: str, alias: str = "value") -> str:
        ref = self.ref(name, alias)
        return f"coalesce({ref}, {empty})" if name in self._blobs else ref

    def pack_texts(self, values: Sequence[str]) -> Packed:
        """``pack`` for a layout of one text field, from the values themselves: no row tuple
        per value, and the spans counted in C (a third of pack's time per value)."""
        if len(self.fields) != 1 or self._plain:
            raise ValueError(f"pack_texts needs a layout of one text field, not {self.fields}")
        if not values:
            return Packed(b"[]", b"")
        data = [v.encode() for v in values]
        lengths = list(map(len, data))
        starts = itertools.accumulate(lengths[:-1], initial=1)
        return Packed(orjson.dumps(list(zip(starts, lengths, strict=True))), b"".join(data))

    def pack(self, rows: Iterable[tuple[Any, ...]]) -> Packed:
        """The statement parameters for ``rows`` (tuples of this layout's fields, in order)."""
        n = self._plain
        if not self._bytes:
            return Packed(orjson.dumps([r[:n] for r in rows]), b"")
        out: list[tuple[Any, ...]] = []
        pieces: list[bytes] = []
        size = 0
        for r in rows:
            fields = r[:n]
            for piece in r[n:]:
                if piece is None:
                    fields += (None, None)  # substr(?2, NULL, NULL) is NULL
                    continue
                data: bytes = piece.encode() if type(piece) is str else piece  # a text field
                fields += (size + 1, len(data))
                pieces.append(data)
                size += len(data)
            out.append(fields)
        return Packed(orjson.dumps(out), b"".join(pieces))
