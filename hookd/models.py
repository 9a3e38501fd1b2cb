"""The values that flow through hookd (occurrences, items, deliveries) and their ids.

The validation of ingested events, which builds occurrences, is in ``validate.py``.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

EVENT_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\Z")  # match(): anchored at the start
EVENT_KEYS = frozenset({"id", "event", "occurred_at", "object", "action", "linked"})
MAX_ID_LEN = 128
MAX_NAME_LEN = 200


class EventNames:
    """Event names already found well-formed: a repeat costs a set lookup, not a regex match.

    A service sends a few dozen event types over and over, but names come off the network,
    so past ``limit`` the set starts afresh rather than grow. Only valid names are kept:
    invalid ones are errors, which take the slow path anyway.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self.known: set[str] = set()

    def valid(self, name: str) -> bool:
        """True when ``name`` is a dotted lower-case name of at most MAX_NAME_LEN characters."""
        if name in self.known:
            return True
        # Long names are never kept, which also bounds the memory the set can hold.
        if len(name) > MAX_NAME_LEN or not EVENT_NAME.match(name):
            return False
        if len(self.known) >= self.limit:
            self.known.clear()
        self.known.add(name)
        return True


class IdFactory:
    """Unique ids for items, messages, deliveries and generated occurrences.

    Item ids are UUIDv7 (RFC 9562): sortable by creation time, unique across processes.
    uuid4() costs about 2 µs, which the batched hot path cannot spare per event, so the
    text is put together here by the RFC's "monotonic random" method (§6.2, method 2):
    each millisecond draws 73 fresh random bits (rand_a and rand_b, its low 48 bits with
    the top one clear), and each further id within it adds one to them. Only the low 48
    bits move, and they are the text's last group, so an id costs one 12-digit format; the
    other 20 digits are formatted once per millisecond. Ids of one process strictly
    increase; 26 + 47 random bits per millisecond keep processes apart.
    """

    _COUNTER_BITS = 48  # the low bits of rand_b that count; the text's last group

    def __init__(self, clock_ns: Callable[[], int] = time.time_ns) -> None:
        r = os.urandom(8).hex()
        self._prefix = r
        self._n = 0
        self._clock_ns = clock_ns
        self._random = random.Random(os.urandom(16))
        self._ms = -1
        self._counter = 0
        self._head = ""  # the text of the first 80 bits (and their hyphens) for this ms
        # Not about ids: the per-process cache validate_events needs. It rides on the factory
        # every caller already passes, so their calls stay as they are.
        self.event_names = EventNames()

    def uuid(self) -> str:
        """A UUIDv7 (item ids): time-ordered, and strictly increasing within this process."""
        return self.uuids()()

    def uuids(self) -> Callable[[], str]:
        """UUIDv7s for one request's items: the clock is read once, when this is called, and
        each id after that only counts (0.47 µs an id; 0.7 with a clock read each, and 1.2 with
        the bits put together for each id, as before this layout).
        Ids from every source and every ``uuid()`` call strictly increase in the order made."""
        ms = self._clock_ns() // 1_000_000
        if ms > self._ms:
            self._start(ms)
            self._counter -= 1  # the first id takes the drawn value itself
        # Otherwise the same millisecond, or the clock stepped back: count on from the last id.

        bits = self._COUNTER_BITS

        def next_id() -> str:
            n = self._counter + 1
            if n >> bits:  # 2^47 ids in one ms: borrow the next one
                self._start(self._ms + 1)
                n = self._counter
            self._counter = n
            return f"{self._head}{n:012x}"

        return next_id

    def _start(self, ms: int) -> None:
        """Draw a millisecond's random bits and format the text that stays fixed within it."""
        self._ms = ms
        bits = self._random.getrandbits(26 + self._COUNTER_BITS - 1)
        # The counter's top bit starts clear, so a burst within one millisecond has room to count.
        self._counter = bits & ((1 << (self._COUNTER_BITS - 1)) - 1)
        high = bits >> (self._COUNTER_BITS - 1)  # 12 bits of rand_a, 14 of rand_b's top
        # unix_ts_ms(48) ver(4)=7 rand_a(12) | var(2)=0b10 rand_b(62) = 14 random + the counter's 48
        h = f"{(ms << 16) | 0x7000 | (high >> 14):016x}"
        self._head = f"{h[:8]}-{h[8:12]}-{h[12:]}-{0x8000 | (high & 0x3FFF):04x}-"

    def delivery(self, seq: int) -> str:
        """A delivery's id: its store sequence number plus this process's tag.

        The number makes the row findable by primary key (no second unique index to keep
        up on the hot path); the tag keeps ids from two databases from colliding.
        """
        return f"dlv_{seq}_{self._prefix[:6]}"

    def make(self, prefix: str) -> str:
        """A unique id with a readable prefix: ``evt_…``, ``dlv_…``, ``msg_…``."""
        self._n += 1
        return f"{prefix}_{self._prefix}{self._n:x}"


