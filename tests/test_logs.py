"""Log output: lines of one loop iteration are written together, errors at once."""

from __future__ import annotations

import asyncio
import io
import json

import structlog

from hookd.logs import LineWriter, configure


async def test_lines_wait_for_the_end_of_the_loop_iteration() -> None:
    """Lines logged in one iteration reach the stream together, when the iteration ends."""
    out = io.StringIO()
    writer = LineWriter(out)
    writer.info("one")
    writer.info("two")
    assert out.getvalue() == ""
    await asyncio.sleep(0)  # let call_soon callbacks run
    assert out.getvalue() == "one\ntwo\n"


async def test_errors_are_written_at_once_after_what_was_queued() -> None:
    """An error line is written immediately, after the lines queued before it, in order."""
    out = io.StringIO()
    writer = LineWriter(out)
    writer.info("before")
    writer.error("boom")
    assert out.getvalue() == "before\nboom\n"


def test_without_a_loop_lines_are_written_at_once() -> None:
    """Outside a running loop (the CLI before start-up) each line is written straight away."""
    out = io.StringIO()
    LineWriter(out).info("now")
    assert out.getvalue() == "now\n"


async def test_configured_json_lines_carry_event_level_and_timestamp() -> None:
    """configure() renders JSON lines with the event, level, ISO timestamp and the fields."""
    out = io.StringIO()
    writer = configure("info", stream=out, json=True)
    try:
        structlog.get_logger("t").info("attempt", webhook="a", status=200)
        structlog.get_logger("t").debug("hidden")
        writer.flush()
        (line,) = out.getvalue().splitlines()
        rec = json.loads(line)
        assert rec["event"] == "attempt"
        assert rec["level"] == "info"
        assert rec["webhook"] == "a"
        assert rec["status"] == 200
        assert rec["timestamp"].endswith("Z")
    finally:
        structlog.reset_defaults()
