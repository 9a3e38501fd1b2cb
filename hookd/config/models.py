"""The tables of the configuration file, one frozen pydantic model each (the root is in load.py).

Every validator says what is wrong in words the operator editing the file can act on.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from hookd.config.access import Token, repeated_tokens, token_entries
from hookd.config.egress import NetworkEntry, TlsConfig, check_proxy
from hookd.config.references import _resolved, _secret, _secrets
from hookd.guard import DEFAULT_DENY
from hookd.operator_events import NAMES as OPERATOR_EVENTS
from hookd.operator_events import is_operator_event, names_matched
from hookd.redact import redact_url, shown_url
from hookd.signing import secret_key
from hookd.templates import TemplateError, parse

# Keys every item body carries (SPEC §4); a custom field may not shadow one.
ENVELOPE_KEYS = frozenset({"id", "webhook_id", "event", "event_id", "trigger", "object_id", "timestamp"})
OPERATORS = (
    "eq", "ne", "in", "not_in", "contains", "not_contains", "starts_with",
    "gt", "gte", "lt", "lte", "exists", "not_exists", "matches",
)  # fmt: skip
# \Z, not $: $ also matches before a final newline.
_WEBHOOK_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
_PATTERN = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.([a-z][a-z0-9_]*|\*))*)\Z")


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
    tokens: Array[Token] = ()
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_events_per_request: int = Field(1000, ge=1)
    shutdown_grace_seconds: Seconds = 10.0
    # A request's headers, then its body, must each arrive within this; an idle keep-alive
    # connection is closed after it. Bounds how long a client can hold a descriptor.
    client_timeout_seconds: float = Field(30.0, gt=0, allow_inf_nan=False)
    # Ingest refuses (422) an event whose type is not in [[event_types]] or fails its schema.
    strict_event_types: bool = False

    _entries = field_validator("tokens", mode="before")(token_entries)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_listen(value)
        return value

    @field_validator("tokens")
    @classmethod
    def _unique_tokens(cls, value: tuple[Token, ...]) -> tuple[Token, ...]:
        repeated = repeated_tokens(value)
        if repeated:
            raise ValueError("; ".join(repeated))
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
    # SPEC §14: "env", "direct" or http://[user:pass@]host:port; kept out of reprs (credentials).
    proxy: str | None = Field(None, repr=False)
    tls: TlsConfig = Field(default_factory=lambda: TlsConfig())
    # SPEC §11's address guard, for API webhooks only.
    deny_networks: Array[NetworkEntry] = DEFAULT_DENY
    allow_networks: Array[NetworkEntry] = ()

    _proxy = field_validator("proxy", mode="before")(check_proxy)


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
        # Only hookd sends hookd.… events, so a pattern there that none of them matches is a typo.
        if is_operator_event(value) and not names_matched(value):
            raise ValueError(f"{value!r} matches none of hookd's operator events ({', '.join(OPERATOR_EVENTS)})")
        return value


class CustomField(_Model):
    """One top-level key of a ``custom`` payload."""

    key: str = Field(min_length=1)
    source: str = Field(pattern=r"^(event|(object|action|linked)(\.[^.]+)*)$")
    send_id: bool = False


class Webhook(_Model):
    """A destination and its settings."""

    # Where the webhook is kept (SPEC §11): the config file, or the store for ApiWebhook.
    source: ClassVar[Literal["config", "api"]] = "config"

    id: str
    name: str = ""
    url: str
    type: Literal["standard", "slack", "teams", "discord"] = "standard"
    # The message of a pre-configured type (SPEC §12); None: the default template.
    template: str | None = None
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
    coalesce: bool = False  # inside one batch, a later item of the same object replaces the earlier (SPEC §13)
    per_webhook_concurrency: int | None = Field(None, ge=1)
    ordered: bool = False
    auto_disable_after: int = Field(0, ge=0)
    events: Array[Trigger]
    fields: Array[CustomField] = ()
    # Free-form labels (tenant, customer id) for the API's ?metadata.KEY=VALUE filter.
    metadata: dict[Annotated[str, Field(min_length=1, max_length=256)], Annotated[str, Field(max_length=256)]] = Field(
        default_factory=dict, max_length=16
    )
    # Over [delivery]'s: proxy as a whole, tls key by key (SPEC §14).
    proxy: str | None = Field(None, repr=False)
    tls: TlsConfig = Field(default_factory=lambda: TlsConfig())

    _proxy = field_validator("proxy", mode="before")(check_proxy)

    @property
    def shown_url(self) -> str:
        """The URL as hookd shows and logs it: credentials masked, and for Slack and Discord
        the token that ends the path (their URL is the credential)."""
        return redact_url(self.url, token_in_path=self.type in ("slack", "discord"))

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

    @field_validator("template")
    @classmethod
    def _template(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("type")
        if value is None or kind is None:  # no template, or a type already reported
            return value
        who = f"webhook {info.data.get('id', '?')!r}"
        if kind == "standard":
            raise ValueError(f"{who}: template is only for type 'slack', 'teams' or 'discord'")
        try:
            parse(value)
        except TemplateError as exc:
            raise ValueError(f"{who}: template: {exc}") from None
        return value

    @field_validator("method", "payload", "key_fields", "batching", "fields")
    @classmethod
    def _own_body(cls, value: Any, info: ValidationInfo) -> Any:
        # A pre-configured type sends one chat message per event in the shape its service
        # wants; a key that would shape the request otherwise is a mistake, not a no-op.
        kind = info.data.get("type", "standard")
        key = info.field_name
        assert key is not None
        if kind == "standard" or value == cls.model_fields[key].default:
            return value
        why = {
            "method": "always POSTs",
            "batching": "sends one message per event (batching = 'per_occurrence')",
        }.get(key, f"sends its own body, shaped by template; {key} does not apply")
        raise ValueError(f"webhook {info.data.get('id', '?')!r}: type {kind!r} {why}")

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
                out[name] = _secret(v, info) if name.lower() in marked else v
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return out

    def _check_batching(self) -> None:
        if self.batching == "per_occurrence":
            if self.coalesce:
                raise ValueError(f"webhook {self.id!r}: coalesce = true needs batching other than 'per_occurrence'")
            return
        why = []  # (a type other than standard is refused by _own_body)
        if self.method != "POST":
            why.append("method = 'POST'")
        if self.payload == "object_with_linked":
            why.append("a payload other than 'object_with_linked'")
        if why:
            raise ValueError(f"webhook {self.id!r}: batching {self.batching!r} needs " + " and ".join(why))

    @model_validator(mode="after")
    def _rules(self) -> Webhook:
        self._check_batching()
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


def first_repeat(keys: Iterable[str]) -> tuple[str, int, int] | None:
    """The first key given twice, with the positions of its first and second place."""
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key in first:
            return key, first[key], i
        first[key] = i
    return None


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


class ApiWebhook(Webhook):
    """A webhook created through the API (SPEC §11): kept in the store, never in the file."""

    source: ClassVar[Literal["config", "api"]] = "api"
