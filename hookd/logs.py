"""Logging, configured once: JSON lines when not on a terminal (journald), a console
renderer on one. The standard library's logging (aiohttp's, asyncio's) is routed
through the same renderer, so everything hookd prints is one format."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any, TextIO

import orjson
import structlog


class LineWriter:
    """Writes rendered lines, gathering those of one loop iteration into one write.

    One write and flush per line was a system call per attempt on the hot path; lines
    logged while the loop runs are written together when the iteration ends (``call_soon``),
    so none waits longer than that. Errors are written at once.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lines: list[str] = []

    def msg(self, message: str) -> None:
        """Queue one line (written at the end of this loop iteration)."""
        self._lines.append(message)
        if len(self._lines) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop running: write now
                self.flush()

    def now(self, message: str) -> None:
        """Write one line, and anything queued before it, at once."""
        self._lines.append(message)
        self.flush()

    def flush(self) -> None:
        """Write what is queued."""
        if self._lines:
            text = "\n".join(self._lines) + "\n"
            self._lines.clear()
            self._stream.write(text)
            self._stream.flush()

    debug = info = warning = warn = log = msg
    error = err = critical = fatal = failure = exception = now


def _dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def configure(level: str = "info", stream: TextIO | None = None, json: bool | None = None) -> LineWriter:
    """Set up structlog and the standard library's logging for the whole process."""
    stream = stream or sys.stdout
    if json is None:
        json = not stream.isatty()
    lvl = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    writer = LineWriter(stream)
    renderer: Any
    if json:
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=lambda *args: writer,
        cache_logger_on_first_use=True,
    )
    # Records from aiohttp, asyncio and friends take the same path and format.
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(lvl, logging.INFO))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return writer
