"""The deliveries page (SPEC §8a): its static routes, and the page driven in headless
Chromium against an App serving in the test's loop and a real receiver.

The browser tests need Debian's ``chromium`` and ``chromium-driver`` packages and the
``selenium`` package (the ``browser`` fixture, over tests/browser.py).
Set ``HOOKD_UI_SCREENSHOT=docs/ui.png`` to save the failed delivery's page as a picture.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from hookd.ui import UI_DIR
from tests.browser import TIMEOUT, Browser
from tests.support import AppFactory, Receiver, status, webhook


def failing_body() -> bytes:
    """What the broken receiver answers: JSON, so the page pretty-prints it."""
    return json.dumps({"error": "upstream_unavailable", "message": "receiver down: code 7", "retry": True}).encode()


def ticket(n: int, event: str = "ticket.created", summary: str = "Printer on fire") -> dict[str, Any]:
    """A realistic event."""
    return {
        "event": event,
        "object": {"id": 4240 + n, "summary": summary, "status": {"id": 1, "display": "New"}, "priority": "P2"},
    }


class HoldingProxy:
    """A plain HTTP proxy on 127.0.0.1 port 0 in front of the daemon that holds the answer to one path.

    The held request is never answered; ``client_gone`` is set when the browser drops its
    connection, i.e. aborts the request.
    """

    def __init__(self, upstream: str, hold: str) -> None:
        self.upstream = upstream
        self.hold = hold
        self.held = asyncio.Event()
        self.client_gone = asyncio.Event()
        self.paths: list[str] = []
        self._cond = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Base URL, no trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> HoldingProxy:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Cancelling the handler when its client goes away is how a dropped request shows.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def wait_path(self, path: str, count: int) -> None:
        """Wait until ``count`` requests for ``path`` have come through."""
        async with asyncio.timeout(TIMEOUT), self._cond:
            await self._cond.wait_for(lambda: self.paths.count(path) >= count)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        async with self._cond:
            self.paths.append(request.path)
            self._cond.notify_all()
        if request.path == self.hold:
            self.held.set()
            try:
                await asyncio.Future()  # never answered
            except asyncio.CancelledError:
                self.client_gone.set()
                raise
        assert self._session is not None
        skip = {"host", "connection", "content-length", "transfer-encoding", "keep-alive"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=await request.read(), allow_redirects=False) as r:  # fmt: skip
            body = await r.read()
            back = {k: v for k, v in r.headers.items() if k.lower() not in skip}
        return web.Response(status=r.status, body=body, headers=back)


# -- static routes ------------------------------------------------------------------------


async def test_ui_routes_serve_assets_safely(receiver: Receiver, make_config: Callable[..., Path],
                                             app_factory: AppFactory) -> None:  # fmt: skip
    """/ui redirects; assets carry their content types and no-cache, need no token, and no path leaves the folder."""
    config = make_config([webhook("ok", receiver.url + "/ok")], server={"tokens": ["t0k"]})
    daemon = await app_factory(config)
    modules = sorted(p.name for p in UI_DIR.glob("*.js"))
    assert "main.js" in modules
    async with aiohttp.ClientSession() as s:
        async with s.get(daemon.url + "/ui", allow_redirects=False) as r:
            assert r.status == 302
            assert r.headers["Location"] == "/ui/"
        # Module scripts run only when served with a JavaScript type (and nosniff makes that strict).
        want = {"/ui/": "text/html", "/ui/style.css": "text/css", **{f"/ui/{m}": "text/javascript" for m in modules}}
        for path, ctype in want.items():
            async with s.get(daemon.url + path) as r:
                assert r.status == 200, path
                assert r.content_type == ctype, path
                assert r.charset == "utf-8"
                assert r.headers["Cache-Control"] == "no-cache"
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert "script-src 'self'" in r.headers["Content-Security-Policy"]
                etag = r.headers["ETag"]
                body = await r.read()
            async with s.get(daemon.url + path, headers={"If-None-Match": etag}) as r:
                assert r.status == 304
            if path != "/ui/":  # the page's own favicon names the SVG namespace, an http:// URI
                # Nothing the page loads comes from outside the daemon. The SVG namespace
                # (the chart's elements are made in it) is a name, never fetched.
                assert b"http://" not in body.replace(b'"http://www.w3.org/2000/svg"', b""), path
                assert b"https://" not in body, path
            for spec in re.findall(r'^import .* from "([^"]+)";$', body.decode(), re.MULTILINE):
                assert spec.startswith("./"), (path, spec)
                assert spec.removeprefix("./") in modules, (path, spec)
        index = await (await s.get(daemon.url + "/ui/index.html")).read()
        assert b'<script type="module" src="main.js"></script>' in index
        for raw in ("/ui/__init__.py", "/ui/..%2f__init__.py", "/ui/%2e%2e/api.py", "/ui/..%2F..%2Fpyproject.toml",
                    "/ui/%2e%2e%2fconfig%2fload.py", "/ui/nope.js", "/ui/app.js"):  # fmt: skip
            async with s.get(URL(daemon.url + raw, encoded=True)) as r:
                assert r.status == 404, raw
                assert b"import" not in await r.read()
        async with s.get(daemon.url + "/v1/webhooks") as r:
            assert r.status == 401  # the API still needs the token


# -- the page in a browser -----------------------------------------------------------------


async def test_failed_delivery_detail_and_resend(receiver: Receiver, make_config: Callable[..., Path],
                                                 app_factory: AppFactory, browser: Browser) -> None:  # fmt: skip
    """An operator finds a failed delivery, reads the receiver's answer, and resends it once the receiver is fixed."""
    receiver.behave["/billing"] = status(500, failing_body(), {"Content-Type": "application/json"})
    config = make_config(
        [
            webhook("servicedesk", receiver.url + "/sd", name="Service desk sync"),
            webhook("billing", receiver.url + "/billing", name="Billing export",
                    events=[{"id": "new_ticket", "on": "ticket.created"}],
                    batching="same_event_type", batch_wait_seconds=0.2, secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                    headers={"X-Source": "hookd"}),
        ],
        delivery={"retry_schedule": []},
    )  # fmt: skip
    daemon = await app_factory(config)
    code, _ = await daemon.send([ticket(1), ticket(2, summary="VPN drops every hour")])
    assert code == 202
    [failed] = await daemon.wait_deliveries("billing", 1, state="failed")
    await daemon.wait_deliveries("servicedesk", 2, state="succeeded")

    await browser.open(daemon.url + "/ui/")
    await browser.text('tr[data-webhook="servicedesk"]', "Service desk sync")
    await browser.text('tr[data-webhook="billing"]', "Billing export")
    await browser.text('tr[data-webhook="billing"] [data-count="failed"]', "1")

    await browser.click('tr[data-webhook="billing"] a.hook-name')
    row = f'tr[data-delivery="{failed["id"]}"]'
    assert "Failed" in await browser.text(f'{row}[data-state="failed"]', "500")
    assert (await browser.script("return location.hash")) == "#/webhooks/billing"

    await browser.click(f"{row} a")
    await browser.text("#delivery-id", failed["id"])
    assert (await browser.script("return location.hash")) == f"#/deliveries/{failed['id']}"
    assert "receiver down: code 7" in await browser.text('pre[data-key="res-body"]', "receiver down: code 7")
    await browser.text('.attempt[data-attempt="1"]', "500")
    await browser.count("ul.items li", 2)  # the batch's two items
    await browser.text('pre[data-key="req-body"]', '"summary": "VPN drops every hour"')  # pretty-printed
    if shot := os.environ.get("HOOKD_UI_SCREENSHOT"):
        await browser.screenshot(Path(shot))

    receiver.behave.pop("/billing")
    await browser.click("#resend")
    await receiver.wait_for(2, "/billing")
    new_id = await browser.until(
        lambda d: (h := d.execute_script("return location.hash")) != f"#/deliveries/{failed['id']}" and h,
        "the page did not move to the new delivery",
    )
    new_id = new_id.removeprefix("#/deliveries/")
    await browser.text("#delivery-id", new_id)
    await browser.text('section.delivery[data-state="succeeded"] .badge', "Succeeded")
    await browser.text(f'[data-resend-of="{failed["id"]}"]', failed["id"])
    code, record = await daemon.request("GET", f"/v1/deliveries/{new_id}")
    assert code == 200
    assert record["resend_of"] == failed["id"]
    assert record["state"] == "succeeded"


