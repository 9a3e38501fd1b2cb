"""The configuration file: TOML, validated into one frozen pydantic model tree.

Every error names the file, the key path (``webhooks[1].events[0].on``) and what is
wrong, because the operator reading it has only the file in front of them.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
import typing
from collections.abc import Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hookd.redact import shown_url
from hookd.signing import secret_key

# Keys every item body carries (SPEC §4); a custom field may not shadow one.
ENVELOPE_KEYS = frozenset({"id", "webhook_id", "event", "event_id", "trigger", "object_id", "timestamp"})
OPERATORS = (
    "eq", "ne", "in", "not_in", "contains", "not_contains", "starts_with",
    "gt", "gte", "lt", "lte", "exists", "not_exists", "matches",
)  # fmt: skip
# \Z, not $: $ also matches before a final newline.
_WEBHOOK_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
_PATTERN = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.([a-z][a-z0-9_]*|\*))*)\Z")
_AUTH_TAGS = frozenset({"none", "basic", "bearer", "header"})
# Stands in for a signing secret `hookd check` cannot read: 16 zero bytes, a valid key.
_UNREAD_KEY = "whsec_AAAAAAAAAAAAAAAAAAAAAA=="

# The folder of the file being loaded, so `file:` references resolve against it
# without threading a parameter through every validator.
_base_dir: ContextVar[Path | None] = ContextVar("hookd_config_dir", default=None)


class ConfigError(Exception):
    """A configuration file that cannot be used; ``str()`` is the operator's message."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path}: {p}" for p in problems))


def resolve_secret(raw: str) -> str:
    """Expand an ``env:NAME`` or ``file:PATH`` reference; any other value is literal."""
    if raw.startswith("env:"):
        name = raw[4:]
        if name not in os.environ:
            raise ValueError(f"environment variable {name!r} is not set")
        return os.environ[name]
    if raw.startswith("file:"):
        path = (_base_dir.get() or Path.cwd()) / raw[5:]
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ValueError(f"cannot read secret file {str(path)!r}: {exc.strerror}") from None
    return raw


def _resolved(info: ValidationInfo) -> bool:
    # A reload validates an already loaded config again: its values are no longer references.
    return bool(info.context and info.context.get("resolved"))


def _secret(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, str) and not _resolved(info):
        return resolve_secret(value)
    return value


def _secrets(value: Any, info: ValidationInfo) -> Any:
    return [_secret(v, info) for v in value] if isinstance(value, list) else value


