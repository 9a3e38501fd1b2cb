"""The page's webhook form and actions (SPEC §11 "Page"), driven in headless Chromium
against an App serving in the test's loop, delivering to real receivers.

Set ``HOOKD_UI_FORM_SCREENSHOT=docs/webhook-form.png`` to save the filled form as a picture.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium.webdriver.common.by import By

from hookd.signing import secret_key, verify
from tests.browser import Browser
from tests.support import AppFactory, InProcess, Receiver, webhook

# The receivers listen on loopback, which the address guard denies API webhooks by default.
LOOPBACK = {"allow_networks": ["127.0.0.0/8"]}


def ticket(n: int, priority: str = "P2", event: str = "ticket.created") -> dict[str, Any]:
    """A ticket event with a priority the triggers' conditions look at."""
    return {"id": f"t{n}", "event": event, "object": {"id": n, "summary": f"ticket {n}", "priority": priority}}


async def new_form(browser: Browser, daemon: InProcess) -> None:
    """Open the page and go to the New webhook form by its button."""
    await browser.open(daemon.url + "/ui/")
    await browser.click("#new-webhook")
    await browser.text("section.webhook-form h1", "New webhook")


async def save(browser: Browser) -> None:
    """Click the form's save button."""
    await browser.click("#save-webhook")


async def hash_is(browser: Browser, want: str) -> None:
    """Wait until the page's address is ``want``."""
    await browser.until(lambda d: d.execute_script("return location.hash") == want, f"the page did not go to {want}")


async def error_for(browser: Browser, path: str, contains: str = "") -> str:
    """The error shown next to the form's place for ``path``."""
    return await browser.text(f'.field-error[data-error-for="{path}"]', contains)


async def test_create_through_the_form_delivers_and_an_edit_moves_it(
    receiver: Receiver, make_config: Callable[..., Path], app_factory: AppFactory, browser: Browser
) -> None:
    """A webhook made with the form routes at once, conditions and auth included; editing its URL moves the next one."""
    daemon = await app_factory(make_config([], delivery=LOOPBACK))
    await new_form(browser, daemon)
    await browser.type('input[data-path="id"]', "acme-tickets")
    await browser.type('input[data-path="name"]', "Acme: urgent tickets")
    await browser.type('input[data-path="url"]', receiver.url + "/one")
    await browser.type('input[data-path="events[0].id"]', "urgent")
    await browser.type('input[data-path="events[0].on"]', "ticket.created")
    await browser.click('[data-action="add-condition"]')
    await browser.type('input[data-path="events[0].conditions[0].field"]', "object.priority")
    await browser.choose('select[data-path="events[0].conditions[0].op"]', "in")
    await browser.type('input[data-path="events[0].conditions[0].value"]', '["P1", "P2"]')
    await browser.click('[data-action="add-metadata"]')
    await browser.type('[data-row="metadata"] input', "tenant")
    await browser.type('[data-row="metadata"] .field:nth-of-type(2) input', "acme")
    await browser.click('[data-action="add-header"]')
    await browser.type('[data-row="header"] input', "X-Source")
    await browser.type('[data-row="header"] .field:nth-of-type(2) input', "hookd-form")
    await browser.choose('select[data-path="auth.type"]', "bearer")
    await browser.type('input[data-path="auth.token"]', "t0ken-acme")
    if shot := os.environ.get("HOOKD_UI_FORM_SCREENSHOT"):
        await browser.screenshot(Path(shot))
    await save(browser)

    await hash_is(browser, "#/webhooks/acme-tickets")
    await browser.text('section.webhook[data-webhook="acme-tickets"] h1', "Acme: urgent tickets")
    await browser.text('section.webhook [data-source="api"]', "API")
    code, view = await daemon.request("GET", "/v1/webhooks/acme-tickets")
    assert code == 200, view
    assert view["source"] == "api"
    assert view["metadata"] == {"tenant": "acme"}
    assert view["config"]["events"] == [
        {"id": "urgent", "on": "ticket.created", "match": "all",
         "conditions": [{"field": "object.priority", "op": "in", "value": ["P1", "P2"]}]},
    ]  # fmt: skip

    assert (await daemon.send([ticket(1, "P3"), ticket(2, "P2")]))[0] == 202
    (got,) = await receiver.wait_for(1, "/one")
    assert got.json()["object_id"] == 2  # the P3 ticket matched no condition
    assert got.headers["X-Source"] == "hookd-form"
    assert got.headers["Authorization"] == "Bearer t0ken-acme"

    await browser.click('[data-action="edit"]')
    await hash_is(browser, "#/webhooks/acme-tickets/edit")
    await browser.text("section.webhook-form h1", "Edit Acme: urgent tickets")
    assert await browser.value('input[data-path="events[0].conditions[0].value"]') == '["P1","P2"]'
    assert await browser.attr('input[data-path="id"]', "readonly") is not None
    assert await browser.value('input[data-path="auth.token"]') == "***"  # shown masked, kept as is
    await browser.type('input[data-path="url"]', receiver.url + "/two")
    await save(browser)
    await hash_is(browser, "#/webhooks/acme-tickets")
    await browser.text("section.webhook .hook-url", "/two")

    await daemon.send(ticket(3, "P1"))
    (moved,) = await receiver.wait_for(1, "/two")
    assert moved.json()["object_id"] == 3
    assert moved.headers["X-Source"] == "hookd-form"  # the header and the token shown as *** kept their values
    assert moved.headers["Authorization"] == "Bearer t0ken-acme"
    assert len(receiver.at("/one")) == 1


