"""Triggers and conditions (SPEC §1, §2): which webhooks an occurrence goes to, and why."""

from __future__ import annotations

from typing import Any

import pytest

from hookd.config import OPERATORS, Condition, Config, Trigger
from hookd.models import Occurrence
from hookd.patterns import pattern_matches
from hookd.router import Router, compile_condition, compile_trigger

STATUS = {"id": 9, "display": "Closed"}


def occ(
    event: str = "ticket.status_changed",
    obj: dict[str, Any] | None = None,
    action: dict[str, Any] | None = None,
    linked: dict[str, Any] | None = None,
) -> Occurrence:
    """An occurrence as validate_events would build it."""
    if obj is None:
        obj = {
            "id": 4242,
            "summary": "Printer on fire",
            "status": dict(STATUS),
            "priority": "P1",
            "tags": ["printer", "urgent"],
            "count": 3,
            "score": 2.5,
            "flag": True,
            "off": False,
            "one": 1,
            "zero": 0,
            "nothing": None,
        }
    return Occurrence("evt_1", event, "2026-11-29T07:00:00.000Z", obj, action, linked, client_id=True)


def cond(field: str, op: str, value: Any = None) -> Condition:
    """A validated condition."""
    data: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        data["value"] = value
    return Condition.model_validate(data)


def check(field: str, op: str, value: Any = None, o: Occurrence | None = None) -> bool:
    """Evaluate one condition against ``o`` (the default occurrence when None)."""
    return compile_condition(cond(field, op, value))(o if o is not None else occ())


def config(*webhooks: dict[str, Any]) -> Config:
    """A validated config holding ``webhooks``."""
    return Config.model_validate({"webhooks": list(webhooks)})


def wh(id: str, *triggers: dict[str, Any], **settings: Any) -> dict[str, Any]:
    """A webhook table with the given triggers."""
    return {"id": id, "url": f"https://example.com/{id}", "events": list(triggers), **settings}


# -- operators ----------------------------------------------------------------------------

OPERATOR_CASES = [
    # (op, field, value, expected)
    ("eq", "object.priority", "P1", True),
    ("eq", "object.priority", "P2", False),
    ("eq", "object.count", 3, True),
    ("eq", "object.count", 3.0, True),
    ("eq", "object.count", "3", False),
    ("ne", "object.priority", "P2", True),
    ("ne", "object.priority", "P1", False),
    ("in", "object.priority", ["P1", "P2"], True),
    ("in", "object.priority", ["P3", "P4"], False),
    ("in", "object.priority", [], False),
    ("not_in", "object.priority", ["P3", "P4"], True),
    ("not_in", "object.priority", ["P1", "P2"], False),
    ("contains", "object.summary", "on fi", True),
    ("contains", "object.summary", "water", False),
    ("contains", "object.tags", "urgent", True),
    ("contains", "object.tags", "urg", False),
    ("not_contains", "object.summary", "water", True),
    ("not_contains", "object.summary", "Printer", False),
    ("not_contains", "object.tags", "low", True),
    ("not_contains", "object.tags", "printer", False),
    ("starts_with", "object.summary", "Printer", True),
    ("starts_with", "object.summary", "fire", False),
    ("starts_with", "object.count", "3", False),
    ("gt", "object.count", 2, True),
    ("gt", "object.count", 3, False),
    ("gt", "object.score", 2.4, True),
    ("gt", "object.priority", "P0", True),
    ("gt", "object.count", "2", False),
    ("gte", "object.count", 3, True),
    ("gte", "object.count", 4, False),
    ("lt", "object.count", 4, True),
    ("lt", "object.count", 3, False),
    ("lte", "object.count", 3, True),
    ("lte", "object.count", 2, False),
    ("lte", "object.score", 2.5, True),
    ("exists", "object.summary", None, True),
    ("exists", "object.zero", None, True),
    ("exists", "object.off", None, True),
    ("exists", "object.absent", None, False),
    ("not_exists", "object.absent", None, True),
    ("not_exists", "object.summary", None, False),
    ("matches", "object.summary", r"on\s+fire$", True),
    ("matches", "object.summary", "fire", True),
    ("matches", "object.summary", "^fire", False),
    ("matches", "object.count", "3", False),
]