async def test_lightweight_logs_disable_resend(receiver: Receiver, make_config: Callable[..., Path],
                                               app_factory: AppFactory, browser: Browser) -> None:  # fmt: skip
    """Under lightweight logs the Resend button is disabled and the page says why."""
    config = make_config([webhook("audit", receiver.url + "/audit", lightweight_logs=True)],
                         delivery={"retry_schedule": []})  # fmt: skip
    daemon = await app_factory(config)
    await daemon.send(ticket(1))
    [d] = await daemon.wait_deliveries("audit", 1, state="succeeded")

    await browser.open(f"{daemon.url}/ui/#/deliveries/{d['id']}")
    await browser.text("#delivery-id", d["id"])
    await browser.text("#resend-reason", "lightweight logs")
    assert await browser.attr("#resend", "disabled") is not None
    await browser.text('.attempt[data-attempt="1"]', "200")
    await browser.text("details[data-key='request']", "Not kept")


async def test_read_only_token_hides_resend_and_enable(receiver: Receiver, make_config: Callable[..., Path],
                                                       app_factory: AppFactory, browser: Browser) -> None:  # fmt: skip
    """A token with only the read scope sees deliveries but no Resend, Enable, New webhook or Send test; one
    with manage sees them."""
    receiver.behave["/down"] = status(500)
    config = make_config([webhook("down", receiver.url + "/down", auto_disable_after=1)],
                         delivery={"retry_schedule": []},
                         server={"tokens": [{"token": "reader", "scopes": ["read"]}, "admin"]})  # fmt: skip
    daemon = await app_factory(config)
    admin = {"Authorization": "Bearer admin"}
    await daemon.send(ticket(1), headers=admin)
    [d] = await daemon.wait_deliveries("down", 1, state="failed", headers=admin)

    await browser.open(f"{daemon.url}/ui/#/deliveries/{d['id']}")
    await browser.type("#token-input", "reader")
    await browser.click("#token-submit")
    await browser.text("#delivery-id", d["id"])
    await browser.text('.attempt[data-attempt="1"]', "500")
    assert await browser.script("return document.querySelectorAll('[data-action=\"resend\"]').length") == 0
    await browser.script("location.hash = '#/'")
    await browser.text('tr[data-webhook="down"] [data-enabled="false"]', "Disabled · auto")
    assert await browser.script("return document.querySelectorAll('[data-action=\"enable\"]').length") == 0
    assert await browser.script("return document.querySelectorAll('[data-action=\"new-webhook\"]').length") == 0
    await browser.script("location.hash = '#/webhooks/down'")
    await browser.text("h1", "down")
    for action in ("test", "edit", "delete"):
        assert await browser.script(f"return document.querySelectorAll('[data-action=\"{action}\"]').length") == 0

    await browser.click("#forget-token")  # the same tab, another token: the scopes are loaded again
    await browser.type("#token-input", "admin")
    await browser.click("#token-submit")
    await browser.text('[data-action="test"]', "Send test")
    await browser.script("location.hash = '#/'")
    await browser.text('tr[data-webhook="down"] [data-action="enable"]', "Enable")
    await browser.text('[data-action="new-webhook"]', "New webhook")
    await browser.script(f"location.hash = '#/deliveries/{d['id']}'")
    await browser.text('[data-action="resend"]', "Resend")


