"""Dotted paths into an occurrence (``object.status.id``), read by router conditions and custom payload fields.

Pure: a path compiles once into a small closure; a missing step gives ``MISSING``, not an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hookd.models import Occurrence

MISSING: Any = object()


def getter(path: str) -> Callable[[Occurrence], Any]:
    """A function reading a dotted path (``object.status.id``) from an occurrence."""
    root, *rest = path.split(".")
    keys = tuple(rest)

    def get(occ: Occurrence) -> Any:
        value: Any = getattr(occ, root)
        for key in keys:
            if type(value) is dict:
                value = value.get(key, MISSING)
            elif type(value) is list and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                return MISSING
            if value is MISSING:
                return MISSING
        return value

    return get


def is_select(value: Any) -> bool:
    """A single-select field: an object with ``id`` and ``display``."""
    return type(value) is dict and "id" in value and "display" in value
