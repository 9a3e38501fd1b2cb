"""Logging, configured once: JSON lines when not on a terminal (journald), a console
renderer on one. The standard library's logging (aiohttp's, asyncio's) is routed
through the same renderer, so everything hookd prints is one format."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import orjson
import structlog


def _dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def configure(level: str = "info", stream: TextIO | None = None, json: bool | None = None) -> None:
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
    renderer: Any
    if json:
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
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
