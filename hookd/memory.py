"""Giving freed memory back to the system after a large backlog has drained.

CPython frees the objects of a drained backlog, but glibc's allocator keeps the pages
they lived on (its heap only shrinks from the top), so without help RSS stays at the
backlog's high-water mark. ``malloc_trim(0)`` hands every free page back; it costs a
few milliseconds of the loop, so it runs only after a big drain, not on every one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

# Deliveries read back from the store since the last trim that make a drain big enough.
TRIM_AFTER = 10_000


def malloc_trim() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)`` as a call, or None where there is none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        fn = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return lambda: int(fn(0))
