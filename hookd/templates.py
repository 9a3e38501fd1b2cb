"""Message templates of the pre-configured types (SPEC §12): ``{path}`` placeholders (pure).

A template compiles once, when the config is loaded, into literal text and small
readers: the occurrence paths through :func:`hookd.paths.getter`, the same reader that
conditions and custom fields use, and the envelope keys. Rendering an item is then a
join; it never raises, whatever JSON the event holds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from hookd.models import Occurrence
from hookd.paths import MISSING, getter, is_select

DEFAULT_TEMPLATE = "{event}: {object.summary} ({object_id})"
# A placeholder is a condition path (SPEC §2) or an envelope key (SPEC §4).
_PATH = re.compile(r"(event|(object|action|linked)(\.[^.]+)*)\Z")


@dataclass(frozen=True, slots=True)
class Context:
    """What an item adds to its occurrence: the envelope keys that are not in the occurrence."""

    item_id: str
    webhook_id: str
    trigger: str


Reader = Callable[[Occurrence, Context], Any]

_ENVELOPE: dict[str, Reader] = {
    "id": lambda occ, ctx: ctx.item_id,
    "webhook_id": lambda occ, ctx: ctx.webhook_id,
    "event": lambda occ, ctx: occ.event,
    "event_id": lambda occ, ctx: occ.id,
    "trigger": lambda occ, ctx: ctx.trigger,
    "object_id": lambda occ, ctx: occ.object.get("id", MISSING),
    "timestamp": lambda occ, ctx: occ.timestamp,
}
PLACEHOLDER_KEYS = tuple(_ENVELOPE)


class TemplateError(ValueError):
    """A template that cannot be compiled; the message says where and why."""


def parse(template: str) -> list[str | tuple[str]]:
    """The template as literal text (``str``) and placeholders (a 1-tuple holding the path).

    ``{{`` and ``}}`` are literal braces; any other brace must open or close a placeholder.
    """
    parts: list[str | tuple[str]] = []
    text: list[str] = []
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c in "{}" and template.startswith(c * 2, i):
            text.append(c)
            i += 2
        elif c == "}":
            raise TemplateError(f"unbalanced '}}' at character {i + 1} (write '}}}}' for a literal brace)")
        elif c == "{":
            end = template.find("}", i + 1)
            inner = template.find("{", i + 1)
            if end < 0 or 0 <= inner < end:
                raise TemplateError(f"unbalanced '{{' at character {i + 1} (write '{{{{' for a literal brace)")
            path = template[i + 1 : end]
            _check_path(path, i)
            if text:
                parts.append("".join(text))
                text = []
            parts.append((path,))
            i = end + 1
        else:
            # Copy the run of plain text up to the next brace in one step.
            stop = min((j for j in (template.find("{", i), template.find("}", i)) if j >= 0), default=n)
            text.append(template[i:stop])
            i = stop
    if text:
        parts.append("".join(text))
    return parts


def _check_path(path: str, at: int) -> None:
    if not path:
        raise TemplateError(f"empty placeholder '{{}}' at character {at + 1}")
    if path not in _ENVELOPE and not _PATH.match(path):
        keys = ", ".join(PLACEHOLDER_KEYS)
        raise TemplateError(
            f"unknown placeholder {{{path}}} at character {at + 1}: use object.…, action.…, linked.… or one of {keys}"
        )


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template: literal text and readers, in order."""

    source: str
    parts: tuple[str | Reader, ...]

    def render(self, occ: Occurrence, ctx: Context, escape: Callable[[str], str] = str) -> str:
        """The text for one item; each substituted value passes through ``escape``, the
        template's own text does not (it may hold the receiving service's markup)."""
        out = []
        for p in self.parts:
            out.append(p if isinstance(p, str) else escape(text_of(p(occ, ctx))))
        return "".join(out)


def compile_template(template: str) -> Template:
    """Compile ``template``; raises TemplateError naming the first problem."""
    parts: list[str | Reader] = []
    for part in parse(template):
        if isinstance(part, str):
            parts.append(part)
        elif part[0] in _ENVELOPE:
            parts.append(_ENVELOPE[part[0]])
        else:
            parts.append(_path_reader(part[0]))
    return Template(template, tuple(parts))


def _path_reader(path: str) -> Reader:
    get = getter(path)
    return lambda occ, ctx: get(occ)


def text_of(value: Any) -> str:
    """A JSON value as a message shows it: a string as it is, a single-select by its
    ``display``, an array as its members joined by ``, ``, an object as compact JSON,
    and a missing value or null as nothing."""
    if type(value) is list:
        return ", ".join(_scalar(v) for v in value)
    return _scalar(value)


def _scalar(value: Any) -> str:
    if is_select(value):
        value = value["display"]
    t = type(value)
    if t is str:
        return value  # type: ignore[no-any-return]
    if value is None or value is MISSING:
        return ""
    if t is bool:
        return "true" if value else "false"
    try:
        # Numbers as the JSON body would carry them; objects and arrays as compact JSON.
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        # Nested past orjson's limit, or an integer past 64 bits (ingest refuses those,
        # but a message is never the place to fail).
        return _int_text(value) if t is int else "…"


def _int_text(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # past Python's 4,300-digit conversion limit
        return "…"
