"""The dispatcher's lanes (SPEC §7) driven directly: a fake clock, a scripted sender, a real store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from hookd.config import Config
from hookd.deliver import Dispatcher
from hookd.egress import DIRECT, Egress
from hookd.http import Response
from hookd.lanes import WINDOW, Health, Lane
from hookd.metrics import Metrics
from hookd.models import Delivery, IdFactory
from hookd.store import Store
from hookd.store.sqlite import PAGE_BODY_BYTES
from tests.fakeclock import FakeClock
from tests.support import running_store
from tests.support import until as support_until

T0 = 1_800_000_000.0


@dataclass
class Call:
    """One request the dispatcher made; it stays in flight until the test answers it."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    params: dict[str, str] | None
    answer: asyncio.Future[Response] = field(repr=False)

    @property
    def message_id(self) -> str:
        """The ``webhook-id`` header: which delivery this attempt is."""
        return self.headers["webhook-id"]

    def reply(self, status: int, headers: dict[str, str] | None = None) -> None:
        """End the attempt with ``status``."""
        self.answer.set_result(Response(status=status, error=None, duration_ms=1.0, headers=headers or {}))


Answer = int | tuple[int, dict[str, str]]  # a status, or a status and response headers


class ScriptedSender:
    """Has ``Sender.send``'s signature; records each call and answers from ``script[url]``
    (in order) or, when that runs out, holds the call until the test replies."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.script: dict[str, list[Answer]] = {}
        self._cond = asyncio.Condition()

    async def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        params: dict[str, str] | None = None,
        egress: Egress = DIRECT,
    ) -> Response:
        """Record the call, then answer it from the script or wait for the test."""
        call = Call(method, url, headers, body, params, asyncio.get_running_loop().create_future())
        async with self._cond:
            self.calls.append(call)
            self._cond.notify_all()
        if self.script.get(url):
            answer = self.script[url].pop(0)
            if isinstance(answer, tuple):
                call.reply(*answer)
            else:
                call.reply(answer)
        return await call.answer

    async def wait_calls(self, count: int) -> list[Call]:
        """Wait until ``count`` calls have been made in all."""
        async with asyncio.timeout(5), self._cond:
            await self._cond.wait_for(lambda: len(self.calls) >= count)
        return self.calls

    def sent(self) -> list[str]:
        """The message ids of every call so far, in call order."""
        return [c.message_id for c in self.calls]


async def until(cond: Callable[[], bool], what: str) -> None:
    """Poll ``cond`` (the dispatcher's tasks run meanwhile) until it holds, within 5 s."""
    await support_until(cond, what, timeout=5, every=0.001)


def config(*hooks: dict[str, Any], concurrency: int = 16, spool_after: float = 60, **delivery: Any) -> Config:
    """A validated config; each hook is ``{"id": ..., **settings}`` with a URL of its own."""
    settings: dict[str, Any] = {
        "concurrency": concurrency,
        "retry_schedule": [5, 30],
        "jitter": 0,
        **delivery,
    }
    return Config.model_validate(
        {
            "delivery": settings,
            "batching": {"spool_after_seconds": spool_after},
            "webhooks": [
                {"url": f"https://example.com/{h['id']}", "events": [{"id": "t", "on": "*"}], **h} for h in hooks
            ],
        }
    )


class Harness:
    """A Dispatcher on a fake clock, a scripted sender and a real store, fed as ingest feeds it."""

    def __init__(self, store: Store, cfg: Config, window: int = WINDOW) -> None:
        self.store = store
        self.clock = FakeClock(T0)
        self.sender = ScriptedSender()
        self.ids = IdFactory()
        self.dispatcher = Dispatcher(self.clock, store, self.sender, Metrics(), window=window)
        self.dispatcher.configure(cfg)
        self.cfg = cfg

    async def deliver(self, webhook_id: str, n: int = 1, committed: bool = True, pad: int = 0) -> list[Delivery]:
        """``n`` new deliveries to ``webhook_id``: committed (or only queued for writing),
        then submitted in that order; ``pad`` adds that many bytes to each body."""
        made = []
        for _ in range(n):
            seq = self.store.next_delivery_seq()
            d = Delivery(
                id=self.ids.delivery(seq), seq=seq, message_id=self.ids.make("msg"), webhook_id=webhook_id,
                body=orjson.dumps({"seq": seq, "pad": "x" * pad}), item_ids=(self.ids.uuid(),),
                events=("ticket.created",),
                triggers=("t",), created_at=self.clock.now(),
            )  # fmt: skip
            written = self.store.add_delivery(d, False, alone=True)
            if committed:
                await written
            made.append(d)
        for d in made:
            self.dispatcher.submit(d)
        return made

    async def take_up(self, cfg: Config) -> int:
        """Apply ``cfg`` as App does on reload: webhooks new to the dispatcher pick up their work."""
        known = self.dispatcher.webhook_ids()
        await self.store.drain()
        pending = await self.store.open_work([w.id for w in cfg.webhooks if w.id not in known], self.clock.now())
        self.dispatcher.configure(cfg)
        self.cfg = cfg
        return self.dispatcher.restore(pending)

    def idle(self, webhook_id: str) -> bool:
        """No attempt of ``webhook_id`` in flight (a finished one has settled and released)."""
        return self.dispatcher.health(webhook_id).inflight == 0

    async def states(self, *ds: Delivery) -> list[tuple[str, int]]:
        """(state, attempts) of each delivery as the log holds it, once every outcome is in."""
        await until(lambda: not any(self.dispatcher.delivering(d.id) for d in ds), "outcomes committed")
        reader = self.store.log
        out = []
        for d in ds:
            rec = await reader.delivery(d.id)
            assert rec is not None
            out.append((rec["state"], rec["attempts"]))
        return out


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A real store in tmp_path with its writer task, closed at the end."""
    async with running_store(tmp_path / "t.db") as s:
        yield s


@contextlib.asynccontextmanager
async def harness(store: Store, cfg: Config, window: int = WINDOW) -> AsyncIterator[Harness]:
    """A Harness whose attempts still in flight are cut at the end."""
    h = Harness(store, cfg, window)
    try:
        yield h
    finally:
        await h.dispatcher.stop(0)


async def test_ordered_lane_sends_one_at_a_time_and_keeps_order_across_a_retry(store: Store) -> None:
    """An ordered webhook has one delivery in flight, and the next waits out the first one's retry."""
    async with harness(store, config({"id": "o", "ordered": True})) as h:
        d1, d2, d3 = await h.deliver("o", 3)
        (first,) = await h.sender.wait_calls(1)
        health = h.dispatcher.health("o")
        assert (health.inflight, health.queued) == (1, 2)

        first.reply(500)
        await until(lambda: h.clock.pending == 1, "the retry timer")
        await until(lambda: h.idle("o"), "the failed attempt settled")
        assert h.sender.sent() == [d1.message_id]  # d2 waits while d1 waits out its retry
        assert h.dispatcher.health("o").queued == 3

        h.clock.advance(5)
        calls = await h.sender.wait_calls(2)
        calls[1].reply(200)
        calls = await h.sender.wait_calls(3)
        calls[2].reply(200)
        calls = await h.sender.wait_calls(4)
        calls[3].reply(200)
        await until(lambda: h.idle("o"), "the lane drained")
        assert h.sender.sent() == [d1.message_id, d1.message_id, d2.message_id, d3.message_id]
        assert await h.states(d1, d2, d3) == [("succeeded", 2), ("succeeded", 1), ("succeeded", 1)]


async def test_per_webhook_limit_bounds_one_lane_and_not_the_others(store: Store) -> None:
    """A webhook's own limit keeps its extra deliveries queued while another webhook sends at once."""
    async with harness(store, config({"id": "slow", "per_webhook_concurrency": 2}, {"id": "fast"})) as h:
        slow = await h.deliver("slow", 4)
        calls = await h.sender.wait_calls(2)
        assert h.sender.sent() == [slow[0].message_id, slow[1].message_id]
        health = h.dispatcher.health("slow")
        assert (health.inflight, health.queued) == (2, 2)

        (fast,) = await h.deliver("fast")
        calls = await h.sender.wait_calls(3)
        assert calls[2].message_id == fast.message_id
        assert h.dispatcher.inflight == 3

        calls[0].reply(200)
        calls = await h.sender.wait_calls(4)
        assert calls[3].message_id == slow[2].message_id
        assert h.dispatcher.health("slow").inflight == 2
        for c in calls[1:]:
            c.reply(200)
        (*_, last) = await h.sender.wait_calls(5)
        last.reply(200)
        await until(lambda: h.dispatcher.inflight == 0, "everything settled")
        assert await h.states(*slow, fast) == [("succeeded", 1)] * 5


async def test_a_lane_waiting_for_a_global_slot_gets_the_next_one_that_frees(store: Store) -> None:
    """Under a full global bound, a freed slot goes to the lane that waited for one, not back to the busy
    lane that freed it: one busy webhook cannot hold back the others until it has drained."""
    async with harness(store, config({"id": "busy"}, {"id": "other"}, concurrency=1)) as h:
        (b0,) = await h.deliver("busy")
        (other,) = await h.deliver("other")
        b1, b2 = await h.deliver("busy", 2)
        await h.sender.wait_calls(1)
        assert h.dispatcher.health("other").queued == 1
        assert h.dispatcher.health("busy").queued == 2

        for n in range(1, 5):
            calls = await h.sender.wait_calls(n)
            assert h.dispatcher.inflight == 1
            calls[n - 1].reply(200)
        await until(lambda: h.dispatcher.inflight == 0, "everything settled")
        assert h.sender.sent() == [d.message_id for d in (b0, other, b1, b2)]


async def test_lanes_take_turns_for_global_slots(store: Store) -> None:
    """With more lanes waiting than global slots, freed slots go round the lanes in the order they waited."""
    async with harness(store, config({"id": "a"}, {"id": "b"}, {"id": "c"}, concurrency=1)) as h:
        first = [(await h.deliver(wid))[0] for wid in ("a", "b", "c")]
        second = [(await h.deliver(wid))[0] for wid in ("a", "b", "c")]
        for n in range(1, 7):
            calls = await h.sender.wait_calls(n)
            calls[n - 1].reply(200)
        await until(lambda: h.dispatcher.inflight == 0, "everything settled")
        assert h.sender.sent() == [d.message_id for d in first + second]


async def test_a_slot_freed_under_load_is_taken_up_without_a_new_task(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When an attempt ends and a delivery waits for its slot, the task that ran the attempt
    runs the next one: a task per attempt cost more than the attempt's own hookd code."""
    async with harness(store, config({"id": "w"}, concurrency=2)) as h:
        spawned = 0
        spawn = h.dispatcher._tasks.spawn

        def counting(coro: Any, name: str | None = None) -> asyncio.Task[Any]:
            nonlocal spawned
            spawned += 1
            return spawn(coro, name)

        monkeypatch.setattr(h.dispatcher._tasks, "spawn", counting)
        h.sender.script["https://example.com/w"] = [200] * 8
        made = await h.deliver("w", 8)
        await h.sender.wait_calls(8)
        await until(lambda: h.dispatcher.inflight == 0, "everything settled")
        assert sorted(h.sender.sent()) == sorted(d.message_id for d in made)
        assert spawned == 2  # one per global slot
        assert await h.states(*made) == [("succeeded", 1)] * 8


async def test_short_retry_waits_run_on_timers(store: Store) -> None:
    """A retry wait within spool_after is a timer on the clock: the attempt comes exactly when it is due."""
    async with harness(store, config({"id": "w"}, retry_schedule=[5, 30])) as h:
        h.sender.script["https://example.com/w"] = [503, 500, 200]
        (d,) = await h.deliver("w")
        await h.sender.wait_calls(1)
        await until(lambda: h.clock.pending == 1 and h.idle("w"), "the first retry timer")
        assert h.clock.due() == [T0 + 5]
        assert await h.states(d) == [("retrying", 1)]

        h.clock.advance(4.9)
        await until(lambda: h.idle("w"), "nothing started early")
        assert len(h.sender.calls) == 1
        h.clock.advance(0.1)
        await h.sender.wait_calls(2)
        await until(lambda: h.clock.pending == 1 and h.idle("w"), "the second retry timer")
        assert h.clock.due() == [T0 + 35]

        h.clock.advance(30)
        await h.sender.wait_calls(3)
        await until(lambda: h.idle("w"), "the last attempt settled")
        assert await h.states(d) == [("succeeded", 3)]
        rec = await store.log.delivery(d.id)
        assert rec is not None
        assert [a["status_code"] for a in rec["attempt_log"]] == [503, 500, 200]
        assert [a["started_at"] for a in rec["attempt_log"]] == [T0, T0 + 5, T0 + 35]


async def test_retry_after_is_honoured_in_any_spelling(store: Store) -> None:
    """A receiver's ``retry-after`` in lower case stretches the wait as ``Retry-After`` does
    (header names are case-insensitive; the logged headers keep the receiver's spelling)."""
    async with harness(store, config({"id": "w"}, retry_schedule=[5, 60])) as h:
        h.sender.script["https://example.com/w"] = [(503, {"retry-after": "20"}), (429, {"RETRY-AFTER": "40"}), 200]
        (d,) = await h.deliver("w")
        await h.sender.wait_calls(1)
        await until(lambda: h.clock.pending == 1 and h.idle("w"), "the first retry timer")
        assert h.clock.due() == [T0 + 20]  # not the schedule's 5 s
        h.clock.advance(20)
        await h.sender.wait_calls(2)
        await until(lambda: h.clock.pending == 1 and h.idle("w"), "the second retry timer")
        assert h.clock.due() == [T0 + 20 + 60]  # the schedule's 60 s is longer than the 40 asked
        h.clock.advance(60)
        await h.sender.wait_calls(3)
        await until(lambda: h.idle("w"), "the last attempt settled")
        assert await h.states(d) == [("succeeded", 3)]


async def test_long_retry_waits_go_to_the_spool_and_come_back_on_poll(store: Store) -> None:
    """A retry wait above spool_after leaves no timer; the spool poll brings it back once due, not before."""
    async with harness(store, config({"id": "w"}, retry_schedule=[100])) as h:
        h.sender.script["https://example.com/w"] = [500, 200]
        (d,) = await h.deliver("w")
        await h.sender.wait_calls(1)
        await until(lambda: h.idle("w"), "the failed attempt settled")
        assert h.clock.pending == 0
        assert await h.states(d) == [("retrying", 1)]

        h.clock.advance(99)
        await h.dispatcher.poll_spool()
        await until(lambda: h.idle("w"), "nothing started early")
        assert len(h.sender.calls) == 1

        h.clock.advance(1)
        await h.dispatcher.poll_spool()
        calls = await h.sender.wait_calls(2)
        assert calls[1].message_id == d.message_id
        assert calls[1].body == calls[0].body  # read back from the store
        await until(lambda: h.idle("w"), "the retry settled")
        assert await h.states(d) == [("succeeded", 2)]


async def test_short_retry_waits_beyond_the_window_go_to_the_spool(store: Store) -> None:
    """A receiver failing fast puts at most a window of a lane's deliveries on retry timers;
    the rest wait in the spool as seqs (no Delivery held) and come back on the poll once
    due, each retried once, with its body read back from the store."""
    async with harness(store, config({"id": "w"}, retry_schedule=[5]), window=4) as h:
        h.sender.script["https://example.com/w"] = [*([500] * 10), *([200] * 10)]
        made = await h.deliver("w", 10)
        await h.sender.wait_calls(10)
        await until(lambda: h.idle("w"), "the failed attempts settled")
        assert h.clock.pending == 4  # a window of timers; six deliveries only as seqs
        assert len(h.dispatcher._spooled_seqs) == 6
        h.clock.advance(5)  # the timers fire; the spooled six wait for the poll
        calls = await h.sender.wait_calls(14)
        await until(lambda: h.idle("w"), "the timed retries settled")
        assert len(h.sender.calls) == 14
        await h.dispatcher.poll_spool()
        calls = await h.sender.wait_calls(20)
        await until(lambda: h.idle("w"), "the spooled retries settled")
        assert sorted(c.message_id for c in calls[10:]) == sorted(d.message_id for d in made)
        assert {c.body for c in calls[10:]} == {d.body for d in made}
        assert await h.states(*made) == [("succeeded", 2)] * 10
        assert h.dispatcher._spooled_seqs == {}


async def test_spooled_retries_come_back_in_one_read_whatever_their_size(store: Store) -> None:
    """Retries due together come back from the spool with one read: small bodies with it,
    a body over a page's limit read when its attempt comes; each sent byte for byte."""
    async with harness(store, config({"id": "w"}, retry_schedule=[100])) as h:
        h.sender.script["https://example.com/w"] = [*([500] * 3), *([200] * 3)]
        made = [*(await h.deliver("w", 2)), *(await h.deliver("w", 1, pad=20_000))]
        await h.sender.wait_calls(3)
        await until(lambda: h.idle("w"), "the failed attempts settled")
        assert len(h.dispatcher._spooled_seqs) == 3
        h.clock.advance(100)
        await h.dispatcher.poll_spool()
        calls = await h.sender.wait_calls(6)
        await until(lambda: h.idle("w"), "the retries settled")
        assert sorted(c.body or b"" for c in calls[3:]) == sorted(d.body for d in made)
        assert await h.states(*made) == [("succeeded", 2)] * 3


async def test_ordered_lane_keeps_order_across_a_spooled_retry(store: Store) -> None:
    """An ordered webhook's next delivery waits while the one before it is in the spool."""
    async with harness(store, config({"id": "o", "ordered": True}, retry_schedule=[100])) as h:
        h.sender.script["https://example.com/o"] = [500]
        d1, d2 = await h.deliver("o", 2)
        await h.sender.wait_calls(1)
        await until(lambda: h.idle("o"), "the failed attempt settled")
        assert h.clock.pending == 0
        assert len(h.sender.calls) == 1
        assert h.dispatcher.health("o").queued == 2

        h.clock.advance(100)
        await h.dispatcher.poll_spool()
        calls = await h.sender.wait_calls(2)
        calls[1].reply(200)
        calls = await h.sender.wait_calls(3)
        calls[2].reply(200)
        await until(lambda: h.idle("o"), "the lane drained")
        assert h.sender.sent() == [d1.message_id, d1.message_id, d2.message_id]


async def test_auto_disable_after_failures_keeps_work_until_enabled(store: Store) -> None:
    """After N failed deliveries in a row the webhook stops sending, persists that, and enable() resumes it."""
    async with harness(store, config({"id": "w", "auto_disable_after": 2, "per_webhook_concurrency": 1})) as h:
        h.sender.script["https://example.com/w"] = [400, 404]  # not transient: failed at once
        d1, d2, d3 = await h.deliver("w", 3)
        await h.sender.wait_calls(2)
        await until(lambda: h.idle("w"), "the second failure settled")
        health = h.dispatcher.health("w")
        assert (health.auto_disabled, health.failures, health.queued) == (True, 2, 1)
        assert len(h.sender.calls) == 2
        assert store.counters.webhook_state["w"] == (True, 2)
        assert await h.states(d1, d2) == [("failed", 1), ("failed", 1)]

        (d4,) = await h.deliver("w")
        assert h.idle("w")
        assert h.dispatcher.health("w").queued == 2

        h.sender.script["https://example.com/w"] = [200, 200]
        assert h.dispatcher.enable("w")
        assert not h.dispatcher.enable("unknown")
        await h.sender.wait_calls(4)
        await until(lambda: h.idle("w"), "the kept work delivered")
        assert h.sender.sent()[2:] == [d3.message_id, d4.message_id]
        assert await h.states(d3, d4) == [("succeeded", 1), ("succeeded", 1)]
        assert h.dispatcher.health("w") == Health()
        assert store.counters.webhook_state["w"] == (False, 0)


async def test_success_resets_the_failure_streak(store: Store) -> None:
    """Only consecutive failed deliveries count toward auto-disable: a success in between starts over."""
    async with harness(store, config({"id": "w", "auto_disable_after": 2, "per_webhook_concurrency": 1})) as h:
        h.sender.script["https://example.com/w"] = [400, 200, 400]
        await h.deliver("w", 3)
        await h.sender.wait_calls(3)
        await until(lambda: h.idle("w"), "all settled")
        health = h.dispatcher.health("w")
        assert (health.auto_disabled, health.failures) == (False, 1)
        assert store.counters.webhook_state["w"] == (False, 1)


async def test_webhook_removed_and_readded_loses_nothing_and_sends_nothing_twice(store: Store) -> None:
    """A webhook removed (one attempt in flight, one queued, one retry on a timer, one spooled) and added
    back picks up each delivery exactly once, and its removed retry timer does not fire meanwhile."""
    cfg = config({"id": "w", "per_webhook_concurrency": 1}, retry_schedule=[5, 30], spool_after=10)
    async with harness(store, cfg) as h:
        # The 503's Retry-After stretches its wait to the schedule's 30 s: past spool_after.
        h.sender.script["https://example.com/w"] = [500, (503, {"Retry-After": "30"})]
        timer_d, spooled_d, flying_d, queued_d = await h.deliver("w", 4)
        await h.sender.wait_calls(3)
        assert h.sender.sent() == [timer_d.message_id, spooled_d.message_id, flying_d.message_id]
        flying = h.sender.calls[2]
        await until(lambda: not h.dispatcher.delivering(spooled_d.id), "the first two outcomes committed")
        health = h.dispatcher.health("w")
        assert (health.inflight, health.queued) == (1, 1)
        assert list(health.delivering) == [flying_d.id]
        assert h.clock.due() == [T0 + 5]  # the spooled retry has no timer

        h.dispatcher.configure(config({"id": "other"}, retry_schedule=[5, 30], spool_after=10))  # w removed
        assert h.clock.pending == 0
        assert h.dispatcher.webhook_ids() == {"other"}
        assert h.dispatcher.health("w").queued == 0
        assert h.dispatcher.delivering(flying_d.id)  # still in its attempt
        h.clock.advance(6)  # the removed webhook's retry timer would have fired
        await h.dispatcher.poll_spool()
        assert h.dispatcher.inflight == 1
        assert len(h.sender.calls) == 3

        assert await h.take_up(cfg) == 3  # all but the one still in flight
        assert h.dispatcher.webhook_ids() == {"w"}
        calls = await h.sender.wait_calls(4)
        assert calls[3].message_id == timer_d.message_id  # its retry came due while removed
        flying.reply(200)
        calls[3].reply(200)
        calls = await h.sender.wait_calls(5)
        assert calls[4].message_id == queued_d.message_id
        calls[4].reply(200)
        await until(lambda: h.dispatcher.inflight == 0, "those settled")
        assert len(h.sender.calls) == 5

        h.clock.advance(24)
        await h.dispatcher.poll_spool()
        calls = await h.sender.wait_calls(6)
        assert calls[5].message_id == spooled_d.message_id
        calls[5].reply(200)
        await until(lambda: h.dispatcher.inflight == 0, "all settled")
        sent = h.sender.sent()
        for d, times in ((timer_d, 2), (spooled_d, 2), (flying_d, 1), (queued_d, 1)):
            assert sent.count(d.message_id) == times, d
        assert await h.states(timer_d, spooled_d, flying_d, queued_d) == [
            ("succeeded", 2), ("succeeded", 2), ("succeeded", 1), ("succeeded", 1),
        ]  # fmt: skip


async def test_health_shows_what_is_delivering_with_the_state_its_log_row_holds(store: Store) -> None:
    """health() lists the deliveries in an attempt with their logged state; an unknown webhook reads as idle."""
    async with harness(store, config({"id": "w"})) as h:
        h.sender.script["https://example.com/w"] = [500]
        d1, d2 = await h.deliver("w", 2)
        await h.sender.wait_calls(2)
        await until(lambda: not h.dispatcher.delivering(d1.id), "the first outcome committed")
        assert h.dispatcher.health("w").delivering == {d2.id: "pending"}
        assert not h.dispatcher.delivering(d1.id)
        assert h.dispatcher.delivering(d2.id)

        h.clock.advance(5)
        calls = await h.sender.wait_calls(3)
        assert h.dispatcher.health("w").delivering == {d2.id: "pending", d1.id: "retrying"}
        assert h.dispatcher.queued() == {"w": 0}
        calls[1].reply(200)
        calls[2].reply(200)
        await until(lambda: h.idle("w"), "both settled")
        await h.states(d1, d2)
        assert h.dispatcher.health("w").delivering == {}
        assert h.dispatcher.health("nope") == Health()


async def test_stop_cuts_attempts_past_the_grace_and_leaves_them_pending(store: Store) -> None:
    """stop() waits out the grace, then cancels what is still in flight; those deliveries stay pending."""
    async with harness(store, config({"id": "w"})) as h:
        h.sender.script["https://example.com/w"] = [200]
        done, hung = await h.deliver("w", 2)
        await h.sender.wait_calls(2)
        await until(lambda: h.dispatcher.inflight == 1, "the answered attempt settled")
        assert await h.dispatcher.stop(0.01) == 1
        assert h.dispatcher.inflight == 0
        assert await h.states(done, hung) == [("succeeded", 1), ("pending", 0)]
        await h.deliver("w")
        assert h.dispatcher.inflight == 0  # nothing starts after a stop
        assert h.dispatcher.health("w").queued == 1


async def answer_all(h: Harness, lane: Lane, count: int, failing: int = 0) -> int:
    """Answer attempts one by one up to ``count`` calls, the ``failing``-th (1-based) with a 500
    whose retry the clock then brings; return the most deliveries the lane held in memory."""
    most = lane.in_memory()
    for n in range(1, count + 1):
        calls = await h.sender.wait_calls(n)
        most = max(most, lane.in_memory())
        calls[n - 1].reply(500 if n == failing else 200)
        if n == failing:
            await until(lambda: h.clock.pending == 1, "the retry timer")
            await until(lambda: h.idle(lane.webhook_id), "the failed attempt settled")
            most = max(most, lane.in_memory())
            h.clock.advance(5)
    await until(lambda: h.idle(lane.webhook_id) and not lane.waiting(), "the lane drained")
    return most


async def test_an_ordered_lane_holds_at_most_its_window_and_pages_the_rest_in_order(store: Store) -> None:
    """Beyond its window a lane keeps only seqs and reads the rest back page by page: strict order
    across a retry and deliveries handed over before their record was committed, each sent once,
    and the queued count exact throughout."""
    async with harness(store, config({"id": "o", "ordered": True}), window=4) as h:
        lane = h.dispatcher._lanes["o"]
        first = await h.deliver("o", 10)
        await h.sender.wait_calls(1)
        assert (lane.in_memory(), len(lane.stored)) == (4, 5)
        health = h.dispatcher.health("o")
        assert (health.inflight, health.queued) == (1, 9)
        # Handed over while still queued for writing: a page read must not miss them.
        late = await h.deliver("o", 6, committed=False)
        assert h.dispatcher.health("o").queued == 15
        most = await answer_all(h, lane, 17, failing=3)
        assert most <= 4
        ds = first + late
        assert h.sender.sent() == [d.message_id for d in ds[:3]] + [d.message_id for d in ds[2:]]
        assert [c.body for c in h.sender.calls] == [d.body for d in ds[:3]] + [d.body for d in ds[2:]]
        assert await h.states(*ds) == [("succeeded", 1)] * 2 + [("succeeded", 2)] + [("succeeded", 1)] * 13


async def test_a_backlog_taken_up_is_read_back_page_by_page_and_sent_once(store: Store) -> None:
    """A webhook taken up with more pending deliveries than its window holds only the window as
    deliveries, counts every one as queued, and sends each exactly once."""
    hooks = {"id": "u", "per_webhook_concurrency": 2}
    async with harness(store, config({"id": "other"}), window=4) as h:
        ds = await h.deliver("u", 13)  # no lane yet: they wait in the store
        assert await h.take_up(config({"id": "other"}, hooks)) == 13
        lane = h.dispatcher._lanes["u"]
        await h.sender.wait_calls(2)
        health = h.dispatcher.health("u")
        assert (health.inflight, health.queued) == (2, 11)
        assert lane.in_memory() <= 4
        most = await answer_all(h, lane, 13)
        assert most <= 4
        assert sorted(h.sender.sent()) == sorted(d.message_id for d in ds)
        assert await h.states(*ds) == [("succeeded", 1)] * 13


async def test_a_page_brings_small_bodies_with_it_and_leaves_large_ones_for_the_attempt(store: Store) -> None:
    """A page read back carries the bodies of up to PAGE_BODY_BYTES (no read per attempt), and
    leaves larger ones, such as big batches, to be read when their attempt comes."""
    async with harness(store, config({"id": "w"})) as h:
        small, big = await h.deliver("gone", 2)  # no lane: nothing attempts them
        big_body = b"[" + b",".join([b'{"n":1}'] * (PAGE_BODY_BYTES // 7 + 1)) + b"]"
        await store.run(lambda c: c.execute("UPDATE payloads SET body = ? WHERE seq = ?", (big_body, big.seq)))
        got = await store.page([big.seq, small.seq, 10_000])
        assert [(d.seq, d.loaded) for d in got] == [(small.seq, True), (big.seq, False)]
        assert (got[0].body, got[0].item_ids, got[0].events) == (small.body, list(small.item_ids), ["ticket.created"])
        assert await store.load(got[1])
        assert got[1].body == big_body
