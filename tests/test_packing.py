"""Packed statements: rows declared once read back exactly, whatever their fields hold."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pytest

from hookd.store.packing import Layout


class Row(NamedTuple):
    """Every kind of field, plain ones in between json ones, as the store's rows mix them."""

    n: int
    name: str
    tags: list[str]
    at: float | None
    meta: dict[str, Any]
    body: bytes | None
    key: str


LAYOUT = Layout(Row._fields, json=("tags", "meta"), blobs=("body",), texts=("key",))
TABLE = "CREATE TABLE t (n INTEGER PRIMARY KEY, name TEXT, tags TEXT, at REAL, meta TEXT, body BLOB, key TEXT)"
# Bytes that are not UTF-8, a NUL, JSON-looking text; ids with NULs and astral characters
# (text fields; a plain field is read by the JSON functions, which cut a string at a NUL).
ROWS = [
    Row(1, 'quo"te\\', ["a", "é"], 1.5, {"x": [1, 2]}, b"\x00\xff{", "\x00a"),
    Row(2, "", [], None, {}, b"", "x\x00y"),
    Row(3, "\U0001f600", ["\x00"], 0.0, {"k": None}, None, "é\U0001f600"),
    Row(4, "z", ["b"], -2.0, {"n": 1}, b'"\\u0000"', ""),
]


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A real SQLite file holding table t."""
    c = sqlite3.connect(tmp_path / "p.db", isolation_level=None)
    c.execute(TABLE)
    yield c
    c.close()


def _read(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    rows = conn.execute("SELECT n, name, tags, at, meta, body, key FROM t ORDER BY n").fetchall()
    return [(*r[:2], orjson.loads(r[2]), r[3], orjson.loads(r[4]), *r[5:]) for r in rows]


def test_an_insert_stores_every_field_of_every_row_exactly(conn: sqlite3.Connection) -> None:
    """Each field lands in its own column, in any order of kinds; a None or empty body is stored empty."""
    LAYOUT.insert("t").run(conn, LAYOUT.pack(ROWS))
    expected = [(*r[:5], r.body or b"", r.key) for r in ROWS]
    assert _read(conn) == expected


def test_an_update_sets_each_field_and_keeps_a_blob_column_its_row_leaves_none(conn: sqlite3.Connection) -> None:
    """Rows update by key; a blob field that is None keeps the column as it was."""
    LAYOUT.insert("t").run(conn, LAYOUT.pack(ROWS))
    changed = [r._replace(name=r.name + "!", tags=[*r.tags, "u"], body=None if r.n % 2 else b"new") for r in ROWS]
    LAYOUT.update("t", "n").run(conn, LAYOUT.pack(changed))
    kept = [old.body or b"" for old in ROWS]
    expected = [(*r[:5], k if r.body is None else r.body, r.key) for r, k in zip(changed, kept, strict=True)]
    assert _read(conn) == expected


def test_hand_written_statements_and_extra_parameters_read_the_declared_fields(conn: sqlite3.Connection) -> None:
    """``{field}`` in a template reads that field, computed columns may use fields and later
    parameters, and a statement reading no blob is bound without one."""
    LAYOUT.insert("t", skip=("at",), at="{n} * ?3").run(conn, LAYOUT.pack(ROWS), 10.0)
    assert [r[3] for r in _read(conn)] == [10.0, 20.0, 30.0, 40.0]
    keys = LAYOUT.sql("SELECT {key} FROM json_each(?1) WHERE {n} > 1").run(conn, LAYOUT.pack(ROWS)).fetchall()
    assert [k for (k,) in keys] == [r.key for r in ROWS[1:]]
    numbers = LAYOUT.sql("SELECT {n} FROM json_each(?1)").run(conn, LAYOUT.pack(ROWS)).fetchall()
    assert [n for (n,) in numbers] == [r.n for r in ROWS]


@pytest.mark.parametrize(
    ("fields", "kinds"),
    [
        (("body", "n"), {"blobs": ("body",)}),  # a blob before a plain field
        (("n", "body"), {"blobs": ("bdy",)}),  # a kind for a field that does not exist
    ],
)
def test_a_layout_that_would_misplace_fields_is_refused(fields: tuple[str, ...], kinds: dict[str, Any]) -> None:
    """Blob and text fields must come last and name real fields; anything else fails at import."""
    with pytest.raises(ValueError, match="bad layout"):
        Layout(fields, **kinds)


@pytest.mark.parametrize("values", [["\x00a", "x\x00y", "é\U0001f600", "", "plain"], ["one"], []])
def test_packed_texts_read_back_as_pack_packs_them(conn: sqlite3.Connection, values: list[str]) -> None:
    """pack_texts, the one-text-field shortcut, packs exactly what pack does from 1-tuples,
    and a statement reads every value back whole (NULs, astral characters, empty ones)."""
    ids = Layout(("id",), texts=("id",))
    packed = ids.pack_texts(values)
    assert packed == ids.pack([(v,) for v in values])
    read = ids.sql("SELECT {id} FROM json_each(?1) ORDER BY key").run(conn, packed).fetchall()
    assert [r[0] for r in read] == values


def test_pack_texts_refuses_a_layout_of_more_than_one_text_field() -> None:
    """The shortcut knows one shape; any other layout is refused, not mis-packed."""
    with pytest.raises(ValueError, match="one text field"):
        LAYOUT.pack_texts(["a"])
