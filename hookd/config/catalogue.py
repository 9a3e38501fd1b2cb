"""The event catalogue (SPEC §11): the ``[[event_types]]`` the application declares it sends.

Each schema is compiled once, while the file is validated, and the compiled validator
travels with the config, so ingest never compiles one and a bad schema is a config error
like any other, naming ``event_types[i].schema``.
"""

from __future__ import annotations

from typing import Annotated, Any

import jsonschema_rs
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema, field_validator

from hookd.config.models import first_repeat
from hookd.models import EVENT_NAME, MAX_NAME_LEN


def _no_fetch(uri: str) -> Any:
    # Loading a config must not reach the network or read other files: a $ref may point
    # only inside the schema itself (#/$defs/…) or at the JSON Schema meta-schemas.
    raise ValueError(f"{uri} is not fetched; put the referenced schema under $defs and use $ref '#/$defs/…'")


class JsonSchema:
    """A JSON Schema as written in the config, and its compiled validator.

    Equal when the documents are equal: the compiled validator is derived from the document.
    """

    __slots__ = ("document", "validator")

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        try:
            # Formats (date-time, email, uuid, …) are checked, not only annotations: a
            # catalogue that says "format" means the application's values should have it.
            self.validator = jsonschema_rs.validator_for(document, validate_formats=True, retriever=_no_fetch)
        except jsonschema_rs.ValidationError as exc:
            where = ".".join(str(p) for p in exc.instance_path)
            raise ValueError(f"not a valid JSON Schema{f' (at {where})' if where else ''}: {exc.message}") from None
        except (jsonschema_rs.ReferencingError, ValueError) as exc:
            raise ValueError(f"not a usable JSON Schema: {exc}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JsonSchema) and other.document == self.document

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"JsonSchema({self.document!r})"


def _compiled(value: Any) -> Any:
    if isinstance(value, JsonSchema) or value is None:
        return value
    if not isinstance(value, dict):
        raise ValueError("should be a table (a JSON Schema object)")
    return JsonSchema(value)


Schema = Annotated[
    JsonSchema,
    BeforeValidator(_compiled),
    PlainSerializer(lambda s: s.document),
    WithJsonSchema({"type": "object"}),
]


class EventType(BaseModel):
    """One catalogued event type."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, arbitrary_types_allowed=True, populate_by_name=True
    )

    name: str
    description: str = ""
    # "schema" is a BaseModel method's name: the field is schema_, written "schema".
    schema_: Schema | None = Field(None, alias="schema")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # An exact type as ingest takes it (SPEC §3), never a pattern.
        if len(value) > MAX_NAME_LEN or not EVENT_NAME.match(value):
            raise ValueError(f"{value!r} is not an event type (a dotted lower-case name such as 'ticket.created')")
        return value

    @property
    def document(self) -> dict[str, Any] | None:
        """The schema as written, or None."""
        return self.schema_.document if self.schema_ is not None else None


def unique_names(value: tuple[EventType, ...]) -> tuple[EventType, ...]:
    """Refuse a name catalogued twice."""
    repeat = first_repeat(t.name for t in value)
    if repeat:
        name, a, b = repeat
        raise ValueError(f"duplicate event type {name!r} (event_types[{a}] and event_types[{b}])")
    return value