def delivery_seq(delivery_id: str) -> int | None:
    """The sequence number inside a delivery id, or None when it is not one of ours."""
    parts = delivery_id.split("_")
    if len(parts) != 3 or parts[0] != "dlv" or not parts[1].isascii() or not parts[1].isdigit():
        return None
    return int(parts[1]) if len(parts[1]) <= 18 else None


@dataclass(slots=True)
class Occurrence:
    """One ingested event."""

    id: str
    event: str
    timestamp: str  # occurred_at, UTC with milliseconds, as the envelope carries it
    object: dict[str, Any]
    action: dict[str, Any] | None
    linked: dict[str, Any] | None
    client_id: bool  # the application chose the id, so it may repeat (idempotency)


@dataclass(slots=True)
class Item:
    """One occurrence routed to one webhook."""

    id: str
    webhook_id: str
    trigger: str
    event: str
    occurrence_id: str
    body: bytes
    batch_key: str | None = None  # None: delivered alone
    seq: int = 0  # batched items: the store chunk (one per request and key) holding it
    pos: int = 0  # its place in that chunk
    deadline: float = 0.0  # the open batch's deadline (unix seconds)
    object_id: Any = None  # the occurrence's object.id (any JSON value), for the search index
    start: int = 0  # batched items: where its body starts in the chunk's bytes (1-based; 0: unknown)


@dataclass(slots=True)
class Delivery:
    """One logical request carrying one item or a batch, with all its attempts."""

    id: str
    seq: int
    message_id: str
    webhook_id: str
    body: bytes
    item_ids: Sequence[str]
    events: Sequence[str]
    triggers: Sequence[str]
    created_at: float
    state: str = "pending"
    attempts: int = 0
    next_at: float = 0.0
    manual: bool = False
    resend_of: str | None = None
    # Per item, for the search index and the record: its occurrence's id and object.id.
    # Written with the delivery, not read back into memory (a reloaded delivery has none).
    event_ids: Sequence[str] = ()
    object_ids: Sequence[Any] = ()
    # False for deliveries reloaded at start-up: body and item ids are read from the
    # store when the attempt comes, so a million queued deliveries start fast and small.
    loaded: bool = True
    # Coalescing (SPEC §13): ids of items a later item of the same object replaced.
    coalesced: Sequence[str] = ()


def new_delivery(
    ids: IdFactory,
    seq: int,
    webhook_id: str,
    body: bytes,
    item_ids: Sequence[str],
    events: Sequence[str],
    triggers: Sequence[str],
    now: float,
    message_id: str | None = None,
    resend_of: str | None = None,
    event_ids: Sequence[str] = (),
    object_ids: Sequence[Any] = (),
) -> Delivery:
    """A delivery not yet attempted: one item (ingest), a batch (the batcher) or a resend.

    ``seq`` is the store's next delivery sequence number, which the id carries. A resend
    (``resend_of``) is manual and passes the ``message_id`` of the delivery it repeats: the
    same ``webhook-id`` lets the receiver de-duplicate (SPEC §4); others get a new one.
    ``event_ids`` and ``object_ids`` run parallel to ``item_ids`` (the search index's).
    """
    return Delivery(
        id=ids.delivery(seq),
        seq=seq,
        message_id=ids.make("msg") if message_id is None else message_id,
        webhook_id=webhook_id,
        body=body,
        item_ids=item_ids,
        events=events,
        triggers=triggers,
        created_at=now,
        manual=resend_of is not None,
        resend_of=resend_of,
        event_ids=event_ids,
        object_ids=object_ids,
    )


def format_timestamp(ts: float) -> str:
    """Unix seconds → ``2026-11-29T07:00:00.000Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"
