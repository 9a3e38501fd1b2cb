"""The egress keys (SPEC §14, §11): ``proxy``, the ``tls`` table and the address guard's networks.

The TLS files are read and checked while the config is validated, so a missing or invalid
one is an error naming its key at ``hookd check``, start-up and reload alike; the config
then carries their text, and the daemon never reads them again until the next load.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    model_validator,
)

from hookd.config.references import UNREAD_PEM, _base_dir, _resolved, resolve_secret
from hookd.guard import parse_network
from hookd.redact import shown_url
from hookd.tls import TlsMaterial, check_certificates, check_key, check_pair


class _Loaded:
    """A value read from a file or the environment while the config loaded, and where from.

    Not a dataclass on purpose: pydantic hands a plain object back unchanged from a Python
    dump, so a config validated again (a reload keeping restart-only keys) keeps the text.
    """

    __slots__ = ("pem", "where")

    def __init__(self, where: str, pem: str) -> None:
        self.where = where
        self.pem = pem

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and (self.where, self.pem) == (other.where, other.pem)

    def __hash__(self) -> int:
        return hash((self.where, self.pem))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.where!r})"  # never the text: a key is a secret


class PemFile(_Loaded):
    """A PEM certificate file named in the config (``where`` is its absolute path) and its text."""


class PemKey(_Loaded):
    """A client key: where it was read from (a path, ``file:PATH`` or ``env:NAME``) and its text."""


def _path(raw: str) -> Path:
    return (_base_dir.get() or Path.cwd()) / raw


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii")
    except OSError as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{str(path)!r} is not a PEM text file") from None


def _certificates(value: Any) -> PemFile:
    if isinstance(value, PemFile):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError("should be the path of a PEM file (a string)")
    path = _path(value)
    text = _read(path)
    try:
        check_certificates(text)
    except ValueError as exc:
        raise ValueError(f"{str(path)!r} {exc}") from None
    return PemFile(str(path), text)


def _key(value: Any, info: ValidationInfo) -> PemKey:
    if isinstance(value, PemKey):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError("should be the path of a PEM key, file:PATH or env:NAME (a string)")
    if value == UNREAD_PEM:  # `hookd check` could not read it here; the daemon will
        return PemKey(value, "")
    if value.startswith("env:"):
        text, where = resolve_secret(value), f"environment variable {value[4:]}"
    else:
        path = _path(value.removeprefix("file:"))
        text, where = _read(path), repr(str(path))
    try:
        check_key(text)
    except ValueError as exc:
        raise ValueError(f"{where} {exc}") from None
    return PemKey(value, text)


# In JSON (the API's config view) a file shows as its path and the key not at all; in
# Python the loaded values pass through, so a config validated again keeps them.
CertFile = Annotated[PemFile, PlainValidator(_certificates), PlainSerializer(lambda f: f.where, when_used="json")]
KeyFile = Annotated[PemKey, PlainValidator(_key), PlainSerializer(lambda k: "***", when_used="json")]


def _network(value: str) -> str:
    parse_network(value)  # raises, saying what is wrong
    return value


# Kept as written (a dump shows what the file says); the guard parses them when applied.
NetworkEntry = Annotated[str, AfterValidator(_network)]


def check_proxy(value: Any, info: ValidationInfo) -> Any:
    """``proxy``: ``"env"``, ``"direct"`` or ``http://[user:pass@]host:port``, which may be
    written as an ``env:``/``file:`` reference (it can hold credentials)."""
    if not isinstance(value, str) or value in ("env", "direct"):
        return value
    if value.startswith(("env:", "file:")) and not _resolved(info):
        value = resolve_secret(value)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError(f"{shown_url(value)!r} is not a proxy URL (http://[user:pass@]host:port)") from None
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f'{shown_url(value)!r} should be "env", "direct" or http://[user:pass@]host:port')
    if parts.path not in ("", "/") or parts.query or parts.fragment or port == 0:
        raise ValueError(f"{shown_url(value)!r} should be just http://[user:pass@]host:port")
    return value


class TlsConfig(BaseModel):
    """A ``tls`` table, in [delivery] or on one webhook; a webhook's keys override [delivery]'s key by key."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)  # as every table (models._Model)

    ca_file: CertFile | None = None  # extra CAs, added to the system's
    client_cert: CertFile | None = None
    client_key: KeyFile | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        # Checked here too, so a mismatch in one table is reported at that table.
        if self.client_cert is not None and self.client_key is not None and self.client_key.pem:
            check_pair(self.client_cert.pem, self.client_key.pem)
        return self

    def keys(self) -> TlsKeys:
        """The three keys as plain values."""
        return TlsKeys(self.ca_file, self.client_cert, self.client_key)


@dataclass(frozen=True, slots=True)
class TlsKeys:
    """A ``tls`` table's three keys, each None when unset."""

    ca_file: PemFile | None
    client_cert: PemFile | None
    client_key: PemKey | None

    def over(self, base: TlsKeys) -> TlsKeys:
        """These keys over ``base``'s, key by key (a webhook's over [delivery]'s)."""
        return TlsKeys(
            self.ca_file or base.ca_file, self.client_cert or base.client_cert, self.client_key or base.client_key
        )

    def material(self) -> TlsMaterial | None:
        """The PEM text to build a context from; None when no key is set (the system CAs only)."""
        if self.ca_file is None and self.client_cert is None and self.client_key is None:
            return None
        return TlsMaterial(
            self.ca_file.pem if self.ca_file else None,
            self.client_cert.pem if self.client_cert else None,
            self.client_key.pem if self.client_key else None,
        )

    def problem(self) -> str | None:
        """What is wrong with these keys taken together, if anything."""
        if self.client_cert is not None and self.client_key is None:
            return "tls.client_cert needs tls.client_key"
        if self.client_key is not None and self.client_cert is None:
            return "tls.client_key needs tls.client_cert"
        if self.client_cert is not None and self.client_key is not None and self.client_key.pem:
            try:
                check_pair(self.client_cert.pem, self.client_key.pem)
            except ValueError as exc:
                return f"tls: {exc}"
        return None


def egress_problems(delivery: TlsKeys, webhooks: Sequence[tuple[str, TlsKeys]]) -> list[str]:
    """Each combination in force, [delivery]'s and each webhook's over it, checked whole:
    a key and certificate from different tables must match too."""
    problems = []
    seen: dict[tuple[str | None, str | None], str | None] = {}
    # A webhook without tls keys of its own uses [delivery]'s combination, reported once.
    own = [(w, k.over(delivery)) for w, k in webhooks if k.material() is not None]
    for where, keys in [("delivery", delivery), *own]:
        ident = (keys.client_cert.pem if keys.client_cert else None, keys.client_key.pem if keys.client_key else None)
        if ident not in seen:
            seen[ident] = keys.problem()
        if seen[ident]:
            problems.append(f"{where}.{seen[ident]}")
    return problems
