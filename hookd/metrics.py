"""Prometheus metrics, on a registry of hookd's own (no process-global state).

Labelled children are cached per webhook so the hot path pays a dict lookup, not
prometheus-client's label resolution, for each count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_INGEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


class _Gauges(Collector):
    """Gauges read at scrape time from the live daemon."""

    def __init__(self, read: Callable[[], dict[str, dict[str, float]]]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = self._read()
        specs = {
            "pending_items": "Items routed to a webhook and not yet delivered or failed.",
            "open_batches": "Batches still collecting items.",
            "webhook_disabled": "1 when the webhook is disabled (config or auto).",
        }
        for name, doc in specs.items():
            g = GaugeMetricFamily(f"hookd_{name}", doc, labels=["webhook"])
            for wid, value in sorted(state.get(name, {}).items()):
                g.add_metric([wid], value)
            yield g
        yield GaugeMetricFamily(
            "hookd_spool_items", "Items kept in the SQLite spool (long batch waits).",
            value=state.get("spool", {}).get("", 0),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "hookd_inflight_attempts", "Attempts in flight, all webhooks.",
            value=state.get("inflight", {}).get("", 0),
        )  # fmt: skip


class Metrics:
    """Every metric hookd exports."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter("hookd_events_ingested", "Occurrences accepted (duplicates included).", registry=r)
        self.duplicates = Counter("hookd_events_duplicate", "Occurrences answered as duplicates.", registry=r)
        self._routed = Counter("hookd_items_routed", "Items routed to a webhook.", ["webhook"], registry=r)
        self._deliveries = Counter(
            "hookd_deliveries", "Deliveries ended, by outcome.", ["webhook", "outcome"], registry=r
        )
        self._attempts = Counter(
            "hookd_attempts", "Attempts by result (status class or error kind).", ["webhook", "result"], registry=r
        )
        self._duration = Histogram(
            "hookd_attempt_duration_seconds", "Attempt duration.", ["webhook"],
            buckets=_DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.ingest_latency = Histogram(
            "hookd_ingest_request_seconds", "Time to answer POST /v1/events.",
            buckets=_INGEST_BUCKETS, registry=r,
        )  # fmt: skip
        self.rejected = Counter("hookd_ingest_rejected", "Ingest requests refused, by status.", ["status"], registry=r)
        self.accept_errors = Counter(
            "hookd_accept_errors", "Connections the listener failed to accept (e.g. out of descriptors).", registry=r
        )
        self._cache: dict[tuple[str, ...], Counter | Histogram] = {}
        self._meters: dict[str, WebhookMeter] = {}

    def watch(self, read: Callable[[], dict[str, dict[str, float]]]) -> None:
        """Register the scrape-time gauges."""
        self.registry.register(_Gauges(read))

    def _child(self, metric: Counter | Histogram, *labels: str) -> Counter | Histogram:
        key = (metric._name, *labels)
        child = self._cache.get(key)
        if child is None:
            child = self._cache[key] = metric.labels(*labels)
        return child

    def meter(self, webhook: str) -> WebhookMeter:
        """The attempt and delivery counts of ``webhook``, for its lane to keep."""
        m = self._meters.get(webhook)
        if m is None:
            m = self._meters[webhook] = WebhookMeter(self, webhook)
        return m

    def routed(self, webhook: str, n: int = 1) -> None:
        """Count items routed to ``webhook``."""
        self._child(self._routed, webhook).inc(n)  # type: ignore[union-attr]

    def delivery(self, webhook: str, outcome: str) -> None:
        """Count a delivery that ended."""
        self.meter(webhook).delivery(outcome)

    def attempt(self, webhook: str, status: int | None, error: str | None, duration_ms: float) -> None:
        """Count an attempt and observe its duration."""
        self.meter(webhook).attempt(status, error, duration_ms)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class WebhookMeter:
    """One webhook's attempt and delivery metrics, their labelled children looked up once.

    A lane keeps one: an attempt then costs a dict lookup by status (not a formatted
    result string and a label-tuple lookup per metric).
    """

    def __init__(self, metrics: Metrics, webhook: str) -> None:
        self._metrics = metrics
        self._webhook = webhook
        self._duration = metrics._duration.labels(webhook)
        self._results: dict[int | str | None, Counter] = {}  # status code or error kind → its counter
        self._outcomes: dict[str, Counter] = {}

    def attempt(self, status: int | None, error: str | None, duration_ms: float) -> None:
        """Count an attempt and observe its duration."""
        key = status if status is not None else error
        counter = self._results.get(key)
        if counter is None:
            result = f"{status // 100}xx" if status is not None else (error or "error")
            counter = self._results[key] = self._metrics._attempts.labels(self._webhook, result)
        counter.inc()
        self._duration.observe(duration_ms / 1000)

    def delivery(self, outcome: str) -> None:
        """Count a delivery that ended."""
        counter = self._outcomes.get(outcome)
        if counter is None:
            counter = self._outcomes[outcome] = self._metrics._deliveries.labels(self._webhook, outcome)
        counter.inc()
