"""Operator events (SPEC §12): hookd's own events about its deliveries and webhooks (pure).

Their names, the ``object`` each carries, and the rule that keeps them from looping. The
dispatcher decides when one happens; ``internal_ingest`` routes it like any other event.

Each object carries, besides the SPEC's keys, a ``summary`` sentence: the default template
(``{event}: {object.summary} ({object_id})``) then makes a readable message, so a Slack
channel for failures needs no template of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from hookd.models import Delivery
from hookd.patterns import OPERATOR_PREFIX, pattern_matches

DELIVERY_FAILED = "hookd.delivery.failed"
WEBHOOK_DISABLED = "hookd.webhook.disabled"
WEBHOOK_ENABLED = "hookd.webhook.enabled"
NAMES = (DELIVERY_FAILED, WEBHOOK_DISABLED, WEBHOOK_ENABLED)

# Told of each operator event as it happens: its type and its object.
Notify = Callable[[str, dict[str, Any]], None]


def nobody(event: str, obj: dict[str, Any]) -> None:
    """A Notify for a dispatcher whose operator events go nowhere (tests of delivery alone)."""


def is_operator_event(event: str) -> bool:
    """True for an event type hookd reserves for itself (``hookd.…``)."""
    return event.startswith(OPERATOR_PREFIX)


def quiet(events: Iterable[str]) -> bool:
    """True when a delivery carrying ``events`` must cause no operator event: it carries one
    itself (or hookd's test ping), and a failing receiver of operator events would
    otherwise be told of its own failure, again and again."""
    return any(e.startswith(OPERATOR_PREFIX) for e in events)


def names_matched(pattern: str) -> list[str]:
    """The operator events a trigger pattern receives."""
    return [n for n in NAMES if pattern_matches(pattern, n)]


def delivery_failed(
    d: Delivery, webhook_name: str, url: str, status_code: int | None, error: str | None
) -> dict[str, Any]:
    """The object of ``hookd.delivery.failed``: a delivery that failed for good (``url`` as
    shown: without credentials, see ``Webhook.shown_url``)."""
    what = f"HTTP {status_code}" if status_code is not None else (error or "no answer")
    tries = f"{d.attempts} attempt" + ("" if d.attempts == 1 else "s")
    return {
        "summary": f"Delivery {d.id} to {_label(d.webhook_id, webhook_name)} failed after {tries}: {what}",
        "id": d.id,
        "webhook_id": d.webhook_id,
        "webhook_name": webhook_name,
        "message_id": d.message_id,
        "attempts": d.attempts,
        "status_code": status_code,
        "error": error,
        "events": list(d.events),
        "url": url,
    }


def webhook_disabled(webhook_id: str, name: str, failures: int, url: str) -> dict[str, Any]:
    """The object of ``hookd.webhook.disabled``: a webhook auto-disabled after ``failures``."""
    return {
        "summary": f"Webhook {_label(webhook_id, name)} was disabled after {failures} failed deliveries in a row",
        "id": webhook_id,
        "name": name,
        "failures": failures,
        "url": url,
    }


def webhook_enabled(webhook_id: str, name: str, url: str) -> dict[str, Any]:
    """The object of ``hookd.webhook.enabled``: an auto-disabled webhook enabled again."""
    return {
        "summary": f"Webhook {_label(webhook_id, name)} was enabled again",
        "id": webhook_id,
        "name": name,
        "url": url,
    }


def _label(webhook_id: str, name: str) -> str:
    return f"{name} ({webhook_id})" if name and name != webhook_id else webhook_id