@pytest.mark.parametrize(("op", "field", "value", "expected"), OPERATOR_CASES)
def test_operator(op: str, field: str, value: Any, expected: bool) -> None:
    """Each operator is true and false exactly where the SPEC §2 semantics say."""
    assert check(field, op, value) is expected


def test_every_operator_has_cases() -> None:
    """The table above exercises every operator both ways."""
    for op in OPERATORS:
        outcomes = {expected for o, _, _, expected in OPERATOR_CASES if o == op}
        assert outcomes == {True, False}, op


SELECT_CASES = [
    ("eq", 9, True),
    ("eq", "Closed", True),
    ("eq", 8, False),
    ("eq", "Open", False),
    ("eq", "9", False),
    ("ne", 9, False),
    ("ne", "Closed", False),
    ("ne", "Open", True),
    ("in", [1, 9], True),
    ("in", ["Open", "Closed"], True),
    ("in", ["Open", 1], False),
    ("not_in", ["Open", 1], True),
    ("not_in", ["Closed"], False),
    ("not_in", [9], False),
    ("contains", "lose", True),
    ("contains", "Open", False),
    ("not_contains", "Open", True),
    ("not_contains", "Clo", False),
    ("starts_with", "Clo", True),
    ("starts_with", "losed", False),
    ("matches", "^Closed$", True),
    ("matches", "^9$", False),
    ("gt", 8, True),
    ("gt", 9, False),
    ("gte", 9, True),
    ("lt", 10, True),
    ("lt", 9, False),
    ("lte", 9, True),
    ("lt", "D", True),
    ("exists", None, True),
    ("not_exists", None, False),
]


@pytest.mark.parametrize(("op", "value", "expected"), SELECT_CASES)
def test_single_select(op: str, value: Any, expected: bool) -> None:
    """A single-select value {"id": 9, "display": "Closed"} is compared by its id or its display."""
    assert check("object.status", op, value) is expected


def test_single_select_path_into_parts() -> None:
    """A path may also address a single-select's id or display directly."""
    assert check("object.status.id", "eq", 9)
    assert not check("object.status.id", "eq", "Closed")
    assert check("object.status.display", "eq", "Closed")


def _value_for(op: str) -> Any:
    if op in ("in", "not_in"):
        return ["a", 1]
    if op in ("exists", "not_exists"):
        return None
    if op in ("starts_with", "matches", "contains", "not_contains"):
        return "a"
    return 1


NEGATIVE = {"ne", "not_in", "not_contains", "not_exists"}


@pytest.mark.parametrize("op", OPERATORS)
@pytest.mark.parametrize(
    ("field", "o"),
    [
        ("object.absent", occ()),
        ("object.absent.deeper", occ()),
        ("object.summary.deeper", occ()),
        ("object.tags.7", occ()),
        ("action.note", occ(action=None)),
        ("action.note", occ(action={"id": 1})),
        ("linked.client.name", occ(linked=None)),
        ("linked.client.name", occ(linked={"site": {"name": "x"}})),
        ("object.nothing", occ()),
    ],
    ids=[
        "missing-key", "missing-parent", "through-string", "index-out-of-range", "no-action",
        "action-without-key", "no-linked", "linked-without-key", "json-null",
    ],
)  # fmt: skip
def test_missing_field_only_negative_ops_true(op: str, field: str, o: Occurrence) -> None:
    """A missing field (or JSON null) makes only ne, not_in, not_contains and not_exists true."""
    assert check(field, op, _value_for(op), o) is (op in NEGATIVE)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("object.flag", True, True),
        ("object.flag", 1, False),
        ("object.flag", 1.0, False),
        ("object.off", False, True),
        ("object.off", 0, False),
        ("object.one", True, False),
        ("object.one", 1, True),
        ("object.zero", False, False),
        ("object.zero", 0, True),
    ],
)
def test_booleans_are_not_numbers(field: str, value: Any, expected: bool) -> None:
    """JSON true/false equal only true/false, never 1/0."""
    assert check(field, "eq", value) is expected
    assert check(field, "ne", value) is not expected


def test_booleans_not_numbers_in_lists_and_arrays() -> None:
    """`in` and array `contains` keep booleans and numbers apart too."""
    assert not check("object.flag", "in", [1, 0])
    assert check("object.flag", "in", [True])
    flags = occ(obj={"id": 1, "bits": [1, 0]})
    assert not check("object.bits", "contains", True, flags)
    assert check("object.bits", "contains", 1, flags)


