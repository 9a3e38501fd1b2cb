"""Points in time as operators write them (SPEC §13): RFC 3339, or a duration back from now.

Pure functions, shared by the admin API (which takes RFC 3339 only) and the CLI verbs that
take ``--since T`` (``hookd deliveries``, ``hookd recover``), where ``T`` may also be
``90s``, ``15m``, ``2h``, ``7d`` or ``1w``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})")
_NO_OFFSET = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_time(text: str) -> float:
    """An RFC 3339 date-time with its offset (``2026-11-29T07:00:00Z``,
    ``2026-11-29T08:00:00.250+01:00``) as unix seconds; ValueError says what is wrong."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        if _NO_OFFSET.fullmatch(text):
            raise ValueError(f"{text!r} needs a UTC offset: an RFC 3339 date-time, e.g. 2026-11-29T07:00:00Z")
        raise ValueError(f"{text!r} is not an RFC 3339 date-time, e.g. 2026-11-29T07:00:00Z")
    date, hm, sec, frac, tz = m.groups()
    # RFC 3339 allows a leap second and any number of fraction digits; Python does not.
    sec = "59" if sec == "60" else sec
    tz = "+00:00" if tz in ("Z", "z") else tz
    try:
        dt = datetime.fromisoformat(f"{date}T{hm}:{sec}{tz}")
    except ValueError:  # month 13, hour 25, offset +24:00
        raise ValueError(f"{text!r} is not a valid date-time") from None
    # The fraction is added as a number, so its digits beyond microseconds are not lost.
    return dt.timestamp() + (float("0." + frac) if frac else 0.0)


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``2h``, ``7d``, ``1w`` (a number, fractions allowed, and one unit) as seconds."""
    m = _DURATION.fullmatch(text)
    if m is None:
        raise ValueError("not a duration: a number and one of s, m, h, d, w (90s, 2h, 7d)")
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def parse_since(text: str, now: float) -> float:
    """A point in time given as RFC 3339, or as a duration back from ``now`` (unix seconds)."""
    text = text.strip()
    if _DURATION.fullmatch(text):
        return now - parse_duration(text)
    try:
        return parse_time(text)
    except ValueError as exc:
        if _NO_OFFSET.fullmatch(text):  # nearly a date-time: say what it lacks
            raise ValueError(f"{exc}; or a duration back from now: 90s, 2h, 7d") from None
        raise ValueError(
            f"{text!r} is neither an RFC 3339 date-time (2026-11-29T07:00:00Z) nor a duration back from now"
            " (90s, 15m, 2h, 7d)"
        ) from None


def format_time(ts: float) -> str:
    """Unix seconds as RFC 3339 in UTC with microseconds, so that parse_time gives them back."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
