"""The event catalogue (SPEC §11): ``[[event_types]]`` in the config, the trigger rule,
strict ingest, and GET /v1/event-types with what was seen, through a live App, a reload
and a real store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli_w

from hookd.catalogue import StrictTypes, config_problems, trigger_problems
from hookd.cli import main as hookd_main
from hookd.config import ApiWebhook, Config, ConfigError, EventType
from hookd.models import Occurrence
from tests.support import AppFactory, MakeConfig, Receiver, ev, refused_start, running_store, webhook

TICKET_SCHEMA = {
    "type": "object",
    "required": ["object"],
    "properties": {
        "object": {
            "type": "object",
            "required": ["id", "summary"],
            "properties": {"id": {"type": "integer"}, "summary": {"type": "string"}},
        }
    },
}
CATALOGUE = [
    {"name": "ticket.created", "description": "A ticket was logged", "schema": TICKET_SCHEMA},
    {"name": "ticket.status_changed", "description": "A ticket changed status"},
]


def write(tmp_path: Path, event_types: list[Any], webhooks: list[dict[str, Any]] | None = None, **server: Any) -> Path:
    """A config file with this catalogue and these webhooks."""
    data: dict[str, Any] = {"server": server, "storage": {"path": str(tmp_path / "hookd.db")}}
    data["event_types"] = event_types
    data["webhooks"] = webhooks if webhooks is not None else [webhook("a", "https://example.com/a", "ticket.*")]
    path = tmp_path / "hookd.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def problems(path: Path) -> list[str]:
    """The config errors of ``path``."""
    with pytest.raises(ConfigError) as info:
        Config.load(path)
    return info.value.problems


# -- the config ------------------------------------------------------------------------------


def test_catalogue_loads_with_compiled_schemas(tmp_path: Path) -> None:
    """[[event_types]] load in order; a schema is compiled once at load and judges whole events."""
    cfg = Config.load(write(tmp_path, CATALOGUE))
    created, changed = cfg.event_types
    assert (created.name, created.description, created.document) == ("ticket.created", "A ticket was logged",
                                                                       TICKET_SCHEMA)  # fmt: skip
    assert changed.schema_ is None
    assert created.schema_ is not None
    assert created.schema_.validator.is_valid(ev(1))
    assert not created.schema_.validator.is_valid({"event": "ticket.created", "object": {"id": "x"}})


@pytest.mark.parametrize(
    ("event_types", "expected"),
    [
        ([{"name": "ticket.created"}, {"name": "ticket.created"}],
         "event_types: duplicate event type 'ticket.created' (event_types[0] and event_types[1])"),
        ([{"name": "Ticket.Created"}], "event_types[0].name: 'Ticket.Created' is not an event type"),
        ([{"name": "ticket.*"}], "event_types[0].name: 'ticket.*' is not an event type"),
        ([{"name": "t", "schema": {"type": "objekt"}}], "event_types[0].schema: not a valid JSON Schema (at type)"),
        ([{"name": "t", "schema": {"required": "object"}}],
         "event_types[0].schema: not a valid JSON Schema (at required)"),
        ([{"name": "t", "schema": {"pattern": "("}}], "event_types[0].schema: not a valid JSON Schema (at pattern)"),
        ([{"name": "t", "schema": {"$ref": "#/$defs/missing"}}], "event_types[0].schema: not a valid JSON Schema"),
        ([{"name": "t", "schema": "object"}], "event_types[0].schema: should be a table"),
        ([{"name": "t", "scheme": {}}], "event_types[0].scheme: unknown key `scheme`; did you mean `schema`?"),
        ([{"description": "x"}], "event_types[0].name: required key is missing"),
    ],
    ids=["duplicate", "upper-case", "pattern", "bad-type", "bad-required", "bad-regex", "dangling-ref", "not-table",
         "typo", "no-name"],
)  # fmt: skip
def test_catalogue_errors(tmp_path: Path, event_types: list[Any], expected: str) -> None:
    """A name catalogued twice, a name that is not an event type and a schema that is not a valid JSON Schema are
    config errors naming their key."""
    found = problems(write(tmp_path, event_types, webhooks=[]))
    assert any(p.startswith(expected) for p in found), found


def test_remote_references_are_not_fetched(tmp_path: Path) -> None:
    """A $ref to another document is refused at load, never fetched (no network, no file read)."""
    secret = tmp_path / "secret.json"
    secret.write_text('{"type": "string"}')
    for ref in ("http://127.0.0.1:9/schema.json", secret.as_uri()):
        [found] = problems(write(tmp_path, [{"name": "t", "schema": {"$ref": ref}}], webhooks=[]))
        assert found.startswith("event_types[0].schema: not a valid JSON Schema"), found
        assert "is not fetched" in found


def test_trigger_matching_no_catalogued_type_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With a catalogue, a trigger whose `on` matches no catalogued type is refused, naming the trigger; hookd.*
    patterns, `*` and patterns that match one are fine."""
    triggers = [
        {"id": "a", "on": "ticket.created"},
        {"id": "b", "on": "ticket.craeted"},
        {"id": "c", "on": "ticket.*"},
        {"id": "d", "on": "*"},
        {"id": "e", "on": "hookd.*"},
        {"id": "f", "on": "hookd.delivery.failed"},
        {"id": "g", "on": "client.*"},
    ]
    hooks = [
        webhook("ok", "https://example.com/ok", "ticket.*"),
        webhook("x", "https://example.com/x", events=triggers),
    ]
    path = write(tmp_path, CATALOGUE, hooks)
    assert problems(path) == [
        "webhooks[1].events[1].on: 'ticket.craeted' matches no event type in the catalogue; "
        "did you mean 'ticket.created'?",
        "webhooks[1].events[6].on: 'client.*' matches no event type in the catalogue",
    ]
    assert hookd_main(["check", "-c", str(path)]) == 1
    assert "webhooks[1].events[1].on: 'ticket.craeted' matches no event type" in capsys.readouterr().err
    # An empty catalogue refuses nothing.
    assert Config.load(write(tmp_path, [], hooks)).event_types == ()


