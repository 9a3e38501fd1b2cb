"""Event-type patterns (``ticket.*``, ``*``) and which event types they match (pure).

Apart from the router so that the config models can check a pattern too (router imports
the config; this module imports nothing of hookd).
"""

from __future__ import annotations

# hookd's own events (SPEC §12) start with this; the application may not send such a type.
OPERATOR_PREFIX = "hookd."


def pattern_matches(pattern: str, event: str) -> bool:
    """``*`` stands for one segment; a trailing ``*`` (or ``*`` alone) for one or more.

    An operator event (``hookd.…``) is matched only by a pattern that names the prefix
    itself (``hookd.*``, ``hookd.delivery.failed``): a catch-all ``*`` or ``*.failed``
    written for the application's events must not start receiving hookd's own.
    """
    if event.startswith(OPERATOR_PREFIX) and not pattern.startswith(OPERATOR_PREFIX):
        return False
    if pattern == "*":
        return True
    p = pattern.split(".")
    e = event.split(".")
    if p[-1] == "*":
        if len(e) < len(p):
            return False
        e = [*e[: len(p) - 1], "*"]
    elif len(e) != len(p):
        return False
    return all(a in ("*", b) for a, b in zip(p, e, strict=True))
