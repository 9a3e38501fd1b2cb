"""The OpenAPI document of every /v1 route, built from pydantic models of the bodies.

The models here describe the wire format only (the hot path builds its JSON directly);
keeping them next to the document, and the tests that check live answers against it
(schemathesis), is what keeps the two in step.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from hookd import __version__

State = Literal["pending", "delivering", "retrying", "succeeded", "failed"]
WebhookType = Literal["standard", "slack", "teams", "discord"]
ErrorKind = Literal["timeout", "connect", "dns", "tls", "proxy", "blocked", "http"]


# JSON Schema cannot say what hookd refuses inside these objects: a number is judged by how
# it is written (``18446744073709551616`` is refused, ``1.8e19`` is not), so it is said in words.
_NUMBERS = (
    "Any JSON object. A number in it must fit a 64-bit integer (-2^63 to 2^64-1) or a double: "
    "a longer integer, or one a double turns into 0 or infinity (1e-400, 1e400), is refused (422)."
)
JsonObject = Annotated[dict[str, Any], Field(description=_NUMBERS)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class Event(BaseModel):
    """One event as the application posts it."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, min_length=1, max_length=128, description="idempotency key")
    event: str = Field(
        pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$",
        max_length=200,
        description="The event type. The prefix hookd. is hookd's own (operator events): refused (422).",
        json_schema_extra={"not": {"pattern": r"^hookd\."}},
    )
    occurred_at: str | None = Field(
        None, description="RFC 3339 date-time with offset", json_schema_extra={"format": "date-time"}
    )
    object: JsonObject
    action: JsonObject | None = None
    linked: dict[str, JsonObject] | None = None


class Accepted(_Wire):
    """202 answer of POST /v1/events."""

    accepted: int
    duplicates: int
    items: int
    ids: list[str]


class ErrorDetail(_Wire):
    """One problem: for 422, which event (index) and which key (path)."""

    index: int | None = None
    path: str | None = None
    message: str


class ErrorInfo(_Wire):
    """The error itself."""

    code: str
    message: str
    details: list[ErrorDetail]


class Error(_Wire):
    """Every error answer."""

    error: ErrorInfo


class Counts(_Wire):
    """Deliveries by state, and the items waiting in open batches."""

    pending: int
    delivering: int
    retrying: int
    succeeded: int
    failed: int
    batched: int = Field(description="items routed and waiting in open batches (not deliveries yet)")


class WebhookState(_Wire):
    """A webhook and its health."""

    id: str
    name: str
    source: Literal["config", "api"] = Field(
        description="config: the file's (read-only here); api: made through the API"
    )
    metadata: dict[str, str]
    url: str
    enabled: bool
    disabled_reason: Literal["config", "auto"] | None
    consecutive_failures: int
    counts: Counts
    last_status: int | None
    last_error: str | None
    last_at: str | None
    type: WebhookType


class WebhookSettings(_Wire):
    """A webhook's settings as the config holds them (secrets as ``***``); the keys of a
    ``[[webhooks]]`` table."""

    id: str
    url: str
    type: WebhookType = Field(description="standard: section 4's payloads; slack, teams, discord: a chat message")
    template: str | None = Field(
        description="The message of a pre-configured type: {path} placeholders ({object.summary}, {object_id}), "
        "{{ and }} for literal braces; null: the default '{event}: {object.summary} ({object_id})'"
    )


class WebhookDetail(WebhookState):
    """One webhook with its settings (secrets masked)."""

    config: WebhookSettings


class WebhookList(_Wire):
    """GET /v1/webhooks."""

    webhooks: list[WebhookState]


class DeliverySummary(_Wire):
    """A delivery in a list."""

    id: str
    webhook_id: str
    state: State
    created_at: str
    attempts: int
    status_code: int | None
    duration_ms: float | None
    items: int
    events: list[str]
    triggers: list[str]
    message_id: str
    next_attempt_at: str | None
    error: str | None
    manual: bool
    resend_of: str | None
    finished_at: str | None


class DeliveryPage(_Wire):
    """A page of deliveries, newest first."""

    deliveries: list[DeliverySummary]
    next: str | None


