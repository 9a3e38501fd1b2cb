// The webhook form's data, without any DOM: the form's state made from a webhook's config
// (as GET /v1/webhooks/{id} shows it) or blank, the JSON document a save sends, and the
// rules that tie a server-side error's key path to a place in the form.

/** SPEC §2's condition operators; the last two need no value. */
export const OPS = [
  "eq", "ne", "in", "not_in", "contains", "not_contains", "starts_with",
  "gt", "gte", "lt", "lte", "matches", "exists", "not_exists",
];
export const NO_VALUE_OPS = ["exists", "not_exists"];
export const METHODS = ["POST", "PUT", "PATCH", "GET"];
export const PAYLOADS = ["object", "object_with_linked", "event_only", "custom"];
export const BATCHING = ["per_occurrence", "same_event", "same_event_type", "any_event"];
export const AUTH_TYPES = ["none", "basic", "bearer", "header"];
// What each auth type sends, besides its type (SPEC §2).
export const AUTH_KEYS = { none: [], basic: ["username", "password"], bearer: ["token"], header: ["name", "value"] };
export const MASK = "***";

export const blankCondition = () => ({ field: "", op: "eq", value: "" });
export const blankTrigger = (n) => ({ id: n ? `trigger-${n + 1}` : "all", on: "", match: "all", conditions: [] });
export const blankField = () => ({ key: "", source: "", send_id: false });
export const blankPair = () => ({ key: "", value: "" });

/** The form of a new webhook: the config file's defaults, one trigger, no secret. */
export function blankState() {
  return {
    id: "", name: "", url: "", method: "POST", enabled: true,
    events: [blankTrigger(0)],
    payload: "object", key_fields: "", fields: [],
    batching: "per_occurrence", batch_wait_seconds: "30", max_items_per_batch: "100",
    auth: { type: "none", username: "", password: "", token: "", name: "", value: "" },
    headers: [], secret: "none", secrets: 0, metadata: [],
    ordered: false, auto_disable_after: "0", lightweight_logs: false, per_webhook_concurrency: "",
  };
}

const text = (v) => (v == null ? "" : String(v));
const pairs = (obj) => Object.entries(obj || {}).map(([key, value]) => ({ key, value: text(value) }));

/** The form of an existing webhook, from its masked config: secrets stay "***", which a save sends back to keep them. */
export function stateFromConfig(c) {
  const s = blankState();
  const auth = c.auth || { type: "none" };
  const secrets = Array.isArray(c.secret) ? c.secret.length : 0;
  return {
    ...s,
    id: c.id, name: text(c.name), url: text(c.url), method: c.method || "POST", enabled: c.enabled !== false,
    events: (c.events || []).map((t) => ({
      id: text(t.id), on: text(t.on), match: t.match || "all",
      conditions: (t.conditions || []).map((k) => ({ field: text(k.field), op: k.op, value: showValue(k.value) })),
    })),
    payload: c.payload || "object",
    key_fields: (c.key_fields || []).join(", "),
    fields: (c.fields || []).map((f) => ({ key: text(f.key), source: text(f.source), send_id: Boolean(f.send_id) })),
    batching: c.batching || "per_occurrence",
    batch_wait_seconds: text(c.batch_wait_seconds ?? s.batch_wait_seconds),
    max_items_per_batch: text(c.max_items_per_batch ?? s.max_items_per_batch),
    auth: { ...s.auth, ...Object.fromEntries(Object.entries(auth).map(([k, v]) => [k, text(v)])) },
    headers: pairs(c.headers),
    secret: secrets ? "keep" : "none",
    secrets,
    metadata: pairs(c.metadata),
    ordered: Boolean(c.ordered),
    auto_disable_after: text(c.auto_disable_after ?? 0),
    lightweight_logs: Boolean(c.lightweight_logs),
    per_webhook_concurrency: text(c.per_webhook_concurrency),
  };
}

/**
 * A condition's value as typed: JSON when it reads as JSON (``["P1", "P2"]``, ``42``,
 * ``true``, ``"42"``), else the text itself (``Closed``). Blank means no value.
 */
export function parseValue(typed) {
  if (typed.trim() === "") return undefined;
  try {
    return JSON.parse(typed);
  } catch {
    return typed;
  }
}

/** The inverse of parseValue: a string that would read as JSON is shown quoted, so it stays a string. */
export function showValue(v) {
  if (v === undefined || v === null) return "";
  if (typeof v === "string" && parseValue(v) === v) return v;
  return JSON.stringify(v);
}

/** A number field: blank leaves the key out (the default applies); anything else goes as typed, for the server to judge. */
function number(typed) {
  const t = typed.trim();
  if (t === "") return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : t;
}

function condition(c) {
  const out = { field: c.field.trim(), op: c.op };
  const value = parseValue(c.value);
  if (value !== undefined) out.value = value;
  return out;
}

/** Rows with a key or a value as an object; wholly blank rows are left out. */
function object(rows) {
  return Object.fromEntries(rows.filter((r) => r.key !== "" || r.value !== "").map((r) => [r.key, r.value]));
}

function secretValue(state, base) {
  const kept = Array.isArray(base.secret) ? base.secret : [];
  switch (state.secret) {
    case "keep": return kept;
    case "generate": return "generate";
    case "rotate": return [...kept, "generate"];
    default: return [];
  }
}

/**
 * The JSON document a save sends. ``base`` is the webhook's config as read (``{}`` for a new
 * one), so keys the form does not show (``type``, ``secret_headers``) are sent back as they
 * were; every row the form shows is sent, in order, so a detail's index names its row.
 */
export function toDocument(state, base = {}) {
  const doc = { ...base };
  const id = state.id.trim();
  if (id) doc.id = id;
  else delete doc.id;
  Object.assign(doc, {
    name: state.name, url: state.url.trim(), method: state.method, enabled: state.enabled,
    events: state.events.map((t) => ({ id: t.id.trim(), on: t.on.trim(), match: t.match, conditions: t.conditions.map(condition) })),
    payload: state.payload,
    key_fields: state.key_fields.split(",").map((k) => k.trim()).filter(Boolean),
    // Hidden unless the payload is custom, so not sent otherwise (the file's rule refuses them then).
    fields: state.payload === "custom" ? state.fields.map((f) => ({ key: f.key.trim(), source: f.source.trim(), send_id: f.send_id })) : [],
    batching: state.batching,
    auth: { type: state.auth.type, ...Object.fromEntries(AUTH_KEYS[state.auth.type].map((k) => [k, state.auth[k]])) },
    headers: object(state.headers),
    secret: secretValue(state, base),
    metadata: object(state.metadata),
    ordered: state.ordered,
    lightweight_logs: state.lightweight_logs,
    per_webhook_concurrency: number(state.per_webhook_concurrency) ?? null,
  });
  for (const key of ["batch_wait_seconds", "max_items_per_batch", "auto_disable_after"]) {
    const n = number(state[key]);
    if (n === undefined) delete doc[key];
    else doc[key] = n;
  }
  return doc;
}

/** Whether ``path`` (``events[0].conditions[1].op``) lies at or under ``prefix`` (``events[0]``). */
export function covers(prefix, path) {
  if (prefix === "") return false;
  return path === prefix || path.startsWith(`${prefix}.`) || path.startsWith(`${prefix}[`);
}

/** Of ``candidates`` (paths the form has a place for), the one nearest to ``path``, or null. */
export function nearest(candidates, path) {
  let best = null;
  for (const c of candidates) if (covers(c, path) && (best === null || c.length > best.length)) best = c;
  return best;
}
