"""Coalescing (SPEC §13) as a pure function over items: latest state wins, first position kept."""

from __future__ import annotations

import orjson

from hookd.coalesce import coalesce, object_key
from hookd.models import Item


def item(iid: str, object_id: object = None, *, missing: bool = False, body: bytes | None = None) -> Item:
    """An item whose body is an envelope with ``object_id`` (left out entirely when ``missing``)."""
    doc: dict[str, object] = {"id": iid, "webhook_id": "w", "event": "ticket.updated", "event_id": iid}
    if not missing:
        doc["object_id"] = object_id
    return Item(iid, "w", "t", "ticket.updated", iid, body if body is not None else orjson.dumps(doc), "*")


def ids(items: list[Item]) -> list[str]:
    """The items' ids, in order."""
    return [i.id for i in items]


def test_a_later_item_of_an_object_takes_the_first_ones_place() -> None:
    """The latest item of each object is sent at the position where the object first appeared;
    the replaced ids come back in arrival order."""
    items = [item("a1", 1), item("b1", 2), item("a2", 1), item("c1", 3), item("a3", 1), item("b2", 2)]
    sent, replaced = coalesce(items)
    assert ids(sent) == ["a3", "b2", "c1"]
    assert replaced == ["a1", "a2", "b1"]


def test_items_without_an_object_id_are_never_coalesced() -> None:
    """A null or missing object_id keeps every such item, in place among the others."""
    items = [item("n1"), item("a1", 7), item("n2", missing=True), item("n3"), item("a2", 7)]
    sent, replaced = coalesce(items)
    assert ids(sent) == ["n1", "a2", "n2", "n3"]
    assert replaced == ["a1"]


def test_object_ids_are_compared_as_json_values() -> None:
    """4242 and "4242" are different objects; equal objects written in another key order are the same."""
    items = [item("i", 4242), item("s", "4242"), item("o1", {"a": 1, "b": 2}), item("o2", {"b": 2, "a": 1})]
    sent, replaced = coalesce(items)
    assert ids(sent) == ["i", "s", "o2"]
    assert replaced == ["o1"]


def test_a_batch_with_nothing_to_coalesce_is_unchanged() -> None:
    """Distinct objects: every item is sent, in arrival order, and nothing is replaced."""
    items = [item(f"x{n}", n) for n in range(5)]
    assert coalesce(items) == (items, [])
    assert coalesce([]) == ([], [])


def test_a_body_that_is_not_an_envelope_has_no_object() -> None:
    """A body that is not a JSON object (or not JSON) is kept as it is, never coalesced."""
    assert object_key(b"[1,2]") is None
    assert object_key(b"not json") is None
    assert object_key(b'{"object_id": false}') == b"false"
    sent, replaced = coalesce([item("p", body=b"[1]"), item("q", body=b"[1]")])
    assert (ids(sent), replaced) == (["p", "q"], [])