def test_trigger_rule_per_webhook() -> None:
    """The rule applies to one webhook (an API one too) with paths relative to it, and to a list with the file's."""
    catalogue = [EventType(name="ticket.created")]
    hook = ApiWebhook.model_validate(
        {"id": "api", "url": "https://example.com/", "events": [{"id": "a", "on": "*"}, {"id": "b", "on": "user.*"}]}
    )
    assert [tuple(p) for p in trigger_problems(hook, catalogue)] == [
        ("events[1].on", "'user.*' matches no event type in the catalogue")
    ]
    assert [p.path for p in config_problems([hook, hook], catalogue)] == ["webhooks[0].events[1].on",
                                                                          "webhooks[1].events[1].on"]  # fmt: skip
    assert trigger_problems(hook, []) == []


def test_shipped_catalogue_example_is_valid(tmp_path: Path) -> None:
    """The commented [[event_types]] example of etc/hookd.toml loads once uncommented, with the shipped webhook."""
    text = (Path(__file__).resolve().parent.parent / "etc" / "hookd.toml").read_text()
    lines = text.splitlines()
    start = lines.index("# [[event_types]]")
    for i in range(start, start + 4):
        lines[i] = lines[i].removeprefix("# ")
    path = tmp_path / "hookd.toml"
    path.write_text("\n".join(lines).replace('"../var/hookd.db"', f'"{tmp_path / "hookd.db"}"'))
    cfg = Config.load(path)
    assert [(t.name, t.document) for t in cfg.event_types] == [
        ("ticket.created", {"type": "object", "required": ["object"]})
    ]


async def test_run_refuses_a_trigger_outside_the_catalogue(make_config: MakeConfig) -> None:
    """`hookd run` does not start with a trigger that matches no catalogued type: config_invalid names it, exit 1."""
    config = make_config([webhook("a", "https://example.com/a", "ticket.craeted")], event_types=CATALOGUE)
    assert await refused_start(config) == [
        "webhooks[0].events[0].on: 'ticket.craeted' matches no event type in the catalogue; "
        "did you mean 'ticket.created'?"
    ]


def test_strict_needs_a_catalogue(tmp_path: Path) -> None:
    """server.strict_event_types without [[event_types]] would refuse every event: a config error."""
    assert problems(write(tmp_path, [], strict_event_types=True)) == [
        "server.strict_event_types: true needs [[event_types]]; it would refuse every event"
    ]


