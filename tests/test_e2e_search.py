"""End to end: finding deliveries across webhooks (SPEC §13, ``GET /v1/deliveries`` and
``hookd deliveries``' filters) and every attempt's own response, against an App serving
in the test's loop and the real ``hookd`` command."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.support import HOOKD, AppFactory, InProcess, MakeConfig, Receiver, fail_first, until, webhook

EVENTS: list[dict[str, Any]] = [
    {"id": "s1", "event": "ticket.created", "object": {"id": 4242, "summary": "int id"}},
    {"id": "s2", "event": "ticket.updated", "object": {"id": "4242", "summary": "the same id as a string"}},
    {"id": "s3", "event": "client.updated", "object": {"id": "C-17", "name": "Acme"}},
    {"id": "s4", "event": "ticket.updated", "object": {"id": 7, "summary": "refused by /single"}},
    {"id": "s5", "event": "ticket.updated", "object": {"id": 99, "summary": "last"}},
]


async def refuse_object_7(request: web.Request, n: int) -> web.StreamResponse:
    """400 (failed at once) for the item of object 7, else 200."""
    body = await request.json()
    return web.Response(status=400 if body["object_id"] == 7 else 200)


async def deliveries_of(d: InProcess, webhook_id: str) -> list[dict[str, Any]]:
    """Every delivery record of a webhook, newest first (through the per-webhook list)."""
    code, page = await d.request("GET", f"/v1/webhooks/{webhook_id}/deliveries?limit=500")
    assert code == 200, page
    out = []
    for entry in page["deliveries"]:
        code, rec = await d.request("GET", f"/v1/deliveries/{entry['id']}")
        assert code == 200, rec
        out.append(rec)
    return out


def seq(delivery_id: str) -> int:
    """The store sequence number in a delivery id: the log's order."""
    return int(delivery_id.split("_")[1])


async def search(d: InProcess, **query: Any) -> list[str]:
    """The ids GET /v1/deliveries answers for ``query``, following ``next`` to the end."""
    ids: list[str] = []
    params = {k: str(v) for k, v in query.items()}
    while True:
        code, page = await d.request("GET", "/v1/deliveries?" + urlencode(params))
        assert code == 200, page
        ids += [e["id"] for e in page["deliveries"]]
        if page["next"] is None:
            return ids
        params["before"] = page["next"]


async def logged(
    make_config: MakeConfig, app_factory: AppFactory, receiver: Receiver
) -> tuple[InProcess, list[dict[str, Any]]]:
    """An App whose log holds the deliveries of EVENTS to three webhooks (one batching, 3 per batch);
    every record, newest first."""
    receiver.behave["/single"] = refuse_object_7
    d = await app_factory(
        make_config(
            [
                webhook("single", receiver.url + "/single"),
                webhook("batch", receiver.url + "/batch", batching="any_event", batch_wait_seconds=0.2,
                        max_items_per_batch=3),
                webhook("tickets", receiver.url + "/tickets", on="ticket.*"),
            ]
        )
    )  # fmt: skip
    code, body = await d.send(EVENTS)
    assert code == 202, body
    await d.wait_deliveries("single", 4, state="succeeded")
    await d.wait_deliveries("single", 1, state="failed")
    await d.wait_deliveries("tickets", 4, state="succeeded")
    await d.wait_deliveries("batch", 2, state="succeeded")
    records = [r for w in ("single", "batch", "tickets") for r in await deliveries_of(d, w)]
    return d, sorted(records, key=lambda r: seq(r["id"]), reverse=True)


def expected(records: list[dict[str, Any]], holds: Callable[[dict[str, Any]], bool]) -> list[str]:
    """The ids of the records for which ``holds``, newest first."""
    return [r["id"] for r in records if holds(r)]


