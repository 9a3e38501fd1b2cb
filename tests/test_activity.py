"""GET /v1/activity (the page's chart): the store's grouping on a real SQLite file, the pure
folding into minutes, and the endpoint on an App with real deliveries."""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
from pathlib import Path

import pytest

from hookd.activity import bucket_ms, fold, median
from hookd.store.activity import activity_rows
from hookd.store.schema import SCHEMA
from tests.support import AppFactory, MakeConfig, Receiver, ev, status, webhook

T0 = 1_800_000_000.0  # a minute's edge: 30,000,000 minutes


def _log(tmp_path: Path, rows: list[tuple[str, float, str, float | None]]) -> sqlite3.Connection:
    """A delivery log on a real file holding ``rows`` of (webhook, created_at, state, duration_ms), in seq order."""
    conn = sqlite3.connect(tmp_path / "log.db")
    conn.executescript(SCHEMA)
    conn.executemany(
        "INSERT INTO deliveries (seq, id, message_id, webhook_id, state, created_at, duration_ms, items, events,"
        " triggers, lightweight) VALUES (?, ?, 'msg', ?, ?, ?, ?, 1, '[]', '[]', 0)",
        [(i + 1, f"dlv_{i + 1}_x", w, st, at, ms) for i, (w, at, st, ms) in enumerate(rows)],
    )
    conn.commit()
    return conn


def test_store_groups_a_window_by_minute_outcome_and_duration(tmp_path: Path) -> None:
    """Rows before the window and pending ones are left out; the rest fold into minutes with their median and max."""
    durations = [12.0, 15.0, 30.0, 480.0, 1234.0]
    rows: list[tuple[str, float, str, float | None]] = [
        ("a", T0 - 61, "failed", 5.0),  # before the window
        *[("a", T0 + i, "succeeded", ms) for i, ms in enumerate(durations)],
        ("a", T0 + 10, "pending", None),  # no outcome yet
        ("b", T0 + 20, "failed", 3000.0),
        ("a", T0 + 60, "failed", 10007.0),
        ("a", T0 + 61, "retrying", 8.0),
        ("a", T0 + 62, "retrying", None),  # never timed: counted, no duration
    ]
    conn = _log(tmp_path, rows)
    got = fold(activity_rows(conn, T0, None))
    assert set(got) == {"a", "b"}
    first, second = got["a"]
    assert first["minute"] == "2027-01-15T08:00:00.000Z"
    assert (first["succeeded"], first["failed"], first["retrying"]) == (5, 0, 0)
    assert first["max_ms"] == 1234.0
    true_median = statistics.median(durations)
    assert abs(first["p50_ms"] - true_median) <= 0.05 * true_median
    assert second["minute"] == "2027-01-15T08:01:00.000Z"
    assert (second["succeeded"], second["failed"], second["retrying"]) == (0, 1, 2)
    assert second["max_ms"] == 10007.0
    assert second["p50_ms"] == 8.5  # of 8 ms and 10007 ms, the lower middle: 8 ms's bucket
    # One delivery of 3,000 ms: its bucket's middle (3,050) is capped by the max.
    assert got["b"] == [{"minute": "2027-01-15T08:00:00.000Z", "succeeded": 0, "failed": 1, "retrying": 0,
                         "p50_ms": 3000.0, "max_ms": 3000.0}]  # fmt: skip
    only_b = fold(activity_rows(conn, T0, "b"))
    assert set(only_b) == {"b"}


def test_median_of_buckets_is_within_five_percent() -> None:
    """bucket_ms keeps two significant digits; median picks the lower middle bucket of a histogram."""
    for ms in (0.3, 7.0, 42.9, 99.0, 100.0, 123.0, 999.0, 4567.0, 98765.0):
        whole = str(int(ms))
        assert abs(bucket_ms(len(whole), int(whole[:2])) - ms) <= max(0.05 * ms, 0.5), ms
    assert median([]) is None
    assert median([(10.5, 1), (2.5, 2)]) == 2.5
    assert median([(10.5, 3), (2.5, 2)]) == 10.5


async def test_activity_endpoint_counts_real_deliveries(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """After real deliveries, each webhook's minutes hold its succeeded and failed ones, with their latency."""
    receiver.behave["/down"] = status(500)
    config = make_config(
        [
            webhook("ok", receiver.url + "/ok"),
            webhook("down", receiver.url + "/down"),
            webhook("idle", receiver.url + "/i", on="other"),
        ],
        delivery={"retry_schedule": []},
    )  # fmt: skip
    d = await app_factory(config)
    code, _ = await d.send([ev(1), ev(2), ev(3)])
    assert code == 202
    await d.wait_deliveries("ok", 3, state="succeeded")
    await d.wait_deliveries("down", 3, state="failed")

    code, body = await d.request("GET", "/v1/activity")
    assert code == 200
    assert body["minutes"] == 60
    assert set(body["webhooks"]) == {"ok", "down", "idle"}
    assert body["webhooks"]["idle"] == []
    ok, down = body["webhooks"]["ok"], body["webhooks"]["down"]
    assert (sum(b["succeeded"] for b in ok), sum(b["failed"] for b in ok)) == (3, 0)
    assert (sum(b["failed"] for b in down), sum(b["succeeded"] for b in down)) == (3, 0)
    for b in ok + down:
        assert body["since"] <= b["minute"] < body["until"]
        assert 0 < b["p50_ms"] <= b["max_ms"] * 1.05

    code, one = await d.request("GET", "/v1/activity?webhook=down&minutes=5")
    assert code == 200
    assert list(one["webhooks"]) == ["down"]
    assert sum(b["failed"] for b in one["webhooks"]["down"]) == 3

    # New deliveries show once the short memo of the same query has lapsed.
    await d.send(ev(4))
    await d.wait_deliveries("ok", 4, state="succeeded")

    async def total_ok() -> int:
        _, again = await d.request("GET", "/v1/activity")
        return sum(b["succeeded"] for b in again["webhooks"]["ok"])

    deadline = asyncio.get_running_loop().time() + 10.0
    while (n := await total_ok()) != 4:
        assert asyncio.get_running_loop().time() < deadline, f"the activity still shows {n} succeeded"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("query", ["minutes=0", "minutes=1441", "minutes=abc", "minutes=", "minutes=%EF%BC%95"])
async def test_activity_refuses_bad_minutes(
    query: str, receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A bad ``minutes`` is a 400 naming it; an unknown webhook a 404."""
    d = await app_factory(make_config([webhook("ok", receiver.url + "/ok")]))
    code, body = await d.request("GET", f"/v1/activity?{query}")
    assert code == 400
    assert body["error"]["code"] == "invalid_query"
    assert body["error"]["details"][0]["path"] == "minutes"
    code, body = await d.request("GET", "/v1/activity?webhook=nope")
    assert code == 404
    assert body["error"]["code"] == "not_found"
