"""Coalescing (SPEC §13): inside one batch, the latest state of an object wins (pure).

It runs where a batch is assembled, not at ingest: every item stays in the store as it
arrived (the spool's chunks, or memory and the chunks for a timer batch), and the same
items always coalesce the same way. So a batch taken up again after a restart or a
kill -9 comes out exactly as it would have, and the ingest path pays nothing for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from hookd.models import Item


def object_key(body: bytes) -> bytes | None:
    """The item's ``object_id`` as canonical JSON, or None when it has none.

    The envelope carries ``object_id`` at the top of every item body. Read back from the
    body, it needs nothing stored beside the item; keyed by its JSON, ``4242`` and
    ``"4242"`` are different objects, as they are to the application.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    value = doc.get("object_id") if isinstance(doc, dict) else None
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def coalesce(items: Sequence[Item]) -> tuple[list[Item], list[str]]:
    """The items a batch sends, and the ids of those a later item replaced.

    A later item with the same ``object_id`` takes the place of the earlier one, at the
    earlier one's position (the batch keeps the order in which objects first appeared);
    items without an ``object_id`` are always kept. Replaced ids are in arrival order.
    """
    kept: list[Item] = []
    replaced: list[str] = []
    slot: dict[bytes, int] = {}  # object key → its place in kept
    for item in items:
        key = object_key(item.body)
        if key is None:
            kept.append(item)
            continue
        at = slot.get(key)
        if at is None:
            slot[key] = len(kept)
            kept.append(item)
        else:
            replaced.append(kept[at].id)
            kept[at] = item
    return kept, replaced