class AttemptResponse(_Wire):
    """What the receiver answered to one attempt (SPEC §13)."""

    status: int
    headers: dict[str, str]
    body: str = Field(description="up to delivery.max_response_bytes, decoded as UTF-8 (bad bytes replaced)")
    truncated: bool


class Attempt(_Wire):
    """One try of a delivery, with its own response or the reason it got none."""

    n: int
    started_at: str
    duration_ms: float
    status_code: int | None
    error: ErrorKind | None = Field(description="why no response came")
    manual: bool
    trigger: Literal["manual", "scheduled"]
    response: AttemptResponse | None = Field(description="null when none came, and under lightweight logs")
    message: str | None = Field(description="the error in words when no response came; null under lightweight logs")


class Delivery(_Wire):
    """A delivery's whole record."""

    id: str
    webhook_id: str
    state: State
    created_at: str
    attempts: list[Attempt]
    status_code: int | None
    duration_ms: float | None
    items: int
    item_ids: list[str]
    event_ids: list[str] = Field(
        description="each item's occurrence id, in item order (empty in records logged before schema 5)"
    )
    object_ids: list[Any] = Field(description="each item's object id as the event carried it, in item order")
    events: list[str]
    triggers: list[str]
    message_id: str
    lightweight_logs: bool
    request: dict[str, Any] | None
    response: dict[str, Any] | None = Field(description="the last attempt's response, as in attempts")
    coalesced_item_ids: list[str] = Field(
        description="items of the batch that a later item of the same object replaced (coalesce = true)"
    )
    webhook_type: WebhookType | None = Field(description="The webhook's type now; null when it is not configured")
    text: str | None = Field(
        description="A pre-configured type's message as rendered from its template and sent; null for standard "
        "webhooks and when the body was not kept"
    )


class OperatorDeliveryFailed(_Wire):
    """The ``object`` of ``hookd.delivery.failed``: a delivery failed for good."""

    summary: str = Field(description="one sentence for a message, e.g. 'Delivery dlv_7_… to billing failed …'")
    id: str = Field(description="the delivery id")
    webhook_id: str
    webhook_name: str
    message_id: str
    attempts: int
    status_code: int | None
    error: ErrorKind | None
    events: list[str]
    url: str = Field(description="the webhook's URL without credentials")


class OperatorWebhookDisabled(_Wire):
    """The ``object`` of ``hookd.webhook.disabled``: a webhook auto-disabled after ``failures``."""

    summary: str
    id: str = Field(description="the webhook id")
    name: str
    failures: int
    url: str


class OperatorWebhookEnabled(_Wire):
    """The ``object`` of ``hookd.webhook.enabled``: an auto-disabled webhook enabled again."""

    summary: str
    id: str = Field(description="the webhook id")
    name: str
    url: str


class Resent(_Wire):
    """202 answer of a resend."""

    delivery_id: str


class RecoverRequest(BaseModel):
    """The body of POST /v1/webhooks/{id}/recover."""

    model_config = ConfigDict(extra="forbid")
    since: str = Field(
        description="RFC 3339 date-time with offset; inclusive", json_schema_extra={"format": "date-time"}
    )
    until: str | None = Field(
        None, description="RFC 3339 date-time with offset; exclusive; default now. Must be later than since (422)",
        json_schema_extra={"format": "date-time"},
    )  # fmt: skip
    dry_run: bool = Field(False, description="count only: nothing is resent (200)")


class Recovered(_Wire):
    """The answer of a recovery (202), or of its dry run (200, with would_resend)."""

    resent: int
    skipped: int = Field(description="failed deliveries of the window whose body was not kept (lightweight logs)")
    would_resend: int | None = Field(None, description="dry run only: how many a recovery would resend now")


class BatchInfo(_Wire):
    """An open batch."""

    key: str = Field(description="* (any_event), t:<trigger id> (same_event) or e:<event type> (same_event_type)")
    items: int = Field(description="items that arrived, before any coalescing")
    opened_at: str
    deadline: str
    spooled: bool = Field(description="kept in the SQLite spool (a long wait), not on a timer")


class BatchList(_Wire):
    """GET /v1/webhooks/{id}/batches."""

    batches: list[BatchInfo]


class Flushed(_Wire):
    """202 answer of POST /v1/webhooks/{id}/batches/flush."""

    deliveries: int


