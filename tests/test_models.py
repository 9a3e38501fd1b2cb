"""Ingested-event validation and id generation (SPEC §3)."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import orjson
import pytest

from hookd import validate as validation
from hookd.models import EventNames, IdFactory, Occurrence, format_timestamp, new_delivery
from hookd.validate import validate_events

NOW = "2026-11-29T07:00:00.000Z"


def event(**overrides: Any) -> dict[str, Any]:
    """A valid event; ``None`` values drop the key."""
    ev: dict[str, Any] = {
        "event": "ticket.status_changed",
        "object": {"id": 4242, "status": {"id": 9, "display": "Closed"}},
    }
    ev.update(overrides)
    return {k: v for k, v in ev.items() if v is not None}


def validate(data: Any, max_events: int = 1000) -> tuple[list[Occurrence], list[dict[str, Any]]]:
    """validate_events with a fresh id factory and a fixed ingest time."""
    return validate_events(data, IdFactory(), NOW, max_events)


def only_error(data: Any) -> dict[str, Any]:
    """The single error detail ``data`` produces."""
    occs, errors = validate(data)
    assert occs == []
    assert len(errors) == 1, errors
    return errors[0]


# -- shape of the body ----------------------------------------------------------------------


def test_one_object() -> None:
    """A single event object yields one occurrence carrying its fields."""
    ev = event(id="evt_1", action={"id": 17, "note": "n"}, linked={"client": {"id": 1, "name": "Acme"}})
    occs, errors = validate(ev)
    assert errors == []
    assert occs == [
        Occurrence(
            id="evt_1",
            event="ticket.status_changed",
            timestamp=NOW,
            object={"id": 4242, "status": {"id": 9, "display": "Closed"}},
            action={"id": 17, "note": "n"},
            linked={"client": {"id": 1, "name": "Acme"}},
            client_id=True,
        )
    ]


def test_array_in_order() -> None:
    """An array yields one occurrence per event, in request order."""
    occs, errors = validate([event(id=f"e{i}", event=f"ticket.e{i}") for i in range(5)])
    assert errors == []
    assert [o.id for o in occs] == ["e0", "e1", "e2", "e3", "e4"]
    assert [o.event for o in occs] == [f"ticket.e{i}" for i in range(5)]


def test_empty_array_refused() -> None:
    """An empty array is an error, not an accepted request of nothing."""
    err = only_error([])
    assert err["index"] is None
    assert "empty" in err["message"]


@pytest.mark.parametrize(("data", "kind"), [(5, "number"), ("x", "string"), (None, "null"), (True, "boolean")])
def test_non_object_body_refused(data: Any, kind: str) -> None:
    """A body that is neither an object nor an array is refused, naming what it got."""
    err = only_error(data)
    assert err["index"] is None
    assert kind in err["message"]


def test_non_object_array_element() -> None:
    """An array element that is not an object is an error at its index."""
    occs, errors = validate([event(), [1], event()])
    assert occs == []
    assert errors == [{"index": 1, "path": "", "message": "expected an object, got array"}]


def test_error_details_have_index_path_message() -> None:
    """Every detail has exactly index, path and message, one per problem, across events."""
    occs, errors = validate([event(), event(objects={}, event="Bad"), event(object=None, id="")])
    assert occs == []
    assert all(set(e) == {"index", "path", "message"} for e in errors)
    assert all(isinstance(e["message"], str) and e["message"] for e in errors)
    assert sorted((e["index"], e["path"]) for e in errors) == [
        (1, "event"), (1, "objects"), (2, "id"), (2, "object"),
    ]  # fmt: skip


def test_unknown_key_refused() -> None:
    """A key outside the six (a typo such as `objects`) is refused with its name as path."""
    err = only_error(event(objects={"id": 1}))
    assert err == {"index": 0, "path": "objects", "message": "unknown key"}


@pytest.mark.parametrize(("missing", "value"), [("event", None), ("object", None)])
def test_required_keys(missing: str, value: Any) -> None:
    """`event` and `object` are required."""
    err = only_error(event(**{missing: value}))
    assert err == {"index": 0, "path": missing, "message": "required"}


@pytest.mark.parametrize("obj", [[], "x", 1, True])
def test_object_must_be_object(obj: Any) -> None:
    """`object` must be a JSON object."""
    err = only_error(event(object=obj))
    assert err["path"] == "object"
    assert err["message"].startswith("expected an object")


def test_action_and_linked_must_be_objects() -> None:
    """`action` must be an object and `linked` an object of objects."""
    assert only_error(event(action=[1]))["path"] == "action"
    assert only_error(event(linked="x"))["path"] == "linked"
    assert only_error(event(linked={"client": {"id": 1}, "site": 3}))["path"] == "linked.site"


# -- event name -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ticket", "ticket.created", "ticket.status_changed", "a1.b_2.c", "action.added"])
def test_event_name_accepted(name: str) -> None:
    """Dotted lower-case names are accepted."""
    occs, errors = validate(event(event=name))
    assert errors == []
    assert occs[0].event == name


@pytest.mark.parametrize(
    "name",
    ["Ticket.created", "ticket.Created", "ticket..created", ".ticket", "ticket.", "1ticket", "ticket.1x",
     "ticket-created", "ticket created", "ticket.*", "", "_ticket", "tické"],
)  # fmt: skip
def test_event_name_refused(name: str) -> None:
    """Names outside ^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*$ are refused at path `event`."""
    err = only_error(event(event=name))
    assert err["path"] == "event"
    assert err["index"] == 0


def test_event_name_must_be_string() -> None:
    """A non-string event name is refused."""
    err = only_error(event(event=5))
    assert err["path"] == "event"
    assert "string" in err["message"]


# -- ids ------------------------------------------------------------------------------------


def test_id_up_to_128_chars() -> None:
    """An id of 128 characters is accepted and kept as the occurrence id."""
    occs, errors = validate(event(id="x" * 128))
    assert errors == []
    assert occs[0].id == "x" * 128
    assert occs[0].client_id is True


@pytest.mark.parametrize("bad", ["x" * 129, "", 5, ["a"]])
def test_id_refused(bad: Any) -> None:
    """An id longer than 128 characters, empty, or not a string is refused."""
    err = only_error(event(id=bad))
    assert err["path"] == "id"


def test_generated_ids_unique_and_marked() -> None:
    """Events without an id get distinct generated ids and are not idempotency keys."""
    occs, errors = validate([event(), event(), event()])
    assert errors == []
    assert len({o.id for o in occs}) == 3
    assert all(o.id.startswith("evt_") for o in occs)
    assert not any(o.client_id for o in occs)


# -- occurred_at ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2026-11-29T07:00:00Z", "2026-11-29T07:00:00.000Z"),
        ("2026-11-29T07:00:00.5Z", "2026-11-29T07:00:00.500Z"),
        ("2026-11-29T07:00:00.123456Z", "2026-11-29T07:00:00.123Z"),
        ("2026-11-29T07:00:00.999999Z", "2026-11-29T07:00:00.999Z"),
        ("2026-11-29T08:30:00+01:30", "2026-11-29T07:00:00.000Z"),
        ("2026-11-29T02:00:00.250-05:00", "2026-11-29T07:00:00.250Z"),
        ("2026-11-29T00:30:00-07:00", "2026-11-29T07:30:00.000Z"),
        ("2026-11-30T01:00:00+02:00", "2026-11-29T23:00:00.000Z"),
        ("2026-11-29T07:00:00+00:00", "2026-11-29T07:00:00.000Z"),
    ],
)
def test_occurred_at_normalised(given: str, stored: str) -> None:
    """occurred_at (RFC 3339) is stored in UTC with milliseconds and a Z."""
    occs, errors = validate(event(occurred_at=given))
    assert errors == []
    assert occs[0].timestamp == stored


def test_occurred_at_defaults_to_ingest_time() -> None:
    """Without occurred_at the timestamp is the ingest time given by the caller."""
    occs, _ = validate(event())
    assert occs[0].timestamp == NOW


def test_naive_datetime_refused() -> None:
    """A date-time without a UTC offset is refused, saying an offset is needed."""
    err = only_error(event(occurred_at="2026-11-29T07:00:00"))
    assert err["path"] == "occurred_at"
    assert "UTC offset" in err["message"]


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01T00:00:00Z", "2026-11-29T25:00:00Z", "", 1764399600])
def test_bad_occurred_at_refused(bad: Any) -> None:
    """occurred_at that is not an RFC 3339 string is refused at its path."""
    err = only_error(event(occurred_at=bad))
    assert err["path"] == "occurred_at"


def test_format_timestamp() -> None:
    """Unix seconds format as UTC with milliseconds and a Z."""
    assert format_timestamp(1_764_399_600.0) == "2025-11-29T07:00:00.000Z"
    assert format_timestamp(1_764_399_600.25) == "2025-11-29T07:00:00.250Z"
    assert format_timestamp(0) == "1970-01-01T00:00:00.000Z"


# -- all-or-nothing -------------------------------------------------------------------------


def test_all_or_nothing() -> None:
    """One bad event in an array means no occurrences at all, and only its error."""
    batch = [event(id="a"), event(id="b"), event(id="c", event="Bad"), event(id="d")]
    occs, errors = validate(batch)
    assert occs == []
    assert errors == [
        {"index": 2, "path": "event", "message": "must be a dotted lower-case name such as ticket.created"}
    ]


def test_max_events_guard() -> None:
    """More events than max_events are refused as a whole."""
    occs, errors = validate([event() for _ in range(3)], max_events=2)
    assert occs == []
    assert len(errors) == 1
    assert "too many" in errors[0]["message"]
    occs, errors = validate([event() for _ in range(2)], max_events=2)
    assert len(occs) == 2
    assert errors == []


# -- fast path and full check ---------------------------------------------------------------
# validate_events vouches for a well-formed event with a few lookups and sends anything else
# to the full check. Each case runs with the event name unknown (the full check) and known
# (the fast path, where the event allows it); both must give exactly the expected result.

NAME = "ticket.created"
DOTTED = "must be a dotted lower-case name such as ticket.created"
ID_MSG = "must be a string of 1 to 128 characters"


def err(index: int | None, path: str, message: str) -> dict[str, Any]:
    """One error detail."""
    return {"index": index, "path": path, "message": message}


def occ(
    id: str, obj: dict[str, Any], action: Any = None, linked: Any = None, ts: str = NOW, client_id: bool = True
) -> Occurrence:
    """An expected occurrence of event NAME."""
    return Occurrence(id=id, event=NAME, timestamp=ts, object=obj, action=action, linked=linked, client_id=client_id)


VALID: list[tuple[Any, list[Occurrence]]] = [
    # The common shape: id, event, object, action.
    ({"id": "e1", "event": NAME, "object": {"id": 1}, "action": {"note": "n"}}, [occ("e1", {"id": 1}, {"note": "n"})]),
    ({"event": NAME, "object": {}}, [occ("evt_p1", {}, client_id=False)]),
    ({"id": "x" * 128, "event": NAME, "object": {}}, [occ("x" * 128, {})]),
    # Optional keys present but null count as absent.
    (
        {"id": None, "event": NAME, "object": {}, "action": None, "linked": None, "occurred_at": None},
        [occ("evt_p1", {}, client_id=False)],
    ),
    (
        {"id": "e2", "event": NAME, "object": {"id": 2}, "action": {}, "linked": {"client": {"id": 3}},
         "occurred_at": "2026-11-29T08:00:00.5+01:00"},
        [occ("e2", {"id": 2}, {}, {"client": {"id": 3}}, ts="2026-11-29T07:00:00.500Z")],
    ),
    ({"event": NAME, "object": {}, "linked": {}}, [occ("evt_p1", {}, linked={}, client_id=False)]),
    (
        [{"event": NAME, "object": {"id": 1}}, {"id": "e3", "event": NAME, "object": {"id": 2}}],
        [occ("evt_p1", {"id": 1}, client_id=False), occ("e3", {"id": 2})],
    ),
]  # fmt: skip

INVALID: list[tuple[Any, list[dict[str, Any]]]] = [
    ({"event": NAME, "object": {}, "bogus": 1}, [err(0, "bogus", "unknown key")]),
    # Key counts that add up as if `event` or `object` were there.
    ({"id": "e1", "object": {}, "bogus": 1}, [err(0, "bogus", "unknown key"), err(0, "event", "required")]),
    ({"event": NAME, "action": {}, "objekt": {}}, [err(0, "objekt", "unknown key"), err(0, "object", "required")]),
    ({"id": "e1", "event": NAME, "object": {}, "actions": {}}, [err(0, "actions", "unknown key")]),
    ({"event": NAME, "object": {}, "id": ""}, [err(0, "id", ID_MSG)]),
    ({"event": NAME, "object": {}, "id": "x" * 129}, [err(0, "id", ID_MSG)]),
    ({"event": NAME, "object": {}, "id": 5}, [err(0, "id", ID_MSG)]),
    ({"event": NAME, "object": {}, "action": [1]}, [err(0, "action", "expected an object, got array")]),
    ({"event": NAME, "object": {}, "linked": "x"}, [err(0, "linked", "expected an object, got string")]),
    (
        {"event": NAME, "object": {}, "linked": {"a": {}, "b": 1}},
        [err(0, "linked.b", "expected an object, got number")],
    ),
    (
        {"event": NAME, "object": {}, "occurred_at": 5},
        [err(0, "occurred_at", "expected an RFC 3339 string, got number")],
    ),
    ({"event": NAME, "object": {}, "occurred_at": "yesterday"}, [err(0, "occurred_at", "not an RFC 3339 date-time")]),
    (
        {"event": NAME, "object": {}, "occurred_at": "2026-11-29T07:00:00"},
        [err(0, "occurred_at", "needs a UTC offset (RFC 3339), e.g. 2026-11-29T07:00:00Z")],
    ),
    ({"event": "Ticket.created", "object": {}}, [err(0, "event", DOTTED)]),
    ({"event": "a" * 201, "object": {}}, [err(0, "event", DOTTED)]),
    ({"event": NAME + "\n", "object": {}}, [err(0, "event", DOTTED)]),  # `$` alone would let this through
    ({"event": [NAME], "object": {}}, [err(0, "event", "expected a string, got array")]),
    ({"event": {}, "object": {}}, [err(0, "event", "expected a string, got object")]),
    ({"event": NAME}, [err(0, "object", "required")]),
    ({"event": NAME, "object": []}, [err(0, "object", "expected an object, got array")]),
    # Every problem of one event, in the order the checks make them.
    (
        {"objects": {}, "event": "Bad", "id": "", "occurred_at": "x", "linked": 1, "action": 2},
        [err(0, "objects", "unknown key"), err(0, "event", DOTTED), err(0, "object", "required"),
         err(0, "action", "expected an object, got number"), err(0, "linked", "expected an object, got number"),
         err(0, "id", ID_MSG), err(0, "occurred_at", "not an RFC 3339 date-time")],
    ),
    # Errors across an array, in index order; the valid events around them add nothing.
    (
        [{"event": NAME, "object": {}}, 5, {"event": "Bad", "object": {}, "id": ""}, {"event": NAME, "object": {}}],
        [err(1, "", "expected an object, got number"), err(2, "event", DOTTED), err(2, "id", ID_MSG)],
    ),
]  # fmt: skip


def predictable_ids(name_known: bool) -> IdFactory:
    """A factory generating evt_p1, evt_p2, …; ``name_known``: NAME is already in its name cache."""
    ids = IdFactory()
    ids._prefix = "p"
    if name_known:
        assert ids.event_names.valid(NAME)
    return ids


@pytest.mark.parametrize("name_known", [False, True], ids=["full-check", "fast-path"])
@pytest.mark.parametrize(("data", "expected"), VALID)
def test_valid_events_both_paths(data: Any, expected: list[Occurrence], name_known: bool) -> None:
    """A valid event gives the same occurrence whichever path checks it."""
    assert validate_events(data, predictable_ids(name_known), NOW, 1000) == (expected, [])


@pytest.mark.parametrize("name_known", [False, True], ids=["full-check", "fast-path"])
@pytest.mark.parametrize(("data", "expected"), INVALID)
def test_invalid_events_both_paths(data: Any, expected: list[dict[str, Any]], name_known: bool) -> None:
    """An invalid event gives the same error details, in the same order, whether or not its name is known."""
    assert validate_events(data, predictable_ids(name_known), NOW, 1000) == ([], expected)


@pytest.mark.parametrize(("data", "expected"), VALID)
def test_valid_events_skip_the_full_check(data: Any, expected: list[Occurrence], monkeypatch: Any) -> None:
    """With the name known, valid events of every shape are accepted without the full check."""

    def full_check(*args: Any) -> None:
        raise AssertionError("the full check ran")

    monkeypatch.setattr(validation, "_check_event", full_check)
    assert validate_events(data, predictable_ids(True), NOW, 1000) == (expected, [])


def test_full_check_learns_the_name() -> None:
    """A valid name seen once is known afterwards; an invalid one never is."""
    ids = IdFactory()
    validate_events([{"event": NAME, "object": {}}, {"event": "Bad", "object": {}}], ids, NOW, 1000)
    assert ids.event_names.known == {NAME}


def test_event_names_bounded() -> None:
    """The name cache never holds more than its limit, and still answers correctly past it."""
    names = EventNames(limit=3)
    for n in range(10):
        assert names.valid(f"ticket.e{n}")
        assert len(names.known) <= 3
    assert names.valid("ticket.e0")  # forgotten, then learnt again
    assert not names.valid("Ticket.created")
    assert not names.valid("a" * 201)  # well-formed but too long
    assert "Ticket.created" not in names.known
    assert "a" * 201 not in names.known


def test_event_names_bounded_under_hostile_input() -> None:
    """Endless distinct valid names keep a factory's cache at 10,000 entries."""
    ids = IdFactory()
    for start in range(0, 10_500, 1000):
        batch = [{"event": f"e{n}", "object": {}} for n in range(start, start + 1000)]
        occs, errors = validate_events(batch, ids, NOW, 1000)
        assert errors == []
        assert [o.event for o in occs] == [f"e{n}" for n in range(start, start + 1000)]
        assert len(ids.event_names.known) <= 10_000


