"""End to end: operator events (SPEC §12) caused for real, a receiver refusing, retries running
out, a webhook auto-disabled and enabled through the API, and routed like an application's
events to the triggers that name the hookd. prefix, and only to those."""

from __future__ import annotations

from typing import Any

from tests.support import (
    AppFactory,
    Client,
    InProcess,
    MakeConfig,
    Receiver,
    free_port,
    hang,
    status,
    until,
    webhook,
)

ON_OPS = "hookd.*"


def ticket(n: int) -> dict[str, Any]:
    """An application event with a known occurrence id."""
    return {"id": f"t{n}", "event": "ticket.created", "object": {"id": n, "summary": f"ticket {n}"}}


def watch(receiver: Receiver, on: str = ON_OPS, **extra: Any) -> dict[str, Any]:
    """A standard webhook receiving operator events at /ops with the whole object."""
    return webhook("ops", receiver.url + "/ops", on=on, name="Operators", **extra)


async def operator_bodies(receiver: Receiver, count: int, path: str = "/ops") -> list[dict[str, Any]]:
    """The first ``count`` operator-event bodies at ``path``, in arrival order."""
    return [r.json() for r in await receiver.wait_for(count, path)][:count]


async def events_logged(d: Client, count: int) -> list[dict[str, Any]]:
    """The first ``count`` ``operator_event`` log lines."""
    await d.wait_line("operator_event", count=count)
    return [r for r in d.lines if r.get("event") == "operator_event"]


