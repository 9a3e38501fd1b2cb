"""A webhook's lane: its queue of deliveries, and what the dispatcher tells of it.

Plain data and queue arithmetic, no I/O: the dispatcher decides when a lane's next
delivery starts, the lane only which one it is.

A lane keeps at most ``WINDOW`` of its queued deliveries in memory as ``Delivery``
objects; the rest wait in the store (which holds every pending delivery anyway) and the
lane keeps only their sequence numbers (``Seqs``, 8 bytes each), in the order they are to
go. When the window drains below ``LOW_WATER`` the lane asks the dispatcher (``refill``)
to read the next page of them back.
"""

from __future__ import annotations

import bisect
import heapq
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from structlog.typing import FilteringBoundLogger

from hookd.clock import Timer
from hookd.egress import DIRECT, Egress
from hookd.metrics import WebhookMeter
from hookd.models import Delivery
from hookd.payloads import RequestShape

# Deliveries of one lane kept in memory. A queued delivery costs about 1.2 KiB as an
# object (its body, ids and lists) and 8 bytes as a number here: 200,000 queued took
# RSS from 55 to 295 MiB before the window. 2,000 is a few seconds of a fast receiver's
# throughput (about 4,000 deliveries/s at most on the bench machine), so a page read,
# which takes a few milliseconds, is done long before the window runs dry.
WINDOW = 2000
LOW_WATER = 500  # a page is read when fewer than this many are left in memory


class Seqs:
    """Sequence numbers of deliveries waiting in the store, oldest to go first.

    An array of 64-bit numbers with a moving head, so taking from the front costs no
    copy; the consumed part is cut off now and then.
    """

    __slots__ = ("_a", "_head")

    def __init__(self, seqs: array[int] | None = None) -> None:
        self._a: array[int] = seqs if seqs is not None else array("q")
        self._head = 0

    def __len__(self) -> int:
        return len(self._a) - self._head

    def first(self) -> int:
        """The number that goes next (the list must not be empty)."""
        return self._a[self._head]

    def last(self) -> int:
        """The number that goes last (the list must not be empty)."""
        return self._a[-1]

    def append(self, seq: int) -> None:
        """Add ``seq`` at the end."""
        self._a.append(seq)

    def insert(self, seq: int) -> None:
        """Add ``seq`` in sequence order (the list is kept sorted by whoever uses this).

        Deliveries nearly always come in sequence order, so this is mostly an append."""
        a = self._a
        if len(a) == self._head or seq > a[-1]:
            a.append(seq)
            return
        i = bisect.bisect_left(a, seq, self._head)
        if i == self._head and self._head:
            self._head -= 1  # a slot already consumed in front: no copy
            a[i - 1] = seq
        else:
            a.insert(i, seq)

    def take(self, n: int) -> list[int]:
        """Remove and return the first ``n`` numbers (fewer when there are fewer)."""
        a, head = self._a, self._head
        out = a[head : head + n].tolist()
        head += len(out)
        if head == len(a):
            self._a, head = array("q"), 0  # drained: give the buffer back
        elif head >= 65536 and head * 2 >= len(a):
            del a[:head]
            head = 0
        self._head = head
        return out

    def clear(self) -> None:
        """Forget every number."""
        self._a, self._head = array("q"), 0


