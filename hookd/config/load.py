"""The configuration file as a whole: the root model, reading it, and errors an operator can act on.

Every error names the file, the key path (``webhooks[1].events[0].on``) and what is
wrong, because the operator reading it has only the file in front of them.
"""

from __future__ import annotations

import difflib
import tomllib
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import ErrorDetails

from hookd.config.catalogue import EventType, unique_names
from hookd.config.egress import egress_problems
from hookd.config.models import (
    Array,
    BatchingConfig,
    DeliveryConfig,
    ServerConfig,
    StorageConfig,
    Webhook,
    _Model,
    first_repeat,
)
from hookd.config.references import _base_dir, _defer_unreadable

_AUTH_TAGS = frozenset({"none", "basic", "bearer", "header"})


class ConfigError(Exception):
    """A configuration file that cannot be used; ``str()`` is the operator's message."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path}: {p}" for p in problems))


class Config(_Model):
    """The whole file."""

    server: ServerConfig = Field(default_factory=lambda: ServerConfig())
    # validate_default: the default path, too, resolves against the config's folder.
    storage: StorageConfig = Field(default_factory=lambda: StorageConfig(), validate_default=True)
    delivery: DeliveryConfig = Field(default_factory=lambda: DeliveryConfig())
    batching: BatchingConfig = Field(default_factory=lambda: BatchingConfig())
    webhooks: Array[Webhook] = ()
    event_types: Array[EventType] = ()

    _unique_types = field_validator("event_types")(unique_names)

    @field_validator("storage", mode="after")
    @classmethod
    def _absolute(cls, value: StorageConfig, info: ValidationInfo) -> StorageConfig:
        if value.path.is_absolute() or str(value.path) == ":memory:":
            return value
        return value.model_copy(update={"path": (_base_dir.get() or Path.cwd()) / value.path})

    @field_validator("webhooks", mode="after")
    @classmethod
    def _unique(cls, value: tuple[Webhook, ...]) -> tuple[Webhook, ...]:
        repeat = first_repeat(w.id for w in value)
        if repeat:
            raise ValueError(f"duplicate webhook id {repeat[0]!r} (webhooks[{repeat[1]}] and webhooks[{repeat[2]}])")
        return value

    @model_validator(mode="after")
    def _tls_combinations(self) -> Config:
        problems = egress_problems(
            self.delivery.tls.keys(), [(f"webhooks[{i}]", w.tls.keys()) for i, w in enumerate(self.webhooks)]
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def webhook(self, webhook_id: str) -> Webhook | None:
        """The webhook with this id, if configured."""
        for w in self.webhooks:
            if w.id == webhook_id:
                return w
        return None

    @classmethod
    def load(cls, path: str | Path, deferred: list[str] | None = None) -> Config:
        """Read and validate ``path``; raise ConfigError with every problem found.

        With ``deferred`` (a list), an ``env:``/``file:`` secret that cannot be read here is
        not an error: a line saying so goes into the list and a placeholder stands in.
        """
        path = Path(path)
        return cls.parse(_read(path), path, deferred)

    @classmethod
    def parse(cls, raw: bytes, path: Path, deferred: list[str] | None = None) -> Config:
        """Validate TOML bytes as if read from ``path``."""
        return _validated(_toml(raw, path), path, deferred)


def load_server(path: str | Path, deferred: list[str] | None = None) -> ServerConfig:
    """Only the ``[server]`` table of ``path``: what the client verbs need, so the webhooks'
    secrets (readable perhaps only by the service) are neither read nor required."""
    path = Path(path)
    data = _toml(_read(path), path)
    return _validated({"server": data.get("server", {})}, path, deferred, whole=False).server


# Server keys read once, when the listener starts; a reload keeps their running values.
RESTART_SERVER_KEYS = ("listen", "client_timeout_seconds")


def reload_config(new: Config, old: Config, path: Path) -> tuple[Config, list[str]]:
    """The config a reload puts in force, and the keys in it that wait for a restart.

    ``server.listen``, ``server.client_timeout_seconds`` (the listener's timers are set
    when it starts) and ``storage`` keep their running values. The result is validated
    again with every rule: old and new together (say, the old public listen with the new
    empty tokens) may be a combination that start-up refuses.
    """
    kept = []
    data = new.model_dump()
    for key in RESTART_SERVER_KEYS:
        if getattr(new.server, key) != getattr(old.server, key):
            kept.append(f"server.{key}")
            data["server"][key] = getattr(old.server, key)
    if new.storage != old.storage:
        kept.append("storage")
        data["storage"] = old.storage.model_dump()
    if not kept:
        return new, kept
    try:
        return Config.model_validate(data, context={"resolved": True}), kept
    except ValidationError as exc:
        running = [f"{k} = {getattr(old.server, k[7:])!r}" if k.startswith("server.") else "[storage]" for k in kept]
        note = f"(checked with the running {' and '.join(running)}: changing it needs a restart)"
        raise ConfigError(path, [*format_errors(exc), note]) from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(path, [f"cannot read: {exc.strerror}"]) from None


def _toml(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [f"not UTF-8 text: {exc.reason} at byte {exc.start}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"invalid TOML: {exc}"]) from None
    except RecursionError:
        raise ConfigError(path, ["invalid TOML: nested too deeply"]) from None


def _validated(data: dict[str, Any], path: Path, deferred: list[str] | None, whole: bool = True) -> Config:
    token = _base_dir.set(path.resolve().parent)
    try:
        if deferred is not None:
            deferred.extend(_defer_unreadable(data))
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, format_errors(exc)) from None
    except RecursionError:
        raise ConfigError(path, ["a value is nested too deeply"]) from None
    finally:
        _base_dir.reset(token)
    if whole:
        problems = across_tables(config)
        if problems:
            raise ConfigError(path, problems)
    return config


def across_tables(config: Config) -> list[str]:
    """The rules between the catalogue and the rest of a whole file (load_server reads only [server]).

    The trigger rule is not in the model: the webhooks API applies it to one webhook at a time.
    """
    # Imported here: hookd.catalogue uses the router, which imports this package.
    from hookd.catalogue import config_problems

    problems = [f"{p.path}: {p.message}" for p in config_problems(config.webhooks, config.event_types)]
    if config.server.strict_event_types and not config.event_types:
        problems.append("server.strict_event_types: true needs [[event_types]]; it would refuse every event")
    return problems


# pydantic's wording where it would puzzle someone editing TOML (tuple, dictionary, class names).
_PLAIN = {
    "bool_type": "should be true or false",
    "int_type": "should be a whole number",
    "int_from_float": "should be a whole number",
    "float_type": "should be a number",
    "string_type": "should be a string (in quotes)",
    "tuple_type": "should be an array",
    "list_type": "should be an array",
    "dict_type": "should be a table",
    "model_type": "should be a table",
    "model_attributes_type": "should be a table",
    "missing": "required key is missing",
    "union_tag_not_found": "required key is missing",
}


def format_errors(exc: ValidationError) -> list[str]:
    """Turn pydantic's errors into ``key.path: message`` lines."""
    lines = []
    for err in exc.errors(include_url=False):
        loc, msg = plain_message(err)
        if err["type"] == "extra_forbidden":
            near = difflib.get_close_matches(str(loc[-1]), field_names(Config, loc[:-1]), n=1)
            if near:
                msg += f"; did you mean `{near[0]}`?"
        key = key_path(loc)
        lines.append(f"{key}: {msg}" if key else msg)
    return lines