async def test_delivery_failed_on_a_non_retryable_answer(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A 400 fails a delivery for good at once: hookd.delivery.failed, with its fields and the URL without
    credentials, goes to a hookd.* trigger and a Slack channel, is logged and listed; a * trigger never sees it."""
    receiver.behave["/billing"] = status(400, b"no such customer")
    config = make_config(
        [
            webhook("billing", f"http://svc:pa55@127.0.0.1:{receiver.port}/billing?api_key=k3y", on="ticket.*",
                    name="Billing export"),
            watch(receiver),
            webhook("chat", receiver.url + "/chat", on="hookd.delivery.failed", type="slack",
                    template="{object.webhook_name} failed with {object.status_code} after {object.attempts}: "
                             "{object.url}"),
            webhook("everything", receiver.url + "/all", on="*"),
            webhook("alerts", receiver.url + "/alerts", on="hookd.*", type="slack"),  # the README's three lines
        ]
    )  # fmt: skip
    d = await app_factory(config)
    await d.send(ticket(1))
    [failed] = await d.wait_deliveries("billing", 1, state="failed")

    [body] = await operator_bodies(receiver, 1)
    url = f"http://127.0.0.1:{receiver.port}/billing?api_key=***"
    assert body["event"] == "hookd.delivery.failed"
    assert body["webhook_id"] == "ops"
    assert body["object"] == {
        "summary": f"Delivery {failed['id']} to Billing export (billing) failed after 1 attempt: HTTP 400",
        "id": failed["id"], "webhook_id": "billing", "webhook_name": "Billing export",
        "message_id": failed["message_id"], "attempts": 1, "status_code": 400, "error": None,
        "events": ["ticket.created"], "url": url,
    }  # fmt: skip
    assert body["object_id"] == failed["id"]
    assert body["event_id"].startswith("evt_")  # its own occurrence id
    assert body["event_id"] != "t1"
    [chat] = await receiver.wait_for(1, "/chat")
    assert chat.json() == {"text": f"Billing export failed with 400 after 1: {url}"}

    [alert] = await receiver.wait_for(1, "/alerts")
    assert alert.json() == {
        "text": f"hookd.delivery.failed: Delivery {failed['id']} to Billing export (billing) failed after 1 attempt: "
        f"HTTP 400 ({failed['id']})"
    }

    [line] = await events_logged(d, 1)
    assert (line["event_id"], line["items"]) == (body["event_id"], 3)
    assert line["webhooks"] == {"ops": 1, "chat": 1, "alerts": 1}
    assert "pa55" not in " ".join(d.raw)
    # Durable and listed like any delivery, under the webhook that carried it.
    [ops] = await d.wait_deliveries("ops", 1, state="succeeded")
    assert ops["events"] == ["hookd.delivery.failed"]
    [chat_dlv] = await d.wait_deliveries("chat", 1, state="succeeded")
    code, record = await d.request("GET", f"/v1/deliveries/{chat_dlv['id']}")
    assert (code, record["webhook_type"], record["text"]) == (200, "slack", chat.json()["text"])
    # The catch-all webhook got the application's event and nothing of hookd's.
    assert [r.json()["event"] for r in receiver.at("/all")] == ["ticket.created"]
    assert (await d.wait_deliveries("everything", 1))[0]["events"] == ["ticket.created"]


async def test_delivery_failed_when_retries_run_out(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Retries exhausted on a 503, and on a refused connection, each give one hookd.delivery.failed with the
    attempts made and the last status or error kind."""
    receiver.behave["/down"] = status(503, b"maintenance")
    config = make_config(
        [
            webhook("down", receiver.url + "/down", on="ticket.*"),
            webhook("gone", f"http://127.0.0.1:{free_port()}/x", on="ticket.*", name="Gone"),
            watch(receiver, on="hookd.delivery.failed"),
        ],
        delivery={"retry_schedule": [0.05]},
    )
    d = await app_factory(config)
    await d.send(ticket(1))
    bodies = await operator_bodies(receiver, 2)
    by_webhook = {b["object"]["webhook_id"]: b["object"] for b in bodies}
    assert len(receiver.at("/down")) == 2
    assert {k: by_webhook["down"][k] for k in ("attempts", "status_code", "error", "webhook_name")} == {
        "attempts": 2, "status_code": 503, "error": None, "webhook_name": "",
    }  # fmt: skip
    assert {k: by_webhook["gone"][k] for k in ("attempts", "status_code", "error", "webhook_name")} == {
        "attempts": 2, "status_code": None, "error": "connect", "webhook_name": "Gone",
    }  # fmt: skip
    assert by_webhook["down"]["summary"].endswith(" to down failed after 2 attempts: HTTP 503")
    assert by_webhook["gone"]["summary"].endswith(" to Gone (gone) failed after 2 attempts: connect")


async def test_auto_disable_and_enable_through_the_api(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Auto-disable sends hookd.webhook.disabled with the failure count; POST /v1/webhooks/{id}/enable sends
    hookd.webhook.enabled; enabling a webhook that was not disabled sends nothing."""
    receiver.behave["/flaky"] = status(500)
    config = make_config(
        [
            webhook("flaky", f"http://ops:secret@127.0.0.1:{receiver.port}/flaky", on="ticket.*", name="Flaky",
                    auto_disable_after=2),
            webhook("fine", receiver.url + "/fine", on="ticket.*", auto_disable_after=2),
            watch(receiver, on="hookd.webhook.*"),
        ],
        delivery={"retry_schedule": []},
    )  # fmt: skip
    d = await app_factory(config)
    await d.send([ticket(1), ticket(2)])
    [body] = await operator_bodies(receiver, 1)
    url = f"http://127.0.0.1:{receiver.port}/flaky"
    assert body["event"] == "hookd.webhook.disabled"
    assert body["object"] == {
        "summary": "Webhook Flaky (flaky) was disabled after 2 failed deliveries in a row",
        "id": "flaky", "name": "Flaky", "failures": 2, "url": url,
    }  # fmt: skip
    assert body["object_id"] == "flaky"

    code, _ = await d.request("POST", "/v1/webhooks/fine/enable")  # never disabled: nothing to tell
    assert code == 200
    receiver.behave.pop("/flaky")
    code, state = await d.request("POST", "/v1/webhooks/flaky/enable")
    assert (code, state["enabled"]) == (200, True)
    bodies = await operator_bodies(receiver, 2)
    assert bodies[1]["event"] == "hookd.webhook.enabled"
    assert bodies[1]["object"] == {
        "summary": "Webhook Flaky (flaky) was enabled again", "id": "flaky", "name": "Flaky", "url": url,
    }  # fmt: skip
    # A third item after the enable, delivered, marks the end: nothing else reached /ops.
    await d.send(ticket(3))
    await d.wait_deliveries("flaky", 1, state="succeeded")
    lines = await events_logged(d, 4)
    assert [(x["event_type"], x["items"]) for x in lines] == [
        ("hookd.delivery.failed", 0), ("hookd.delivery.failed", 0),  # logged, routed nowhere
        ("hookd.webhook.disabled", 1), ("hookd.webhook.enabled", 1),
    ]  # fmt: skip
    assert {x["object"].get("webhook_id", x["object"]["id"]) for x in lines} == {"flaky"}
    assert len(receiver.at("/ops")) == 2


async def test_a_failing_receiver_of_operator_events_causes_no_more_of_them(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A Slack webhook on hookd.* that fails for good, and is auto-disabled by it, causes no operator event."""
    receiver.behave["/app"] = status(400)
    receiver.behave["/slack"] = status(500, b"invalid_token")
    config = make_config(
        [
            webhook("app", receiver.url + "/app", on="ticket.*"),
            webhook("slack", receiver.url + "/slack", on="hookd.*", type="slack", auto_disable_after=1),
            webhook("audit", receiver.url + "/audit", on="hookd.*"),
        ],
        delivery={"retry_schedule": [0.05]},
    )
    d = await app_factory(config)
    await d.send(ticket(1))
    [slack_failed] = await d.wait_deliveries("slack", 1, state="failed")
    assert slack_failed["attempts"] == 2
    await until(lambda: d.app is not None and d.app.dispatcher.health("slack").auto_disabled, "slack auto-disabled")
    # A second application failure afterwards: its event is ingested after anything the Slack
    # webhook's failure could have caused, so once it is logged every such event would be too.
    await d.send(ticket(2))
    lines = await events_logged(d, 2)
    assert [(x["event_type"], x["object"]["webhook_id"]) for x in lines] == [
        ("hookd.delivery.failed", "app"), ("hookd.delivery.failed", "app"),
    ]  # fmt: skip
    audit = [b["object"]["webhook_id"] for b in await operator_bodies(receiver, 2, "/audit")]
    assert audit == ["app", "app"]
    assert len(receiver.at("/slack")) == 2  # its two attempts, nothing since: it is disabled


async def test_operator_events_are_durable_across_a_restart(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """An operator event whose delivery did not finish before a stop is delivered after the next start."""
    receiver.behave["/app"] = status(400)
    receiver.behave["/ops"] = hang(receiver)
    path = make_config(
        [webhook("app", receiver.url + "/app", on="ticket.*"), watch(receiver)],
        server={"listen": "127.0.0.1:0", "shutdown_grace_seconds": 0.2},
    )
    first = await app_factory(path)
    await first.send(ticket(1))
    await receiver.wait_for(1, "/ops")  # held by the receiver
    await first.stop()
    receiver.behave.pop("/ops")

    second = await app_factory(path)
    await receiver.wait_for(2, "/ops")
    [ops] = await second.wait_deliveries("ops", 1, state="succeeded")
    assert ops["events"] == ["hookd.delivery.failed"]
    assert receiver.at("/ops")[1].json()["object"]["webhook_id"] == "app"
    assert isinstance(second, InProcess)


async def test_the_application_may_not_send_hookd_events(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """POST /v1/events refuses hookd.* event types with 422, one detail per such event, and keeps nothing."""
    d = await app_factory(make_config([watch(receiver), webhook("all", receiver.url + "/all", on="*")]))
    fake = {"event": "hookd.delivery.failed", "object": {"id": "dlv_1"}}
    for _ in range(2):  # the second time too: a refused name is never learnt as a valid one
        code, body = await d.send([ticket(1), fake, {**fake, "event": "hookd.webhook.enabled"}, fake])
        assert code == 422
        assert body["error"]["code"] == "invalid_events"
        assert [(x["index"], x["path"]) for x in body["error"]["details"]] == [(1, "event"), (2, "event"), (3, "event")]
        assert "reserved" in body["error"]["details"][0]["message"]
    code, body = await d.send(fake)
    assert (code, body["error"]["details"][0]["index"]) == (422, 0)
    code, body = await d.send({**fake, "event": "hookd.anything"})
    assert code == 422
    code, body = await d.send(ticket(2))
    assert (code, body["accepted"], body["items"]) == (202, 1, 1)
    await receiver.wait_for(1, "/all")
    assert [r.json()["event_id"] for r in receiver.requests] == ["t2"]


async def test_an_operator_event_taken_up_after_a_restart_still_causes_none(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A delivery of an operator event read back from the store at start-up, failing then, causes no operator event."""
    receiver.behave["/app"] = status(400)
    receiver.behave["/ops"] = hang(receiver)
    path = make_config(
        [webhook("app", receiver.url + "/app", on="ticket.*"), watch(receiver),
         webhook("audit", receiver.url + "/audit", on="hookd.*")],
        server={"listen": "127.0.0.1:0", "shutdown_grace_seconds": 0.2},
        delivery={"retry_schedule": []},
    )  # fmt: skip
    first = await app_factory(path)
    await first.send(ticket(1))
    await receiver.wait_for(1, "/ops")
    await receiver.wait_for(1, "/audit")
    await first.stop()
    receiver.behave["/ops"] = status(400)

    second = await app_factory(path)
    [failed] = await second.wait_deliveries("ops", 1, state="failed")
    assert failed["events"] == ["hookd.delivery.failed"]
    await second.send(ticket(2))  # the marker: its event is ingested after any the failure above caused
    lines = await events_logged(second, 1)
    await receiver.wait_for(2, "/audit")
    assert [x["object"]["webhook_id"] for x in lines] == ["app"]
    assert [r.json()["object"]["webhook_id"] for r in receiver.at("/audit")] == ["app", "app"]


async def test_operator_events_batch_like_any_other(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A batching standard webhook on hookd.delivery.failed gets the failures of one burst in one batch."""
    receiver.behave["/app"] = status(400)
    config = make_config(
        [
            webhook("app", receiver.url + "/app", on="ticket.*"),
            webhook("digest", receiver.url + "/digest", on="hookd.delivery.failed", batching="any_event",
                    batch_wait_seconds=30, max_items_per_batch=3),  # leaves with its third item
        ],
        delivery={"retry_schedule": []},
    )  # fmt: skip
    d = await app_factory(config)
    await d.send([ticket(1), ticket(2), ticket(3)])
    [batch] = await receiver.wait_for(1, "/digest")
    got = batch.json()
    assert isinstance(got, list)
    assert len(got) == 3
    assert {b["event"] for b in got} == {"hookd.delivery.failed"}
    assert len({b["object"]["id"] for b in got}) == 3
    [dlv] = await d.wait_deliveries("digest", 1, state="succeeded")
    assert dlv["items"] == 3
