"""The page's find-and-recover parts (SPEC §13) in headless Chromium against an App in the
test's loop and a real receiver: search, Recover, open batches with "Send now", the
overview's activity chart, and what a read-only token does not see."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.browser import Browser
from tests.support import AppFactory, Receiver, status, webhook


def ticket(n: int, event: str = "ticket.updated") -> dict[str, Any]:
    """An event about ticket ``n``."""
    return {"id": f"evt-{n}", "event": event, "object": {"id": n, "summary": f"Ticket {n}"}}


async def visible(browser: Browser, css: str) -> int:
    """How many elements match ``css`` now."""
    return int(await browser.script(f"return document.querySelectorAll({css!r}).length"))


async def test_chart_shows_succeeded_and_failed_minutes(receiver: Receiver, make_config: Callable[..., Path],
                                                        app_factory: AppFactory, browser: Browser) -> None:  # fmt: skip
    """After real deliveries, each webhook's chart on the overview draws its succeeded or failed minutes."""
    receiver.behave["/down"] = status(500)
    config = make_config([webhook("ok", receiver.url + "/ok"), webhook("down", receiver.url + "/down")],
                         delivery={"retry_schedule": []})  # fmt: skip
    daemon = await app_factory(config)
    await daemon.send([ticket(1), ticket(2)])
    await daemon.wait_deliveries("ok", 2, state="succeeded")
    await daemon.wait_deliveries("down", 2, state="failed")

    await browser.open(daemon.url + "/ui/")
    ok = 'tr[data-webhook="ok"] svg[data-chart="activity"]'
    down = 'tr[data-webhook="down"] svg[data-chart="activity"]'
    await browser.until(lambda d: d.find_element("css selector", ok).get_attribute("data-succeeded") == "2",
                        "the ok webhook's chart does not show 2 succeeded")  # fmt: skip
    assert await browser.attr(ok, "data-failed") == "0"
    assert await browser.attr(down, "data-failed") == "2"
    assert await visible(browser, f'{ok} rect[data-outcome="succeeded"]') >= 1
    assert await visible(browser, f'{ok} rect[data-outcome="failed"]') == 0
    assert await visible(browser, f'{down} rect[data-outcome="failed"]') >= 1
    assert await visible(browser, f"{ok} g[data-minute]") == 60  # a column per minute of the hour
    # Each minute tells its numbers; the latency line is drawn where there is one.
    tips = await browser.script(
        f"return [...document.querySelectorAll('{down} g[data-minute] title')].map(t => t.textContent)"
    )
    assert any("2 failed" in t and "latency p50" in t for t in tips), tips
    assert await visible(browser, f"{ok} .latency, {ok} .latency-dot") >= 1

    await daemon.send(ticket(3))  # the chart follows without a reload
    await browser.until(lambda d: d.find_element("css selector", ok).get_attribute("data-succeeded") == "3",
                        "the chart did not update")  # fmt: skip


async def test_open_batches_countdown_and_send_now(receiver: Receiver, make_config: Callable[..., Path],
                                                   app_factory: AppFactory, browser: Browser) -> None:  # fmt: skip
    """Open batches (timer and spooled) show with a countdown ticking every second; "Send now" delivers them."""
    config = make_config(
        [
            webhook("digest", receiver.url + "/digest", batching="same_event_type", batch_wait_seconds=600),
            webhook("daily", receiver.url + "/daily", batching="any_event", batch_wait_seconds=3600),
        ],
        batching={"spool_after_seconds": 900},
    )  # fmt: skip
    daemon = await app_factory(config)
    await daemon.send([ticket(1), ticket(2), ticket(3, "ticket.created")])

    await browser.open(daemon.url + "/ui/")
    await browser.text('tr[data-webhook="digest"] [data-count="batched"]', "3")
    await browser.text('tr[data-webhook="daily"] [data-count="batched"]', "3")

    await browser.script("location.hash = '#/webhooks/digest'")
    await browser.count("#open-batches tr[data-batch]", 2)
    await browser.text('tr[data-batch="e:ticket.updated"]', "timer")
    await browser.text('tr[data-batch="e:ticket.updated"] td.num', "2")
    await browser.text('.toolbar [data-count="batched"]', "3")
    first = await browser.text('tr[data-batch="e:ticket.updated"] [data-deadline]', ":")
    assert first.startswith(("9:", "10:0")), first  # 600 s away
    # It ticks by itself; the open batches are not fetched again for it.
    batches_path = "/v1/webhooks/digest/batches"
    fetches = f"return performance.getEntriesByType('resource').filter(e => e.name.includes('{batches_path}')).length"
    before = await browser.script(fetches)
    await browser.script("document.getElementById('live-toggle').click()")  # pause the refresh
    await browser.until(
        lambda d: d.find_element("css selector", 'tr[data-batch="e:ticket.updated"] [data-deadline]').text != first,
        "the countdown did not tick",
    )
    assert await browser.script(fetches) in (before, before + 1)  # at most one refresh already on its way
    await browser.script("document.getElementById('live-toggle').click()")

    await browser.click('[data-action="flush"]')
    got = await receiver.wait_for(2, "/digest")
    assert sorted(len(r.json()) for r in got) == [1, 2]
    await browser.text("#open-batches", "None open")
    await browser.count("tr[data-delivery]", 2)

    await browser.script("location.hash = '#/webhooks/daily'")
    await browser.text('tr[data-batch="*"]', "spooled")
    await browser.click('[data-action="flush"]')
    [batch] = await receiver.wait_for(1, "/daily")
    assert [i["object_id"] for i in batch.json()] == [1, 2, 3]
    await browser.text("#open-batches", "None open")