# -- IdFactory ------------------------------------------------------------------------------


def test_uuid_shape() -> None:
    """IdFactory.uuid() gives canonical version-7, RFC 4122-variant UUID text."""
    ids = IdFactory()
    for _ in range(100):
        text = ids.uuid()
        u = uuid.UUID(text)
        assert u.version == 7
        assert u.variant == uuid.RFC_4122
        assert str(u) == text


def test_uuid_unique_within_and_across_factories() -> None:
    """uuid() and make() never repeat, within one factory or across factories (processes)."""
    a, b = IdFactory(), IdFactory()
    got = [a.uuid() for _ in range(20_000)] + [b.uuid() for _ in range(20_000)]
    assert len(set(got)) == len(got)
    made = [a.make("dlv") for _ in range(5000)] + [b.make("dlv") for _ in range(5000)]
    assert len(set(made)) == len(made)
    assert all(m.startswith("dlv_") for m in made)


def test_uuid_at_the_end_of_a_milliseconds_counter() -> None:
    """The last ids a millisecond's counter holds, and the ids after it (the next millisecond), stay well-formed,
    distinct and ordered."""
    ids = IdFactory(clock_ns=lambda: 10**18)
    ids.uuid()
    ids._counter = (1 << IdFactory._COUNTER_BITS) - 3
    got = [ids.uuid() for _ in range(6)]
    assert len(set(got)) == 6
    assert got == sorted(got)
    assert [uuid.UUID(t).int >> 80 for t in got] == [10**18 // 1_000_000] * 2 + [10**18 // 1_000_000 + 1] * 4
    for text in got:
        u = uuid.UUID(text)
        assert (u.version, u.variant, str(u)) == (7, uuid.RFC_4122, text)


def test_uuid_random_bits_change_each_millisecond() -> None:
    """Each millisecond draws new random bits (rand_a and rand_b), so ids of two processes in the same millisecond
    do not follow one pattern; within a millisecond only the low bits count up."""
    now = [10**18]
    ids = IdFactory(clock_ns=lambda: now[0])
    first = [uuid.UUID(ids.uuid()).int for _ in range(3)]
    assert [x - first[0] for x in first] == [0, 1, 2]
    now[0] += 1_000_000
    second = uuid.UUID(ids.uuid()).int

    def drawn(x: int) -> tuple[int, int]:  # rand_a, and rand_b's 14 bits above the counter
        return x >> 64 & 0xFFF, x >> 48 & 0x3FFF

    assert drawn(second) != drawn(first[0])  # equal by chance once in 2^26


def test_a_requests_id_source_reads_the_clock_once_and_keeps_ids_increasing() -> None:
    """uuids() reads the clock when made: its ids carry that millisecond while the clock moves on, and ids of
    sources and uuid() calls interleaved strictly increase in the order made."""
    now = [10**18]
    reads = []

    def clock() -> int:
        reads.append(now[0])
        return now[0]

    ids = IdFactory(clock_ns=clock)
    first = ids.uuids()
    now[0] += 5_000_000
    made = [first() for _ in range(3)]
    assert len(reads) == 1
    assert {uuid.UUID(t).int >> 80 for t in made} == {10**18 // 1_000_000}
    second = ids.uuids()
    made += [second(), first(), ids.uuid(), second()]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert uuid.UUID(made[-1]).int >> 80 == 10**18 // 1_000_000 + 5


def test_item_ids_are_uuid7_carrying_the_clock_time() -> None:
    """Item ids are RFC 9562 version-7 UUIDs whose first 48 bits are the creation time in ms."""
    now = [1_764_000_000_123_456_789]
    ids = IdFactory(clock_ns=lambda: now[0])
    u = uuid.UUID(ids.uuid())
    assert u.version == 7
    assert u.variant == uuid.RFC_4122
    assert u.int >> 80 == 1_764_000_000_123


def test_item_ids_increase_within_a_millisecond_and_across_a_clock_step_back() -> None:
    """Ids sort in creation order: a burst in one millisecond counts up, and a clock that steps back never reorders."""
    now = [1_764_000_000_000_000_000]
    ids = IdFactory(clock_ns=lambda: now[0])
    made = [ids.uuid() for _ in range(1000)]
    now[0] += 5_000_000
    made += [ids.uuid() for _ in range(10)]
    now[0] -= 60_000_000_000  # NTP steps the clock back a minute
    made += [ids.uuid() for _ in range(10)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_item_ids_of_two_processes_differ() -> None:
    """Two factories reading the same clock still give different ids."""
    a, b = IdFactory(clock_ns=lambda: 10**18), IdFactory(clock_ns=lambda: 10**18)
    assert {a.uuid() for _ in range(100)}.isdisjoint({b.uuid() for _ in range(100)})


def test_item_id_counter_overflow_borrows_the_next_millisecond() -> None:
    """When a millisecond's counter runs out, ids move on to the next millisecond instead of wrapping."""
    ids = IdFactory(clock_ns=lambda: 10**18)
    first = ids.uuid()
    ids._counter = (1 << IdFactory._COUNTER_BITS) - 1
    after = ids.uuid()
    assert after > first
    assert uuid.UUID(after).int >> 80 == 10**18 // 1_000_000 + 1


# -- numbers a 64-bit integer or a double cannot hold ------------------------------------------

INEXACT = [
    (b'{"object": {"id": 18446744073709551616}}', [(0, "object.id")]),
    (b'{"object": {"id": -9223372036854775809}}', [(0, "object.id")]),
    (b'{"object": {"a": [0, 1e-400]}}', [(0, "object.a[1]")]),
    (b'{"object": {"a": 1E+400}}', [(0, "object.a")]),
    (b'[{"object": {}}, {"object": {"x": {"y": -1e-9999}}, "action": {"n": 99999999999999999999}}]',
     [(1, "object.x.y"), (1, "action.n")]),
    (b'{"object": {"a": 1.5E-0400, "b": 0.' + b"0" * 330 + b'1}}', [(0, "object.a"), (0, "object.b")]),
    (b"1e400", [(None, "")]),
    (b"[1e400]", [(0, "")]),
]  # fmt: skip
EXACT = [
    b'{"object": {"id": 18446744073709551615, "m": -9223372036854775808}}',
    b'{"object": {"ns": 1700000000000000000, "f": 1.7976931348623157e308, "sub": 5e-324, "z": 0e-999}}',
    b'{"object": {"s": "18446744073709551616 1e-400", "18446744073709551616": "1e400"}}',
    b'{"object": {"s": "a\\"123456789012345678901 1e-999"}}',
    b'{"object": {"f": 0.1, "g": 12345678.123456789}}',
    b'{"object": ',  # not JSON: the caller's parser words that
]


@pytest.mark.parametrize(("raw", "where"), INEXACT)
def test_inexact_numbers_named(raw: bytes, where: list[tuple[int | None, str]]) -> None:
    """A number that would not survive a 64-bit integer or a double is named by event index and path."""
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        refused = True  # an infinity: orjson says no, and ingest asks again
    else:
        refused = False
    found = validation.inexact_numbers(raw, orjson_refused=refused)
    assert [(d["index"], d["path"]) for d in found] == where
    assert all("send it as a string" in d["message"] for d in found)


@pytest.mark.parametrize("raw", EXACT)
def test_exact_numbers_pass(raw: bytes) -> None:
    """Numbers a 64-bit integer or a double holds, and digits inside strings, are not reported."""
    assert validation.inexact_numbers(raw) == []
    assert validation.inexact_numbers(raw, orjson_refused=True) == []


def test_common_bodies_skip_the_exact_check() -> None:
    """The byte screen sends a body without long digit runs or three-digit negative exponents past the exact check
    (dates, negative and decimal numbers, words with "e-" included), and every silently changed number into it."""
    common = orjson.dumps([
        {"id": f"evt-{i}", "event": "ticket.updated", "occurred_at": "2026-11-29T07:00:00.123+01:00",
         "object": {"id": i, "n": -12345678901234567, "f": 1.5e-99, "g": -0.25, "s": "one-off e-mail E-100"}}
        for i in range(100)
    ])  # fmt: skip
    assert not validation._suspect(common)
    for raw, _ in INEXACT:
        with contextlib.suppress(orjson.JSONDecodeError):  # an infinity: orjson refuses it, no screen needed
            orjson.loads(raw)
            assert validation._suspect(raw), raw


def test_new_delivery_and_resend() -> None:
    """A new delivery's id carries its sequence number and it gets a fresh message id; a resend keeps the message id
    it repeats and is marked manual."""
    ids = IdFactory()
    first = new_delivery(ids, 7, "w", b"[1]", ["i1"], ["ticket.created"], ["t"], 1.5)
    second = new_delivery(ids, 8, "w", b"[1]", ["i1"], ["ticket.created"], ["t"], 1.5)
    assert first.id.startswith("dlv_7_")
    assert first.seq == 7
    assert first.message_id.startswith("msg_")
    assert first.message_id != second.message_id
    assert (first.webhook_id, first.body, first.item_ids, first.created_at) == ("w", b"[1]", ["i1"], 1.5)
    assert (first.state, first.attempts, first.manual, first.resend_of) == ("pending", 0, False, None)
    again = new_delivery(ids, 9, "w", b"[1]", ["i1"], ["ticket.created"], ["t"], 2.0, first.message_id, first.id)
    assert again.id.startswith("dlv_9_")
    assert (again.message_id, again.manual, again.resend_of) == (first.message_id, True, first.id)
