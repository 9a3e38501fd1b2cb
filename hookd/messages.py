"""The pre-configured types (SPEC §12): a chat message rendered from the webhook's template,
in the request body Slack, Microsoft Teams or Discord expects (pure).

Each type is a ``Kind``: how a substituted value is escaped, how the text is wrapped into
the body, and how the text is read back out of a body (for the delivery log's views).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from hookd.config import Webhook
from hookd.models import Occurrence
from hookd.templates import DEFAULT_TEMPLATE, Context, compile_template

DISCORD_LIMIT = 2000  # characters of a Discord message's content
_CARD = "application/vnd.microsoft.card.adaptive"


def slack_escape(text: str) -> str:
    """The three characters Slack reads as markup (links, mentions) as its entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters long; a cut one ends with ``…`` so it reads as cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Kind:
    """One pre-configured type."""

    escape: Callable[[str], str]
    wrap: Callable[[str], dict[str, Any]]
    read: Callable[[dict[str, Any]], Any]  # the text back out of a body of this kind (may raise)


def _teams(text: str) -> dict[str, Any]:
    card = {"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": text, "wrap": True}]}
    return {"type": "message", "attachments": [{"contentType": _CARD, "content": card}]}


KINDS: dict[str, Kind] = {
    "slack": Kind(slack_escape, lambda t: {"text": t}, lambda doc: doc["text"]),
    "teams": Kind(str, _teams, lambda doc: doc["attachments"][0]["content"]["body"][0]["text"]),
    "discord": Kind(
        str,
        lambda t: {"content": cut(t, DISCORD_LIMIT), "allowed_mentions": {"parse": []}},
        lambda doc: doc["content"],
    ),
}


class MessageBuilder:
    """Turns an occurrence routed to a webhook of a pre-configured type into the body bytes."""

    def __init__(self, webhook: Webhook, kind: Kind) -> None:
        self.webhook_id = webhook.id
        self.kind = kind
        # Compiled here, once per config load; the config's validation has parsed it already.
        self.template = compile_template(webhook.template if webhook.template is not None else DEFAULT_TEMPLATE)

    def text(self, occ: Occurrence, item_id: str, trigger: str) -> str:
        """The rendered template, values escaped for the type (before any cut)."""
        return self.template.render(occ, Context(item_id, self.webhook_id, trigger), self.kind.escape)

    def body(self, occ: Occurrence, item_id: str, trigger: str) -> bytes:
        """The JSON body of one item (SPEC §12)."""
        # The exact-size copy: see PayloadBuilder.body.
        return b"".join((orjson.dumps(self.kind.wrap(self.text(occ, item_id, trigger))), b""))


def message_text(webhook_type: str, body: bytes | None) -> str | None:
    """The message a body of a pre-configured type carries, or None (a standard webhook,
    a body not kept, or one of another shape: made before the webhook's type changed)."""
    kind = KINDS.get(webhook_type)
    if kind is None or not body:
        return None
    try:
        text = kind.read(orjson.loads(body))
    except (orjson.JSONDecodeError, LookupError, TypeError):
        return None
    return text if isinstance(text, str) else None