async def test_token_prompt(receiver: Receiver, make_config: Callable[..., Path],
                            app_factory: AppFactory, browser: Browser) -> None:  # fmt: skip
    """With server.tokens the page asks for a token, says when it is refused, and keeps it for the tab."""
    config = make_config([webhook("ok", receiver.url + "/ok", name="Service desk sync")], server={"tokens": ["t0k"]})
    daemon = await app_factory(config)

    await browser.open(daemon.url + "/ui/")
    await browser.text("#token-dialog", "API token needed")
    await browser.type("#token-input", "wrong")
    await browser.click("#token-submit")
    await browser.text("#token-error", "refused")
    await browser.type("#token-input", "t0k")
    await browser.click("#token-submit")
    await browser.text('tr[data-webhook="ok"]', "Service desk sync")
    assert await browser.script("return sessionStorage.getItem('hookd.token')") == "t0k"

    await asyncio.to_thread(browser.driver.refresh)  # asked once: a reload does not ask again
    await browser.text('tr[data-webhook="ok"]', "Service desk sync")
    assert not await browser.script("return document.getElementById('token-dialog').open")


async def test_deliveries_filter_and_paging(receiver: Receiver, make_config: Callable[..., Path],
                                            app_factory: AppFactory, browser: Browser) -> None:  # fmt: skip
    """A webhook's deliveries are filtered by state and paged 50 at a time, newest first."""

    async def every_other(request: web.Request, n: int) -> web.StreamResponse:
        return web.Response(status=500 if n % 2 else 200, text="odd one out" if n % 2 else "ok")

    receiver.behave["/mixed"] = every_other
    config = make_config([webhook("mixed", receiver.url + "/mixed")], delivery={"retry_schedule": []})
    daemon = await app_factory(config)
    await daemon.send([ticket(i) for i in range(51)])
    await daemon.wait_deliveries("mixed", 26, state="failed")
    await daemon.wait_deliveries("mixed", 25, state="succeeded")
    every = await daemon.wait_deliveries("mixed", 51)

    await browser.open(f"{daemon.url}/ui/#/webhooks/mixed")
    await browser.count("tr[data-delivery]", 50)
    assert await browser.attr("tr[data-delivery]", "data-delivery") == every[0]["id"]  # newest first
    await browser.click('[data-action="older"]')
    await browser.count("tr[data-delivery]", 1)
    await browser.text(f'tr[data-delivery="{every[-1]["id"]}"]')
    await browser.click('[data-action="newer"]')
    await browser.count("tr[data-delivery]", 50)

    await browser.click('a[data-filter="failed"]')
    await browser.count("tr[data-delivery]", 26)
    states = await browser.script(
        "return [...document.querySelectorAll('tr[data-delivery]')].map(r => r.dataset.state)"
    )
    assert set(states) == {"failed"}
    assert "state=failed" in await browser.script("return location.hash")
    await browser.count('[data-action="older"]', 0)  # one page: no pager


