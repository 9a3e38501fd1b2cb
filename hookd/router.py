"""Triggers and conditions: which webhooks an occurrence goes to, and by which trigger.

Pure: conditions compile once per config load into small closures, and the trigger
candidates of an event type are cached, so routing an event is a dict lookup plus the
conditions that can actually apply.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from hookd.config import Condition, Trigger, Webhook
from hookd.models import Occurrence
from hookd.paths import MISSING, getter, is_select
from hookd.patterns import pattern_matches

_CACHE_LIMIT = 10_000  # event names are few; the bound keeps hostile input from growing it

Predicate = Callable[[Occurrence], bool]


def _same(a: Any, b: Any) -> bool:
    # JSON true is not 1: compare booleans only with booleans.
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    return bool(a == b)


def _eq(field: Any, value: Any) -> bool:
    if is_select(field):
        return _same(field["id"], value) or _same(field["display"], value)
    return _same(field, value)


def _text(field: Any) -> str | None:
    if is_select(field):
        field = field["display"]
    return field if type(field) is str else None


def _contains(field: Any, value: Any) -> bool:
    if type(field) is list:
        return any(_eq(el, value) for el in field)
    text = _text(field)
    return text is not None and type(value) is str and value in text


def _order(field: Any, value: Any, cmp: Callable[[Any, Any], bool]) -> bool:
    candidates = [field["id"], field["display"]] if is_select(field) else [field]
    for c in candidates:
        if type(c) in (int, float) and type(value) in (int, float):
            return cmp(c, value)
        if type(c) is str and type(value) is str:
            return cmp(c, value)
    return False


def compile_condition(cond: Condition) -> Predicate:  # noqa: C901 - one flat branch per operator of SPEC §2
    """One condition as a predicate over occurrences."""
    get = getter(cond.field)
    value = cond.value
    op = cond.op
    test: Callable[[Any], bool]
    if op == "eq":
        test = lambda f: _eq(f, value)  # noqa: E731
    elif op == "ne":
        test = lambda f: not _eq(f, value)  # noqa: E731
    elif op == "in":
        test = lambda f: any(_eq(f, v) for v in value)  # noqa: E731
    elif op == "not_in":
        test = lambda f: not any(_eq(f, v) for v in value)  # noqa: E731
    elif op == "contains":
        test = lambda f: _contains(f, value)  # noqa: E731
    elif op == "not_contains":
        test = lambda f: not _contains(f, value)  # noqa: E731
    elif op == "starts_with":
        test = lambda f: (t := _text(f)) is not None and t.startswith(value)  # noqa: E731
    elif op == "gt":
        test = lambda f: _order(f, value, lambda a, b: a > b)  # noqa: E731
    elif op == "gte":
        test = lambda f: _order(f, value, lambda a, b: a >= b)  # noqa: E731
    elif op == "lt":
        test = lambda f: _order(f, value, lambda a, b: a < b)  # noqa: E731
    elif op == "lte":
        test = lambda f: _order(f, value, lambda a, b: a <= b)  # noqa: E731
    elif op == "exists":
        test = lambda f: f is not None  # noqa: E731
    elif op == "not_exists":
        test = lambda f: f is None  # noqa: E731
    elif op == "matches":
        rx = re.compile(value)
        test = lambda f: (t := _text(f)) is not None and rx.search(t) is not None  # noqa: E731
    else:  # pragma: no cover - config validation admits only the operators above
        raise ValueError(f"unknown operator {op!r}")
    # A missing field satisfies only the negative operators (SPEC §2).
    when_missing = op in ("ne", "not_in", "not_contains", "not_exists")

    def predicate(occ: Occurrence) -> bool:
        f = get(occ)
        if f is MISSING:
            return when_missing
        return test(f)

    return predicate


def compile_trigger(trigger: Trigger) -> Predicate:
    """The trigger's conditions joined by its ``match``."""
    preds = [compile_condition(c) for c in trigger.conditions]
    if not preds:
        return lambda occ: True
    if trigger.match == "all":
        return lambda occ: all(p(occ) for p in preds)
    return lambda occ: any(p(occ) for p in preds)


class Router:
    """Matches occurrences against the enabled webhooks of one config."""

    def __init__(self, webhooks: Iterable[Webhook]) -> None:
        self._webhooks = [(w.id, [(t.id, t.on, compile_trigger(t)) for t in w.events]) for w in webhooks if w.enabled]
        self._cache: dict[str, list[tuple[str, list[tuple[str, Predicate]]]]] = {}

    def _candidates(self, event: str) -> list[tuple[str, list[tuple[str, Predicate]]]]:
        found = self._cache.get(event)
        if found is None:
            found = []
            for wid, triggers in self._webhooks:
                hits = [(tid, pred) for tid, on, pred in triggers if pattern_matches(on, event)]
                if hits:
                    found.append((wid, hits))
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[event] = found
        return found

    def route(self, occ: Occurrence) -> list[tuple[str, str]]:
        """(webhook id, trigger id) for each webhook the occurrence goes to, in config order.

        At most one per webhook: its first trigger (config order) that matches.
        """
        out = []
        for wid, triggers in self._candidates(occ.event):
            for tid, pred in triggers:
                if pred(occ):
                    out.append((wid, tid))
                    break
        return out