class ActivityBucket(_Wire):
    """One minute of a webhook's deliveries, by the minute they were created in."""

    minute: str = Field(description="the minute's start, RFC 3339")
    succeeded: int
    failed: int
    retrying: int = Field(description="still retrying now")
    p50_ms: float | None = Field(description="median duration of their last attempts, within 5 %")
    max_ms: float | None = Field(description="longest duration of their last attempts")


class Activity(_Wire):
    """GET /v1/activity: per webhook, its minutes with deliveries (minutes without are left out)."""

    minutes: int
    since: str = Field(description="the first minute's start")
    until: str = Field(description="the end of the last minute (the current one)")
    webhooks: dict[str, list[ActivityBucket]] = Field(description="by webhook id, oldest minute first")


class WebhookDocument(BaseModel):
    """A webhook as POST/PUT take it: the keys and rules of a ``[[webhooks]]`` table (SPEC §2).

    ``id`` is optional on POST (generated as ``wh_…``). ``secret = "generate"`` makes a
    ``whsec_`` secret shown once in the answer; ``env:``/``file:`` values are refused. A
    secret sent back as ``***`` (as views show it) keeps the stored value, and so does a
    ``url`` sent back exactly as views show it (without its credentials).
    """

    model_config = ConfigDict(extra="allow")
    id: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    url: str
    events: list[dict[str, Any]] = Field(min_length=1)
    metadata: dict[str, str] | None = Field(None, max_length=16)


class Health(_Wire):
    """GET /healthz."""

    status: Literal["ok"]


class TokenScopes(_Wire):
    """GET /v1/token: what the caller's token may do."""

    scopes: list[Literal["ingest", "read", "manage"]]


class Seen(_Wire):
    """How often a type was ingested within retention_days, and when last."""

    count: int
    last_at: str | None


class EventType(_Wire):
    """A catalogued or seen event type."""

    name: str
    description: str
    schema_: dict[str, Any] | None = Field(alias="schema", description="its JSON Schema; null when it has none")
    seen: Seen


class EventTypeList(_Wire):
    """GET /v1/event-types: the catalogue in config order, then the types only seen, by name."""

    event_types: list[EventType]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: int) -> dict[str, Any]:
    words = {
        400: "Bad request", 401: "Missing or wrong token", 403: "The token lacks the scope this call needs",
        404: "Not found", 409: "Conflict", 412: "If-Match names a stale ETag", 413: "Too large", 415: "Not JSON",
        422: "Invalid events, webhook or request (with server.strict_event_types also: a type not in the "
             "catalogue, or an event that fails its type's schema)",
        503: "Shutting down or store unavailable",
    }  # fmt: skip
    return {str(c): _json(Error, words[c]) for c in codes}


