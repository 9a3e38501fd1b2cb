"""Message templates and the pre-configured types' bodies (SPEC §12), as pure functions:
compiling, rendering, escaping, Discord's cut, and reading a message back from a body."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookd.config import Webhook
from hookd.messages import DISCORD_LIMIT, KINDS, MessageBuilder, cut, message_text, slack_escape
from hookd.models import Occurrence
from hookd.payloads import PayloadBuilder, body_builder
from hookd.templates import DEFAULT_TEMPLATE, PLACEHOLDER_KEYS, Context, TemplateError, compile_template, parse

CTX = Context(item_id="0190-item", webhook_id="alerts", trigger="closed")
FAST = settings(max_examples=250, deadline=None, database=None)


def occ(obj: dict[str, Any] | None = None, **over: Any) -> Occurrence:
    """A ticket occurrence with a single-select status, an action and a linked client."""
    fields: dict[str, Any] = {
        "id": "evt_1",
        "event": "ticket.status_changed",
        "timestamp": "2026-11-29T07:00:00.000Z",
        "object": obj if obj is not None else {"id": 4242, "summary": "Printer on fire",
                                               "status": {"id": 9, "display": "Closed"}},
        "action": {"id": 17, "note": "Replaced the toner"},
        "linked": {"client": {"id": 1, "name": "Acme"}},
        "client_id": True,
    }  # fmt: skip
    fields.update(over)
    return Occurrence(**fields)


def render(template: str, o: Occurrence | None = None) -> str:
    """``template`` compiled and rendered for ``o`` (the default ticket) without escaping."""
    return compile_template(template).render(o or occ(), CTX)


def hook(kind: str, template: str | None = None) -> Webhook:
    """A webhook of type ``kind`` (its template, when given)."""
    extra = {} if template is None else {"template": template}
    return Webhook.model_validate(
        {
            "id": "alerts",
            "url": "https://hooks.example.com/x",
            "type": kind,
            "events": [{"id": "t", "on": "*"}],
            **extra,
        }
    )


# -- compiling ------------------------------------------------------------------------------


def test_parse_splits_text_and_placeholders() -> None:
    """Literal text and ``{path}`` placeholders come out in order; doubled braces are literal."""
    assert parse("{{x}} is {object.summary}, {{{event}}}") == [
        "{x} is ", ("object.summary",), ", {", ("event",), "}",
    ]  # fmt: skip
    assert parse("") == []
    assert parse("plain") == ["plain"]


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("{object.summary", "unbalanced '{' at character 1"),
        ("ok {", "unbalanced '{' at character 4"),
        ("a } b", "unbalanced '}' at character 3"),
        ("{object.summary}}", "unbalanced '}' at character 17"),
        ("{object.{summary}", "unbalanced '{' at character 1"),
        ("{}", "empty placeholder"),
        ("{objekt.summary}", "unknown placeholder {objekt.summary}"),
        ("{object.}", "unknown placeholder {object.}"),
        ("{object..id}", "unknown placeholder {object..id}"),
        ("{item_id}", "unknown placeholder {item_id}"),
    ],
)
def test_compile_refuses_with_a_reason(template: str, says: str) -> None:
    """A template that cannot be rendered is refused when compiled, saying where and why."""
    with pytest.raises(TemplateError, match=re.escape(says)):
        compile_template(template)


def test_every_documented_placeholder_compiles() -> None:
    """Condition paths and every envelope key are placeholders."""
    for key in ("event", "object", "object.status.id", "action.note", "linked.client.name", "object.tags.0"):
        compile_template("{" + key + "}")
    for key in PLACEHOLDER_KEYS:
        compile_template("{" + key + "}")


# -- rendering ------------------------------------------------------------------------------


def test_default_template() -> None:
    """The default template names the event, the summary and the object id."""
    assert DEFAULT_TEMPLATE == "{event}: {object.summary} ({object_id})"
    assert render(DEFAULT_TEMPLATE) == "ticket.status_changed: Printer on fire (4242)"


def test_envelope_keys_render_the_items_values() -> None:
    """The envelope keys render what the item's envelope would carry."""
    got = render("{id}|{webhook_id}|{event}|{event_id}|{trigger}|{object_id}|{timestamp}")
    assert got == "0190-item|alerts|ticket.status_changed|evt_1|closed|4242|2026-11-29T07:00:00.000Z"


