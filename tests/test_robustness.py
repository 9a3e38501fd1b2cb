"""Edge cases found in review: nothing accepted is lost, nothing wedges, no credential leaks."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest

from hookd.models import Delivery, IdFactory
from hookd.payloads import RequestShape, query_params
from hookd.redact import redact_url
from tests.support import AppFactory, DaemonFactory, MakeConfig, Receiver, ev, running_store, webhook


def _delivery(ids: IdFactory, seq: int, webhook_id: str, created_at: float) -> Delivery:
    return Delivery(
        id=ids.delivery(seq), seq=seq, message_id=ids.make("msg"), webhook_id=webhook_id, body=b"{}",
        item_ids=["i"], events=["e.x"], triggers=["t"], created_at=created_at,
    )  # fmt: skip


async def test_prune_keeps_open_deliveries_of_configured_webhooks(tmp_path: Path) -> None:
    """Retention deletes old finished deliveries and old orphans, never a configured webhook's open work."""
    ids = IdFactory()
    async with running_store(tmp_path / "t.db") as store:
        rows = [
            _delivery(ids, 1, "kept", 100.0),  # pending, configured: kept however old
            _delivery(ids, 2, "gone", 100.0),  # pending, webhook removed: an old orphan
            _delivery(ids, 3, "kept", 100.0),  # finished below: pruned
            _delivery(ids, 4, "kept", 10_000.0),  # inside the window
        ]
        for d in rows:
            await store.add_delivery(d, lightweight=False)
        store.counters.delivery_seq = 4
        from hookd.store import Outcome

        store.record(
            Outcome(
                delivery=rows[2], n=1, started_at=100.0, duration_ms=1.0, status_code=200, error=None,
                manual=False, state="succeeded", next_at=None, lightweight=False,
            )
        )  # fmt: skip
        await store.drain()
        assert await store.prune(5_000.0, {"kept"}) == 2
        left = await store.run(lambda c: [r[0] for r in c.execute("SELECT seq FROM deliveries ORDER BY seq")])
        assert left == [1, 4]


async def test_a_failing_write_does_not_take_its_group_down(tmp_path: Path) -> None:
    """When one write of a group commit fails, the others are still committed and only its waiter sees the error."""
    async with running_store(tmp_path / "t.db") as store:

        def bad(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO no_such_table VALUES (1)")

        def good(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO webhook_state VALUES ('w', 0, 3, 0)")
            return 7

        bad_fut = store.submit(bad, wait=True)
        good_fut = store.submit(good, wait=True)
        assert bad_fut is not None
        assert good_fut is not None
        with pytest.raises(sqlite3.OperationalError):
            await bad_fut
        assert await good_fut == 7
        rows = await store.run(lambda c: c.execute("SELECT webhook_id, failures FROM webhook_state").fetchall())
        assert rows == [("w", 3)]


def test_query_params_of_a_batch_body_use_its_first_item() -> None:
    """A batch made before a webhook switched to GET still yields a query (its first item's envelope)."""
    body = b'[{"id":"a","event":"x.y","object_id":1},{"id":"b","event":"x.y","object_id":2}]'
    assert query_params(body) == {"id": "a", "event": "x.y", "object_id": "1"}


def test_credentials_are_redacted_from_logged_headers_and_urls() -> None:
    """Credential-like extra headers and query parameters are masked; webhook-signature and others are not."""
    from hookd.config import Config

    (w,) = Config.model_validate(
        {
            "webhooks": [
                {
                    "id": "w", "url": "https://u:p@example.com/h?api_key=K1&team=ops",
                    "headers": {"X-Api-Key": "K2", "X-Source": "hookd"}, "events": [{"id": "t", "on": "*"}],
                }
            ]
        }
    ).webhooks  # fmt: skip
    shape = RequestShape(w)
    logged = shape.redacted(shape.attempt_headers("msg_1", 1, b"{}"))
    assert logged["X-Api-Key"] == "***"
    assert logged["X-Source"] == "hookd"
    assert logged["webhook-id"] == "msg_1"
    assert redact_url(w.url) == "https://example.com/h?api_key=***&team=ops"


async def test_items_of_a_webhook_that_stopped_batching_are_sent_after_restart(
    receiver: Receiver, make_config: MakeConfig, daemon_factory: DaemonFactory
) -> None:
    """Items left in an open batch go out one by one after a restart that made the webhook per_occurrence."""
    config = make_config([webhook("w", receiver.url + "/w", batching="any_event", batch_wait_seconds=60)])
    d = await daemon_factory(config)
    code, _ = await d.send([ev(1), ev(2)])
    assert code == 202
    assert await d.stop(signal.SIGTERM) == 0
    make_config([webhook("w", receiver.url + "/w")])
    d2 = await daemon_factory(config)
    got = await receiver.wait_for(2, "/w")
    assert sorted(r.json()["event_id"] for r in got) == ["e1", "e2"]
    await d2.wait_deliveries("w", 2, state="succeeded")


async def test_enable_refuses_a_webhook_disabled_in_config_and_changes_nothing(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """POST enable on a webhook with enabled = false answers 409 and leaves its state as it was."""
    d = await app_factory(make_config([webhook("w", receiver.url + "/w", enabled=False)]))
    code, body = await d.request("POST", "/v1/webhooks/w/enable")
    assert code == 409
    assert body["error"]["code"] == "disabled_in_config"
    code, state = await d.request("GET", "/v1/webhooks/w")
    assert (state["enabled"], state["disabled_reason"]) == (False, "config")
