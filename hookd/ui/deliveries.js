// A webhook's deliveries, newest first: the state filter, the table and the pager.

import { api } from "./api.js";
import { h, link, mono } from "./dom.js";
import { STATES, STATE_META, fmtDuration } from "./format.js";
import { deliveryHref, enc, go, webhookHref } from "./routes.js";
import { batchedCount } from "./batches.js";
import { ago, stateBadge, statusCell, when } from "./widgets.js";

const PAGE_SIZE = 50;

// Cursors of the pages before this one, per webhook and filter, for "Newer".
const pageStack = new Map();

/** One page of the route's deliveries: {deliveries, next}. */
export function fetchDeliveries(route, signal) {
  const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (route.state) q.set("state", route.state);
  if (route.before) q.set("before", route.before);
  return api(`/v1/webhooks/${enc(route.id)}/deliveries?${q}`, { signal });
}

function filters(w, route) {
  const counts = w.counts || {};
  const total = STATES.reduce((n, s) => n + (counts[s] || 0), 0);
  return h("div", { class: "filters", role: "group", "aria-label": "Filter by state" },
    [{ s: "", label: "All", n: total }, ...STATES.map((s) => ({ s, label: STATE_META[s].label, n: counts[s] || 0 }))].map(({ s, label, n }) =>
      link(webhookHref(w.id, s), {
        class: `filter${route.state === s ? " filter-on" : ""}${s ? ` state-${s}` : ""}`, "data-filter": s || "all",
        "aria-current": route.state === s ? "true" : null,
      }, s ? h("span", { class: "badge-icon", "aria-hidden": "true" }, STATE_META[s].icon) : null, label, h("span", { class: "filter-n" }, String(n)))));
}

function row(d) {
  return h("tr", { class: "row-link", "data-delivery": d.id, "data-state": d.state, "data-href": deliveryHref(d.id) },
    h("td", { class: "nowrap" }, link(deliveryHref(d.id), { class: "row-time" }, when(d.created_at))),
    h("td", {}, stateBadge(d.state), d.manual ? h("span", { class: "tag", title: "Sent by a manual resend" }, "resend") : null,
      d.state === "retrying" && d.next_attempt_at ? h("span", { class: "note" }, "Next attempt ", ago(d.next_attempt_at)) : null),
    h("td", { class: "num" }, statusCell(d.status_code, d.error)),
    h("td", { class: "num" }, String(d.attempts)),
    h("td", { class: "num" }, fmtDuration(d.duration_ms)),
    h("td", { class: "num" }, String(d.items)),
    h("td", { class: "cell-events" }, (d.events || []).map((e) => h("span", { class: "event" }, e))),
    h("td", { class: "cell-id" }, mono(d.id)));
}

/** The pager, or null when there is one page only. */
function pager(w, page, route) {
  const key = `${w.id}|${route.state}`;
  const stack = pageStack.get(key) || [];
  const newer = stack.length || route.before;
  if (!page.next && !newer) return null;
  return h("div", { class: "pager" },
    h("button", {
      type: "button", class: "btn btn-small", disabled: !newer, "data-action": "newer",
      onclick: () => {
        const prev = stack.pop();
        pageStack.set(key, stack);
        go(webhookHref(w.id, route.state, prev || ""));
      },
    }, "← Newer"),
    h("span", { class: "muted" }, route.before ? `Older deliveries, page ${stack.length + 1}` : "Newest first"),
    h("button", {
      type: "button", class: "btn btn-small", disabled: !page.next, "data-action": "older",
      onclick: () => {
        stack.push(route.before);
        pageStack.set(key, stack);
        go(webhookHref(w.id, route.state, page.next));
      },
    }, "Older →"));
}

/** The filter bar and the card with the table (or why it is empty) and the pager, for webhook ``w``. */
export function deliveriesList(w, page, route) {
  const emptyText = route.state ? `No ${route.state} deliveries${route.before ? " on this page" : ""}.` : "No deliveries yet.";
  return [
    h("div", { class: "toolbar" }, filters(w, route), batchedCount(w)),
    h("div", { class: "card table-card" },
      page.deliveries.length
        ? h("table", { class: "grid deliveries" },
          h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", {}, "State"), h("th", { class: "num" }, "Status"),
            h("th", { class: "num" }, "Attempts"), h("th", { class: "num" }, "Duration"), h("th", { class: "num" }, "Items"),
            h("th", {}, "Events"), h("th", { class: "cell-id" }, "Delivery"))),
          h("tbody", {}, page.deliveries.map(row)))
        : h("p", { class: "empty" }, emptyText),
      pager(w, page, route)),
  ];
}
