// The webhook form's sections, each a fieldset over the form's state (webhook_doc.js):
// what the webhook is, when it fires, what it sends, how it authenticates, and the rest.

import { h, mono } from "./dom.js";
import { checkbox, field, input, number, rowList, select, showWhen } from "./form_widgets.js";
import {
  AUTH_KEYS, AUTH_TYPES, BATCHING, METHODS, NO_VALUE_OPS, OPS, PAYLOADS,
  blankCondition, blankField, blankPair, blankTrigger,
} from "./webhook_doc.js";

const TYPES_LIST = "event-type-options";

function section(title, path, ...kids) {
  return h("fieldset", { class: "form-section", "data-path": path || null }, h("legend", {}, title), ...kids);
}

/** Id, name, address, method, enabled. The id is fixed once the webhook exists. */
export function basics(state, editing) {
  return section("Webhook", null,
    h("div", { class: "field-grid" },
      field("Id", input(state, "id", { "data-path": "id", name: "id", readonly: editing, placeholder: editing ? null : "generated when blank" }),
        editing ? "The id cannot change." : "Lower-case letters, digits, _ and -; blank: hookd makes one (wh_…)."),
      field("Name", input(state, "name", { "data-path": "name", name: "name", placeholder: "Service desk sync" }))),
    h("div", { class: "field-grid field-grid-url" },
      field("Method", select(state, "method", METHODS, { "data-path": "method", name: "method" })),
      field("URL", input(state, "url", { "data-path": "url", name: "url", class: "mono", placeholder: "the receiver's http(s) address" }),
        editing ? "Shown without credentials it may carry: leaving it as shown keeps them." : null)),
    checkbox(state, "enabled", "Enabled", { "data-path": "enabled", name: "enabled" }, "A disabled webhook routes nothing until it is enabled again."));
}

/** The datalist of event types for every trigger's ``on``: the catalogue's, then those seen. */
export function typeOptions(types) {
  return h("datalist", { id: TYPES_LIST },
    types.map((t) => h("option", { value: t.name, label: t.description || (t.seen && t.seen.count ? `seen ${t.seen.count}×` : "") })));
}

function conditionRow(c, path) {
  const value = input(c, "value", { "data-path": `${path}.value`, class: "mono", placeholder: 'Closed · 42 · ["P1", "P2"]' });
  const toggle = () => {
    value.disabled = NO_VALUE_OPS.includes(c.op);
    if (value.disabled) value.placeholder = "no value";
  };
  toggle();
  return [
    field("Field", input(c, "field", { "data-path": `${path}.field`, class: "mono", placeholder: "object.status" })),
    field("Op", select(c, "op", OPS, { "data-path": `${path}.op` }, toggle)),
    field("Value", value),
  ];
}

function triggerRow(t, i) {
  const path = `events[${i}]`;
  return h("div", { class: "trigger" },
    h("div", { class: "field-grid field-grid-trigger" },
      field("Trigger id", input(t, "id", { "data-path": `${path}.id`, class: "mono" })),
      field("On event type", input(t, "on", { "data-path": `${path}.on`, class: "mono", list: TYPES_LIST, placeholder: "ticket.created · ticket.* · *" })),
      field("Conditions must", select(t, "match", [["all", "all match"], ["any", "any match"]], { "data-path": `${path}.match` }))),
    h("div", { class: "sub" }, h("h4", {}, "Conditions"),
      rowList({
        rows: t.conditions, name: "condition", addLabel: "Condition", emptyText: "No conditions: every event of this type fires.",
        make: blankCondition, pathOf: (_, j) => `${path}.conditions[${j}]`,
        draw: (c, j) => conditionRow(c, `${path}.conditions[${j}]`),
      })));
}

/** The triggers: event type, match all/any, conditions. */
export function triggers(state, types) {
  const hint = types.length
    ? "Event types come from the catalogue and from what hookd has seen; a pattern (ticket.*, *) works too."
    : "Type an event type or a pattern: ticket.created, ticket.*, or * for every event.";
  return section("Event triggers", "events",
    h("p", { class: "hint" }, hint,
      " A condition's value is read as JSON when it is JSON (42, true, [\"P1\", \"P2\"], \"42\"), else as text."),
    typeOptions(types),
    rowList({
      rows: state.events, name: "trigger", addLabel: "Trigger", emptyText: "A webhook needs at least one trigger.",
      make: blankTrigger, pathOf: (_, i) => `events[${i}]`, draw: triggerRow,
    }));
}

