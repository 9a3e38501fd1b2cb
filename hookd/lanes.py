"""A webhook's lane: its queue of deliveries, and what the dispatcher tells of it.

Plain data and queue arithmetic, no I/O: the dispatcher decides when a lane's next
delivery starts, the lane only which one it is.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from structlog.typing import FilteringBoundLogger

from hookd.clock import Timer
from hookd.egress import DIRECT, Egress
from hookd.metrics import WebhookMeter
from hookd.models import Delivery
from hookd.payloads import RequestShape


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

    def push(self, d: Delivery) -> None:
        """Queue a delivery; ordered lanes keep ingest (sequence) order."""
        if self.ordered:
            heapq.heappush(self.heap, (d.seq, d))
        else:
            self.ready.append(d)

    def pop(self) -> Delivery | None:
        """The next delivery allowed to start now, if any."""
        if self.auto_disabled:
            return None
        if self.ordered:
            if self.inflight or self.holding is not None or not self.heap:
                return None
            return heapq.heappop(self.heap)[1]
        if self.inflight >= self.limit or not self.ready:
            return None
        return self.ready.popleft()

    def waiting(self) -> int:
        """Deliveries queued, not in flight."""
        return len(self.heap) + len(self.ready) + (self.holding is not None)


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