async def test_generated_secret_is_shown_once_with_a_copy_button(
    receiver: Receiver, make_config: Callable[..., Path], app_factory: AppFactory, browser: Browser
) -> None:
    """A generated secret is shown once with Copy (or selected when copying fails), signs, and outlives an edit."""
    daemon = await app_factory(make_config([], delivery=LOOPBACK))
    await new_form(browser, daemon)
    await browser.type('input[data-path="url"]', receiver.url + "/signed")
    await browser.type('input[data-path="events[0].on"]', "*")
    await browser.choose('select[data-path="secret"]', "generate")
    await save(browser)

    await browser.text("[data-secret-card] h1", "created")
    secret = await browser.value("#new-secret")
    assert secret.startswith("whsec_")
    await browser.text(".secret-warning", "only time")
    wid = await browser.attr("[data-secret-card]", "data-webhook")
    assert wid is not None
    assert wid.startswith("wh_")  # the id left blank was generated

    grant = {"origin": daemon.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}
    await browser.cdp("Browser.grantPermissions", grant)
    await browser.click('[data-action="copy-secret"]')
    await browser.text('[data-action="copy-secret"]', "Copied")
    assert await browser.async_script("navigator.clipboard.readText().then(done, (e) => done(String(e)))") == secret

    # A browser that will not copy (no permission, or not a secure context): the secret is selected instead.
    await browser.script("navigator.clipboard.writeText = () => Promise.reject(new Error('denied'))")
    await browser.click('[data-action="copy-secret"]')
    await browser.text(".copy-note", "press Ctrl+C")
    selected = "const el = document.activeElement; return el.value.slice(el.selectionStart, el.selectionEnd)"
    assert await browser.script(selected) == secret

    await browser.click('[data-action="to-webhook"]')
    await hash_is(browser, f"#/webhooks/{wid}")
    await browser.text(f'section.webhook[data-webhook="{wid}"]')
    kept = "return document.documentElement.outerHTML + JSON.stringify({...sessionStorage, ...localStorage})"
    assert secret not in await browser.script(kept)
    _, view = await daemon.request("GET", f"/v1/webhooks/{wid}")
    assert view["config"]["secret"] == ["***"]

    await daemon.send(ticket(1))
    (first,) = await receiver.wait_for(1, "/signed")
    h = first.headers
    assert verify([secret_key(secret)], h["webhook-id"], h["webhook-timestamp"], first.body, h["webhook-signature"])

    # An edit that leaves the secret as "keep" signs with the same secret, and shows none.
    await browser.click('[data-action="edit"]')
    await browser.text("section.webhook-form h1", "Edit")
    assert await browser.value('select[data-path="secret"]') == "keep"
    await browser.type('input[data-path="name"]', "Signed")
    await save(browser)
    await hash_is(browser, f"#/webhooks/{wid}")
    await browser.text(f'section.webhook[data-webhook="{wid}"] h1', "Signed")
    await daemon.send(ticket(2))
    (_, second) = await receiver.wait_for(2, "/signed")
    h = second.headers
    assert verify([secret_key(secret)], h["webhook-id"], h["webhook-timestamp"], second.body, h["webhook-signature"])


