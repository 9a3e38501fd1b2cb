"""Log output: lines of one loop iteration are written together, errors at once; levels and journald priorities."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TextIO

import pytest
import structlog

from hookd.logs import LineWriter, configure, journald_stream
from tests.support import HOOKD, Daemon, Receiver, ev, fail_first, status, webhook

MakeConfig = Callable[..., Path]
Factory = Callable[..., Awaitable[Daemon]]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure() sets up the whole process: put structlog and the root logger back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


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
    writer = configure("info", stream=out, json=True, journald=False)
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


async def test_stdlib_records_keep_their_place_among_structlog_lines() -> None:
    """A standard-library record logged between two structlog lines is written between them."""
    out = io.StringIO()
    writer = configure("info", stream=out, json=True, journald=False)
    structlog.get_logger("t").info("first")
    logging.getLogger("aiohttp.server").warning("second")
    structlog.get_logger("t").info("third")
    await asyncio.sleep(0)
    writer.flush()
    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == ["first", "second", "third"]


async def test_stdlib_errors_are_written_at_once_after_what_was_queued() -> None:
    """A standard-library error record is written immediately, after the lines queued before it."""
    out = io.StringIO()
    configure("info", stream=out, json=True, journald=False)
    structlog.get_logger("t").info("queued")
    logging.getLogger("asyncio").error("loop trouble")
    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == ["queued", "loop trouble"]


def test_lines_from_other_threads_are_neither_lost_nor_torn() -> None:
    """Lines written from several threads at once all arrive, each whole on its own line."""
    out = io.StringIO()
    writer = LineWriter(out)

    def write(n: int) -> None:
        for i in range(500):
            writer.info(f"t{n}-{i}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.flush()
    assert sorted(out.getvalue().splitlines()) == sorted(f"t{n}-{i}" for n in range(4) for i in range(500))


def journal_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TextIO:
    """A file standing in for journald's stream: JOURNAL_STREAM names its device and inode."""
    stream = (tmp_path / "journal").open("w")
    st = os.fstat(stream.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    return stream


async def test_journald_lines_start_with_their_syslog_priority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On journald's stream every line, structlog's and the standard library's, starts with its sd-daemon priority."""
    stream = journal_file(tmp_path, monkeypatch)
    writer = configure("debug", stream=stream, json=True)
    try:
        log = structlog.get_logger("t")
        log.debug("d")
        log.info("i")
        log.warning("w")
        logging.getLogger("aiohttp.client").warning("stdlib warning")
        log.error("e")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("x")
        log.critical("c")
        writer.flush()
    finally:
        stream.close()
    lines = (tmp_path / "journal").read_text().splitlines()
    prefixes = [line[:3] for line in lines]
    assert prefixes == ["<7>", "<6>", "<4>", "<4>", "<3>", "<3>", "<2>"]
    assert [json.loads(line[3:])["event"] for line in lines] == ["d", "i", "w", "stdlib warning", "e", "x", "c"]


async def test_no_priority_prefix_off_journald(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With JOURNAL_STREAM naming another file (a pipe to tee, say), lines carry no priority prefix."""
    journal_file(tmp_path, monkeypatch).close()
    with (tmp_path / "other").open("w") as stream:
        writer = configure("info", stream=stream, json=True)
        structlog.get_logger("t").warning("w")
        writer.flush()
    assert json.loads((tmp_path / "other").read_text())["event"] == "w"


def test_journald_stream_check() -> None:
    """journald_stream() matches JOURNAL_STREAM's device:inode against the stream, and is False on anything odd."""
    r, w = os.pipe()
    try:
        with os.fdopen(w, "w") as stream:
            st = os.fstat(stream.fileno())
            assert journald_stream(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
            assert not journald_stream(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
            assert not journald_stream(stream, {})
            assert not journald_stream(stream, {"JOURNAL_STREAM": "garbage"})
        assert not journald_stream(io.StringIO(), {"JOURNAL_STREAM": "1:2"})
    finally:
        os.close(r)


async def test_hookd_run_under_journald_prefixes_priorities(tmp_path: Path) -> None:
    """The real ``hookd run`` whose stdout is journald's stream writes an error as ``<3>`` and JSON after it."""
    out = tmp_path / "journal"
    with out.open("w") as stream:
        st = os.fstat(stream.fileno())
        proc = await asyncio.create_subprocess_exec(
            HOOKD, "run", "-c", str(tmp_path / "missing.toml"),
            stdout=stream, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"},
        )  # fmt: skip
        async with asyncio.timeout(30):
            assert await proc.wait() == 1
    (line,) = out.read_text().splitlines()
    assert line.startswith("<3>{")
    assert json.loads(line[3:])["event"] == "config_invalid"


def test_debug_calls_render_nothing_at_info() -> None:
    """At level info a debug call never reaches the renderer (its arguments are not even formatted)."""
    rendered: list[str] = []

    class Probe:
        def __repr__(self) -> str:
            rendered.append("x")
            return "probe"

    out = io.StringIO()
    configure("info", stream=out, json=True, journald=False)
    structlog.get_logger("t").debug("hidden", probe=Probe())
    assert (out.getvalue(), rendered) == ("", [])
    configure("debug", stream=out, json=True, journald=False)
    structlog.get_logger("t").debug("shown", probe=Probe())
    assert rendered == ["x"]
    assert json.loads(out.getvalue())["probe"] == "probe"


async def test_final_failure_is_a_warning_and_retries_info(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: Factory
) -> None:
    """An attempt ending a delivery as failed is logged at warning; successes and attempts to be retried at info."""
    receiver.behave["/bad"] = status(400)
    receiver.behave["/flaky"] = fail_first(1)
    hooks = [webhook("ok", receiver.url + "/ok"), webhook("bad", receiver.url + "/bad"),
             webhook("flaky", receiver.url + "/flaky")]  # fmt: skip
    d = await daemon_factory(make_config(webhooks=hooks))
    assert (await d.send(ev(1)))[0] == 202
    bad = await d.wait_line("attempt", where=lambda r: r["webhook"] == "bad")
    ok = await d.wait_line("attempt", where=lambda r: r["webhook"] == "ok")
    retried = await d.wait_line("attempt", where=lambda r: r["webhook"] == "flaky")
    recovered = await d.wait_line("attempt", where=lambda r: r["webhook"] == "flaky", count=2)
    assert (bad["outcome"], bad["level"]) == ("failed", "warning")
    assert (ok["outcome"], ok["level"]) == ("succeeded", "info")
    assert (retried["outcome"], retried["level"]) == ("retrying", "info")
    assert (recovered["outcome"], recovered["level"]) == ("succeeded", "info")


async def test_debug_level_logs_routing_batch_timers_spool_rounds_and_retries(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: Factory
) -> None:
    """``--log-level debug`` adds a routing summary per ingest request, batch timers armed and fired, spool rounds
    with their counts and each retry scheduled; at info none of them appear."""
    receiver.behave["/flaky"] = fail_first(1)
    hooks = [
        webhook("now", receiver.url + "/now"),
        webhook("flaky", receiver.url + "/flaky", on="ticket.updated"),
        webhook("mem", receiver.url + "/mem", batching="any_event", batch_wait_seconds=0.1),
        webhook("spool", receiver.url + "/spool", batching="any_event", batch_wait_seconds=0.3),
    ]
    config = make_config(webhooks=hooks, batching={"spool_after_seconds": 0.2, "spool_poll_seconds": 0.05})
    d = await daemon_factory(config, args=["--log-level", "debug"])
    assert (await d.send([ev(1), ev(2), ev(3, "ticket.updated")]))[0] == 202
    routed = await d.wait_line("routed")
    assert (routed["level"], routed["events"], routed["duplicates"], routed["items"]) == ("debug", 3, 0, 10)
    assert routed["webhooks"] == {"now": 3, "flaky": 1, "mem": 3, "spool": 3}
    armed = await d.wait_line("batch_timer_armed", where=lambda r: r["webhook"] == "mem")
    assert armed["level"] == "debug"
    fired = await d.wait_line("batch_timer_fired", where=lambda r: r["webhook"] == "mem")
    assert fired["items"] == 3
    spool = await d.wait_line("spool_round")
    assert (spool["batches"], spool["items"]) == (1, 3)
    retry = await d.wait_line("retry_scheduled")
    assert (retry["webhook"], retry["next_attempt"], retry["spooled"]) == ("flaky", 2, False)
    assert 0 < retry["delay_seconds"] <= 0.05  # the schedule's 0.05 s, less the time since the attempt ended
    await receiver.wait_for(2, "/flaky")
    await receiver.wait_for(1, "/spool")
    await d.stop()

    quiet = await daemon_factory(config)
    assert (await quiet.send([ev(4), ev(5, "ticket.updated")]))[0] == 202
    await receiver.wait_for(3, "/flaky")
    await receiver.wait_for(2, "/spool")
    await quiet.wait_line("attempt", where=lambda r: r["webhook"] == "spool")
    assert not [r for r in quiet.lines if r.get("level") == "debug"]


async def test_refused_reload_is_a_warning_and_a_clean_removal_info(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: Factory
) -> None:
    """A reload refused for an invalid file logs a warning, not an error; removing a webhook with nothing waiting is
    info, while one that leaves deliveries waiting in the store is a warning."""
    receiver.behave["/slow"] = fail_first(1)
    hooks = [webhook("a", receiver.url + "/a"), webhook("b", receiver.url + "/b"),
             webhook("slow", receiver.url + "/slow")]  # fmt: skip
    config = make_config(hooks, delivery={"retry_schedule": [30]})
    d = await daemon_factory(config)
    config.write_text("this is = = not [toml\n")
    await d.signal(signal.SIGHUP)
    assert (await d.wait_line("reload_failed"))["level"] == "warning"
    assert (await d.send(ev(1)))[0] == 202
    await d.wait_line("attempt", where=lambda r: r["webhook"] == "slow" and r["outcome"] == "retrying")
    make_config([hooks[0]], delivery={"retry_schedule": [30]})
    await d.signal(signal.SIGHUP)
    clean = await d.wait_line("webhook_removed", where=lambda r: r["webhook"] == "b")
    left = await d.wait_line("webhook_removed", where=lambda r: r["webhook"] == "slow")
    assert (clean["level"], clean["orphaned"]) == ("info", 0)
    assert (left["level"], left["orphaned"]) == ("warning", 1)
