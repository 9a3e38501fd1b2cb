"""Standard Webhooks signatures: keys from ``whsec_`` secrets, ``sign`` and ``verify``.

A signature is ``v1,<base64 HMAC-SHA256>`` over ``id.timestamp.body``; a header holds one
per key, space-separated. The daemon signs, ``hookd receive`` and the tests verify, all
with this one pair, so the two sides cannot drift apart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence


def new_secret() -> str:
    """A new random signing secret: ``whsec_`` and 32 bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (base64 after the prefix), as Standard Webhooks has it."""
    body = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(body, validate=True)
    except binascii.Error:
        raise ValueError("secret must be 'whsec_' followed by base64 (see `hookd secret`)") from None
    if len(key) < 16:
        raise ValueError("secret is too short: use at least 16 random bytes (see `hookd secret`)")
    return key


def _signed(message_id: str, timestamp: int | str, body: bytes) -> bytes:
    return f"{message_id}.{timestamp}.".encode() + body


def sign(keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64>`` per key, space-separated."""
    signed = _signed(message_id, timestamp, body)
    return " ".join("v1," + base64.b64encode(hmac.new(k, signed, hashlib.sha256).digest()).decode() for k in keys)


def verify(keys: Sequence[bytes], message_id: str, timestamp: str, body: bytes, header: str) -> bool:
    """True when any ``v1`` signature in ``header`` is the HMAC of id.timestamp.body under any key.

    The timestamp is taken as it was sent, not checked against the clock: the caller
    decides how old a request may be (``hookd receive`` reports the age separately).
    """
    signed = _signed(message_id, timestamp, body)
    expected = [hmac.new(key, signed, hashlib.sha256).digest() for key in keys]
    for entry in header.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        matched = False
        for digest in expected:
            # No early exit across keys, so timing says nothing about which one matched.
            matched |= hmac.compare_digest(given, digest)
        if matched:
            return True
    return False