async def test_server_errors_show_next_to_their_fields(
    receiver: Receiver, make_config: Callable[..., Path], app_factory: AppFactory, browser: Browser
) -> None:
    """Each 422 detail shows by its field (a detail with no path above the form); 409 by the id; 412 offers a reload."""
    daemon = await app_factory(make_config([webhook("taken", receiver.url + "/taken")], delivery=LOOPBACK))
    await new_form(browser, daemon)
    await browser.type('input[data-path="url"]', "ftp://files.example.com/drop")
    await browser.type('input[data-path="events[0].on"]', "Ticket Created")
    await browser.click('[data-action="add-condition"]')
    await browser.type('input[data-path="events[0].conditions[0].field"]', "object.priority")
    await browser.choose('select[data-path="events[0].conditions[0].op"]', "in")
    await browser.type('input[data-path="events[0].conditions[0].value"]', "P1")
    await save(browser)

    assert "http(s)" in await error_for(browser, "url")
    assert "ftp://" in await error_for(browser, "url")
    await error_for(browser, "events[0].on", "not an event type")
    await error_for(browser, "events[0].conditions[0]", "needs a list value")
    assert await browser.attr('input[data-path="url"]', "aria-invalid") == "true"
    await browser.text("[data-form-errors]", "3 problems marked")

    await browser.type('input[data-path="url"]', receiver.url + "/new")
    await browser.type('input[data-path="events[0].on"]', "ticket.created")
    await browser.type('input[data-path="events[0].conditions[0].value"]', '["P1"]')
    await browser.choose('select[data-path="payload"]', "custom")
    await save(browser)
    # A rule about the webhook as a whole has no path: it shows above the form.
    await browser.text("[data-form-errors]", "'custom' needs at least one fields entry")
    await browser.count(".field-error", 0)

    await browser.click('[data-action="add-field"]')
    await browser.type('input[data-path="fields[0].key"]', "status")
    await browser.type('input[data-path="fields[0].source"]', "ticket status")
    await save(browser)
    await error_for(browser, "fields[0].source", "should match pattern")
    box = await browser.text("[data-form-errors]", "1 problem marked")
    assert "fields entry" not in box  # the whole-webhook message went once it was fixed

    await browser.type('input[data-path="fields[0].source"]', "object.status")
    await browser.type('input[data-path="id"]', "taken")
    await save(browser)
    await error_for(browser, "id", "exists already")
    assert (await daemon.request("GET", "/v1/webhooks/taken"))[1]["source"] == "config"

    await browser.type('input[data-path="id"]', "fresh")
    await save(browser)
    await hash_is(browser, "#/webhooks/fresh")

    # Two admins: this form read the webhook before someone else changed it.
    await browser.click('[data-action="edit"]')
    await browser.text("section.webhook-form h1", "Edit fresh")
    code, _ = await daemon.request("PATCH", "/v1/webhooks/fresh", json={"name": "Changed meanwhile"})
    assert code == 200
    await browser.type('input[data-path="url"]', receiver.url + "/mine")
    await save(browser)
    await browser.text("[data-form-errors]", "changed by someone else")
    assert (await daemon.request("GET", "/v1/webhooks/fresh"))[1]["url"].endswith("/new")  # not overwritten
    await browser.click('[data-action="reload-webhook"]')
    name = 'input[data-path="name"]'
    await browser.until(lambda d: d.find_element(By.CSS_SELECTOR, name).get_property("value") == "Changed meanwhile",
                        "the form did not reload the current version")  # fmt: skip
    assert await browser.value('input[data-path="url"]') == receiver.url + "/new"


