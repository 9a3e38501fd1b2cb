"""Payload shaping and request headers, signed with :mod:`hookd.signing`.

Each item's body is encoded to bytes once, when it is routed; a batch body is those
bytes joined, so nothing is encoded twice and the signature covers exactly what is sent.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from hookd import __version__
from hookd.config import ENVELOPE_KEYS, Webhook
from hookd.messages import KINDS, MessageBuilder
from hookd.models import Occurrence
from hookd.paths import MISSING, getter, is_select
from hookd.redact import redact_headers
from hookd.signing import Signer, secret_key

USER_AGENT = f"hookd/{__version__}"
# The headers that differ from one attempt to the next; every other one is fixed per webhook.
ATTEMPT_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class BodyBuilder(Protocol):
    """What routing asks of a webhook's body shape: an item's body bytes."""

    def body(self, occ: Occurrence, item_id: str, trigger: str) -> bytes:
        """The JSON body of one item."""
        ...


def body_builder(webhook: Webhook) -> BodyBuilder:
    """The body shape of ``webhook``: section 4's envelope payloads, or a chat message of a
    pre-configured type (SPEC §12), its template compiled now, once per config load."""
    kind = KINDS.get(webhook.type)
    return PayloadBuilder(webhook) if kind is None else MessageBuilder(webhook, kind)


class PayloadBuilder:
    """Turns an occurrence routed to one webhook into the item's body bytes."""

    def __init__(self, webhook: Webhook) -> None:
        self.webhook_id = webhook.id
        self.kind = webhook.payload
        self.key_fields = frozenset(webhook.key_fields) if webhook.key_fields else None
        self.fields = [(f.key, getter(f.source), f.send_id) for f in webhook.fields]
        # What the kind adds to the envelope, settled here rather than on every body.
        self._with_object = self.kind in ("object", "object_with_linked")
        self._with_linked = self.kind == "object_with_linked"

    def body(self, occ: Occurrence, item_id: str, trigger: str) -> bytes:
        """The JSON body of one item (SPEC §4)."""
        obj = occ.object
        doc: dict[str, Any] = {
            "id": item_id,
            "webhook_id": self.webhook_id,
            "event": occ.event,
            "event_id": occ.id,
            "trigger": trigger,
            "object_id": obj.get("id"),
            "timestamp": occ.timestamp,
        }
        if self._with_object:
            key_fields = self.key_fields
            if key_fields is not None:
                obj = {k: v for k, v in obj.items() if k in key_fields}
            doc["object"] = obj
            action = occ.action
            if action is not None:
                doc["action"] = action
            if self._with_linked and occ.linked is not None:
                doc["linked"] = occ.linked
        elif self.kind == "custom":
            for key, get, send_id in self.fields:
                value = get(occ)
                if value is MISSING:
                    value = None
                elif is_select(value):
                    value = value["id"] if send_id else value["display"]
                doc[key] = value
        # orjson hands back its whole working buffer (about 4 KiB) however short the JSON;
        # bodies can wait in memory for a day (open batches, queues), so keep an exact copy.
        # bytes(b), b[:] and b + b"" hand back b itself; joining it with an empty piece is the
        # cheapest real copy, one exact-size allocation (about half memoryview(b).tobytes()).
        return b"".join((orjson.dumps(doc), b""))


def batch_body(bodies: Sequence[bytes]) -> bytes:
    """A batched delivery's body: the item bodies as a JSON array, in arrival order."""
    return b"[" + b",".join(bodies) + b"]"


def query_params(body: bytes) -> dict[str, str]:
    """A GET request's query: the envelope's scalar fields of a single item."""
    doc = orjson.loads(body)
    if isinstance(doc, list):  # a batch made before the webhook switched to GET
        doc = doc[0] if doc else {}
    out = {}
    for key in ENVELOPE_KEYS:
        value = doc.get(key)
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        out[key] = str(value)
    return out


class RequestShape:
    """What a webhook's requests share: method, URL, fixed headers, signing keys."""

    def __init__(self, webhook: Webhook) -> None:
        self.method = webhook.method
        self.url = webhook.url
        self.shown_url = webhook.shown_url  # as the log and operator events show it
        self.keys = [secret_key(s.get_secret_value()) for s in webhook.secret]
        self.signer = Signer(self.keys)
        headers = {"User-Agent": USER_AGENT}
        if webhook.method != "GET":
            headers["Content-Type"] = "application/json"
        # Names whose values are credentials, redacted wherever headers are logged.
        self.secret_headers = {"authorization", *(name.lower() for name in webhook.secret_headers)}
        auth = webhook.auth
        if auth.type == "basic":
            raw = f"{auth.username}:{auth.password.get_secret_value()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        elif auth.type == "bearer":
            headers["Authorization"] = "Bearer " + auth.token.get_secret_value()
        elif auth.type == "header":
            headers[auth.name] = auth.value.get_secret_value()
            self.secret_headers.add(auth.name.lower())
        headers.update(webhook.headers)
        self.headers = headers
        # What the delivery log keeps of the fixed headers, redacted here, once per config
        # load: redaction ran a regular expression per header on every attempt (2 % of the
        # loop thread in the unbatched bench).
        self.logged_headers = redact_headers(headers, self.secret_headers)
        # The logged request's JSON up to the end of the fixed headers, encoded once; an
        # attempt appends only its webhook-* headers (see attempt_log). None where that
        # would not give what redacting the whole set gives: a configured header spelled
        # exactly like one of those (the attempt's value replaces it in place), or one of
        # them named a secret.
        self.logged_prefix: bytes | None = None
        dynamic = set(ATTEMPT_HEADERS)
        if not dynamic & set(headers) and not dynamic & self.secret_headers:
            shown = {"method": self.method, "url": self.shown_url, "headers": self.logged_headers}
            self.logged_prefix = orjson.dumps(shown)[:-2]  # without the closing "}}"

    def attempt_headers(self, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The headers of one attempt: fixed ones plus id, timestamp and signatures."""
        return self.attempt(message_id, timestamp, body)[0]

    def attempt(self, message_id: str, timestamp: int, body: bytes) -> tuple[dict[str, str], dict[str, str]]:
        """One attempt's headers, and the part of them that is the attempt's own (the
        webhook-* headers, what the log adds to ``logged_headers``)."""
        own = {"webhook-id": message_id, "webhook-timestamp": str(timestamp)}
        if self.keys:
            own["webhook-signature"] = self.signer(message_id, timestamp, body)
        headers = self.headers.copy()
        headers.update(own)
        return headers, own

    def redacted(self, headers: dict[str, str]) -> dict[str, str]:
        """Headers as the delivery log keeps them: credentials replaced by ``***``."""
        return redact_headers(headers, self.secret_headers)
