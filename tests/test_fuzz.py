"""Property-based tests: hostile input at the ingest endpoint of an in-process App, and at
the config parser. Neither may answer with anything but its documented outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import tomli_w
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hookd.app import App
from hookd.config import OPERATORS, Config, ConfigError
from tests.support import SECRET, Receiver

ERROR_STATUSES = {400, 413, 415, 422}
# Hypothesis cannot drive an async test itself, so it runs in a worker thread while the
# App serves on the test's loop (see ``drive``); all examples share one App and one
# ClientSession, which keeps a few hundred examples to a few seconds.
FAST = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- strategies: JSON and event-shaped values ---------------------------------------------


def deep(levels: int) -> dict[str, Any]:
    """An object nested ``levels`` deep."""
    out: dict[str, Any] = {"leaf": True}
    for _ in range(levels):
        out = {"a": out}
    return out


TEXT = st.text(st.characters(codec="utf-8"), max_size=20)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=16
)
OFFSETS = st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59))
TIMESTAMPS = (
    st.datetimes(timezones=st.builds(timezone, OFFSETS)).map(datetime.isoformat)
    | st.datetimes().map(lambda d: d.isoformat() + "Z")
    | st.datetimes().map(datetime.isoformat)
    # The ends of the calendar, where a zone offset can push the UTC time out of range.
    | st.builds(
        lambda d, off: d.replace(tzinfo=timezone(off)).isoformat(),
        st.sampled_from([datetime.min, datetime.max]),
        OFFSETS,
    )
    | TEXT
    | JSON
)
EVENT_NAMES = (
    st.sampled_from(["ticket.created", "ticket.status_changed", "action.added", "client.updated"])
    | st.from_regex(r"[a-z][a-z0-9_]{0,8}(\.[a-z][a-z0-9_]{0,8}){0,3}", fullmatch=True)
    | TEXT
    | JSON
)
SELECT = st.fixed_dictionaries(
    {"id": st.integers(0, 20) | TEXT, "display": st.sampled_from(["Closed", "Open", "P1", "P2"]) | TEXT}
)
FIELD_NAMES = st.sampled_from(["id", "status", "priority", "summary", "tags", "name"]) | TEXT
# Deep nesting sits around the JSON encoder's 254-level limit.
OBJECTS = st.dictionaries(FIELD_NAMES, JSON | SELECT, max_size=6) | st.integers(240, 300).map(deep)
EVENTS = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(st.characters(codec="utf-8"), max_size=130) | JSON,
        "event": EVENT_NAMES,
        "occurred_at": TIMESTAMPS,
        "object": OBJECTS | JSON,
        "action": OBJECTS | JSON,
        "linked": st.dictionaries(TEXT, OBJECTS | JSON, max_size=3) | JSON,
        "objects": JSON,  # the typo the schema must catch
    },
)
CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded"]
)


# -- the in-process App ---------------------------------------------------------------------


def app_config(tmp_path: Path, url: str) -> Config:
    """A config with webhooks of every shape, so valid events are routed, shaped and batched."""
    closed = [
        {"field": "object.status", "op": "eq", "value": "Closed"},
        {"field": "object.priority", "op": "gt", "value": 2},
        {"field": "object.summary", "op": "matches", "value": "fi(re|le)"},
        {"field": "object.tags", "op": "contains", "value": "vip"},
        {"field": "linked.client.name", "op": "starts_with", "value": "Ac"},
    ]
    data = {
        "server": {"listen": "127.0.0.1:0", "max_body_bytes": 65536, "max_events_per_request": 20,
                   "shutdown_grace_seconds": 1},
        "storage": {"path": str(tmp_path / "fuzz.db")},
        "delivery": {"retry_schedule": [], "timeout_seconds": 2},
        "webhooks": [
            {"id": "all", "url": url + "/all", "secret": SECRET, "events": [{"id": "t", "on": "*"}]},
            {"id": "cond", "url": url + "/cond", "batching": "same_event_type", "batch_wait_seconds": 0.2,
             "events": [{"id": "c", "on": "ticket.*", "match": "any", "conditions": closed}]},
            {"id": "custom", "url": url + "/custom", "payload": "custom", "key_fields": [],
             "fields": [{"key": "status", "source": "object.status"},
                        {"key": "client", "source": "linked.client.name", "send_id": True}],
             "events": [{"id": "x", "on": "*"}]},
            {"id": "get", "url": url + "/get", "method": "GET", "payload": "event_only",
             "events": [{"id": "g", "on": "client.*"}]},
            {"id": "linked", "url": url + "/linked", "payload": "object_with_linked", "key_fields": ["id", "status"],
             "events": [{"id": "l", "on": "action.added"}]},
        ],
    }  # fmt: skip
    return Config.parse(tomli_w.dumps(data).encode(), tmp_path / "x.toml")


@contextlib.asynccontextmanager
async def running_app(tmp_path: Path, receiver: Receiver) -> AsyncIterator[str]:
    """Serve an App on a free port for the duration; yield its base URL."""
    app = App(app_config(tmp_path, receiver.url))
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(app.serve(stop))
    ready = asyncio.get_running_loop().create_task(app.ready.wait())
    await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    assert app.ready.is_set(), task.exception() if task.done() else "App did not start in time"
    try:
        yield f"http://127.0.0.1:{app.port}"
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)


Poster = Callable[[bytes, str], tuple[int, bytes]]


async def drive(base: str, examples: Callable[[Poster], None]) -> None:
    """Run the hypothesis test ``examples`` in a thread; its ``post`` goes through this loop's one session."""
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:

        async def send(body: bytes, content_type: str) -> tuple[int, bytes]:
            async with session.post(base + "/v1/events", data=body, headers={"Content-Type": content_type}) as r:
                return r.status, await r.read()

        def post(body: bytes, content_type: str) -> tuple[int, bytes]:
            return asyncio.run_coroutine_threadsafe(send(body, content_type), loop).result(timeout=30)

        await asyncio.to_thread(examples, post)
        async with session.get(base + "/healthz") as r:
            assert r.status == 200, await r.text()