def test_check_lists_the_catalogue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``hookd check`` prints the catalogued types, whether each has a schema, and strict mode."""
    assert hookd_main(["check", "-c", str(write(tmp_path, CATALOGUE, strict_event_types=True))]) == 0
    out = capsys.readouterr().out
    assert "  event types 2 (strict: ingest refuses other types)\n" in out
    assert "    ticket.created               schema     A ticket was logged\n" in out
    assert "    ticket.status_changed        no schema  A ticket changed status\n" in out


def test_strict_check_details() -> None:
    """An unknown type gets one detail on `event`; a schema violation one per problem with its path."""
    strict = StrictTypes([EventType.model_validate(t) for t in CATALOGUE])
    good = ev(1)
    assert strict.check([good, {"event": "ticket.status_changed", "object": {}}]) == []
    bad = {"event": "ticket.created", "object": {"id": "4242", "summary": 7, "tags": [1]}}
    assert strict.check([good, {"event": "user.created", "object": {}}, bad]) == [
        {"index": 1, "path": "event", "message": "'user.created' is not in the event catalogue"},
        {"index": 2, "path": "object.id", "message": '"4242" is not of type "integer"'},
        {"index": 2, "path": "object.summary", "message": '7 is not of type "string"'},
    ]


# -- through a live App ----------------------------------------------------------------------


async def test_strict_ingest_refuses_unknown_types_and_schema_violations(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Strict ingest answers 422 with index and path for an unknown type or a schema violation, all or nothing."""
    config = make_config([webhook("a", receiver.url + "/a", "ticket.*")], server={"strict_event_types": True},
                         event_types=CATALOGUE)  # fmt: skip
    d = await app_factory(config)
    code, body = await d.send([ev(1), ev(2, "ticket.deleted")])
    assert code == 422, body
    assert body["error"]["code"] == "invalid_events"
    assert body["error"]["details"] == [
        {"index": 1, "path": "event", "message": "'ticket.deleted' is not in the event catalogue"}
    ]
    code, body = await d.send({"event": "ticket.created", "object": {"id": "7"}})
    assert code == 422, body
    assert body["error"]["details"] == [
        {"index": 0, "path": "object", "message": '"summary" is a required property'},
        {"index": 0, "path": "object.id", "message": '"7" is not of type "integer"'},
    ]
    code, body = await d.send([ev(3), ev(4, "ticket.status_changed")])
    assert code == 202, body
    await receiver.wait_for(2, "/a")
    assert sorted(r.json()["event_id"] for r in receiver.at("/a")) == ["e3", "e4"]  # the refused left no trace
    code, view = await d.request("GET", "/v1/event-types")
    assert code == 200
    assert {t["name"]: t["seen"]["count"] for t in view["event_types"]} == {"ticket.created": 1,
                                                                            "ticket.status_changed": 1}  # fmt: skip


