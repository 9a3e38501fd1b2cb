"""Points in time as operators write them: RFC 3339, or a duration back from now (pure).

The API takes RFC 3339 only (``parse_time``); the CLI also takes ``90s``, ``2h``, ``7d``
(``parse_since``) and sends the API the RFC 3339 time it stands for.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})\Z")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])\Z")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str) -> float:
    """An RFC 3339 date-time with its offset (``2026-11-29T07:00:00Z``) as unix seconds.

    Raises ValueError with a message fit for an operator.
    """
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not an RFC 3339 date-time with an offset, e.g. 2026-11-29T07:00:00Z")
    date, hm, sec, frac, tz = m.groups()
    # RFC 3339 allows a leap second and any number of fraction digits; Python does not.
    sec = "59" if sec == "60" else sec
    frac = (frac or "0")[:6].ljust(6, "0")
    tz = "+00:00" if tz in ("Z", "z") else tz
    try:
        return datetime.fromisoformat(f"{date}T{hm}:{sec}.{frac}{tz}").timestamp()
    except (ValueError, OverflowError):  # month 13, or an offset past year 1
        raise ValueError(f"{text!r} is not a valid date-time") from None


def parse_since(text: str, now: float) -> float:
    """RFC 3339, or a duration back from ``now`` (``90s``, ``15m``, ``2h``, ``7d``, ``1w``),
    as unix seconds."""
    m = _DURATION.match(text.strip())
    if m is not None:
        return now - float(m.group(1)) * _UNIT[m.group(2)]
    try:
        return parse_time(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an RFC 3339 date-time (2026-11-29T07:00:00Z) nor a duration back from now"
            " (90s, 15m, 2h, 7d)"
        ) from None


def format_time(ts: float) -> str:
    """Unix seconds as RFC 3339 in UTC with microseconds (what the CLI sends the API)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
