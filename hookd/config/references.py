"""Secret references in the configuration: ``env:NAME`` and ``file:PATH`` values.

They resolve while the file is validated; ``hookd check`` may instead defer the ones it
cannot read here (a systemd credential, the service's environment) and say so, and the
daemon warns about secrets written inline in a file others can read.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import ValidationInfo

# Stands in for a signing secret `hookd check` cannot read: 16 zero bytes, a valid key.
_UNREAD_KEY = "whsec_AAAAAAAAAAAAAAAAAAAAAA=="

# Stands in for a client key (tls.client_key) `hookd check` cannot read: the key's checks skip it.
UNREAD_PEM = "\x00unread"

# The folder of the file being loaded, so `file:` references resolve against it
# without threading a parameter through every validator.
_base_dir: ContextVar[Path | None] = ContextVar("hookd_config_dir", default=None)


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
    if not isinstance(value, str) or _resolved(info):
        return value
    if info.context and info.context.get("api") and value.startswith(("env:", "file:")):
        # An API caller must not be able to make the daemon read its environment or files.
        raise ValueError("env: and file: references are not allowed through the API; write the value inline")
    return resolve_secret(value)


def _secrets(value: Any, info: ValidationInfo) -> Any:
    return [_secret(v, info) for v in value] if isinstance(value, list) else value


def _defer_unreadable(data: dict[str, Any]) -> list[str]:
    """Swap each ``env:``/``file:`` secret that cannot be read here for a placeholder; say which."""
    notes = []
    for key, container, slot in _secret_slots(data):
        raw = container[slot]
        if isinstance(raw, str) and key.endswith("tls.client_key") and not raw.startswith(("env:", "file:")):
            raw = f"file:{raw}"  # a key's plain path is a file: reference by another name
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
            # Each its own, so that two unread tokens are not taken for one token given twice.
            container[slot] = _placeholder(key)
    return notes


def _placeholder(key: str) -> str:
    """A valid value for the secret at ``key`` that `hookd check` could not read."""
    if ".secret[" in key:
        return _UNREAD_KEY
    if key.endswith("tls.client_key"):
        return UNREAD_PEM
    if key.endswith("proxy"):
        return "direct"
    return f"unread {key}"


def _secret_slots(data: Any) -> list[tuple[str, Any, Any]]:
    """Where the raw TOML data holds secrets: (key path, container, key or index) for each."""
    if not isinstance(data, dict):
        return []
    slots: list[tuple[str, Any, Any]] = []
    server = data.get("server")
    tokens = server.get("tokens") if isinstance(server, dict) else None
    for i, t in enumerate(tokens if isinstance(tokens, list) else []):
        # A plain string, or a table { token = "…", scopes = [...] }.
        if isinstance(t, dict):
            if "token" in t:
                slots.append((f"server.tokens[{i}].token", t, "token"))
        else:
            slots.append((f"server.tokens[{i}]", tokens, i))
    delivery = data.get("delivery")
    if isinstance(delivery, dict):
        slots += _egress_slots("delivery", delivery)
    webhooks = data.get("webhooks")
    for i, w in enumerate(webhooks if isinstance(webhooks, list) else []):
        if not isinstance(w, dict):
            continue
        slots += _egress_slots(f"webhooks[{i}]", w)
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


def _egress_slots(prefix: str, table: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """A proxy URL with credentials (or a reference to one), and a client key, in ``table``."""
    slots: list[tuple[str, Any, Any]] = []
    proxy = table.get("proxy")
    if isinstance(proxy, str) and ("@" in proxy or proxy.startswith(("env:", "file:"))):
        slots.append((f"{prefix}.proxy", table, "proxy"))
    tls = table.get("tls")
    if isinstance(tls, dict) and "client_key" in tls:
        slots.append((f"{prefix}.tls.client_key", tls, "client_key"))
    return slots


def inline_secrets(path: Path) -> list[str]:
    """Key paths of secrets written inline (not ``env:`` or ``file:``) in a config file."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [
        key
        for key, container, slot in _secret_slots(data)
        # A client key is always a path or a reference, never the key itself.
        if isinstance(container[slot], str)
        and not container[slot].startswith(("env:", "file:"))
        and not key.endswith("tls.client_key")
    ]