async def test_overview_refreshes_and_enables(receiver: Receiver, make_config: Callable[..., Path],
                                              app_factory: AppFactory, browser: Browser) -> None:  # fmt: skip
    """The overview updates by itself, and an auto-disabled webhook is enabled with its button."""
    receiver.behave["/flaky"] = status(503, b"maintenance")
    config = make_config(
        [webhook("ok", receiver.url + "/ok"), webhook("flaky", receiver.url + "/flaky", auto_disable_after=1)],
        delivery={"retry_schedule": []},
    )
    daemon = await app_factory(config)
    await daemon.send(ticket(1))
    await daemon.wait_deliveries("ok", 1, state="succeeded")
    await daemon.wait_deliveries("flaky", 1, state="failed")

    await browser.open(daemon.url + "/ui/")
    await browser.text('tr[data-webhook="ok"] [data-count="succeeded"]', "1")
    await browser.text('tr[data-webhook="flaky"] [data-enabled="false"]', "Disabled · auto")
    await browser.text('tr[data-webhook="flaky"]', "503")

    await daemon.send(ticket(2))  # no reload: the page polls
    await browser.text('tr[data-webhook="ok"] [data-count="succeeded"]', "2")

    receiver.behave.pop("/flaky")
    await browser.click('tr[data-webhook="flaky"] [data-action="enable"]')
    await browser.text('tr[data-webhook="flaky"] [data-enabled="true"]', "Enabled")
    await receiver.wait_for(2, "/flaky")  # the item kept while disabled goes out
    await browser.text('tr[data-webhook="flaky"] [data-count="succeeded"]', "1")


