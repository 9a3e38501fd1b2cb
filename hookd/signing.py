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
from typing import Any

_BLOCK = 64  # SHA-256's block size in bytes


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


class Signer:
    """``sign`` for a fixed set of keys, with each key's HMAC pads hashed once.

    HMAC-SHA256 is H((K ^ opad) || H((K ^ ipad) || message)) (RFC 2104). Python's
    ``hmac`` sets up OpenSSL's HMAC afresh on every call, which on OpenSSL 3 costs more
    than hashing a typical body (6.4 µs per signature measured, against 3.3 µs from
    copies of the two hash states taken once per key here). The result is ``sign``'s,
    byte for byte.
    """

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._pads: list[tuple[Any, Any]] = []
        for given in keys:
            # RFC 2104: a key longer than the block is hashed first; then it is zero-padded.
            key = (hashlib.sha256(given).digest() if len(given) > _BLOCK else given).ljust(_BLOCK, b"\0")
            inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
            outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
            self._pads.append((inner, outer))

    def __bool__(self) -> bool:
        return bool(self._pads)

    def __call__(self, message_id: str, timestamp: int, body: bytes) -> str:
        """The ``webhook-signature`` value: ``v1,<base64>`` per key, space-separated."""
        head = f"{message_id}.{timestamp}.".encode()
        out = []
        for inner, outer in self._pads:
            h = inner.copy()
            h.update(head)
            h.update(body)
            o = outer.copy()
            o.update(h.digest())
            out.append("v1," + binascii.b2a_base64(o.digest(), newline=False).decode())
        return " ".join(out)


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