async def test_lenient_ingest_takes_any_type(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """Without strict_event_types the catalogue refuses nothing at ingest: types outside it and events its schema
    would refuse are accepted."""
    d = await app_factory(make_config([webhook("a", receiver.url + "/a", "ticket.*")], event_types=CATALOGUE))
    code, body = await d.send([ev(1, "user.created"), {"event": "ticket.created", "object": {"id": "x"}}])
    assert code == 202, body
    assert body["items"] == 1
    await receiver.wait_for(1, "/a")


async def test_event_types_view_counts_what_was_ingested(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """GET /v1/event-types: the catalogue in order with seen counts (0 and null when never seen), then the types
    only seen; a duplicate event is not counted twice."""
    d = await app_factory(make_config([webhook("a", receiver.url + "/a")], event_types=CATALOGUE))
    assert await d.request("GET", "/v1/event-types") == (200, {"event_types": [
        {"name": "ticket.created", "description": "A ticket was logged", "schema": TICKET_SCHEMA,
         "seen": {"count": 0, "last_at": None}},
        {"name": "ticket.status_changed", "description": "A ticket changed status", "schema": None,
         "seen": {"count": 0, "last_at": None}},
    ]})  # fmt: skip
    assert (await d.send([ev(1), ev(2), ev(3, "user.created")]))[0] == 202
    assert (await d.send([ev(1), ev(4), {"event": "action.added", "object": {}}]))[0] == 202  # e1 repeats
    code, view = await d.request("GET", "/v1/event-types")
    assert code == 200
    got = {t["name"]: (t["description"], t["schema"], t["seen"]["count"]) for t in view["event_types"]}
    assert [t["name"] for t in view["event_types"]] == ["ticket.created", "ticket.status_changed", "action.added",
                                                        "user.created"]  # fmt: skip
    assert got["ticket.created"] == ("A ticket was logged", TICKET_SCHEMA, 3)
    assert got["ticket.status_changed"] == ("A ticket changed status", None, 0)
    assert got["user.created"] == ("", None, 1)
    assert got["action.added"] == ("", None, 1)
    assert view["event_types"][0]["seen"]["last_at"].endswith("Z")


async def test_reload_with_a_catalogue_change(
    receiver: Receiver, make_config: MakeConfig, app_factory: AppFactory
) -> None:
    """A reload puts a changed catalogue in force (view and strict ingest); one whose triggers would match no
    type is refused and the running catalogue stays."""
    hooks = [webhook("a", receiver.url + "/a", "ticket.*")]
    config = make_config(hooks, server={"strict_event_types": True}, event_types=CATALOGUE[:1])
    d = await app_factory(config)
    assert d.app is not None
    assert (await d.send(ev(1, "ticket.status_changed")))[0] == 422

    make_config(hooks, server={"strict_event_types": True}, event_types=CATALOGUE)
    assert await d.app.reload()
    assert (await d.send(ev(2, "ticket.status_changed")))[0] == 202
    _, view = await d.request("GET", "/v1/event-types")
    assert [t["name"] for t in view["event_types"]] == ["ticket.created", "ticket.status_changed"]

    make_config(hooks, server={"strict_event_types": True}, event_types=[{"name": "user.created"}])
    assert not await d.app.reload()
    failed = await d.wait_line("reload_failed")
    assert failed["errors"] == ["webhooks[0].events[0].on: 'ticket.*' matches no event type in the catalogue"]
    assert (await d.send(ev(3, "ticket.status_changed")))[0] == 202  # the old catalogue is still in force
    assert (await d.send(ev(4, "user.created")))[0] == 422


# -- the store -------------------------------------------------------------------------------


def occ(eid: str, event: str, client_id: bool = True) -> Occurrence:
    """An occurrence of ``event``."""
    return Occurrence(eid, event, "2026-01-01T00:00:00.000Z", {"id": 1}, None, None, client_id)


async def test_store_counts_by_hour_and_prunes_with_retention(tmp_path: Path) -> None:
    """Each request adds its types' counts to the hour's row; reads and pruning go by the last ingest time."""
    hour = 3600.0
    t0 = 1_000 * hour
    async with running_store(tmp_path / "hookd.db") as store:
        await store.ingest([occ("a", "x.y"), occ("b", "x.y"), occ("c", "x.z", client_id=False)], t0 + 10, [], [])
        await store.ingest([occ("a", "x.y"), occ("d", "x.y")], t0 + 20, [], [])  # "a" is a duplicate
        await store.ingest([occ("e", "x.y")], t0 + hour + 5, [], [])
        assert await store.seen_event_types(0) == {"x.y": (4, t0 + hour + 5), "x.z": (1, t0 + 10)}
        rows = await store.run(
            lambda c: c.execute("SELECT name, hour, count FROM event_types_seen ORDER BY 1, 2").fetchall()
        )
        assert rows == [("x.y", t0, 3), ("x.y", t0 + hour, 1), ("x.z", t0, 1)]
        # An hour whose last event is older than the cutoff goes; one that straddles it stays whole.
        assert await store.seen_event_types(t0 + 15) == {"x.y": (4, t0 + hour + 5)}
        await store.prune(t0 + 15, set())
        rows = await store.run(lambda c: c.execute("SELECT name, count FROM event_types_seen ORDER BY 1").fetchall())
        assert rows == [("x.y", 3), ("x.y", 1)]
        await store.prune(t0 + hour + 6, set())
        assert await store.seen_event_types(0) == {}