/** Payload shape, custom fields, key_fields, batching. */
export function payload(state) {
  const fields = h("div", { class: "sub", "data-path": "fields" }, h("h4", {}, "Custom fields"),
    rowList({
      rows: state.fields, name: "field", addLabel: "Field", emptyText: "A custom payload needs at least one field.",
      make: blankField, pathOf: (_, i) => `fields[${i}]`,
      draw: (f, i) => [
        field("Key", input(f, "key", { "data-path": `fields[${i}].key`, class: "mono", placeholder: "status" })),
        field("Source", input(f, "source", { "data-path": `fields[${i}].source`, class: "mono", placeholder: "object.status" })),
        checkbox(f, "send_id", "Send id", { "data-path": `fields[${i}].send_id` }),
      ],
    }));
  const showFields = showWhen(fields, () => state.payload === "custom");
  const waits = h("div", { class: "field-grid" },
    field("Wait (seconds)", number(state, "batch_wait_seconds", { "data-path": "batch_wait_seconds", name: "batch_wait_seconds", min: "0" })),
    field("Items per batch", number(state, "max_items_per_batch", { "data-path": "max_items_per_batch", name: "max_items_per_batch", min: "1" })));
  const showWaits = showWhen(waits, () => state.batching !== "per_occurrence");
  return section("Payload and batching", null,
    h("div", { class: "field-grid" },
      field("Payload", select(state, "payload", PAYLOADS, { "data-path": "payload", name: "payload" }, showFields)),
      field("Key fields", input(state, "key_fields", { "data-path": "key_fields", name: "key_fields", class: "mono", placeholder: "id, status, summary" }),
        "Comma-separated: keep only these fields of object.")),
    fields,
    h("div", { class: "field-grid" },
      field("Batching", select(state, "batching", BATCHING, { "data-path": "batching", name: "batching" }, showWaits),
        "Other than per_occurrence needs method POST and a payload other than object_with_linked.")),
    waits);
}

/** Auth, extra headers and the signing secret. Stored credentials show as *** and are kept while left so. */
export function credentials(state, editing) {
  const credential = (key, label, secret) => field(label,
    input(state.auth, key, { "data-path": `auth.${key}`, name: `auth_${key}`, type: secret ? "password" : "text", autocomplete: secret ? "new-password" : "off" }),
    null, { "data-auth-key": key });
  const boxes = ["username", "password", "token", "name", "value"].map((k) =>
    credential(k, { username: "Username", password: "Password", token: "Token", name: "Header name", value: "Header value" }[k],
      k !== "username" && k !== "name"));
  const showBoxes = () => {
    for (const b of boxes) b.hidden = !AUTH_KEYS[state.auth.type].includes(b.dataset.authKey);
  };
  showBoxes();
  const secretChoices = editing && state.secrets
    ? [["keep", `Keep the current secret${state.secrets > 1 ? "s" : ""}`], ["rotate", "Add a new one (rotation: signs with each)"],
      ["generate", "Replace with a new one"], ["none", "No signing"]]
    : [["none", "No signing"], ["generate", "Generate a secret (shown once)"]];
  if (!secretChoices.some(([v]) => v === state.secret)) state.secret = secretChoices[0][0];
  return section("Authentication and signing", null,
    h("div", { class: "field-grid", "data-path": "auth" },
      field("Auth", select(state.auth, "type", AUTH_TYPES, { "data-path": "auth.type", name: "auth_type" }, showBoxes)), boxes),
    editing ? h("p", { class: "hint" }, "Stored credentials and header values show as ", mono("***"), ": left so, they keep their stored value.") : null,
    h("div", { class: "sub", "data-path": "headers" }, h("h4", {}, "Extra headers"),
      rowList({
        rows: state.headers, name: "header", addLabel: "Header", emptyText: "None.", make: blankPair,
        pathOf: (r) => `headers.${r.key}`,
        draw: (r, i, rowEl) => [
          field("Name", input(r, "key", { class: "mono", placeholder: "X-Source" }, (v) => { rowEl.dataset.path = `headers.${v}`; })),
          field("Value", input(r, "value", { class: "mono", placeholder: "hookd" })),
        ],
      })),
    h("div", { class: "field-grid" },
      field("Signing secret", select(state, "secret", secretChoices, { "data-path": "secret", name: "secret" }),
        "Standard Webhooks signatures. A generated secret is shown once, after saving.")));
}

/** Metadata labels, ordering, auto-disable, logs, concurrency. */
export function more(state) {
  return section("Labels and delivery", null,
    h("div", { class: "sub", "data-path": "metadata" }, h("h4", {}, "Metadata"),
      h("p", { class: "hint" }, "Up to 16 labels (tenant, customer id) for GET /v1/webhooks?metadata.KEY=VALUE."),
      rowList({
        rows: state.metadata, name: "metadata", addLabel: "Label", emptyText: "None.", make: blankPair,
        pathOf: (r) => `metadata.${r.key}`,
        draw: (r, i, rowEl) => [
          field("Key", input(r, "key", { class: "mono", placeholder: "tenant" }, (v) => { rowEl.dataset.path = `metadata.${v}`; })),
          field("Value", input(r, "value", { class: "mono", placeholder: "acme" })),
        ],
      })),
    h("div", { class: "field-grid" },
      field("Auto-disable after", number(state, "auto_disable_after", { "data-path": "auto_disable_after", name: "auto_disable_after", min: "0" }),
        "Consecutive failed deliveries; 0: never."),
      field("Concurrency", number(state, "per_webhook_concurrency", { "data-path": "per_webhook_concurrency", name: "per_webhook_concurrency", min: "1", placeholder: "default" }),
        "Attempts in flight for this webhook; blank: delivery.per_webhook_concurrency.")),
    checkbox(state, "ordered", "Ordered", { "data-path": "ordered", name: "ordered" }, "One delivery in flight, strictly in order."),
    checkbox(state, "lightweight_logs", "Lightweight logs", { "data-path": "lightweight_logs", name: "lightweight_logs" },
      "Keep states, codes and timings only (no bodies: no resend)."));
}