async def test_recover_counts_then_resends(receiver: Receiver, make_config: Callable[..., Path],
                                           app_factory: AppFactory, browser: Browser) -> None:  # fmt: skip
    """Recover shows how many failed deliveries it would resend before confirming, then resends
    them with their original webhook-id."""
    receiver.behave["/sd"] = status(503)
    config = make_config([webhook("sd", receiver.url + "/sd")], delivery={"retry_schedule": []})
    daemon = await app_factory(config)
    await daemon.send([ticket(1), ticket(2), ticket(3)])
    failed = await daemon.wait_deliveries("sd", 3, state="failed")
    await receiver.wait_for(3, "/sd")
    original_ids = sorted(d["message_id"] for d in failed)

    await browser.open(daemon.url + "/ui/#/webhooks/sd")
    await browser.click('[data-action="recover"]')
    await browser.text("#recover-count", "3 failed deliveries will be resent, 0 skipped (lightweight logs)")
    assert await browser.attr('[data-action="confirm-recover"]', "disabled") is None
    await browser.choose("#recover-preset", "custom")  # a window before the failures holds none
    await browser.script(
        "const f = document.getElementById('recover-until'); f.value = '2001-01-01T00:00';"
        "const s = document.getElementById('recover-since'); s.value = '2000-01-01T00:00';"
        "f.dispatchEvent(new Event('change'));"
    )
    await browser.text("#recover-count", "0 failed deliveries will be resent")
    assert await browser.attr('[data-action="confirm-recover"]', "disabled") is not None
    assert len(receiver.at("/sd")) == 3  # counting sends nothing

    await browser.choose("#recover-preset", "24h")
    await browser.text("#recover-count", "3 failed deliveries will be resent")
    receiver.behave.pop("/sd")
    await browser.click('[data-action="confirm-recover"]')
    await browser.text("#recover-result", "Resent 3 deliveries, 0 skipped")
    resent = (await receiver.wait_for(6, "/sd"))[3:]
    assert sorted(r.headers["webhook-id"] for r in resent) == original_ids
    await browser.click('[data-action="cancel-recover"]')
    await browser.count("#recover-dialog", 0)
    await browser.count('tr[data-state="succeeded"]', 3)


async def test_read_only_token_sees_no_recover_or_send_now(
    receiver: Receiver, make_config: Callable[..., Path], app_factory: AppFactory, browser: Browser
) -> None:
    """A read-only token sees the open batches and their countdown, but no Recover and no Send now."""
    config = make_config(
        [webhook("digest", receiver.url + "/digest", batching="any_event", batch_wait_seconds=600)],
        server={"tokens": [{"token": "reader", "scopes": ["read"]}, "admin"]},
    )  # fmt: skip
    daemon = await app_factory(config)
    await daemon.send(ticket(1), headers={"Authorization": "Bearer admin"})

    await browser.open(daemon.url + "/ui/#/webhooks/digest")
    await browser.type("#token-input", "reader")
    await browser.click("#token-submit")
    await browser.text('tr[data-batch="*"] [data-deadline]', ":")
    assert await visible(browser, '[data-action="flush"]') == 0
    assert await visible(browser, '[data-action="recover"]') == 0

    await browser.click("#forget-token")
    await browser.type("#token-input", "admin")
    await browser.click("#token-submit")
    await browser.text('[data-action="recover"]', "Recover")
    await browser.text('[data-action="flush"]', "Send now")


async def test_search_by_object_event_and_delivery_id(receiver: Receiver, make_config: Callable[..., Path],
                                                      app_factory: AppFactory, browser: Browser) -> None:  # fmt: skip
    """The header's box finds the deliveries that carried an object (one inside a batch included) or an
    event, and opens a delivery by its id."""
    config = make_config([
        webhook("digest", receiver.url + "/digest", batching="any_event", batch_wait_seconds=0.2),
        webhook("each", receiver.url + "/each", on="ticket.created"),
    ])  # fmt: skip
    daemon = await app_factory(config)
    # Two events about ticket 4242, with ids of their own (a repeated event id is a duplicate).
    created_4242 = {**ticket(4242, "ticket.created"), "id": "evt-4242-created"}
    await daemon.send([ticket(4242), ticket(4243), created_4242, ticket(7, "ticket.created")])
    [batch] = await daemon.wait_deliveries("digest", 1, state="succeeded")
    singles = await daemon.wait_deliveries("each", 2, state="succeeded")
    assert batch["items"] == 4
    bodies = {
        d["id"]: (await daemon.request("GET", f"/v1/deliveries/{d['id']}"))[1]["request"]["body"] for d in singles
    }
    [single_4242] = [d for d in singles if '"object_id":4242' in bodies[d["id"]].replace(" ", "")]

    await browser.open(daemon.url + "/ui/")
    await browser.type("#search-input", "4242\n")
    await browser.until(lambda d: d.execute_script("return location.hash") == "#/search?q=4242", "no search view")
    await browser.count("section.search-results tr[data-delivery]", 2)
    await browser.text(f'tr[data-delivery="{batch["id"]}"]', "digest")
    await browser.text(f'tr[data-delivery="{single_4242["id"]}"]', "each")

    await browser.script("location.hash = '#/search?q=evt-7'")  # an event id; addressable
    await browser.count("section.search-results tr[data-delivery]", 2)  # the batch and its own delivery
    assert await browser.value("#search-input") == "evt-7"

    await browser.script("location.hash = '#/search?q=no-such-thing'")
    await browser.text("#search-empty", "No delivery")

    await browser.type("#search-input", batch["id"] + "\n")
    await browser.text("#delivery-id", batch["id"])
    assert await browser.script("return location.hash") == f"#/deliveries/{batch['id']}"
