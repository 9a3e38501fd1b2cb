"""Logging, configured once: JSON lines when not on a terminal (journald), a console
renderer on one. The standard library's logging (aiohttp's, asyncio's) is routed
through the same renderer and the same writer, so everything hookd prints is one
format, in the order it was logged. On journald's stream each line starts with its
syslog priority (sd-daemon(3)), so ``journalctl -p warning`` shows what needs a look."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import orjson
import structlog

# sd-daemon(3) prefixes; journald strips them and files the line under that priority.
PRIORITIES = {
    "critical": "<2>", "fatal": "<2>", "error": "<3>", "warning": "<4>", "info": "<6>", "debug": "<7>",
}  # fmt: skip


class LineWriter:
    """Writes rendered lines, gathering those of one loop iteration into one write.

    One write and flush per line was a system call per attempt on the hot path; lines
    logged while the loop runs are written together when the iteration ends (``call_soon``),
    so none waits longer than that. Errors, and lines from threads without a running loop
    (the store's connection thread, the CLI before start-up), are written at once, after
    whatever was queued before them.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lines: list[str] = []
        # The standard library logs from any thread, and so does the store's thread.
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        """Queue one line (written at the end of this loop iteration)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread: nothing would flush it soon
            self.now(message)
            return
        with self._lock:
            self._lines.append(message)
            first = len(self._lines) == 1
        if first:
            loop.call_soon(self.flush)

    def now(self, message: str) -> None:
        """Write one line, and anything queued before it, at once."""
        with self._lock:
            self._lines.append(message)
            self._write()

    def flush(self) -> None:
        """Write what is queued."""
        with self._lock:
            self._write()

    def _write(self) -> None:
        if not self._lines:
            return
        text = "\n".join(self._lines) + "\n"
        self._lines.clear()
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            # stdout gone (journald restarted, a closed pipe): losing these lines is
            # better than a logging call raising into the delivery path.
            pass

    debug = info = warning = warn = log = msg
    error = err = critical = fatal = failure = exception = now


class _WriterHandler(logging.Handler):
    """Hands the standard library's records to the LineWriter, so they keep their place among structlog's lines."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self._writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        if record.levelno >= logging.ERROR:
            self._writer.now(line)
        else:
            self._writer.msg(line)

    def flush(self) -> None:
        self._writer.flush()


class _Prioritised:
    """A renderer whose lines start with their level's sd-daemon(3) priority."""

    def __init__(self, renderer: Any) -> None:
        self._renderer = renderer

    def __call__(self, logger: Any, method_name: str, event_dict: Any) -> str:
        line: str = self._renderer(logger, method_name, event_dict)
        return PRIORITIES.get(event_dict.get("level", ""), "<6>") + line


def journald_stream(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Whether ``stream`` is the journald stream that ``$JOURNAL_STREAM`` (``device:inode``) names.

    systemd sets the variable for the service's stdout/stderr; comparing it with the
    stream itself keeps a pipe to ``tee`` (which inherits the variable) free of prefixes.
    """
    value = environ.get("JOURNAL_STREAM")
    if not value:
        return False
    try:
        dev, ino = (int(part) for part in value.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError):  # io.UnsupportedOperation (a StringIO) is both
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


class UtcStamper:
    """``timestamp`` as structlog's ``TimeStamper(fmt="iso", utc=True)`` writes it
    (``2026-12-02T02:18:34.123456Z``, no fraction on a whole second), with the date and
    time of day formatted once per second: a datetime built and formatted for every line
    cost about 2 % of the loop thread in the unbatched bench, half of logging's share."""

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self._clock = clock
        # (second, its text) in one attribute: lines are stamped from several threads.
        self._second: tuple[int, str] = (-1, "")

    def __call__(self, logger: Any, method_name: str, event_dict: Any) -> Any:
        sec, us = divmod(self._clock() // 1000, 1_000_000)
        cached = self._second
        if cached[0] != sec:
            text = datetime.datetime.fromtimestamp(sec, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
            cached = self._second = (sec, text)
        event_dict["timestamp"] = f"{cached[1]}.{us:06d}Z" if us else f"{cached[1]}Z"
        return event_dict


def _dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def configure(
    level: str = "info", stream: TextIO | None = None, json: bool | None = None, journald: bool | None = None
) -> LineWriter:
    """Set up structlog and the standard library's logging for the whole process.

    ``json`` defaults to "not a terminal", ``journald`` to "``stream`` is journald's".
    """
    stream = stream or sys.stdout
    if json is None:
        json = not stream.isatty()
    if journald is None:
        journald = journald_stream(stream, os.environ)
    lvl = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        UtcStamper(),
    ]
    writer = LineWriter(stream)
    renderer: Any
    if json:
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer()
    if journald:
        renderer = _Prioritised(renderer)
    structlog.configure(
        processors=[*shared, renderer],
        # Calls below the level are no-ops that never run the processors: a debug line
        # on a busy path costs a method call at info.
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=lambda *args: writer,
        cache_logger_on_first_use=True,
    )
    # Records from aiohttp, asyncio and friends take the same path, format and writer.
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
    )
    handler = _WriterHandler(writer)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(lvl, logging.INFO))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return writer