def test_values_render_as_a_message_shows_them() -> None:
    """Single-selects show their display, arrays are joined, objects are JSON, missing and null are empty."""
    o = occ(
        {
            "id": 7, "status": {"id": 9, "display": "Closed"}, "tags": ["vpn", {"id": 2, "display": "urgent"}, 3],
            "meta": {"a": [1, 2]}, "none": None, "yes": True, "no": False, "ratio": 1e300, "half": 0.5,
            "nested_select": {"id": 1, "display": {"text": "odd"}},
        }
    )  # fmt: skip
    assert render("{object.status}", o) == "Closed"
    assert render("{object.status.id}", o) == "9"
    assert render("{object.tags}", o) == "vpn, urgent, 3"
    assert render("{object.tags.1}", o) == "urgent"
    assert render("{object.meta}", o) == '{"a":[1,2]}'
    assert render("[{object.none}][{object.missing}][{object.status.nope}][{action.absent}]", o) == "[][][][]"
    # A number as the JSON body carries it: orjson's spelling of 1e300 changed across releases.
    big = orjson.dumps(1e300).decode()
    assert big in ("1e300", "1e+300")
    assert render("{object.yes}/{object.no}/{object.ratio}/{object.half}", o) == f"true/false/{big}/0.5"
    assert render("{object.nested_select}", o) == '{"text":"odd"}'
    assert render("{linked.client.name} {action.note}", occ()) == "Acme Replaced the toner"
    assert render("{object_id}", occ({"summary": "no id"})) == ""


def test_escape_applies_to_values_only() -> None:
    """Escaping changes what is substituted, never the template's own text (it may be the service's markup)."""
    t = compile_template("<https://desk.example.com/t/{object_id}|{object.summary}> & more")
    o = occ({"id": 1, "summary": "a <b> & c"})
    assert t.render(o, CTX, slack_escape) == "<https://desk.example.com/t/1|a &lt;b&gt; &amp; c> & more"


def test_slack_escape() -> None:
    """Slack's three control characters become its entities; an ampersand first, so nothing is escaped twice."""
    assert slack_escape("<@U123> & <!channel> >") == "&lt;@U123&gt; &amp; &lt;!channel&gt; &gt;"
    assert slack_escape("&amp;") == "&amp;amp;"


def test_cut_marks_the_cut() -> None:
    """A text over the limit is cut to exactly the limit, its last character an ellipsis."""
    assert cut("x" * DISCORD_LIMIT, DISCORD_LIMIT) == "x" * DISCORD_LIMIT
    long = cut("y" * (DISCORD_LIMIT + 1), DISCORD_LIMIT)
    assert len(long) == DISCORD_LIMIT
    assert long.endswith("y…")


# -- the bodies -----------------------------------------------------------------------------


def test_bodies_of_each_type() -> None:
    """Each type wraps the rendered text in its service's body (SPEC §12's table)."""
    o = occ({"id": 5, "summary": "Disk <full> & slow"})
    bodies = {kind: json.loads(body_builder(hook(kind)).body(o, "i", "t")) for kind in KINDS}
    text = "ticket.status_changed: Disk <full> & slow (5)"
    assert bodies["slack"] == {"text": "ticket.status_changed: Disk &lt;full&gt; &amp; slow (5)"}
    assert bodies["teams"] == {
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {"type": "AdaptiveCard", "version": "1.4",
                        "body": [{"type": "TextBlock", "text": text, "wrap": True}]},
        }],
    }  # fmt: skip
    assert bodies["discord"] == {"content": text, "allowed_mentions": {"parse": []}}
    assert isinstance(body_builder(hook("standard")), PayloadBuilder)


def test_discord_content_is_cut_to_2000_characters() -> None:
    """Discord's content is at most 2,000 characters; the other types send the whole text."""
    o = occ({"id": 1, "summary": "é" * 5000})
    for kind, limit in (("discord", DISCORD_LIMIT), ("slack", None), ("teams", None)):
        body = body_builder(hook(kind, "{object.summary}")).body(o, "i", "t")
        text = message_text(kind, body)
        assert text is not None
        if limit is None:
            assert text == "é" * 5000
        else:
            assert len(text) == limit
            assert text == "é" * (limit - 1) + "…"