def plain_message(err: ErrorDetails) -> tuple[list[int | str], str]:
    """One pydantic error as (key path parts, message in the words of the file's editor)."""
    raw = list(err["loc"])
    # A discriminated union puts the tag in the location; the file has no such key.
    loc = [p for i, p in enumerate(raw) if not (i and raw[i - 1] == "auth" and p in _AUTH_TAGS)]
    kind = err["type"]
    msg = _PLAIN.get(kind) or err["msg"].removeprefix("Value error, ").removeprefix("Input ")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        loc.append(str(err.get("ctx", {}).get("discriminator", "'type'")).strip("'"))
    if kind == "union_tag_invalid":
        msg = f"should be one of {err.get('ctx', {}).get('expected_tags', '')}"
    if kind == "extra_forbidden":
        msg = f"unknown key `{raw[-1]}`"
    return loc, msg


def field_names(root: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The keys allowed at ``loc`` in the model tree under ``root`` (a union's tag picks its member)."""
    models = [root]
    for part in loc:
        if isinstance(part, int):
            continue
        tagged = [m for m in models if part in _tags(m)]
        if tagged:
            models = tagged
            continue
        fields = [model.model_fields[part] for model in models if part in model.model_fields]
        models = [m for f in fields for m in _models_in(f.annotation)]
    return sorted({f.alias or name for m in models for name, f in m.model_fields.items()})


def _tags(model: type[BaseModel]) -> tuple[Any, ...]:
    field = model.model_fields.get("type")
    return typing.get_args(field.annotation) if field is not None else ()


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def key_path(loc: list[int | str]) -> str:
    """``['webhooks', 1, 'events', 0, 'on']`` → ``webhooks[1].events[0].on``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
