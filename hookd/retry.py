"""The retry decision (SPEC §7): plain arithmetic over an attempt's result, no I/O."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

# Statuses worth trying again under retry_on = "transient".
TRANSIENT_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after an attempt: ``succeeded``, ``failed`` or ``retry`` after ``delay``."""

    state: str
    delay: float = 0.0


def find_header(headers: Mapping[str, str], name: str) -> str | None:
    """A response header by name in any case: the logged headers keep each name as the
    receiver spelled it (``retry-after`` is as valid as ``Retry-After``)."""
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        for key, v in headers.items():
            if key.lower() == lower:
                return v
    return value


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


# Error kinds no retry can mend: the address guard's refusal (SPEC §11) stands.
FINAL_ERRORS = frozenset({"blocked"})


def is_transient(status: int | None, error: str | None) -> bool:
    """Connection, proxy and TLS errors, timeouts, 408, 425, 429 and 5xx; never ``blocked``."""
    if status is None:
        return error is not None and error not in FINAL_ERRORS
    return status in TRANSIENT_STATUSES or 500 <= status <= 599


def decide(
    status: int | None,
    error: str | None,
    attempt: int,
    schedule: Sequence[float],
    jitter: float,
    retry_on: str,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """Decide after attempt number ``attempt`` (1-based) ended with ``status`` or ``error``."""
    if error is None and status is not None and 200 <= status <= 299:
        return Decision("succeeded")
    if error in FINAL_ERRORS:  # even under retry_on = "any_failure"
        return Decision("failed")
    if retry_on == "transient" and not is_transient(status, error):
        return Decision("failed")
    if attempt > len(schedule):
        return Decision("failed")
    delay = schedule[attempt - 1] * (1 + jitter * (2 * rand() - 1))
    if retry_after is not None and status in (429, 503):
        # Honour the receiver's wish when it asks for longer, within the schedule's reach.
        delay = max(delay, min(retry_after, max(schedule)))
    return Decision("retry", max(0.0, delay))