def test_message_text_reads_back_what_was_sent() -> None:
    """The page's message is read from the body as sent, and only from a body of the webhook's type."""
    o = occ()
    for kind in KINDS:
        body = body_builder(hook(kind, "{{ {object.status} }}")).body(o, "i", "t")
        assert message_text(kind, body) == "{ Closed }"
        others = [k for k in KINDS if k != kind]
        assert all(message_text(k, body) is None for k in others)
    standard = PayloadBuilder(hook("standard")).body(o, "i", "t")
    assert message_text("standard", standard) is None
    assert message_text("slack", standard) is None
    assert message_text("slack", None) is None
    assert message_text("slack", b"[" + standard + b"]") is None  # a batch made before a type change
    assert message_text("slack", b"not json") is None


def test_builder_compiles_once() -> None:
    """A builder holds its compiled template: the text comes from it, not from parsing again."""
    b = body_builder(hook("slack", "{object.summary}!"))
    assert isinstance(b, MessageBuilder)
    assert b.template.source == "{object.summary}!"
    assert b.text(occ(), "i", "t") == "Printer on fire!"


# -- never an exception at render time ------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2**64) | st.floats() | TEXT
)  # past 64 bits and NaN too: ingest refuses them, rendering must not care
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(TEXT | st.sampled_from(["id", "display", "summary", "status"]), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(["summary", "status", "tags", "id", "display", "0", "1", ""]) | TEXT.filter(
    lambda k: "{" not in k and "}" not in k and "." not in k
)
PATHS = st.builds(
    lambda root, keys: ".".join([root, *keys]),
    st.sampled_from(["object", "action", "linked"]),
    st.lists(KEYS.filter(bool), max_size=3),
) | st.sampled_from([*PLACEHOLDER_KEYS, "event"])
PIECES = st.lists(
    PATHS.map(lambda p: "{" + p + "}") | TEXT | st.sampled_from(["{", "}", "{{", "}}", "{}", "{object.", "}}}"]),
    max_size=8,
)
OBJECTS = st.dictionaries(TEXT | st.sampled_from(["id", "summary", "status", "tags"]), JSON, max_size=6)


@FAST
@given(pieces=PIECES, obj=OBJECTS, action=st.none() | OBJECTS, kind=st.sampled_from(sorted(KINDS)))
def test_any_template_compiles_or_is_refused_and_never_fails_to_render(
    pieces: list[str], obj: dict[str, Any], action: dict[str, Any] | None, kind: str
) -> None:
    """Any text either compiles or raises TemplateError; a compiled one renders any event into a body, never raising."""
    template = "".join(pieces)
    try:
        compile_template(template)
    except TemplateError:
        return
    builder = body_builder(hook(kind, template))
    o = occ(obj, action=action, linked={"client": obj})
    body = builder.body(o, "i", "t")
    text = message_text(kind, body)
    assert isinstance(text, str)
    if kind == "discord":
        assert len(text) <= DISCORD_LIMIT


@FAST
@given(values=st.lists(JSON, min_size=1, max_size=4))
def test_rendered_values_appear_as_text_of_each(values: list[Any]) -> None:
    """Each placeholder renders its value and the literal text around it stays as written."""
    obj = {f"k{i}": v for i, v in enumerate(values)}
    template = " | ".join("{{{object.k" + str(i) + "}}}" for i in range(len(values)))
    got = render(template, occ(obj))
    assert got.count("{") >= len(values)
    assert got.startswith("{")
    assert got.endswith("}")


@FAST
@given(text=TEXT)
def test_doubled_braces_are_literal(text: str) -> None:
    """Any text with its braces doubled renders back as the text itself."""
    template = text.replace("{", "{{").replace("}", "}}")
    assert render(template) == text


VALID_PIECES = st.lists(
    PATHS.map(lambda p: "{" + p + "}") | TEXT.map(lambda t: t.replace("{", "{{").replace("}", "}}")), max_size=8
)


@FAST
@given(pieces=VALID_PIECES, obj=OBJECTS, kind=st.sampled_from(sorted(KINDS)))
def test_well_formed_templates_always_compile_and_render(pieces: list[str], obj: dict[str, Any], kind: str) -> None:
    """Placeholders of documented paths and text with doubled braces always compile, and render any event."""
    builder = body_builder(hook(kind, "".join(pieces)))
    text = message_text(kind, builder.body(occ(obj, linked={"c": obj}), "i", "t"))
    assert isinstance(text, str)
