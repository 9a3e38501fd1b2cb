"""Credential redaction: URLs and headers as they may be shown, logged or echoed in an error."""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import parse_qsl, urlencode, urlsplit

# Header and query-parameter names that carry credentials, masked wherever shown or logged.
CREDENTIAL_NAME = re.compile(r"auth|token|key|secret|pass|cookie|session|sig(?!nature$)", re.IGNORECASE)


def is_credential(name: str) -> bool:
    """True for names such as Authorization, X-Api-Key, access_token (not webhook-signature)."""
    return bool(CREDENTIAL_NAME.search(name)) and not name.lower().startswith("webhook-")


def redact_url(url: str, token_in_path: bool = False) -> str:
    """The URL without any ``user:password@`` part, credential-like query values as ``***``.

    ``token_in_path``: the last segment of the path is a credential too, as in Slack's and
    Discord's webhook URLs (``/services/T…/B…/<token>``, ``/api/webhooks/<id>/<token>``).
    """
    parts = urlsplit(url)
    if token_in_path:
        head, sep, last = parts.path.rstrip("/").rpartition("/")
        if sep and last:
            parts = parts._replace(path=f"{head}/***")
    if parts.username is not None or parts.password is not None:
        # Host and port as written: the part after the last @ (a password may hold an @).
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        parts = parts._replace(query=urlencode([(k, "***" if is_credential(k) else v) for k, v in pairs], safe="*"))
    return parts.geturl()


def shown_url(url: str) -> str:
    """``url`` as an error message may echo it: redacted, and, where it does not parse as
    ``scheme://user:password@host``, everything before its last ``@`` masked too."""
    try:
        shown = redact_url(url)
    except ValueError:
        shown = url
    if "@" in shown:
        scheme, sep, rest = shown.partition("://")
        if not sep:
            scheme, rest = "", shown
        shown = f"{scheme}{sep}***@{rest.rpartition('@')[2]}"
    return shown


def redact_headers(headers: dict[str, str], secret_names: Collection[str]) -> dict[str, str]:
    """``headers`` with the values of ``secret_names`` (lower case) and credential-like names as ``***``."""
    return {k: ("***" if k.lower() in secret_names or is_credential(k) else v) for k, v in headers.items()}