@dataclass(eq=False)
class Lane:
    """One webhook's deliveries: what waits, what is in flight, whether it may send."""

    webhook_id: str
    shape: RequestShape
    limit: int
    ordered: bool
    lightweight: bool
    auto_disable_after: int
    name: str = ""  # the webhook's display name, for operator events
    # Set by the dispatcher with the webhook's config: its logger with the webhook bound,
    # and its metrics' labelled children, so an attempt looks up neither.
    log: FilteringBoundLogger | None = None
    meter: WebhookMeter | None = None
    auto_disabled: bool = False
    failures: int = 0  # consecutive failed deliveries
    inflight: int = 0
    ready: deque[Delivery] = field(default_factory=deque)
    heap: list[tuple[int, Delivery]] = field(default_factory=list)  # ordered lanes
    holding: Delivery | None = None  # ordered: the delivery waiting out a retry delay
    timers: dict[int, Timer] = field(default_factory=dict)  # delivery seq → retry timer
    egress: Egress = DIRECT  # proxy, TLS and guard of its requests
    window: int = WINDOW
    low_water: int = LOW_WATER
    # Queued deliveries beyond the window, waiting in the store: their seqs, in the order
    # they go (sequence order on ordered lanes, arrival order on the others).
    stored: Seqs = field(default_factory=Seqs)
    reading: list[int] = field(default_factory=list)  # seqs of the page being read back now
    # Ordered lanes: the largest seq in the heap (it only grows while the heap has any).
    heap_max: int = 0
    # Asks the dispatcher to read the next page of ``stored`` back (None: nobody to ask).
    refill: Callable[[Lane], None] | None = None

    def takes_seq_only(self) -> bool:
        """An unordered lane past its window: a delivery pushed now would be kept as its seq."""
        return not self.ordered and (bool(self.stored) or self.in_memory() >= self.window)

    def push(self, d: Delivery) -> None:
        """Queue a delivery; ordered lanes keep ingest (sequence) order.

        Beyond the window only its seq is kept (the store has the rest). Ordered lanes
        keep every seq in memory or being read back below every seq left in the store, so
        the heap's smallest is always the next to go: a delivery older than the store's
        first (a retry coming back, a write committed late) joins memory even when the
        window is full, which only out-of-order arrivals can do.
        """
        seq = d.seq
        if not self.ordered:
            if self.takes_seq_only():
                self.stored.append(seq)
            else:
                self.ready.append(d)
            return
        if self.stored:
            if seq > self.stored.first():
                self.stored.insert(seq)
                return
        elif self.in_memory() >= self.window and seq > self.heap_max and not (self.reading and seq < self.reading[-1]):
            self.stored.append(seq)
            return
        heapq.heappush(self.heap, (seq, d))
        self.heap_max = max(self.heap_max, seq)

    def take_page(self) -> list[int]:
        """The seqs of the next page to read back, now marked as being read ([] when
        there is nothing to read, room for none, or a read under way)."""
        if self.reading or not self.stored:
            return []
        room = self.window - self.in_memory()
        if room <= 0:
            return []
        self.reading = self.stored.take(room)
        return self.reading

    def paged(self, seqs: list[int], found: list[Delivery]) -> bool:
        """A page read back: ``found`` are those of ``seqs`` still open, in sequence
        order. False (and nothing done) when the lane stopped waiting for that page."""
        if self.reading is not seqs:
            return False
        self.reading = []
        if self.ordered:
            for d in found:
                heapq.heappush(self.heap, (d.seq, d))
            if found and found[-1].seq > self.heap_max:
                self.heap_max = found[-1].seq
        else:
            self.ready.extend(found)
        return True

    def pop(self) -> Delivery | None:
        """The next delivery allowed to start now, if any."""
        d = self._pop()
        if self.refill is not None and self.stored and not self.reading and self.in_memory() < self.low_water:
            self.refill(self)
        return d

    def _pop(self) -> Delivery | None:
        if self.auto_disabled:
            return None
        if self.ordered:
            if self.inflight or self.holding is not None or not self.heap:
                return None
            if self.reading and self.heap[0][0] > self.reading[0]:
                return None  # an older one is on its way back from the store
            d = heapq.heappop(self.heap)[1]
            if not self.heap:
                self.heap_max = 0
            return d
        if self.inflight >= self.limit or not self.ready:
            return None
        return self.ready.popleft()

    def in_memory(self) -> int:
        """Queued deliveries held here as objects: a page being read counts already, and
        an ordered lane's delivery waiting out a retry still, as it comes back here."""
        return len(self.heap) + len(self.ready) + len(self.reading) + (self.holding is not None)

    def waiting(self) -> int:
        """Deliveries queued, not in flight: in memory, being read back or in the store."""
        return len(self.heap) + len(self.ready) + (self.holding is not None) + len(self.reading) + len(self.stored)

    def fold(self, ordered: bool, extra: Iterable[int] = ()) -> None:
        """Put everything queued into the store's list (plus ``extra`` seqs found there),
        in the order ``ordered`` asks, and take the mode: for a change of ``ordered``, or
        seqs taken up for a lane that already holds work. A page being read is forgotten
        (its seqs are kept here); the next pages read it all back."""
        seqs = [d.seq for _, d in self.heap] + [d.seq for d in self.ready] + self.reading
        seqs += self.stored.take(len(self.stored))
        seqs += extra
        self.heap.clear()
        self.ready.clear()
        self.reading = []
        self.heap_max = 0
        self.ordered = ordered
        self.stored = Seqs(array("q", sorted(seqs) if ordered else seqs))

    def forget(self) -> None:
        """Drop everything queued (the webhook left the config: its work waits in the store)."""
        self.heap.clear()
        self.ready.clear()
        self.stored.clear()
        self.reading = []
        self.heap_max = 0
        self.holding = None


@dataclass(frozen=True, slots=True)
class Health:
    """What the dispatcher holds of one webhook now; the store has the rest of its story."""

    auto_disabled: bool = False
    failures: int = 0  # consecutive failed deliveries
    queued: int = 0  # waiting, not in flight
    inflight: int = 0
    # Delivery id → the state its log row holds, oldest first, for each delivery in an
    # attempt or with its outcome not yet committed: the API shows these as delivering.
    delivering: Mapping[str, str] = field(default_factory=dict)