def check_answer(status: int, raw: bytes, sent: Any = None) -> None:
    """A 202 with the documented fields, or a documented 4xx with the documented error body."""
    assert status < 500, raw[:500]
    body = json.loads(raw)
    if status == 202:
        assert set(body) == {"accepted", "duplicates", "items", "ids"}
        if sent is not None:
            n = len(sent) if isinstance(sent, list) else 1
            assert body["accepted"] == n == len(body["ids"])
            assert 0 <= body["duplicates"] <= n
        return
    assert status in ERROR_STATUSES, (status, raw[:500])
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"code", "message", "details"}
    assert isinstance(err["code"], str)
    assert err["code"]
    assert isinstance(err["message"], str)
    assert isinstance(err["details"], list)


async def test_ingest_survives_arbitrary_bytes(tmp_path: Path, receiver: Receiver) -> None:
    """Arbitrary bytes under any content type get a 202 or a documented 4xx, and the daemon stays healthy."""

    @FAST
    @given(body=st.binary(max_size=2000) | JSON.map(lambda v: json.dumps(v).encode()), ctype=CONTENT_TYPES)
    def examples(post: Poster, body: bytes, ctype: str) -> None:
        check_answer(*post(body, ctype))

    async with running_app(tmp_path, receiver) as base:
        await drive(base, examples)


async def test_ingest_survives_arbitrary_json(tmp_path: Path, receiver: Receiver) -> None:
    """Any JSON value posted as an event batch gets a 202 or a documented 4xx, and the daemon stays healthy."""

    @FAST
    @given(value=JSON)
    def examples(post: Poster, value: Any) -> None:
        check_answer(*post(json.dumps(value).encode(), "application/json"), value)

    async with running_app(tmp_path, receiver) as base:
        await drive(base, examples)


async def test_ingest_survives_event_shaped_garbage(tmp_path: Path, receiver: Receiver) -> None:
    """Objects shaped like events, with random types and values in every field, never get a 5xx."""

    @settings(FAST, max_examples=300)
    @given(value=EVENTS | st.lists(EVENTS, min_size=1, max_size=5))
    def examples(post: Poster, value: Any) -> None:
        check_answer(*post(json.dumps(value).encode(), "application/json"), value)

    async with running_app(tmp_path, receiver) as base:
        await drive(base, examples)


