"""The validation of ingested events: JSON values in, occurrences or error details out.

Validation is hand-written rather than a pydantic model: it runs once per event on the
hot path (SPEC §10 leaves about 12 µs per batched event), and the API's error details
(`{"index", "path", "message"}`) are simplest to produce directly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hookd.models import EVENT_KEYS, MAX_ID_LEN, EventNames, IdFactory, Occurrence
from hookd.operator_events import is_operator_event

_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$")


def _parse_time(value: str) -> str:
    m = _RFC3339.match(value)
    if m is None:
        if re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$", value):
            raise ValueError("needs a UTC offset (RFC 3339), e.g. 2026-11-29T07:00:00Z")
        raise ValueError("not an RFC 3339 date-time")
    date, hm, sec, frac, tz = m.groups()
    # RFC 3339 allows a leap second and any number of fraction digits; Python does not.
    sec = "59" if sec == "60" else sec
    frac = (frac or "0")[:6].ljust(6, "0")
    tz = "+00:00" if tz in ("Z", "z") else tz
    try:
        dt = datetime.fromisoformat(f"{date}T{hm}:{sec}.{frac}{tz}").astimezone(UTC)
    except (ValueError, OverflowError):  # month 13, or year 1 shifted before year 1
        raise ValueError("not an RFC 3339 date-time") from None
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


# orjson turns an integer beyond 64 bits into a float and a number below the smallest
# double into 0.0, silently (one above the largest it refuses as infinity). hookd refuses
# all three (422) rather than pass a changed number on. Writing one of the silent two takes
# 19 digits in a row or a negative exponent of three digits, so a body orjson parsed is
# first screened for those: one translate maps every digit to 0, e and E to e, keeps -, and
# makes every other byte a space; two substring searches then look for 19 zeros and for
# "0e-000". About 0.4 µs per 300-byte event (the translate half of it; searching the raw
# body for "e-" alone took longer, as letters e are common); regular expressions for the
# same took 2 to 15 µs. The common body never pays for the exact check (the standard
# library's parser, with hooks that see each number's text).
_SCREENED = {ord("-"): ord("-"), ord("e"): ord("e"), ord("E"): ord("e")} | {ord(d): ord("0") for d in "0123456789"}
_SCREEN = bytes(_SCREENED.get(b, ord(" ")) for b in range(256))
_LONG_DIGITS = b"0" * 19
_SMALL_EXPONENT = b"0e-000"
_I64_MIN, _U64_MAX = -(2**63), 2**64 - 1
_SHOWN = 40  # characters of an offending number quoted in the message


@dataclass(slots=True)
class _Inexact:
    """A number from the body that would not survive orjson unchanged."""

    text: str
    why: str


def _suspect(raw: bytes) -> bool:
    t = raw.translate(_SCREEN)
    return _LONG_DIGITS in t or _SMALL_EXPONENT in t


def _exact_int(text: str) -> Any:
    # The length test first: int() of a long digit string is slow, and past 4300 digits refused.
    if len(text) > 20 or not _I64_MIN <= int(text) <= _U64_MAX:
        return _Inexact(text, "is an integer beyond 64 bits")
    return int(text)


def _exact_float(text: str) -> Any:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        return _Inexact(text, "is too large for a double")
    if value == 0 and any(c in "123456789" for c in text.lower().partition("e")[0]):
        return _Inexact(text, "is too small for a double (it would become 0)")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def inexact_numbers(raw: bytes, orjson_refused: bool = False) -> list[dict[str, Any]]:
    """A detail ``{"index", "path", "message"}`` for each number in the JSON text ``raw`` that
    a 64-bit integer or a double cannot hold; ``[]`` when there is none, or ``raw`` is not JSON.

    ``orjson_refused``: orjson could not parse ``raw``. The quick screen looks only for what
    orjson changes silently, so it is skipped then (an infinity may be the reason).
    """
    if not orjson_refused and not _suspect(raw):
        return []
    try:
        data = json.loads(raw, parse_int=_exact_int, parse_float=_exact_float, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # not JSON: the caller's parser says why
        return []
    found: list[dict[str, Any]] = []
    # Paths as the other details have them: relative to the event, which ``index`` names.
    roots = list(enumerate(data)) if isinstance(data, list) else [(None if not isinstance(data, dict) else 0, data)]
    for index, root in roots:
        stack: list[tuple[str, Any]] = [("", root)]
        while stack:
            path, value = stack.pop()
            if isinstance(value, dict):
                stack.extend((f"{path}.{k}" if path else k, v) for k, v in reversed(value.items()))
            elif isinstance(value, list):
                stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value))))
            elif isinstance(value, _Inexact):
                shown = value.text if len(value.text) <= _SHOWN else value.text[:_SHOWN] + "…"
                message = f"{shown} {value.why}; send it as a string"
                found.append({"index": index, "path": path, "message": message})
    return found


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), "number")


def validate_events(
    data: Any, ids: IdFactory, now_ts: str, max_events: int
) -> tuple[list[Occurrence], list[dict[str, Any]]]:
    """Check a parsed request body; return the occurrences or the errors (never both).

    ``data`` is one event object or an array of them. Each error is a detail
    ``{"index", "path", "message"}`` as the API returns it.
    """
    if isinstance(data, dict):
        events: list[Any] = [data]
    elif isinstance(data, list):
        events = data
        if not events:
            return [], [{"index": None, "path": "", "message": "the array is empty"}]
    else:
        return [], [
            {"index": None, "path": "", "message": f"expected an event object or an array, got {_type_name(data)}"}
        ]
    errors: list[dict[str, Any]] = []
    out: list[Occurrence] = []
    names = ids.event_names
    known = names.known
    for i, ev in enumerate(events):
        # Once there is an error only errors matter, and the full check is what words them.
        occ = _accept(ev, ids, now_ts, known) if not errors and type(ev) is dict else None
        if occ is None:
            occ = _check_event(i, ev, ids, now_ts, names, errors)
        if occ is not None:
            out.append(occ)
    if errors:
        return [], errors
    if len(out) > max_events:  # checked by the caller first; kept as a guard
        return [], [{"index": None, "path": "", "message": "too many events"}]
    return out, []


def _accept(ev: dict[str, Any], ids: IdFactory, now_ts: str, known: set[str]) -> Occurrence | None:
    """The occurrence of a valid event, or None when ``ev`` needs the full check.

    The fast path: the valid case with as few lookups as can be. A None here says nothing
    about ``ev``; it only sends it to _check_event, which alone decides and words errors.
    """
    name = ev.get("event")
    obj = ev.get("object")
    if type(name) is not str or name not in known or type(obj) is not dict:
        return None
    eid = ev.get("id")
    if eid is not None and (type(eid) is not str or not 0 < len(eid) <= MAX_ID_LEN):
        return None
    action = ev.get("action")
    if action is not None and type(action) is not dict:
        return None
    linked = None
    ts = now_ts
    # `event` and `object` are present, so when the count adds up there is no other key:
    # no unknown-key scan and no `linked` or `occurred_at` to look up (the common shape).
    if len(ev) != 2 + (eid is not None) + (action is not None):
        if not EVENT_KEYS.issuperset(ev):
            return None
        linked = ev.get("linked")
        if linked is not None:
            if type(linked) is not dict:
                return None
            for v in linked.values():
                if type(v) is not dict:
                    return None
        at = ev.get("occurred_at")
        if at is not None:
            if type(at) is not str:
                return None
            try:
                ts = _parse_time(at)
            except ValueError:
                return None
    # Positional: keyword arguments make this call about twice as slow.
    if eid is None:
        return Occurrence(ids.make("evt"), name, ts, obj, action, linked, False)
    return Occurrence(eid, name, ts, obj, action, linked, True)


def _check_event(  # noqa: C901 - one check per key of the event schema, in one pass: the ingest hot path
    i: int, ev: Any, ids: IdFactory, now_ts: str, names: EventNames, errors: list[dict[str, Any]]
) -> Occurrence | None:
    """The full check of event ``i``: append its errors; its occurrence while there are none."""
    if type(ev) is not dict:
        errors.append({"index": i, "path": "", "message": f"expected an object, got {_type_name(ev)}"})
        return None
    if not EVENT_KEYS.issuperset(ev):  # no set built on the common path
        for key in ev.keys() - EVENT_KEYS:
            errors.append({"index": i, "path": key, "message": "unknown key"})
    name = ev.get("event")
    if type(name) is not str:
        msg = "required" if name is None else f"expected a string, got {_type_name(name)}"
        errors.append({"index": i, "path": "event", "message": msg})
    elif is_operator_event(name):
        # Checked before names.valid, which would let the name onto _accept's fast path.
        errors.append(
            {"index": i, "path": "event", "message": "the hookd. prefix is reserved for hookd's own operator events"}
        )
    elif not names.valid(name):
        errors.append(
            {"index": i, "path": "event", "message": "must be a dotted lower-case name such as ticket.created"}
        )
    obj = ev.get("object")
    if type(obj) is not dict:
        msg = "required" if obj is None else f"expected an object, got {_type_name(obj)}"
        errors.append({"index": i, "path": "object", "message": msg})
    action = ev.get("action")
    if action is not None and type(action) is not dict:
        errors.append({"index": i, "path": "action", "message": f"expected an object, got {_type_name(action)}"})
    linked = ev.get("linked")
    if linked is not None:
        if type(linked) is not dict:
            errors.append({"index": i, "path": "linked", "message": f"expected an object, got {_type_name(linked)}"})
        else:
            for k, v in linked.items():
                if type(v) is not dict:
                    errors.append(
                        {"index": i, "path": f"linked.{k}", "message": f"expected an object, got {_type_name(v)}"}
                    )
    eid = ev.get("id")
    client_id = eid is not None
    if client_id and (type(eid) is not str or not 0 < len(eid) <= MAX_ID_LEN):
        errors.append({"index": i, "path": "id", "message": f"must be a string of 1 to {MAX_ID_LEN} characters"})
    ts = now_ts
    at = ev.get("occurred_at")
    if at is not None:
        if type(at) is not str:
            errors.append(
                {"index": i, "path": "occurred_at", "message": f"expected an RFC 3339 string, got {_type_name(at)}"}
            )
        else:
            try:
                ts = _parse_time(at)
            except ValueError as exc:
                errors.append({"index": i, "path": "occurred_at", "message": str(exc)})
    if errors:  # this event's or an earlier one's: the request fails, so no occurrence (or id)
        return None
    # No errors, so event, object and id have the types checked above.
    eid = eid if client_id else ids.make("evt")
    return Occurrence(eid, name, ts, obj, action, linked, client_id)  # type: ignore[arg-type]