def search_parameters() -> list[dict[str, Any]]:
    """The query parameters of GET /v1/deliveries (SPEC §13)."""
    text = {"type": "string", "minLength": 1, "maxLength": 1024}
    when = {"type": "string", "format": "date-time"}

    def param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "schema": schema, "description": description}

    return [
        param("webhook", text, "only this webhook's deliveries"),
        param("state", {"type": "string", "enum": list(get_args(State))}, "only deliveries in this state"),
        param("event", {"type": "string", "pattern": r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$", "maxLength": 200},
              "only deliveries carrying an item of this event type"),
        param("object_id", text, "only deliveries carrying an item of this object"),
        param("event_id", text, "only deliveries carrying an item of this occurrence"),
        param("item_id", text, "only the deliveries carrying this item"),
        param("since", when, "created at or after (RFC 3339 with offset)"),
        param("until", when, "created before (RFC 3339 with offset); at or before since: an empty page"),
        param("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size (default 50)"),
        param("before", {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}, "the previous page's next"),
    ]  # fmt: skip


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (its schemas are JSON Schema 2020-12, as pydantic writes them)."""
    models: list[type[BaseModel]] = [
        Event, Accepted, Error, ErrorInfo, ErrorDetail, Counts, WebhookState, WebhookSettings, WebhookDetail,
        WebhookList, DeliverySummary, DeliveryPage, AttemptResponse, Attempt, Delivery, Resent, Health, WebhookDocument,
        TokenScopes, Seen, EventType, EventTypeList, OperatorDeliveryFailed, OperatorWebhookDisabled,
        OperatorWebhookEnabled, RecoverRequest, Recovered, BatchInfo, BatchList, Flushed,
        ActivityBucket, Activity,
    ]  # fmt: skip
    requests = (Event, RecoverRequest)
    _, defs = models_json_schema(
        [(m, "validation" if m in requests else "serialization") for m in models],
        ref_template="#/components/schemas/{model}",
    )
    schemas = defs.get("$defs", {})
    wid = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"},
    }
    if_match = {
        "name": "If-Match",
        "in": "header",
        "schema": {"type": "string"},
        "description": "the ETag last read: the change is refused (412) if the webhook changed since",
    }
    etag = {"ETag": {"schema": {"type": "string"}, "description": "the webhook's current version"}}
    doc_body = {"required": True, "content": {"application/json": {"schema": _ref(WebhookDocument)}}}
    patch_body = {
        "required": True,
        "content": {
            t: {
                "schema": {
                    "type": "object",
                    "description": "RFC 7386 JSON Merge Patch over the webhook; null removes a key",
                }
            }
            for t in ("application/merge-patch+json", "application/json")
        },
    }
    detail = {**_json(WebhookDetail, "The webhook"), "headers": etag}
    did = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
    events_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [_ref(Event), {"type": "array", "items": _ref(Event), "minItems": 1}]}
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hookd",
            "version": __version__,
            "description": (
                "Ingest events; inspect and resend deliveries. Each token has scopes: POST /v1/events needs "
                "ingest, every other GET under /v1/ read (but GET /v1/token, which any valid token may call), "
                "every other /v1 call manage; a valid token without the scope gets 403. "
                "hookd also routes events of its own, "
                "operator events, to triggers whose `on` names the hookd. prefix: hookd.delivery.failed, "
                "hookd.webhook.disabled and hookd.webhook.enabled, their objects described by the schemas "
                "OperatorDeliveryFailed, OperatorWebhookDisabled and OperatorWebhookEnabled."
            ),
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            # Open routes: no token, so monitors and tools can read them (an empty security list).
            "/healthz": {"get": {
                "summary": "200 while the event loop runs",
                "security": [],
                "responses": {"200": _json(Health, "Running")},
            }},
            "/metrics": {"get": {
                "summary": "Prometheus metrics, text exposition format 0.0.4",
                "security": [],
                "responses": {"200": {"description": "The metrics", "content": {
                    "text/plain": {"schema": {"type": "string"}}}}},
            }},
            "/v1/openapi.json": {"get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "The OpenAPI document", "content": {
                    "application/json": {"schema": {"type": "object", "required": ["openapi", "paths"]}}}}},
            }},
            "/v1/events": {"post": {
                "summary": "Ingest one event or an array of events",
                "requestBody": events_body,
                "responses": {"202": _json(Accepted, "Accepted (durable per storage.durability)"),
                              **_errors(400, 401, 403, 413, 415, 422, 503)},
            }},
            "/v1/webhooks": {"get": {
                "summary": "Every webhook with its health; metadata.KEY=VALUE query parameters filter",
                "responses": {"200": _json(WebhookList, "The webhooks"), **_errors(401, 403)},
            }, "post": {
                "summary": "Create a webhook (kept in the store, routing at once)",
                "requestBody": doc_body,
                "responses": {
                    "201": {**detail, "description": "Created"}, **_errors(400, 401, 403, 409, 413, 415, 422)
                },
            }},
            "/v1/webhooks/{id}": {"get": {
                "summary": "One webhook, its settings and counts",
                "parameters": [wid],
                "responses": {"200": detail, **_errors(401, 403, 404)},
            }, "put": {
                "summary": "Replace an API webhook (409 managed_by_config for the file's)",
                "parameters": [wid, if_match],
                "requestBody": doc_body,
                "responses": {"200": detail, **_errors(400, 401, 403, 404, 409, 412, 413, 415, 422)},
            }, "patch": {
                "summary": "Change an API webhook with a JSON Merge Patch",
                "parameters": [wid, if_match],
                "requestBody": patch_body,
                "responses": {"200": detail, **_errors(400, 401, 403, 404, 409, 412, 413, 415, 422)},
            }, "delete": {
                "summary": "Delete an API webhook; its pending work stays as on a removal by reload",
                "parameters": [wid, if_match],
                "responses": {"204": {"description": "Deleted"}, **_errors(401, 403, 404, 409, 412)},
            }},
            "/v1/webhooks/{id}/test": {"post": {
                "summary": "Send one hookd.ping delivery now, outside batching",
                "parameters": [wid],
                "responses": {"202": _json(Resent, "The ping's delivery"), **_errors(401, 403, 404)},
            }},
            "/v1/webhooks/{id}/deliveries": {"get": {
                "summary": "A webhook's deliveries, newest first",
                "parameters": [
                    wid,
                    {"name": "state", "in": "query", "schema": {"type": "string", "enum": list(get_args(State))}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                    {"name": "before", "in": "query", "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}},
                ],
                "responses": {"200": _json(DeliveryPage, "A page"), **_errors(400, 401, 403, 404)},
            }},
            "/v1/webhooks/{id}/recover": {"post": {
                "summary": "Resend the failed deliveries of a time window, oldest first, each with its webhook-id",
                "description": "Answers 202 once every resend is made and queued (they go out through the "
                               "webhook's queue and concurrency); dry_run counts them instead (200).",
                "parameters": [wid],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(RecoverRequest)}}},
                "responses": {"200": _json(Recovered, "Dry run: what a recovery would do now"),
                              "202": _json(Recovered, "Resent"), **_errors(400, 401, 404, 409, 413, 415, 422, 503)},
            }},
            "/v1/webhooks/{id}/batches": {"get": {
                "summary": "The webhook's open batches, timer and spooled alike, the one due first first",
                "parameters": [wid],
                "responses": {"200": _json(BatchList, "The open batches"), **_errors(401, 404)},
            }},
            "/v1/webhooks/{id}/batches/flush": {"post": {
                "summary": "Send every open batch of the webhook now",
                "parameters": [wid],
                "responses": {"202": _json(Flushed, "One delivery per batch, in the log"), **_errors(401, 404)},
            }},
            "/v1/activity": {"get": {
                "summary": "Each webhook's deliveries of the last minutes, per minute: outcomes and latency",
                "description": "For the page's chart. Deliveries count in the minute they were created in; "
                               "pending and delivering ones are not counted yet. Answers are reused for 2 s.",
                "parameters": [
                    {"name": "minutes", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1440}},
                    {"name": "webhook", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": _json(Activity, "The buckets"), **_errors(400, 401, 403, 404)},
            }},
            "/v1/webhooks/{id}/enable": {"post": {
                "summary": "Re-enable an auto-disabled webhook",
                "parameters": [wid],
                "responses": {"200": _json(WebhookState, "The webhook, enabled"), **_errors(401, 403, 404, 409)},
            }},
            "/v1/deliveries": {"get": {
                "summary": "Deliveries of every webhook, newest first, filtered (each filter optional) and paged",
                "description": (
                    "object_id, event_id and item_id find batched deliveries too. object_id matches as text, "
                    "except that an integer written plainly matches the integer: 4242 finds 4242 and \"4242\". "
                    "since is inclusive, until exclusive. An unknown or repeated parameter is refused (400)."
                ),
                "parameters": search_parameters(),
                "responses": {"200": _json(DeliveryPage, "A page"), **_errors(400, 401, 403)},
            }},
            "/v1/deliveries/{id}": {"get": {
                "summary": "One delivery's whole record",
                "parameters": [did],
                "responses": {"200": _json(Delivery, "The delivery"), **_errors(401, 403, 404)},
            }},
            "/v1/token": {"get": {
                "summary": "The scopes of the caller's own token (any valid token may ask)",
                "responses": {"200": _json(TokenScopes, "The scopes"), **_errors(401)},
            }},
            "/v1/event-types": {"get": {
                "summary": "The event catalogue and every type ingested within retention_days, with counts",
                "responses": {"200": _json(EventTypeList, "The event types"), **_errors(401, 403)},
            }},
            "/v1/deliveries/{id}/resend": {"post": {
                "summary": "Resend: a new delivery with the same body and webhook-id",
                "parameters": [did],
                "responses": {"202": _json(Resent, "The new delivery"), **_errors(401, 403, 404, 409)},
            }},
        },
    }  # fmt: skip