# name → (body, the detail path a 422 must name; None where another answer is expected)
EDGE_EVENTS: dict[str, tuple[Any, str | None]] = {
    "year-1-east-of-utc": (
        {"event": "ticket.created", "object": {"id": 1}, "occurred_at": "0001-01-01T00:00:00+01:00"},
        "occurred_at",
    ),
    "year-9999-west-of-utc": (
        {"event": "ticket.created", "object": {"id": 1}, "occurred_at": "9999-12-31T23:59:59-01:00"},
        "occurred_at",
    ),
    "object-nested-300-deep": ({"event": "ticket.created", "object": deep(300)}, "object"),
    "action-nested-300-deep": ({"event": "action.added", "object": {"id": 1}, "action": deep(300)}, "action"),
    "linked-nested-300-deep": ({"event": "action.added", "object": {"id": 1}, "linked": {"c": deep(300)}}, "linked.c"),
    "integer-beyond-64-bits": ({"event": "ticket.created", "object": {"id": 2**64}}, "object.id"),
    "event-name-10k": ({"event": "a" * 10_000, "object": {}}, "event"),
    "id-129-chars": ({"id": "x" * 129, "event": "ticket.created", "object": {}}, "id"),
    "empty-array": ([], None),
    "null": (None, None),
    "too-many-events": ([{"event": "ticket.created", "object": {}}] * 21, None),
}


async def test_ingest_edge_values_never_get_a_5xx(tmp_path: Path, receiver: Receiver) -> None:
    """Boundary values (calendar ends, deep nesting, huge numbers) get a 202 or a 4xx naming the bad field."""
    failures = []
    async with running_app(tmp_path, receiver) as base, aiohttp.ClientSession() as session:
        for name, (value, path) in EDGE_EVENTS.items():
            async with session.post(base + "/v1/events", data=json.dumps(value).encode(),
                                    headers={"Content-Type": "application/json"}) as r:  # fmt: skip
                status, raw = r.status, await r.read()
            try:
                check_answer(status, raw, value)
                if status == 422 and path is not None:
                    details = json.loads(raw)["error"]["details"]
                    # The detail names the offending field (or, for linked, the entry in it).
                    assert len(details) == 1
                    assert path == details[0]["path"] or path.startswith(details[0]["path"] + ".")
            except (AssertionError, ValueError) as exc:
                failures.append(f"{name}: {status} {raw[:160]!r} ({exc.__class__.__name__})")
        async with session.get(base + "/healthz") as r:
            assert r.status == 200
    assert not failures, "\n".join(failures)


# -- the config parser ------------------------------------------------------------------------


def parse_or_config_error(raw: bytes, path: Path) -> None:
    """``Config.parse`` returns a Config or raises ConfigError naming the file, nothing else."""
    try:
        config = Config.parse(raw, path)
    except ConfigError as exc:
        problem: ConfigError = exc
    else:
        assert isinstance(config, Config)
        return
    assert problem.problems
    assert all(isinstance(p, str) and p for p in problem.problems)
    assert str(problem).startswith(str(path))


KEYS = [
    "listen", "tokens", "max_body_bytes", "max_events_per_request", "shutdown_grace_seconds", "path",
    "durability", "retention_days", "timeout_seconds", "connect_timeout_seconds", "concurrency",
    "per_webhook_concurrency", "retry_schedule", "jitter", "retry_on", "max_response_bytes",
    "spool_after_seconds", "spool_poll_seconds", "id", "name", "url", "type", "method", "enabled", "auth",
    "headers", "secret", "lightweight_logs", "payload", "key_fields", "batching", "batch_wait_seconds",
    "max_items_per_batch", "ordered", "auto_disable_after", "on", "match", "conditions", "key", "source",
    "send_id", "field", "op", "value", "username", "password", "token",
]  # fmt: skip
VALUES = [
    '"x"', "0", "1", "-1", "0.05", "1e400", "nan", "inf", "true", "false", "[]", "[0.05, 0.1]", '["a", 1]',
    '"127.0.0.1:0"', '"0.0.0.0:80"', '"http://127.0.0.1:1/x"', '"ftp://x"', '"*"', '"ticket.*"', '"Ticket"',
    '{ type = "basic", username = "u", password = "p" }', '{ type = "bearer" }', '"env:HOOKD_FUZZ_UNSET"',
    '"file:no-such-file"', f'"{SECRET}"', '"whsec_AAAA"', '"any_event"', '"custom"', '"GET"', "1979-05-27",
    "07:32:00", "1979-05-27T07:32:00Z", '"""multi\nline"""', "{ a = { b = [1, { c = 2 }] } }",
]  # fmt: skip
HEADERS = [
    "[server]", "[storage]", "[delivery]", "[batching]", "[[webhooks]]", "[[webhooks.events]]",
    "[[webhooks.fields]]", "[webhooks.auth]", "[[webhooks.events.conditions]]", "[webhooks]", "",
]  # fmt: skip
TOMLISH_LINES = st.one_of(
    st.sampled_from(HEADERS),
    st.builds("{} = {}".format, st.sampled_from(KEYS) | TEXT, st.sampled_from(VALUES) | TEXT),
    TEXT,
)