T = TypeVar("T")
# TOML has real types, so the file is validated strictly (no "yes" for true, no "100" for
# 100); but a TOML array arrives as a list where the models keep tuples (frozen).
Array = Annotated[tuple[T, ...], Field(strict=False)]
Secret = Annotated[SecretStr, Field(min_length=1)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ServerConfig(_Model):
    """The ingest and admin listener."""

    listen: str = "127.0.0.1:8787"
    tokens: Array[Secret] = ()
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_events_per_request: int = Field(1000, ge=1)
    shutdown_grace_seconds: Seconds = 10.0

    _resolve = field_validator("tokens", mode="before")(_secrets)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_listen(value)
        return value

    @model_validator(mode="after")
    def _tokens_off_loopback(self) -> ServerConfig:
        host, _ = split_listen(self.listen)
        if not self.tokens and not is_loopback(host):
            raise ValueError(
                f"tokens is empty but listen {self.listen!r} is not a loopback address; "
                "set server.tokens or listen on 127.0.0.1"
            )
        return self

    @property
    def host(self) -> str:
        """The address part of ``listen``."""
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """The port part of ``listen``; 0 picks a free one."""
        return split_listen(self.listen)[1]


class StorageConfig(_Model):
    """Where and how durably hookd keeps its state."""

    path: Path = Field(Path("var/hookd.db"), strict=False)  # TOML has no path type: a string
    durability: Literal["process", "machine", "memory"] = "process"
    retention_days: float = Field(30, gt=0)


class DeliveryConfig(_Model):
    """HTTP client limits and the retry policy."""

    timeout_seconds: float = Field(15, gt=0)
    connect_timeout_seconds: float = Field(5, gt=0)
    concurrency: int = Field(256, ge=1)
    per_webhook_concurrency: int = Field(16, ge=1)
    retry_schedule: Array[Seconds] = (5, 30, 120, 600, 1800, 7200, 18000, 36000)
    jitter: float = Field(0.2, ge=0, lt=1)
    retry_on: Literal["transient", "any_failure"] = "transient"
    max_response_bytes: int = Field(65536, ge=0)


class BatchingConfig(_Model):
    """When an open batch moves from a timer to the SQLite spool."""

    spool_after_seconds: Seconds = 300
    spool_poll_seconds: float = Field(1.0, gt=0)


class NoAuth(_Model):
    """No credentials."""

    type: Literal["none"] = "none"


class BasicAuth(_Model):
    """HTTP Basic credentials."""

    type: Literal["basic"]
    username: str
    password: Secret

    _resolve = field_validator("password", mode="before")(_secret)


class BearerAuth(_Model):
    """An ``Authorization: Bearer`` token."""

    type: Literal["bearer"]
    token: Secret

    _resolve = field_validator("token", mode="before")(_secret)


class HeaderAuth(_Model):
    """A credential in a header of the receiver's choosing."""

    type: Literal["header"]
    name: str = Field(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    value: Secret

    _resolve = field_validator("value", mode="before")(_secret)


Auth = Annotated[NoAuth | BasicAuth | BearerAuth | HeaderAuth, Field(discriminator="type")]


class Condition(_Model):
    """One test on a dotted path of the occurrence."""

    field: str = Field(pattern=r"^(event|(object|action|linked)(\.[^.]+)*)$")
    op: Literal[OPERATORS]  # type: ignore[valid-type]
    value: Any = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        if self.op in ("exists", "not_exists"):
            return self
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs a list value")
        if self.op == "matches":
            if not isinstance(self.value, str):
                raise ValueError("op 'matches' needs a string value (a regular expression)")
            try:
                re.compile(self.value)
            except (re.error, OverflowError, RecursionError) as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        if self.op == "starts_with" and not isinstance(self.value, str):
            raise ValueError("op 'starts_with' needs a string value")
        if self.value is None:
            raise ValueError(f"op {self.op!r} needs a value")
        return self


class Trigger(_Model):
    """A row of a webhook's ``events``: an event-type pattern plus conditions."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    on: str
    match: Literal["all", "any"] = "all"
    conditions: Array[Condition] = ()

    @field_validator("on")
    @classmethod
    def _pattern(cls, value: str) -> str:
        if not _PATTERN.match(value):
            raise ValueError(f"{value!r} is not an event type or pattern (e.g. 'ticket.created', 'ticket.*', '*')")
        return value


class CustomField(_Model):
    """One top-level key of a ``custom`` payload."""

    key: str = Field(min_length=1)
    source: str = Field(pattern=r"^(event|(object|action|linked)(\.[^.]+)*)$")
    send_id: bool = False


class Webhook(_Model):
    """A destination and its settings."""

    id: str
    name: str = ""
    url: str
    type: Literal["standard"] = "standard"
    method: Literal["POST", "GET", "PUT", "PATCH"] = "POST"
    enabled: bool = True
    auth: Auth = Field(default_factory=NoAuth)
    # Before headers, so the headers validator knows which values are references.
    secret_headers: Array[str] = ()
    # Values may be credentials under any name: kept out of reprs.
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    secret: Array[Secret] = ()
    lightweight_logs: bool = False
    payload: Literal["object", "object_with_linked", "event_only", "custom"] = "object"
    key_fields: Array[str] = ()
    batching: Literal["per_occurrence", "same_event", "same_event_type", "any_event"] = "per_occurrence"
    batch_wait_seconds: float = Field(30, gt=0, le=86400)
    max_items_per_batch: int = Field(100, ge=1, le=10000)
    per_webhook_concurrency: int | None = Field(None, ge=1)
    ordered: bool = False
    auto_disable_after: int = Field(0, ge=0)
    events: Array[Trigger]
    fields: Array[CustomField] = ()

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _WEBHOOK_ID.match(value):
            raise ValueError(f"{value!r} must match [a-z0-9][a-z0-9_-]{{0,63}}")
        return value

    @field_validator("events")
    @classmethod
    def _some_events(cls, value: tuple[Trigger, ...]) -> tuple[Trigger, ...]:
        # Checked here, not with min_length, so a lone bad trigger is reported once.
        if not value:
            raise ValueError("at least one trigger ([[webhooks.events]]) is needed")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
        except ValueError:
            raise ValueError(f"{shown_url(value)!r} is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{shown_url(value)!r} is not an http(s) URL")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError(f"{shown_url(value)!r} has an invalid port") from None
        return value

    @field_validator("secret", mode="before")
    @classmethod
    def _secrets(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            value = _secrets(value, info)
            for v in value:
                if isinstance(v, str):
                    secret_key(v)
        return value

    @field_validator("headers", mode="before")
    @classmethod
    def _secret_header_values(cls, value: Any, info: ValidationInfo) -> Any:
        marked = {n.lower() for n in info.data.get("secret_headers", ())}
        if not isinstance(value, dict) or not marked or _resolved(info):
            return value
        out = {}
        for name, v in value.items():
            try:
                out[name] = resolve_secret(v) if name.lower() in marked and isinstance(v, str) else v
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return out

    @model_validator(mode="after")
    def _rules(self) -> Webhook:
        if self.batching != "per_occurrence":
            why = []
            if self.type != "standard":
                why.append("type = 'standard'")
            if self.method != "POST":
                why.append("method = 'POST'")
            if self.payload == "object_with_linked":
                why.append("a payload other than 'object_with_linked'")
            if why:
                raise ValueError(f"webhook {self.id!r}: batching {self.batching!r} needs " + " and ".join(why))
        # Credentials in the URL become an Authorization header; a second one cannot be sent.
        sets_authorization = self.auth.type in ("basic", "bearer") or (
            isinstance(self.auth, HeaderAuth) and self.auth.name.lower() == "authorization"
        )
        names = {h.lower() for h in self.headers}
        for name in self.secret_headers:
            if name.lower() not in names:
                raise ValueError(f"webhook {self.id!r}: secret_headers names {name!r}, which is not in headers")
        if urlsplit(self.url).username is not None and sets_authorization:
            raise ValueError(f"webhook {self.id!r}: the url carries credentials and auth sets Authorization too")
        if self.fields and self.payload != "custom":
            raise ValueError(f"webhook {self.id!r}: fields are only allowed with payload = 'custom'")
        if self.payload == "custom" and not self.fields:
            raise ValueError(f"webhook {self.id!r}: payload = 'custom' needs at least one fields entry")
        seen: set[str] = set()
        for f in self.fields:
            if f.key in ENVELOPE_KEYS:
                raise ValueError(f"webhook {self.id!r}: field key {f.key!r} collides with an envelope key")
            if f.key in seen:
                raise ValueError(f"webhook {self.id!r}: duplicate field key {f.key!r}")
            seen.add(f.key)
        ids = [t.id for t in self.events]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"webhook {self.id!r}: duplicate event ids {dupes}")
        return self


class Config(_Model):
    """The whole file."""

    server: ServerConfig = Field(default_factory=lambda: ServerConfig())
    # validate_default: the default path, too, resolves against the config's folder.
    storage: StorageConfig = Field(default_factory=lambda: StorageConfig(), validate_default=True)
    delivery: DeliveryConfig = Field(default_factory=lambda: DeliveryConfig())
    batching: BatchingConfig = Field(default_factory=lambda: BatchingConfig())
    webhooks: Array[Webhook] = ()

    @field_validator("storage", mode="after")
    @classmethod
    def _absolute(cls, value: StorageConfig, info: ValidationInfo) -> StorageConfig:
        if value.path.is_absolute() or str(value.path) == ":memory:":
            return value
        return value.model_copy(update={"path": (_base_dir.get() or Path.cwd()) / value.path})

    @field_validator("webhooks", mode="after")
    @classmethod
    def _unique(cls, value: tuple[Webhook, ...]) -> tuple[Webhook, ...]:
        first: dict[str, int] = {}
        for i, w in enumerate(value):
            if w.id in first:
                raise ValueError(f"duplicate webhook id {w.id!r} (webhooks[{first[w.id]}] and webhooks[{i}])")
            first[w.id] = i
        return value

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
    return _validated({"server": data.get("server", {})}, path, deferred).server


def reload_config(new: Config, old: Config, path: Path) -> tuple[Config, list[str]]:
    """The config a reload puts in force, and the keys in it that wait for a restart.

    ``server.listen`` and ``storage`` keep their running values. The result is validated
    again with every rule: old and new together (say, the old public listen with the new
    empty tokens) may be a combination that start-up refuses.
    """
    kept = []
    if new.server.listen != old.server.listen:
        kept.append("server.listen")
    if new.storage != old.storage:
        kept.append("storage")
    if not kept:
        return new, kept
    data = new.model_dump()
    data["server"]["listen"] = old.server.listen
    data["storage"] = old.storage.model_dump()
    try:
        return Config.model_validate(data, context={"resolved": True}), kept
    except ValidationError as exc:
        running = [f"server.listen = {old.server.listen!r}" if k == "server.listen" else "[storage]" for k in kept]
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


def _validated(data: dict[str, Any], path: Path, deferred: list[str] | None) -> Config:
    token = _base_dir.set(path.resolve().parent)
    try:
        if deferred is not None:
            deferred.extend(_defer_unreadable(data))
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, format_errors(exc)) from None
    except RecursionError:
        raise ConfigError(path, ["a value is nested too deeply"]) from None
    finally:
        _base_dir.reset(token)


def _defer_unreadable(data: dict[str, Any]) -> list[str]:
    """Swap each ``env:``/``file:`` secret that cannot be read here for a placeholder; say which."""
    notes = []
    for key, container, slot in _secret_slots(data):
        raw = container[slot]
        if not isinstance(raw, str) or not raw.startswith(("env:", "file:")):
            continue
        try:
            resolve_secret(raw)
        except ValueError:
            if raw.startswith("env:"):
                where = f"environment variable {raw[4:]} is not set here"
            else:
                where = f"file {(_base_dir.get() or Path.cwd()) / raw[5:]} cannot be read here"
            notes.append(f"{key}: {where}; it will be read when the daemon starts")
            container[slot] = _UNREAD_KEY if ".secret[" in key else "unread"
    return notes


def _secret_slots(data: Any) -> list[tuple[str, Any, Any]]:
    """Where the raw TOML data holds secrets: (key path, container, key or index) for each."""
    if not isinstance(data, dict):
        return []
    slots: list[tuple[str, Any, Any]] = []
    server = data.get("server")
    tokens = server.get("tokens") if isinstance(server, dict) else None
    if isinstance(tokens, list):
        slots += [(f"server.tokens[{i}]", tokens, i) for i in range(len(tokens))]
    webhooks = data.get("webhooks")
    for i, w in enumerate(webhooks if isinstance(webhooks, list) else []):
        if not isinstance(w, dict):
            continue
        secret = w.get("secret")
        if isinstance(secret, list):
            slots += [(f"webhooks[{i}].secret[{j}]", secret, j) for j in range(len(secret))]
        elif secret is not None:
            slots.append((f"webhooks[{i}].secret[0]", w, "secret"))
        auth = w.get("auth")
        if isinstance(auth, dict):
            slots += [(f"webhooks[{i}].auth.{k}", auth, k) for k in ("password", "token", "value") if k in auth]
        marked = w.get("secret_headers")
        headers = w.get("headers")
        if isinstance(marked, list) and isinstance(headers, dict):
            names = {n.lower() for n in marked if isinstance(n, str)}
            slots += [(f"webhooks[{i}].headers.{h}", headers, h) for h in headers if h.lower() in names]
    return slots


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
            near = difflib.get_close_matches(str(raw[-1]), field_names(Config, raw[:-1]), n=1)
            if near:
                msg += f"; did you mean `{near[0]}`?"
        key = key_path(loc)
        lines.append(f"{key}: {msg}" if key else msg)
    return lines


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
    return sorted({name for m in models for name in m.model_fields})


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


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        raise ValueError(f"{listen!r} is not host:port")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def inline_secrets(path: Path) -> list[str]:
    """Key paths of secrets written inline (not ``env:`` or ``file:``) in a config file."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [
        key
        for key, container, slot in _secret_slots(data)
        if isinstance(container[slot], str) and not container[slot].startswith(("env:", "file:"))
    ]
