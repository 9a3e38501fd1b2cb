"""Webhooks of two sources (SPEC §11): the rules for API documents, as plain functions.

A webhook made through the API is a JSON document with the keys of a ``[[webhooks]]``
table. These functions take such a document to a validated ``ApiWebhook`` (or the list
of problems, one per key path), apply a JSON Merge Patch, keep stored secrets where a
client sent back the ``***`` it was shown, and compose the file's webhooks with the
API's into the one config the router runs on.
"""

from __future__ import annotations

import copy
import difflib
import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import ValidationError

from hookd.config import ApiWebhook, Config, Webhook, field_names, key_path, plain_message
from hookd.guard import literal_denied, parse_networks
from hookd.redact import redact_url
from hookd.signing import new_secret

MASK = "***"
# The auth keys that hold credentials (SPEC §2's auth tables).
_AUTH_SECRETS = ("password", "token", "value")


class InvalidWebhook(Exception):
    """A webhook document that cannot be used: one ``{"path", "message"}`` per problem."""

    def __init__(self, details: list[dict[str, str]]) -> None:
        self.details = details
        super().__init__("; ".join(f"{d['path']}: {d['message']}" if d["path"] else d["message"] for d in details))


def new_id() -> str:
    """A generated webhook id: ``wh_`` and 16 random lower-case hex digits (fits the id rule)."""
    return "wh_" + secrets.token_hex(8)


def revision() -> str:
    """A new random revision tag (the ETag). Random rather than a hash of the document,
    which holds secrets: a hash of a short password would let anyone guess it offline."""
    return secrets.token_hex(8)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON Merge Patch: objects merge key by key, ``null`` removes, anything
    else replaces (arrays too). ``target`` is not changed."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def keep_masked(doc: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with each secret written as ``***`` replaced by the stored value at the same
    place, so a client can send back the view it was shown without knowing the secrets.

    The places: ``secret`` (by position), ``auth.password|token|value`` (same auth type),
    ``headers.NAME`` (every header value is shown masked), and ``url``, shown without its
    ``user:password@`` and with credential-like query values as ``***``: the URL exactly as
    shown keeps the stored one.
    """
    out = dict(doc)
    url, old_url = out.get("url"), stored.get("url")
    hidden_token = stored.get("type") in ("slack", "discord")  # as Webhook.shown_url shows it
    if isinstance(url, str) and isinstance(old_url, str) and url != old_url and url == _shown(old_url, hidden_token):
        out["url"] = old_url
    secret, old_secret = out.get("secret"), _as_list(stored.get("secret"))
    if isinstance(secret, str):
        secret = [secret]
    if isinstance(secret, list):
        out["secret"] = [old_secret[i] if s == MASK and i < len(old_secret) else s for i, s in enumerate(secret)]
    auth, old_auth = out.get("auth"), stored.get("auth")
    if isinstance(auth, dict) and isinstance(old_auth, dict) and auth.get("type") == old_auth.get("type"):
        out["auth"] = {
            k: old_auth[k] if v == MASK and k in _AUTH_SECRETS and k in old_auth else v for k, v in auth.items()
        }
    headers, old_headers = out.get("headers"), stored.get("headers")
    if isinstance(headers, dict) and isinstance(old_headers, dict):
        out["headers"] = {k: old_headers[k] if v == MASK and k in old_headers else v for k, v in headers.items()}
    return out


def _shown(url: str, token_in_path: bool) -> str | None:
    try:
        return redact_url(url, token_in_path=token_in_path)
    except ValueError:
        return None


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [value] if value is not None else []


def generate_secrets(doc: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``doc`` with each ``secret`` entry written ``"generate"`` replaced by a new
    ``whsec_`` secret, and the new secrets (shown once, in the answer)."""
    secret = doc.get("secret")
    if secret == "generate" or (isinstance(secret, list) and "generate" in secret):
        made: list[str] = []
        entries = []
        for s in _as_list(secret):
            if s == "generate":
                made.append(new_secret())
                entries.append(made[-1])
            else:
                entries.append(s)
        return {**doc, "secret": entries}, made
    return doc, []


def parse(doc: Any, checks: Iterable[Callable[[ApiWebhook], list[dict[str, str]]]] = ()) -> ApiWebhook:
    """Validate a webhook document as the API receives it; raise InvalidWebhook.

    The same models as the file, with ``env:``/``file:`` references refused (context
    ``api``); ``checks`` add the rules that need more than the document (the address
    guard, the event catalogue), each returning its problems.
    """
    if not isinstance(doc, dict):
        raise InvalidWebhook([{"path": "", "message": "the body must be a JSON object (one webhook)"}])
    # Refused before validation, which would read the named files: egress is the
    # operator's, set in the file ([delivery] applies to API webhooks too).
    operator_only = [
        {"path": key, "message": f"{key} cannot be set through the API; the operator sets [delivery] {key}"}
        for key in ("tls", "proxy")
        if _set(doc.get(key))
    ]
    if operator_only:
        raise InvalidWebhook(operator_only)
    try:
        w = ApiWebhook.model_validate(doc, context={"api": True})
    except ValidationError as exc:
        raise InvalidWebhook(problems(exc)) from None
    except RecursionError:
        raise InvalidWebhook([{"path": "", "message": "a value is nested too deeply"}]) from None
    found = [p for check in checks for p in check(w)]
    if found:
        raise InvalidWebhook(found)
    return w


def problems(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic's errors as ``{"path", "message"}``, paths relative to the webhook."""
    out = []
    for err in exc.errors(include_url=False):
        loc, msg = plain_message(err)
        if err["type"] == "extra_forbidden":
            near = difflib.get_close_matches(str(loc[-1]), field_names(ApiWebhook, loc[:-1]), n=1)
            msg += f"; did you mean `{near[0]}`?" if near else ""
        out.append({"path": key_path(loc), "message": msg})
    return out


def _set(value: Any) -> bool:
    # A view sent back carries the defaults (null, or a table of nulls): not a setting.
    return any(v is not None for v in value.values()) if isinstance(value, dict) else value is not None


def address_check(deny: Sequence[str], allow: Sequence[str]) -> Callable[[ApiWebhook], list[dict[str, str]]]:
    """The create-time half of the address guard (SPEC §11): a URL whose host is a literal
    address in a denied network is refused, naming the network. Host names are checked
    on every connect instead (hookd.egress)."""
    deny_nets, allow_nets = parse_networks(deny), parse_networks(allow)

    def check(w: ApiWebhook) -> list[dict[str, str]]:
        network = literal_denied(w.url, deny_nets, allow_nets)
        if network is None:
            return []
        return [{"path": "url", "message": f"the address is in {network}, which delivery.deny_networks refuses"}]

    return check


def compose(file: Config, api: Sequence[Webhook]) -> Config:
    """The config in force: the file's webhooks, then the API's (oldest first).

    Raises ValueError naming each id both sources use: a reload that brings such an id
    into the file is refused (the API's webhook stays), as is a start with one.
    """
    taken = {w.id for w in file.webhooks}
    clash = [w.id for w in api if w.id in taken]
    if clash:
        raise ValueError(
            "; ".join(
                f"webhook id {i!r} is used by a webhook created through the API (delete it there, or rename the file's)"
                for i in clash
            )
        )
    return file.model_copy(update={"webhooks": (*file.webhooks, *api)})