@FAST
@given(raw=st.binary(max_size=500) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_config_parse_survives_arbitrary_bytes(tmp_path: Path, raw: bytes) -> None:
    """Arbitrary bytes either parse into a Config or raise ConfigError, never another exception."""
    parse_or_config_error(raw, tmp_path / "x.toml")


@settings(FAST, max_examples=400)
@given(lines=st.lists(TOMLISH_LINES, max_size=16))
def test_config_parse_survives_tomlish_text(tmp_path: Path, lines: list[str]) -> None:
    """Text made of config-like lines either parses into a Config or raises ConfigError, never another exception."""
    parse_or_config_error("\n".join(lines).encode("utf-8", "surrogatepass"), tmp_path / "x.toml")


TOML_SCALARS = (
    TEXT | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.booleans() | st.datetimes() | st.dates() | st.times()
)
TOML = st.recursive(
    TOML_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8
)


def table(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A table whose keys are each present or not, each value plausible or random."""
    return st.fixed_dictionaries({}, optional={k: v | TOML for k, v in fields.items()})


def pick(*values: Any) -> st.SearchStrategy[Any]:
    """One of ``values``."""
    return st.sampled_from(values)


SECONDS = st.floats() | st.integers(-5, 100_000)
CONDITION = table(
    {
        "field": pick("object.status", "action.note", "linked.client.name", "event", "objects.x", ""),
        "op": st.sampled_from([*OPERATORS, "like"]),
        "value": pick("Closed", 3, ["P1", "P2"], "^P[12]$", "(", "a{2,1}", "[z-a]", True),
    }
)
TRIGGER = table(
    {
        "id": pick("t", "closed", "-bad", "a" * 70),
        "on": pick("*", "ticket.*", "ticket.created", "Ticket", "ticket..x", "*.created"),
        "match": pick("all", "any", "some"),
        "conditions": st.lists(CONDITION, max_size=3),
    }
)
AUTH = table(
    {
        "type": pick("none", "basic", "bearer", "header", "oauth"),
        "username": pick("svc", ""),
        "password": pick("pw", "", "env:HOOKD_FUZZ_UNSET", "file:no-such-file", "file:"),
        "token": pick("tok", "env:PATH"),
        "name": pick("X-Api-Key", "bad header", ""),
        "value": pick("v", ""),
    }
)
WEBHOOK = table(
    {
        "id": pick("a", "b", "A", "-x", "a" * 70),
        "name": TEXT,
        "url": pick("http://127.0.0.1:1/x", "https://example.com/h", "ftp://x", "http://[::1", "http://h:99999/", "/x"),
        "type": pick("standard", "slack"),
        "method": pick("POST", "GET", "PUT", "PATCH", "DELETE"),
        "enabled": st.booleans(),
        "auth": AUTH,
        "headers": st.dictionaries(TEXT, TEXT, max_size=2),
        "secret": pick(SECRET, "whsec_AAAA", "nope", [SECRET, SECRET], []),
        "lightweight_logs": st.booleans(),
        "payload": pick("object", "object_with_linked", "event_only", "custom", "full"),
        "key_fields": st.lists(TEXT, max_size=2),
        "batching": pick("per_occurrence", "same_event", "same_event_type", "any_event", "hourly"),
        "batch_wait_seconds": SECONDS,
        "max_items_per_batch": st.integers(-1, 20_000),
        "per_webhook_concurrency": st.integers(-1, 100),
        "ordered": st.booleans(),
        "auto_disable_after": st.integers(-1, 10),
        "events": st.lists(TRIGGER, max_size=3),
        "fields": st.lists(
            table(
                {
                    "key": pick("status", "id", "", "x"),
                    "source": pick("object.status", "nope"),
                    "send_id": st.booleans(),
                }
            ),
            max_size=2,
        ),
    }
)
CONFIG = table(
    {
        "server": table(
            {
                "listen": pick("127.0.0.1:0", "0.0.0.0:8787", "[::1]:0", "localhost:99999", "x", ":80"),
                "tokens": st.lists(pick("t0k", "", "env:HOOKD_FUZZ_UNSET"), max_size=2),
                "max_body_bytes": st.integers(-1, 2**40),
                "max_events_per_request": st.integers(-1, 10_000),
                "shutdown_grace_seconds": SECONDS,
            }
        ),
        "storage": table(
            {
                "path": pick("var/h.db", ":memory:", "/nonexistent/dir/h.db", ""),
                "durability": pick("process", "machine", "memory", "disk"),
                "retention_days": SECONDS,
            }
        ),
        "delivery": table(
            {
                "timeout_seconds": SECONDS,
                "connect_timeout_seconds": SECONDS,
                "concurrency": st.integers(-1, 1000),
                "per_webhook_concurrency": st.integers(-1, 1000),
                "retry_schedule": st.lists(SECONDS, max_size=4),
                "jitter": SECONDS,
                "retry_on": pick("transient", "any_failure", "never"),
                "max_response_bytes": st.integers(-1, 2**20),
            }
        ),
        "batching": table({"spool_after_seconds": SECONDS, "spool_poll_seconds": SECONDS}),
        "webhooks": st.lists(WEBHOOK, max_size=3),
        "extra": TOML,
    }
)


@settings(FAST, max_examples=400)
@given(data=CONFIG)
def test_config_parse_survives_arbitrary_tables(tmp_path: Path, data: dict[str, Any]) -> None:
    """Config-shaped tables with plausible and random values either validate or raise ConfigError."""
    try:
        raw = tomli_w.dumps(data).encode()
    except (TypeError, ValueError):
        assume(False)  # not representable in TOML (e.g. a time with a zone): not a config file at all
        raise
    parse_or_config_error(raw, tmp_path / "x.toml")


CONDITION_TOML = (
    '[[webhooks]]\nid = "a"\nurl = "http://127.0.0.1:1/x"\n[[webhooks.events]]\nid = "t"\non = "*"\n'
    "conditions = [{{ field = 'object.summary', op = 'matches', value = '{}' }}]\n"
)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(("x = " + "[" * 3000 + "]" * 3000).encode(), id="array-nested-3000-deep"),
        pytest.param(("x = " + "{a = " * 3000 + "1" + " }" * 3000).encode(), id="inline-table-nested-3000-deep"),
        pytest.param(CONDITION_TOML.format("a{4294967296}").encode(), id="regex-repeat-too-large"),
        pytest.param(CONDITION_TOML.format("(" * 1200 + ")" * 1200).encode(), id="regex-nested-1200-groups"),
        pytest.param(CONDITION_TOML.format("(?P<x>a)(?P<x>b)").encode(), id="regex-duplicate-group"),
        pytest.param(b"[server]\nlisten = '127.0.0.1:0'\n" + b"\xff\xfe", id="not-utf8"),
        pytest.param(b'[[webhooks]]\nid = "a"\nsecret = "file:\x00"\n', id="nul-in-toml"),
        pytest.param(
            b'[[webhooks]]\nid = "a"\nurl = "http://x/"\nsecret = "file:a\\u0000b"\n'
            b'[[webhooks.events]]\nid = "t"\non = "*"\n',
            id="nul-in-secret-file-path",
        ),
    ],
)
def test_config_parse_edge_cases_raise_config_error(tmp_path: Path, raw: bytes) -> None:
    """Pathological but well-formed-looking files (deep nesting, hostile regexes, odd bytes) raise ConfigError."""
    parse_or_config_error(raw, tmp_path / "x.toml")