async def test_every_module_loads(receiver: Receiver, make_config: Callable[..., Path],
                                  app_factory: AppFactory, browser: Browser) -> None:  # fmt: skip
    """Every .js file of the page is loaded as a module and main.js runs to its end, without console errors."""
    config = make_config([webhook("ok", receiver.url + "/ok", name="Service desk sync")])
    daemon = await app_factory(config)

    await browser.open(daemon.url + "/ui/")
    ready = "return document.documentElement.dataset.ready"
    await browser.until(lambda d: d.execute_script(ready), "main.js did not run to its end")
    await browser.text('tr[data-webhook="ok"]', "Service desk sync")
    loaded = await browser.script(
        "return performance.getEntriesByType('resource')"
        ".map(e => new URL(e.name).pathname).filter(p => p.endsWith('.js'))"
    )
    assert sorted(loaded) == sorted(f"/ui/{p.name}" for p in UI_DIR.glob("*.js"))  # none missing, none left over


async def test_navigation_aborts_the_previous_views_fetch(
    receiver: Receiver, make_config: Callable[..., Path], app_factory: AppFactory, browser: Browser
) -> None:
    """Leaving a view whose answer is still on its way aborts its request, and that view never shows in the next one."""
    config = make_config([webhook("ok", receiver.url + "/ok", name="Service desk sync")])
    daemon = await app_factory(config)
    await daemon.send(ticket(1))
    [d] = await daemon.wait_deliveries("ok", 1, state="succeeded")

    async with HoldingProxy(daemon.url, hold=f"/v1/deliveries/{d['id']}") as proxy:
        await browser.open(proxy.url + "/ui/")
        await browser.text('tr[data-webhook="ok"]', "Service desk sync")
        await browser.script(
            "window.sawDelivery = false;"
            "new MutationObserver(() => { if (document.querySelector('section.delivery')) window.sawDelivery = true; })"
            ".observe(document.getElementById('view'), {childList: true, subtree: true});"
        )
        await browser.script(f"location.hash = '#/deliveries/{d['id']}'")
        async with asyncio.timeout(TIMEOUT):
            await proxy.held.wait()
        await browser.script("location.hash = '#/webhooks/ok'")
        await browser.text(f'section.webhook[data-webhook="ok"] tr[data-delivery="{d["id"]}"]')

        async with asyncio.timeout(TIMEOUT):
            await proxy.client_gone.wait()
        # A refresh of the webhook's view goes by after that, and still no delivery view.
        await proxy.wait_path("/v1/webhooks/ok", proxy.paths.count("/v1/webhooks/ok") + 1)
        await browser.text('section.webhook[data-webhook="ok"]')
        assert await browser.script("return location.hash") == "#/webhooks/ok"
        assert await browser.script("return window.sawDelivery") is False
        assert await browser.script("return document.title") == "Service desk sync · hookd"


async def test_pre_configured_webhook_shows_its_type_and_message(
    receiver: Receiver, make_config: Callable[..., Path], app_factory: AppFactory, browser: Browser
) -> None:
    """A Slack webhook is marked as such in the lists, and its delivery shows the message as rendered and sent."""
    config = make_config(
        [
            webhook("chat", receiver.url + "/chat", name="Ops channel", type="slack",
                    template="*{object.status}*: {object.summary} <https://desk.example.com/t/{object_id}|open>"),
            webhook("std", receiver.url + "/std"),
        ]
    )  # fmt: skip
    daemon = await app_factory(config)
    await daemon.send(ticket(1, summary="Printer <on> fire & smoke"))
    [d] = await daemon.wait_deliveries("chat", 1, state="succeeded")
    [s] = await daemon.wait_deliveries("std", 1, state="succeeded")
    sent = "*New*: Printer &lt;on&gt; fire &amp; smoke <https://desk.example.com/t/4241|open>"

    await browser.open(daemon.url + "/ui/")
    await browser.text('tr[data-webhook="chat"] .tag-type[data-type="slack"]', "Slack")
    await browser.count('tr[data-webhook="std"] .tag-type', 0)

    await browser.open(f"{daemon.url}/ui/#/deliveries/{d['id']}")
    await browser.text("#delivery-id", d["id"])
    await browser.text('#webhook-type[data-type="slack"]', "Slack")
    assert await browser.text("#message-text", "Printer") == sent
    await browser.text('pre[data-key="req-body"]', '"text"')

    await browser.open(f"{daemon.url}/ui/#/deliveries/{s['id']}")  # a standard one: no message part
    await browser.text("#delivery-id", s["id"])
    await browser.count("#message-text", 0)
    await browser.count("#webhook-type", 1)
    await browser.count("details[data-key='message']", 0)