def test_contains_on_arrays_of_selects_and_numbers() -> None:
    """`contains` on an array tests membership, matching single-selects by id or display."""
    o = occ(obj={"id": 1, "teams": [{"id": 3, "display": "Ops"}, {"id": 4, "display": "Dev"}], "ns": [1, 2]})
    assert check("object.teams", "contains", "Dev", o)
    assert check("object.teams", "contains", 3, o)
    assert not check("object.teams", "contains", "Sales", o)
    assert check("object.ns", "contains", 2, o)
    assert not check("object.ns", "contains", 5, o)


def test_contains_substring_needs_strings() -> None:
    """Substring `contains` applies to strings only: a number field or value never contains."""
    assert not check("object.count", "contains", "3")
    assert check("object.summary", "contains", "Printer")
    assert not check("object.summary", "contains", "printer")


def test_array_index_path() -> None:
    """A numeric path segment indexes into an array."""
    assert check("object.tags.0", "eq", "printer")
    assert check("object.tags.1", "eq", "urgent")


# -- match all / any ----------------------------------------------------------------------


def _trigger(match: str, conditions: list[dict[str, Any]]) -> Trigger:
    return Trigger.model_validate({"id": "t", "on": "*", "match": match, "conditions": conditions})


YES = {"field": "object.priority", "op": "eq", "value": "P1"}
NO = {"field": "object.priority", "op": "eq", "value": "P9"}


@pytest.mark.parametrize(
    ("match", "conditions", "expected"),
    [
        ("all", [YES, YES], True),
        ("all", [YES, NO], False),
        ("all", [NO, NO], False),
        ("any", [YES, NO], True),
        ("any", [NO, YES], True),
        ("any", [NO, NO], False),
        ("all", [], True),
        ("any", [], True),
    ],
)
def test_match_all_any(match: str, conditions: list[dict[str, Any]], expected: bool) -> None:
    """`all` needs every condition, `any` one; no conditions always match."""
    assert compile_trigger(_trigger(match, conditions))(occ()) is expected


# -- patterns -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        ("*", "ticket.created", True),
        ("*", "ticket", True),
        ("*", "ticket.action.added", True),
        ("ticket.created", "ticket.created", True),
        ("ticket.created", "ticket.updated", False),
        ("ticket.created", "ticket", False),
        ("ticket.created", "ticket.created.again", False),
        ("ticket.created", "client.ticket.created", False),
        ("ticket.*", "ticket.created", True),
        ("ticket.*", "ticket.status_changed", True),
        ("ticket.*", "ticket.action.added", True),
        ("ticket.*", "ticket", False),
        ("ticket.*", "tickets.created", False),
        ("ticket.*", "client.created", False),
        ("ticket.*.added", "ticket.action.added", True),
        ("ticket.*.added", "ticket.note.added", True),
        ("ticket.*.added", "ticket.added", False),
        ("ticket.*.added", "ticket.action.removed", False),
        ("ticket.*.added", "ticket.a.b.added", False),
        ("ticket.*.added", "client.action.added", False),
        ("*.created", "ticket.created", True),
        ("*.created", "ticket.updated", False),
        ("*.created", "ticket.sub.created", False),
        # Operator events reach only patterns that name the hookd. prefix (SPEC §12).
        ("*", "hookd.delivery.failed", False),
        ("*.delivery.failed", "hookd.delivery.failed", False),
        ("*.*.*", "hookd.webhook.disabled", False),
        ("hookd.*", "hookd.delivery.failed", True),
        ("hookd.*", "hookd.webhook.enabled", True),
        ("hookd.delivery.failed", "hookd.delivery.failed", True),
        ("hookd.webhook.*", "hookd.delivery.failed", False),
        ("hookd.*.failed", "hookd.delivery.failed", True),
    ],
)
def test_pattern_matches(pattern: str, event: str, expected: bool) -> None:
    """`*` is one segment (a trailing one, one or more); lengths must otherwise agree."""
    assert pattern_matches(pattern, event) is expected


# -- routing ------------------------------------------------------------------------------