async def test_send_test_and_delete_with_confirmation(
    receiver: Receiver, make_config: Callable[..., Path], app_factory: AppFactory, browser: Browser
) -> None:
    """Send test delivers a hookd.ping and links to it; Delete asks, names the webhook, refuses a stale version."""
    daemon = await app_factory(make_config([], delivery=LOOPBACK))
    doc = {"id": "cust-1", "name": "Acme tickets", "url": receiver.url + "/api", "events": [{"id": "all", "on": "*"}]}
    code, _ = await daemon.request("POST", "/v1/webhooks", json=doc)
    assert code == 201

    await browser.open(f"{daemon.url}/ui/#/webhooks/cust-1")
    await browser.click('[data-action="test"]')
    note = await browser.until(lambda d: d.find_element(By.CSS_SELECTOR, "[data-test-delivery]"), "no link to the test")
    delivery_id = note.get_attribute("data-test-delivery")
    (ping,) = await receiver.wait_for(1, "/api")
    assert ping.json()["event"] == "hookd.ping"
    await browser.click("[data-test-delivery] a")
    await browser.text("#delivery-id", delivery_id)
    await browser.text("section.delivery .event", "hookd.ping")

    await browser.script("location.hash = '#/webhooks/cust-1'")
    await browser.click('[data-action="delete"]')
    assert "Acme tickets (cust-1)" in await browser.text("#delete-dialog h2")
    await browser.click('[data-action="cancel-delete"]')
    await browser.count("#delete-dialog", 0)
    assert (await daemon.request("GET", "/v1/webhooks/cust-1"))[0] == 200

    # Changed by someone else while the dialog is open: the delete is refused, not applied.
    await browser.click('[data-action="delete"]')
    await browser.text("#delete-dialog h2", "cust-1")
    code, _ = await daemon.request("PATCH", "/v1/webhooks/cust-1", json={"name": "Acme, renamed"})
    assert code == 200
    await browser.click('[data-action="confirm-delete"]')
    await browser.text("#delete-dialog [role=alert]", "changed since")
    assert (await daemon.request("GET", "/v1/webhooks/cust-1"))[0] == 200
    await browser.click('[data-action="cancel-delete"]')

    await browser.text("section.webhook h1", "Acme, renamed")
    await browser.click('[data-action="delete"]')
    await browser.text("#delete-dialog h2", "Acme, renamed (cust-1)")
    await browser.click('[data-action="confirm-delete"]')
    await hash_is(browser, "#/")
    await browser.text("section.overview", "No webhooks yet")
    assert (await daemon.request("GET", "/v1/webhooks/cust-1"))[0] == 404


async def test_config_webhooks_are_read_only_but_can_be_tested(
    receiver: Receiver, make_config: Callable[..., Path], app_factory: AppFactory, browser: Browser
) -> None:
    """The overview marks each source; a config webhook has Send test, no Edit or Delete; its edit address says why."""
    daemon = await app_factory(
        make_config([webhook("desk", receiver.url + "/desk", name="Service desk")], delivery=LOOPBACK)
    )
    doc = {"id": "cust-1", "url": receiver.url + "/api", "events": [{"id": "all", "on": "*"}]}
    assert (await daemon.request("POST", "/v1/webhooks", json=doc))[0] == 201

    await browser.open(daemon.url + "/ui/")
    await browser.text('tr[data-webhook="desk"] [data-source="config"]', "from the config file")
    await browser.text('tr[data-webhook="cust-1"] [data-source="api"]', "API")

    await browser.click('tr[data-webhook="desk"] a.hook-name')
    await browser.text('section.webhook[data-webhook="desk"] [data-source="config"]', "from the config file")
    await browser.text('[data-action="test"]', "Send test")
    await browser.count('[data-action="edit"]', 0)
    await browser.count('[data-action="delete"]', 0)
    await browser.click('[data-action="test"]')
    (ping,) = await receiver.wait_for(1, "/desk")
    assert ping.json()["event"] == "hookd.ping"
    await browser.text("[data-test-delivery]", "Test ping sent")

    await browser.script("location.hash = '#/webhooks/desk/edit'")
    await browser.text('[data-read-only="config"]', "From the config file")
    await browser.count("section.webhook-form", 0)
    await browser.count("#view form", 0)


