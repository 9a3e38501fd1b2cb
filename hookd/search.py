"""Searching the delivery log (SPEC §13): the index keys of a delivery, and the query of
``GET /v1/deliveries`` checked and turned into a ``DeliveryQuery``. Pure functions.

Each delivery is indexed under a few keys, one row per distinct key. Every row costs the
store a b-tree insert on the hot path (about 0.8 µs for a short text key, 0.3 µs for an
integer, measured), so the ids that come in runs share keys, and a search checks its
candidates against the delivery's own id lists. In the store's ``search`` table:

- ``i`` + the first 13 characters of an item id: the millisecond of a UUIDv7, so the items
  of one ingest request share one or two keys;
- ``e`` + an occurrence id without its last two characters: ``evt_…`` ids and most ids an
  application numbers itself come in runs, so a batch's occurrences share a few keys;
- ``t`` + an event type, exactly.

And in ``search_objects``, every distinct object id of the delivery, exactly: an integer
(64-bit signed) as an integer, and so is a string that is an integer written plainly
(``"4242"``, not ``"04242"``), so that ``object_id=4242`` finds ``4242`` and ``"4242"``
alike; any other string as text. Other values (``null``, booleans, numbers with a
fraction, objects, arrays) and strings longer than MAX_OBJECT_KEY characters are not
indexed. The store makes these rows itself, in SQL, from the delivery's object ids
(OBJECT_ROWS): a batch's hundred object ids cost the event loop nothing that way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from hookd.models import EVENT_NAME, MAX_NAME_LEN
from hookd.timespec import parse_time

ITEM_PREFIX = 13  # "0190a4b2-7c3e": a UUIDv7's 48-bit unix millisecond
EVENT_TRIM = 2  # an occurrence id's last characters, left out of its key
_ITEM_PREFIX = itemgetter(slice(0, ITEM_PREFIX))
_EVENT_TRIM = itemgetter(slice(0, -EVENT_TRIM))
MAX_OBJECT_KEY = 256
MAX_VALUE = 1024  # a longer search value is refused rather than looked up
STATES = ("pending", "delivering", "retrying", "succeeded", "failed")


def item_key(item_id: str) -> str:
    """The index key of an item id (shared by the ids made in the same millisecond)."""
    return "i" + item_id[:ITEM_PREFIX]


def event_key(event_id: str) -> str:
    """The index key of an occurrence id (shared by ids that differ in their last two characters)."""
    return "e" + event_id[: max(len(event_id) - EVENT_TRIM, 0)]


# The search_objects rows of the deliveries in ``{rows}``, as (id, seq) given each one's
# ``{seq}`` and JSON array of object ids ``{ids}``: SQL for the store, which writes these
# rows and takes them out again. (An integer beyond 64 bits reads as a real: left out.)
OBJECT_ROWS = (
    "SELECT CASE WHEN o.type = 'integer' OR CAST(CAST(o.value AS INTEGER) AS TEXT) <> o.value THEN o.value"
    " ELSE CAST(o.value AS INTEGER) END, {seq} FROM {rows}, json_each({ids}) AS o"
    " WHERE CASE o.type WHEN 'integer' THEN typeof(o.value) = 'integer'"
    f" WHEN 'text' THEN length(o.value) <= {MAX_OBJECT_KEY} ELSE 0 END"
)
_I64 = (-(2**63), 2**63 - 1)


def object_value(text: str) -> int | str:
    """An object id as search_objects holds it: a plainly written 64-bit integer as an
    integer (as OBJECT_ROWS makes it), anything else as the text, cut at a NUL."""
    text = search_safe(text)
    if text.isascii() and text.lstrip("-").isdigit():
        n = int(text)
        if str(n) == text and _I64[0] <= n <= _I64[1]:
            return n
    return text


def type_key(event: str) -> str:
    """The index key of an event type."""
    return "t" + event


def delivery_keys(item_ids: Sequence[str], event_ids: Sequence[str], events: Sequence[str]) -> list[str]:
    """The distinct index keys of one delivery but its object keys (item_key, event_key and
    type_key of each, written out: this runs for every batch on the hot path)."""
    if len(item_ids) == 1 and len(event_ids) == 1 and len(events) == 1:  # a delivery of its own
        return ["i" + item_ids[0][:ITEM_PREFIX], "e" + event_ids[0][:-EVENT_TRIM], "t" + events[0]]
    # The slices go through map() in C, and only the distinct ones are prefixed: a third
    # of the time of a comprehension over all of them (measured).
    keys = ["i" + p for p in set(map(_ITEM_PREFIX, item_ids))]
    keys += ["e" + p for p in set(map(_EVENT_TRIM, event_ids))]  # a slice past the start is ""
    keys += ["t" + e for e in set(events)]
    return keys


def search_safe(key: str) -> str:
    """A key cut at its first NUL character, as SQLite's JSON functions read it: a key is
    written and looked up so, and the ids it stands for are checked whole."""
    return key.split("\x00", 1)[0]


@dataclass(frozen=True, slots=True)
class DeliveryQuery:
    """What ``GET /v1/deliveries`` asks for; None is "any". Times are unix seconds
    (``since`` inclusive, ``until`` exclusive); ``before`` is a delivery sequence number."""

    webhook: str | None = None
    state: str | None = None
    event: str | None = None
    object_id: str | None = None
    event_id: str | None = None
    item_id: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 50
    before: int | None = None
    # Only these deliveries (by sequence number): those in an attempt right now, which
    # only memory knows, for state=delivering.
    only: tuple[int, ...] | None = None

    def keys(self) -> list[tuple[str, Any]]:
        """The index rows every matching delivery has, as (table, key), the most selective first."""
        out: list[tuple[str, Any]] = []
        if self.item_id is not None:
            out.append(("search", search_safe(item_key(self.item_id))))
        if self.event_id is not None:
            out.append(("search", search_safe(event_key(self.event_id))))
        if self.object_id is not None:
            out.append(("search_objects", object_value(self.object_id)))
        if self.event is not None:
            out.append(("search", type_key(self.event)))
        return out


def _text(raw: str) -> str:
    if not raw or len(raw) > MAX_VALUE:
        raise ValueError(f"must be 1 to {MAX_VALUE} characters")
    return raw


def _state(raw: str) -> str:
    if raw not in STATES:
        raise ValueError(f"must be one of {', '.join(STATES)}")
    return raw


def _event(raw: str) -> str:
    if len(raw) > MAX_NAME_LEN or not EVENT_NAME.match(raw):
        raise ValueError("must be an event type: dotted lower-case words, such as ticket.created")
    return raw


def _limit(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and 1 <= int(raw) <= 500):
        raise ValueError("must be an integer from 1 to 500")
    return int(raw)


def _cursor(raw: str) -> int:
    # As the OpenAPI document states it: a positive integer of at most 18 digits.
    if not (raw.isascii() and raw.isdigit() and raw[0] != "0" and len(raw) <= 18):
        raise ValueError("must be a cursor from a previous page's next")
    return int(raw)


# Each parameter's reading: the value, or ValueError with what is wrong.
_READ: dict[str, Callable[[str], Any]] = {
    "webhook": _text, "state": _state, "event": _event, "object_id": _text, "event_id": _text,
    "item_id": _text, "since": parse_time, "until": parse_time, "limit": _limit, "before": _cursor,
}  # fmt: skip
PARAMETERS = tuple(_READ)


def parse_query(query: Mapping[str, str], repeated: Sequence[str] = ()) -> tuple[DeliveryQuery, list[dict[str, Any]]]:
    """The query of ``GET /v1/deliveries`` and its problems, one detail per bad parameter
    (an unknown or repeated one included: a misspelt filter must not silently match all)."""
    problems = [{"path": name, "message": "given more than once"} for name in repeated]
    values: dict[str, Any] = {}
    for name, raw in query.items():
        read = _READ.get(name)
        if read is None:
            problems.append({"path": name, "message": f"unknown parameter; the filters are {', '.join(PARAMETERS)}"})
            continue
        try:
            values[name] = read(raw)
        except ValueError as exc:
            problems.append({"path": name, "message": str(exc)})
    return DeliveryQuery(**values), problems
