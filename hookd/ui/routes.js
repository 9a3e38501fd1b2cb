// The page's addresses: what location.hash names, the links to each view, and moving to one.
// Views: #/ (webhooks), #/webhooks/{id}?state=&before= (deliveries), #/deliveries/{id},
// #/search?q=&o=&e= (search results; o and e: the two lists' cursors),
// and the webhook form: #/new-webhook and #/webhooks/{id}/edit. (Not #/webhooks/new: "new"
// is a valid webhook id, whose page that address already is.)

import { STATES } from "./format.js";

export const enc = encodeURIComponent;

/**
 * The view the hash names: {name: "overview"}, {name: "webhook", id, state, before},
 * {name: "delivery", id}, {name: "search", q, o, e} or {name: "form", id} (id null: a new webhook).
 */
export function parseRoute() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map((p) => {
    try { return decodeURIComponent(p); } catch { return p; }
  });
  const q = new URLSearchParams(qs || "");
  if (parts[0] === "new-webhook" && parts.length === 1) return { name: "form", id: null };
  if (parts[0] === "webhooks" && parts[1] && parts[2] === "edit" && parts.length === 3) return { name: "form", id: parts[1] };
  if (parts[0] === "webhooks" && parts[1]) {
    const state = STATES.includes(q.get("state")) ? q.get("state") : "";
    return { name: "webhook", id: parts[1], state, before: q.get("before") || "" };
  }
  if (parts[0] === "deliveries" && parts[1]) return { name: "delivery", id: parts[1] };
  if (parts[0] === "search" && parts.length === 1) {
    return { name: "search", q: (q.get("q") || "").trim(), o: q.get("o") || "", e: q.get("e") || "" };
  }
  return { name: "overview" };
}

export function webhookHref(id, state, before) {
  const q = new URLSearchParams();
  if (state) q.set("state", state);
  if (before) q.set("before", before);
  const qs = q.toString();
  return `#/webhooks/${enc(id)}${qs ? `?${qs}` : ""}`;
}

export const deliveryHref = (id) => `#/deliveries/${enc(id)}`;

/** The search results for ``q``; ``o`` and ``e`` are the object and event lists' cursors. */
export function searchHref(q, o, e) {
  const p = new URLSearchParams({ q });
  if (o) p.set("o", o);
  if (e) p.set("e", e);
  return `#/search?${p}`;
}

export const NEW_WEBHOOK_HREF = "#/new-webhook";

export const editHref = (id) => `#/webhooks/${enc(id)}/edit`;

/** Navigate to ``href``; going to the address already shown loads it afresh all the same. */
export function go(href) {
  if (location.hash === href) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = href;
}