async def test_event_type_suggestions_or_free_text(
    receiver: Receiver, make_config: Callable[..., Path], app_factory: AppFactory, browser: Browser
) -> None:
    """Event types are suggested from GET /v1/event-types when hookd has it; on a 404 the field takes free text."""
    daemon = await app_factory(make_config([webhook("desk", receiver.url + "/desk")], delivery=LOOPBACK))
    await daemon.send(ticket(1, event="ticket.status_changed"))
    await receiver.wait_for(1, "/desk")
    code, _ = await daemon.request("GET", "/v1/event-types")
    await new_form(browser, daemon)
    options = await browser.script(
        "return [...document.querySelectorAll('#event-type-options option')].map(o => o.value)"
    )
    assert await browser.attr('input[data-path="events[0].on"]', "list") == "event-type-options"
    if code == 404:
        assert options == []
        await browser.text("fieldset .hint", "Type an event type or a pattern")
    else:
        assert code == 200
        assert "ticket.status_changed" in options  # seen
        await browser.text("fieldset .hint", "from the catalogue")


async def test_form_document_rules(
    receiver: Receiver, make_config: Callable[..., Path], app_factory: AppFactory, browser: Browser
) -> None:
    """The form's pure rules, run in the page: values as JSON or text, secrets kept or replaced, error paths placed."""
    daemon = await app_factory(make_config([], delivery=LOOPBACK))
    await browser.open(daemon.url + "/ui/")
    await browser.until(lambda d: d.execute_script("return document.documentElement.dataset.ready"), "page not ready")
    got = await browser.async_script("""
        import("./webhook_doc.js").then((m) => {
          const typed = ["Closed", "42", '"42"', '["P1", "P2"]', "true", "  ", "a b"];
          const config = {
            id: "c1", url: "http://h/x", secret: ["***", "***"], headers: {"X-Key": "***"}, type: "standard",
            events: [{id: "t", on: "ticket.*", match: "any", conditions: [{field: "object.n", op: "eq", value: "42"}]}],
          };
          const state = m.stateFromConfig(config);
          const doc = (change) => m.toDocument({...state, ...change}, config);
          done({
            parsed: typed.map((t) => m.parseValue(t) ?? "<blank>"),
            shown: ["Closed", "42", 42, ["P1"], true, "true"].map(m.showValue),
            condition: doc({}).events[0].conditions[0],
            kept: doc({}).secret, rotated: doc({secret: "rotate"}).secret, replaced: doc({secret: "generate"}).secret,
            none: doc({secret: "none"}).secret, headers: doc({}).headers, type: doc({}).type,
            nearest: m.nearest(["events", "events[0]", "events[0].conditions[1]", "events[0].on"],
                               "events[0].conditions[1].op"),
            sibling: m.nearest(["events[1]"], "events[10].on"),
          });
        }, (e) => done(String(e)));
    """)  # fmt: skip
    assert got["parsed"] == ["Closed", 42, "42", ["P1", "P2"], True, "<blank>", "a b"]
    assert got["shown"] == ["Closed", '"42"', "42", '["P1"]', "true", '"true"']
    assert got["condition"] == {"field": "object.n", "op": "eq", "value": "42"}  # a string stays a string
    assert got["kept"] == ["***", "***"]
    assert got["rotated"] == ["***", "***", "generate"]
    assert got["replaced"] == "generate"
    assert got["none"] == []
    assert got["headers"] == {"X-Key": "***"}
    assert got["type"] == "standard"  # a key the form does not show goes back as read
    assert got["nearest"] == "events[0].conditions[1]"
    assert got["sibling"] is None
