"""GET /v1/activity (the page's chart): each webhook's deliveries of the last minutes by
minute of creation and outcome, with their latency.

The store groups the window's rows in one statement (``store.activity``); folding those
groups into per-minute buckets is the pure ``fold`` below. The answer is kept for a moment,
so that however many pages refresh every few seconds, the log is read at most once a
``MEMO_SECONDS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from hookd.config import Config
from hookd.models import format_timestamp
from hookd.responses import error, json_response
from hookd.store import Storage
from hookd.store.interface import ActivityRow

MAX_MINUTES = 1440
DEFAULT_MINUTES = 60
MEMO_SECONDS = 2.0


def bucket_ms(digits: int, lead: int) -> float:
    """The middle of a duration bucket: ``lead`` (the first two digits of ``digits`` whole
    milliseconds) scaled back, so a median read from buckets is within 5 % of the true one."""
    if digits <= 2:
        return lead + 0.5
    scale = 10.0 ** (digits - 2)
    return (lead + 0.5) * scale


def median(hist: Iterable[tuple[float, int]]) -> float | None:
    """The median of a histogram of (value, count), or None when it is empty."""
    ordered = sorted(hist)
    total = sum(n for _, n in ordered)
    if not total:
        return None
    half = (total + 1) // 2
    seen = 0
    for value, n in ordered:
        seen += n
        if seen >= half:
            return round(value, 1)
    return None  # not reached: seen ends at total


def fold(rows: Iterable[ActivityRow]) -> dict[str, list[dict[str, Any]]]:
    """Per webhook, its buckets of one minute each (only minutes with deliveries), oldest first."""
    cells: dict[tuple[str, int], dict[str, Any]] = {}
    hists: dict[tuple[str, int], list[tuple[float, int]]] = {}
    for r in rows:
        key = (r.webhook_id, r.minute)
        cell = cells.setdefault(key, {"succeeded": 0, "failed": 0, "retrying": 0, "max_ms": None})
        cell[r.state] += r.n
        if r.max_ms is not None:
            cell["max_ms"] = r.max_ms if cell["max_ms"] is None else max(cell["max_ms"], r.max_ms)
        if r.digits is not None and r.lead is not None:
            hists.setdefault(key, []).append((bucket_ms(r.digits, r.lead), r.n))
    out: dict[str, list[dict[str, Any]]] = {}
    for (wid, minute), cell in sorted(cells.items()):
        top = None if cell["max_ms"] is None else round(cell["max_ms"], 1)
        p50 = median(hists.get((wid, minute), []))
        # A bucket's middle can lie above every duration in it (one delivery of 3,000 ms
        # reads 3,050); a median is never above the maximum, so neither is this one.
        if p50 is not None and top is not None:
            p50 = min(p50, top)
        out.setdefault(wid, []).append({
            "minute": format_timestamp(minute * 60.0),
            "succeeded": cell["succeeded"], "failed": cell["failed"], "retrying": cell["retrying"],
            "p50_ms": p50, "max_ms": top,
        })  # fmt: skip
    return out


class ActivityRoutes:
    """GET /v1/activity over the delivery log, with a short memo per query."""

    def __init__(self, config: Callable[[], Config], store: Storage, now: Callable[[], float]) -> None:
        self._config = config
        self._store = store
        self._now = now
        self._memo: dict[tuple[int, str | None], tuple[float, dict[str, Any]]] = {}

    def add_routes(self, app: web.Application) -> None:
        """Register GET /v1/activity on ``app``."""
        app.router.add_get("/v1/activity", self.activity)

    async def activity(self, request: web.Request) -> web.Response:
        """``?minutes=`` (1–1440, default 60) and ``?webhook=`` (one webhook; default all)."""
        q = request.query
        raw = q.get("minutes", str(DEFAULT_MINUTES))
        minutes = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 5 else 0
        if not 1 <= minutes <= MAX_MINUTES:
            detail = {"path": "minutes", "message": f"must be an integer from 1 to {MAX_MINUTES}"}
            return error(400, "invalid_query", "bad query parameters", [detail])
        wid = q.get("webhook")
        config = self._config()
        if wid is not None and config.webhook(wid) is None:
            return error(404, "not_found", f"no webhook {wid!r}")
        ids = [wid] if wid is not None else [w.id for w in config.webhooks]
        now = self._now()
        key = (minutes, wid)
        memo = self._memo.get(key)
        if memo is None or not memo[0] <= now < memo[0] + MEMO_SECONDS:
            # The current minute is the last bucket; the window starts on a minute's edge.
            first = int(now // 60) - minutes + 1
            rows = await self._store.log.activity(first * 60.0, wid)
            memo = (now, {"first": first, "buckets": fold(rows)})
            self._memo = {k: v for k, v in self._memo.items() if now < v[0] + MEMO_SECONDS}
            self._memo[key] = memo
        first, buckets = memo[1]["first"], memo[1]["buckets"]
        return json_response({
            "minutes": minutes,
            "since": format_timestamp(first * 60.0),
            "until": format_timestamp((first + minutes) * 60.0),
            "webhooks": {i: buckets.get(i, []) for i in ids},
        })  # fmt: skip