async def test_each_filter_finds_its_deliveries_across_webhooks_batches_included(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Each filter of GET /v1/deliveries, alone and combined, answers exactly the deliveries of every webhook that
    match it, newest first; object, occurrence and item ids find the batch that carried them; object_id=4242
    finds the object id 4242 and "4242" alike."""
    d, records = await logged(make_config, app_factory, receiver)
    assert len(records) == 5 + 2 + 4
    batches = [r for r in records if r["webhook_id"] == "batch"]
    assert sorted(len(b["item_ids"]) for b in batches) == [2, 3]
    for r in records:  # the record lists its items' occurrence and object ids, item by item
        assert len(r["event_ids"]) == len(r["object_ids"]) == len(r["item_ids"]) == r["items"]
    objects = {e["id"]: e["object"]["id"] for e in EVENTS}
    assert all(r["object_ids"] == [objects[e] for e in r["event_ids"]] for r in records)

    def carries(*event_ids: str) -> Callable[[dict[str, Any]], bool]:
        return lambda r: bool(set(r["event_ids"]) & set(event_ids))

    assert await search(d) == expected(records, lambda r: True)
    four_two = await search(d, object_id=4242)
    assert four_two == expected(records, carries("s1", "s2"))
    assert len(four_two) == 2 + 1 + 2  # single and tickets twice (4242 and "4242"), one batch
    assert await search(d, object_id="C-17") == expected(records, carries("s3"))
    assert await search(d, object_id=99) == expected(records, carries("s5"))
    assert await search(d, object_id="04242") == []  # a string that is not plainly the integer
    assert await search(d, object_id="no-such") == []
    assert await search(d, event_id="s4") == expected(records, carries("s4"))
    assert await search(d, event_id="s") == []
    for rec in records:
        for item in rec["item_ids"]:
            assert await search(d, item_id=item) == [rec["id"]]
    assert await search(d, item_id="0190a4b2-7c3e-7d1a-9f00-000000000000") == []
    assert await search(d, event="client.updated") == expected(records, lambda r: "client.updated" in r["events"])
    assert await search(d, event="ticket.deleted") == []
    assert await search(d, webhook="batch") == [b["id"] for b in batches]
    assert await search(d, webhook="nope") == []
    failed = await search(d, state="failed")
    assert failed == expected(records, lambda r: r["state"] == "failed")
    assert [r["event_ids"] for r in records if r["id"] in failed] == [["s4"]]
    assert await search(d, webhook="single", state="succeeded") == expected(
        records, lambda r: r["webhook_id"] == "single" and r["state"] == "succeeded"
    )
    assert await search(d, object_id=4242, webhook="batch") == expected(
        records, lambda r: r["webhook_id"] == "batch" and carries("s1", "s2")(r)
    )
    assert await search(d, event_id="s5", event="ticket.updated", webhook="tickets") == expected(
        records, lambda r: r["webhook_id"] == "tickets" and carries("s5")(r)
    )
    assert await search(d, event_id="s1", state="failed") == []
    # The entries are the list's: the same summary fields as a webhook's list.
    code, page = await d.request("GET", "/v1/deliveries?object_id=C-17")
    assert code == 200
    _, listed = await d.request("GET", "/v1/webhooks/batch/deliveries")
    batch_entry = next(e for e in page["deliveries"] if e["webhook_id"] == "batch")
    assert batch_entry in listed["deliveries"]


async def test_pages_follow_the_cursor_across_webhooks(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """limit and before page GET /v1/deliveries newest first across webhooks, filters kept, until next is null."""
    d = await app_factory(make_config([webhook(w, f"{receiver.url}/{w}") for w in ("a", "b")]))
    for n in range(7):  # each a delivery per webhook, object 5 in the odd ones
        code, _ = await d.send({"id": f"p{n}", "event": "ticket.updated", "object": {"id": 5 if n % 2 else n + 10}})
        assert code == 202
    await d.wait_deliveries("a", 7, state="succeeded")
    await d.wait_deliveries("b", 7, state="succeeded")
    everything = await search(d, limit=500)
    assert len(everything) == 14
    assert everything == sorted(everything, key=seq, reverse=True)

    pages = []
    query = {"limit": "3"}
    while True:
        code, page = await d.request("GET", "/v1/deliveries?" + urlencode(query))
        assert code == 200, page
        pages.append([e["id"] for e in page["deliveries"]])
        if page["next"] is None:
            break
        assert page["next"] == str(seq(pages[-1][-1]))
        query["before"] = page["next"]
    assert [len(p) for p in pages] == [3, 3, 3, 3, 2]
    assert [i for p in pages for i in p] == everything

    fives = await search(d, object_id=5)
    assert len(fives) == 6
    code, first = await d.request("GET", "/v1/deliveries?object_id=5&limit=4")
    code, rest = await d.request("GET", f"/v1/deliveries?object_id=5&limit=4&before={first['next']}")
    assert [e["id"] for e in first["deliveries"] + rest["deliveries"]] == fives
    assert rest["next"] is None


def later_than(t: float) -> Callable[[], bool]:
    """A check that holds once the wall clock passed ``t``."""
    return lambda: time.time() > t


async def test_since_and_until_cut_the_log_by_creation_time(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """since takes deliveries created at or after it, until those created before it, both RFC 3339 with any offset;
    together a window; an until at or before since is an empty page."""
    d = await app_factory(make_config([webhook("a", receiver.url + "/a")]))
    for n in range(5):
        code, _ = await d.send({"id": f"t{n}", "event": "ticket.updated", "object": {"id": n}})
        assert code == 202
        await until(later_than(time.time() + 0.005), "5 ms")  # created_at 5 ms apart at least
    rows = await d.wait_deliveries("a", 5, state="succeeded")  # newest first
    ids = [r["id"] for r in rows]
    at = [datetime.fromisoformat(r["created_at"].replace("Z", "+00:00")) for r in rows]
    assert at == sorted(at, reverse=True)
    middle = at[2]  # created_at is shown to the millisecond: the third newest was created at or after it
    stamp = middle.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert await search(d, since=stamp) == ids[:3]
    assert await search(d, until=stamp) == ids[3:]
    shifted = (middle + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+02:00"
    assert await search(d, since=shifted) == ids[:3]
    after_oldest = (at[4] + timedelta(milliseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert await search(d, since=after_oldest, until=stamp) == ids[3:4]
    assert await search(d, since=stamp, until=stamp) == []
    assert await search(d, since="2000-01-01T00:00:00Z") == ids
    assert await search(d, since="2999-01-01T00:00:00Z") == []
    assert await search(d, since=stamp, object_id=4) == [ids[0]]
    assert await search(d, until=stamp, object_id=4) == []


async def test_bad_queries_are_refused_with_one_detail_each(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A bad, empty, unknown or repeated parameter gets 400 invalid_query with one detail per parameter."""
    d = await app_factory(make_config([webhook("a", receiver.url + "/a")]))
    query = (
        "state=lost&limit=0&before=abc&since=yesterday&until=2026-11-29T07:00:00&event=Ticket.Created"
        "&object_id=&objectid=4242&webhook=a&webhook=b&item_id=" + "x" * 1025
    )
    code, body = await d.request("GET", "/v1/deliveries?" + query)
    assert code == 400, body
    err = body["error"]
    assert err["code"] == "invalid_query"
    paths = [x["path"] for x in err["details"]]
    assert sorted(paths) == sorted(
        ["state", "limit", "before", "since", "until", "event", "object_id", "objectid", "webhook", "item_id"]
    )
    messages = {x["path"]: x["message"] for x in err["details"]}
    assert "UTC offset" in messages["until"]
    assert "more than once" in messages["webhook"]
    assert "unknown parameter" in messages["objectid"]
    for good in ("limit=500", "before=1", "state=delivering", "since=2026-11-29T07:00:00.123456789-05:30"):
        code, body = await d.request("GET", "/v1/deliveries?" + good)
        assert code == 200, (good, body)
    for bad in ("limit=501", "limit=%2B5", "before=0", "before=1e3", "since=2026-02-30T00:00:00Z", "event=a..b"):
        code, body = await d.request("GET", "/v1/deliveries?" + bad)
        assert code == 400, (bad, body)
        assert [x["path"] for x in body["error"]["details"]] == [bad.split("=")[0]]


async def test_a_search_at_the_documented_limits_is_answered_as_json(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Four ids of 1,024 non-ASCII characters each make a request line of about 37 KB once
    percent-encoded: hookd answers it (and one character more) itself, in JSON."""
    d = await app_factory(make_config([webhook("a", receiver.url + "/a")]))
    longest = "€" * 1024
    filters = dict.fromkeys(("object_id", "event_id", "item_id", "webhook"), longest)
    line = "/v1/deliveries?" + urlencode(filters)
    assert len(line) > 8190 * 4  # far past aiohttp's default request-line limit
    code, body = await d.request("GET", line)
    assert code == 200, body
    assert body == {"deliveries": [], "next": None}
    code, body = await d.request("GET", "/v1/deliveries?" + urlencode({**filters, "object_id": longest + "€"}))
    assert code == 400, body
    assert [x["path"] for x in body["error"]["details"]] == ["object_id"]


async def three_tries(request: web.Request, n: int) -> web.StreamResponse:
    """Attempt 1 outlasts the client's timeout, attempt 2 gets a 503 with a long body, attempt 3 a 200."""
    if n == 1:
        await asyncio.sleep(2)  # the receiver is slow; the attempt gives up first
        return web.Response(status=200)
    if n == 2:
        return web.Response(status=503, body=b"down for maintenance " * 10, headers={"X-Try": "2"})
    return web.json_response({"ok": True, "try": n})


async def test_every_attempt_keeps_its_own_response(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A delivery that failed twice, then succeeded, lists each attempt with its own status, headers, body and
    truncation, or its error and reason; the record's response is the last one's."""
    receiver.behave["/flaky"] = three_tries
    receiver.behave["/twice"] = fail_first(2, 502)
    d = await app_factory(
        make_config(
            [webhook("flaky", receiver.url + "/flaky"), webhook("twice", receiver.url + "/twice")],
            delivery={"timeout_seconds": 0.3, "max_response_bytes": 64, "retry_schedule": [0.05, 0.05]},
        )
    )
    assert (await d.send({"id": "r1", "event": "ticket.updated", "object": {"id": 1}}))[0] == 202
    (rec,) = await until_state(d, "flaky")
    first, second, third = rec["attempts"]
    assert (first["n"], first["status_code"], first["error"], first["response"]) == (1, None, "timeout", None)
    assert first["message"]
    assert second["response"]["status"] == 503
    assert second["response"]["headers"]["X-Try"] == "2"
    assert second["response"]["body"] == ("down for maintenance " * 10)[:64]
    assert second["response"]["truncated"] is True
    assert second["message"] is None
    assert third["response"]["status"] == 200
    assert json.loads(third["response"]["body"]) == {"ok": True, "try": 3}
    assert third["response"]["truncated"] is False
    assert rec["response"]["status"] == 200
    assert rec["response"]["body"] == third["response"]["body"]

    (twice,) = await until_state(d, "twice")
    assert [a["response"]["status"] for a in twice["attempts"]] == [502, 502, 200]
    assert [a["response"]["body"] for a in twice["attempts"]] == ["not yet", "not yet", '{"ok": true}']


async def until_state(d: InProcess, webhook_id: str, state: str = "succeeded") -> list[dict[str, Any]]:
    """The records of a webhook once all of them reached ``state``."""
    await d.wait_deliveries(webhook_id, 1, state=state)
    return await deliveries_of(d, webhook_id)


async def test_lightweight_logs_keep_no_response_of_any_attempt(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Under lightweight_logs each attempt keeps its status and timing but no response or reason, and the delivery
    is still found by its ids."""
    receiver.behave["/light"] = fail_first(1, 500)
    d = await app_factory(make_config([webhook("light", receiver.url + "/light", lightweight_logs=True)]))
    assert (await d.send({"id": "l1", "event": "ticket.updated", "object": {"id": 31}}))[0] == 202
    (rec,) = await until_state(d, "light")
    assert [(a["status_code"], a["response"], a["message"]) for a in rec["attempts"]] == [
        (500, None, None), (200, None, None)
    ]  # fmt: skip
    assert rec["response"] is None
    assert rec["request"] is None
    assert await search(d, object_id=31) == [rec["id"]]
    assert await search(d, event_id="l1") == [rec["id"]]


async def run_hookd(*args: str) -> tuple[int, str, str]:
    """``hookd ARGS`` as a subprocess: (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HOOKD_CONFIG", "HOOKD_TOKEN")}
    proc = await asyncio.create_subprocess_exec(
        HOOKD, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_deliveries_filters(receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory) -> None:
    """``hookd deliveries --object-id/--event/--event-id/--item-id/--since/--until`` list what GET /v1/deliveries
    finds, --since taking RFC 3339 or a duration back from now; a bad time is refused before any request."""
    d, records = await logged(make_config, app_factory, receiver)

    async def listed(*flags: str) -> list[str]:
        code, out, err = await run_hookd("deliveries", "--url", d.url, "--json", *flags)
        assert code == 0, err
        return [r["id"] for r in json.loads(out)]

    assert await listed("--object-id", "4242") == await search(d, object_id=4242)
    assert len(await listed("--object-id", "4242")) == 5
    assert await listed("--event", "client.updated") == await search(d, event="client.updated")
    assert await listed("--event-id", "s4", "--webhook", "tickets") == await search(d, event_id="s4", webhook="tickets")
    item = records[0]["item_ids"][0]
    assert await listed("--item-id", item) == [records[0]["id"]]
    assert await listed("--since", "2h") == [r["id"] for r in records]
    assert (
        await listed("--since", "1h", "--object-id", "C-17", "--limit", "1") == (await search(d, object_id="C-17"))[:1]
    )
    assert await listed("--until", "2h") == []
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert await listed("--since", tomorrow) == []
    assert await listed("--until", tomorrow, "--state", "failed") == await search(d, state="failed")
    code, out, _ = await run_hookd("deliveries", "--url", d.url, "--object-id", "C-17")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == await search(d, object_id="C-17")
    for bad in ("yesterday", "2h30m", "2026-11-29T07:00:00"):
        code, _, err = await run_hookd("deliveries", "--url", d.url, "--since", bad)
        assert code == 2, err
        assert "--since" in err
        assert "duration" in err
