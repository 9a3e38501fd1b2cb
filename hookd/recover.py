"""Recovery after an outage (SPEC §13): a webhook's failed deliveries of a time window
resent, oldest first, each as a new delivery carrying its original ``webhook-id``.

Bounded in both directions. The store is read and written in pages, each page one
short read and one commit, so the loop and the writer go on between them however many
deliveries the window holds; and every resend goes through the webhook's own lane, so
the receiver sees no more than ``per_webhook_concurrency`` at once (one, when ordered).
The lane holds each waiting resend without its body, which is read again when its
attempt comes, as for deliveries taken up at start-up: a recovery of 100,000 costs the
memory of 100,000 small records, not of their bodies.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from hookd.config import Webhook
from hookd.models import Delivery, IdFactory, format_timestamp, new_delivery
from hookd.store import Failed, Storage
from hookd.tasks import TaskSet
from hookd.timespec import parse_time

log = structlog.get_logger("hookd.recover")

PAGE = 500  # resends made per read and commit
COUNT_PAGE = 5000  # deliveries counted per read (no bodies read)


@dataclass(frozen=True, slots=True)
class Window:
    """What to recover: failed deliveries created in [since, until)."""

    since: float
    until: float | None  # None: up to now
    dry_run: bool = False


@dataclass(slots=True)
class Tally:
    """What a recovery did, or would do."""

    resent: int = 0
    skipped: int = 0  # lightweight logs: no body kept to send again
    would_resend: int = 0  # dry run only


def parse_window(doc: Any) -> Window | list[dict[str, str]]:
    """The body of POST /v1/webhooks/{id}/recover, or one detail per problem in it."""
    if not isinstance(doc, dict):
        return [{"path": "", "message": "the body must be a JSON object with since (and until, dry_run)"}]
    problems = [{"path": k, "message": "unknown key"} for k in doc if k not in ("since", "until", "dry_run")]
    times: dict[str, float | None] = {"since": None, "until": None}
    for key in times:
        value = doc.get(key)
        if value is None:
            if key == "since":
                problems.append({"path": key, "message": "required: an RFC 3339 date-time"})
            continue
        if not isinstance(value, str):
            problems.append({"path": key, "message": "must be an RFC 3339 date-time string"})
            continue
        try:
            times[key] = parse_time(value)
        except ValueError as exc:
            problems.append({"path": key, "message": str(exc)})
    dry_run = doc.get("dry_run", False)
    if not isinstance(dry_run, bool):
        problems.append({"path": "dry_run", "message": "must be true or false"})
    since, until = times["since"], times["until"]
    if since is not None and until is not None and until <= since:
        problems.append({"path": "until", "message": "must be later than since"})
    if problems or since is None:
        return problems
    return Window(since, until, dry_run)


class RecoveryRunning(Exception):
    """A recovery of this webhook is already under way."""


class RecoveryStopped(Exception):
    """The daemon is stopping: the recovery was cut short (what it made is pending in the store)."""


class Recovery:
    """Runs recoveries, each as a task held here: a client that hangs up does not cut one
    short, and the App's stop does (what it created by then is in the store, pending)."""

    def __init__(
        self,
        store: Storage,
        submit: Callable[[Delivery], None],
        ids: IdFactory,
        now: Callable[[], float],
        page: int = PAGE,
    ) -> None:
        self._store = store
        self._submit = submit
        self._ids = ids
        self._now = now
        self._page = page
        self._running: set[str] = set()
        self._tasks = TaskSet()

    async def count(self, webhook_id: str, window: Window) -> Tally:
        """How many a recovery of ``window`` would resend and skip now (nothing is written)."""
        tally = Tally()
        async for rows in self._pages(webhook_id, window, COUNT_PAGE, bodies=False):
            skipped = sum(r.lightweight for r in rows)
            tally.skipped += skipped
            tally.would_resend += len(rows) - skipped
        return tally

    async def run(self, w: Webhook, window: Window) -> Tally:
        """Resend the window's failed deliveries; return once every resend is committed and
        queued. Raises RecoveryRunning while another recovery of ``w`` runs."""
        if w.id in self._running:
            raise RecoveryRunning(w.id)
        self._running.add(w.id)
        task = self._tasks.spawn(self._run(w, window), name=f"recover-{w.id}")
        task.add_done_callback(lambda _: self._running.discard(w.id))
        try:
            # Shielded: the request's cancellation (its client gone) leaves the work running.
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and current is not None and not current.cancelling():
                raise RecoveryStopped(w.id) from None  # the work was stopped, not this caller
            raise

    async def _run(self, w: Webhook, window: Window) -> Tally:
        log.info("recovery_started", webhook=w.id, since=_shown(window.since), until=_shown(window.until))
        try:
            return await self._resend_all(w, window)
        except asyncio.CancelledError:
            log.warning("recovery_stopped", webhook=w.id)
            raise
        except Exception:  # its caller may be gone: the log is where it is seen
            log.exception("recovery_failed", webhook=w.id)
            raise

    async def _resend_all(self, w: Webhook, window: Window) -> Tally:
        tally = Tally()
        async for rows in self._pages(w.id, window, self._page, bodies=True):
            made = []
            committed = set()
            for f in rows:
                if f.body is None:
                    tally.skipped += 1
                    continue
                d = self._resend(w, f)
                # Back-to-back new deliveries share one write: one commit per page.
                committed.add(self._store.add_delivery(d, w.lightweight_logs))
                made.append(d)
            await asyncio.gather(*committed)
            for d in made:
                # Slim, as deliveries taken up at start-up are: the attempt reads the body
                # and item ids again, and nothing on the way needs the rest.
                d.body, d.item_ids, d.events, d.triggers, d.coalesced, d.loaded = b"", (), (), (), (), False
                self._submit(d)
            tally.resent += len(made)
        log.info("recovery_done", webhook=w.id, resent=tally.resent, skipped=tally.skipped)
        return tally

    def _resend(self, w: Webhook, f: Failed) -> Delivery:
        """A resend of ``f``, as POST /v1/deliveries/{id}/resend makes it: same body and message id."""
        assert f.body is not None
        d = new_delivery(
            self._ids, self._store.next_delivery_seq(), w.id, f.body, f.item_ids, f.events, f.triggers,
            self._now(), message_id=f.message_id, resend_of=f.id,
        )  # fmt: skip
        d.coalesced = f.coalesced
        return d

    async def _pages(self, webhook_id: str, window: Window, size: int, bodies: bool) -> AsyncIterator[list[Failed]]:
        """The window's failed deliveries in pages of ``size``, oldest first."""
        lo, hi = await self._store.window_seqs(window.since, window.until)
        # Only deliveries that exist now: resends this recovery makes (and those of a
        # receiver still failing) must never come round again.
        before = min(hi, self._store.counters.delivery_seq + 1)
        after = lo - 1
        while True:
            rows = await self._store.failed(webhook_id, window.since, window.until, after, before, size, bodies)
            if rows:
                yield rows
            if len(rows) < size:
                return
            after = rows[-1].seq

    async def stop(self) -> None:
        """Cut the recoveries under way short (at the App's stop)."""
        self._tasks.cancel()
        await self._tasks.wait()


def _shown(ts: float | None) -> str | None:
    """A time for the log; RFC 3339 takes years 1 to 9999, the log's format from 1970."""
    if ts is None:
        return None
    try:
        return format_timestamp(ts)
    except (ValueError, OverflowError, OSError):
        return str(ts)
