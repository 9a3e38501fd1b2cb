"""The event catalogue at work (SPEC §11), pure: which triggers it refuses, what strict
ingest refuses, and the event types the API shows.

The trigger rule is one function over a webhook and the catalogue, with paths relative to
the webhook (``events[0].on``), so the config file's loader and the webhooks API apply
the same rule and word it the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from hookd.config import EventType, Webhook, key_path
from hookd.models import format_timestamp
from hookd.patterns import pattern_matches

# hookd's own operator events (SPEC §12) are not the application's to catalogue.
OPERATOR_PREFIX = "hookd."
_MESSAGE_CHARS = 300  # a schema message quotes the offending value: keep a detail short


class Problem(NamedTuple):
    """One refused trigger: its key path and what is wrong."""

    path: str
    message: str


def trigger_problems(webhook: Webhook, catalogue: Sequence[EventType]) -> list[Problem]:
    """Each trigger of ``webhook`` whose ``on`` matches no catalogued type, its path relative
    to the webhook (``events[0].on``); none while the catalogue is empty.

    A pattern naming hookd's own events (``hookd.*``) is never refused: the catalogue lists
    the application's types only.
    """
    if not catalogue:
        return []
    names = [t.name for t in catalogue]
    out = []
    for i, trigger in enumerate(webhook.events):
        on = trigger.on
        if on.startswith(OPERATOR_PREFIX) or any(pattern_matches(on, name) for name in names):
            continue
        message = f"{on!r} matches no event type in the catalogue"
        near = difflib.get_close_matches(on, names, n=1)
        if near:
            message += f"; did you mean {near[0]!r}?"
        out.append(Problem(f"events[{i}].on", message))
    return out


def config_problems(webhooks: Iterable[Webhook], catalogue: Sequence[EventType]) -> list[Problem]:
    """``trigger_problems`` of every webhook of a config file, with paths from the file's root."""
    return [
        Problem(f"webhooks[{i}].{p.path}", p.message)
        for i, w in enumerate(webhooks)
        for p in trigger_problems(w, catalogue)
    ]


class StrictTypes:
    """The catalogue as ``server.strict_event_types`` applies it at ingest.

    Built once per config load from the schemas compiled then; a type without a schema
    takes any event that passed ingest's own checks.
    """

    def __init__(self, catalogue: Iterable[EventType]) -> None:
        self._validators = {t.name: t.schema_.validator if t.schema_ is not None else None for t in catalogue}

    def check(self, events: Sequence[Any]) -> list[dict[str, Any]]:
        """A detail ``{"index", "path", "message"}`` per problem of ``events``, the request's
        events as posted (each already a well-formed event object); ``[]`` when all pass."""
        validators = self._validators
        out: list[dict[str, Any]] = []
        for i, ev in enumerate(events):
            name = ev["event"]
            if name not in validators:
                out.append({"index": i, "path": "event", "message": f"{name!r} is not in the event catalogue"})
                continue
            validator = validators[name]
            try:
                if validator is None or validator.is_valid(ev):
                    continue
                errors = list(validator.iter_errors(ev))
            except (ValueError, TypeError) as exc:  # a value the validator cannot take: refused, not a 500
                out.append({"index": i, "path": "", "message": f"cannot be checked against its schema: {exc}"})
                continue
            found = []
            for err in errors:
                message = err.message
                if len(message) > _MESSAGE_CHARS:
                    message = message[:_MESSAGE_CHARS] + "…"
                found.append({"index": i, "path": key_path(list(err.instance_path)), "message": message})
            # By path: the validator's own order is not promised across its versions.
            out.extend(sorted(found, key=lambda d: (d["path"], d["message"])))
        return out


def event_types_view(catalogue: Sequence[EventType], seen: Mapping[str, tuple[int, float]]) -> list[dict[str, Any]]:
    """``GET /v1/event-types``: the catalogue in its order, then the types only seen, by name.

    ``seen`` maps a type to (count, last ingest time) within the retention window.
    """
    out = []
    for t in catalogue:
        count, last = seen.get(t.name, (0, None))
        out.append(_view(t.name, t.description, t.document, count, last))
    listed = {t.name for t in catalogue}
    for name in sorted(seen.keys() - listed):
        count, last = seen[name]
        out.append(_view(name, "", None, count, last))
    return out


def _view(name: str, description: str, schema: Any, count: int, last: float | None) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "schema": schema,
        "seen": {"count": count, "last_at": format_timestamp(last) if last is not None else None},
    }