def test_one_item_per_webhook_first_trigger_in_config_order() -> None:
    """Several matching triggers of one webhook yield one item, recorded with the first in config order."""
    cfg = config(
        wh(
            "a",
            {"id": "never", "on": "client.*"},
            {"id": "first", "on": "ticket.*", "conditions": [YES]},
            {"id": "second", "on": "*"},
        ),
        wh("b", {"id": "x", "on": "*", "conditions": [NO]}, {"id": "y", "on": "ticket.status_changed"}),
    )
    assert Router(cfg.webhooks).route(occ()) == [("a", "first"), ("b", "y")]


def test_first_trigger_order_not_specificity() -> None:
    """Config order wins over how specific a pattern is."""
    cfg = config(wh("a", {"id": "broad", "on": "*"}, {"id": "exact", "on": "ticket.status_changed"}))
    assert Router(cfg.webhooks).route(occ()) == [("a", "broad")]


def test_later_trigger_when_earlier_conditions_fail() -> None:
    """When the first pattern-matching trigger's conditions fail, the next matching one is used."""
    cfg = config(
        wh(
            "a",
            {"id": "p9", "on": "ticket.*", "conditions": [NO]},
            {"id": "p1", "on": "ticket.*", "conditions": [YES]},
        )
    )
    router = Router(cfg.webhooks)
    assert router.route(occ()) == [("a", "p1")]
    assert router.route(occ(obj={"id": 1, "priority": "P3"})) == []


def test_webhooks_in_config_order() -> None:
    """Items come out in the webhooks' config order."""
    cfg = config(*(wh(name, {"id": "t", "on": "*"}) for name in ("zeta", "alpha", "mid")))
    assert [w for w, _ in Router(cfg.webhooks).route(occ())] == ["zeta", "alpha", "mid"]


def test_no_match_routes_nothing() -> None:
    """An event that no trigger pattern matches yields no items."""
    cfg = config(wh("a", {"id": "t", "on": "client.*"}))
    assert Router(cfg.webhooks).route(occ("ticket.created")) == []


def test_disabled_webhook_routes_nothing() -> None:
    """A webhook with enabled = false routes nothing while the others still do."""
    cfg = config(
        wh("off", {"id": "t", "on": "*"}, enabled=False),
        wh("on", {"id": "t", "on": "*"}),
    )
    router = Router(cfg.webhooks)
    assert router.route(occ()) == [("on", "t")]
    assert Router(config(wh("off", {"id": "t", "on": "*"}, enabled=False)).webhooks).route(occ()) == []


def test_routing_same_event_twice_uses_fresh_conditions() -> None:
    """The per-event candidate cache does not cache condition results."""
    cfg = config(wh("a", {"id": "t", "on": "ticket.*", "conditions": [YES]}))
    router = Router(cfg.webhooks)
    assert router.route(occ()) == [("a", "t")]
    assert router.route(occ(obj={"id": 1, "priority": "P2"})) == []
    assert router.route(occ()) == [("a", "t")]


def test_paths_into_action_linked_and_event() -> None:
    """Conditions read action.…, linked.… and the event name."""
    cfg = config(
        wh(
            "a",
            {
                "id": "t",
                "on": "*",
                "conditions": [
                    {"field": "action.note", "op": "contains", "value": "reboot"},
                    {"field": "linked.client.name", "op": "eq", "value": "Acme"},
                    {"field": "event", "op": "starts_with", "value": "ticket."},
                ],
            },
        )
    )
    router = Router(cfg.webhooks)
    good = occ(action={"id": 17, "note": "please reboot"}, linked={"client": {"id": 1, "name": "Acme"}})
    assert router.route(good) == [("a", "t")]
    assert router.route(occ(action={"note": "fixed"}, linked={"client": {"name": "Acme"}})) == []
    assert router.route(occ(action={"note": "reboot"}, linked={"client": {"name": "Other"}})) == []
    assert router.route(occ(action={"note": "reboot"})) == []
    ev = occ("client.updated", action={"note": "reboot"}, linked={"client": {"name": "Acme"}})
    assert router.route(ev) == []


def test_event_field_conditions() -> None:
    """The `event` path is the occurrence's event type."""
    assert check("event", "eq", "ticket.status_changed")
    assert check("event", "matches", r"\.status_")
    assert not check("event", "in", ["ticket.created"])
