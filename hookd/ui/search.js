// Search (SPEC §13): the box in the page header, and the view #/search?q= listing every
// delivery that carried an object of that id or an event of that id, batched ones included,
// newest first. A delivery id (dlv_…) opens that delivery instead.

import { api } from "./api.js";
import { $, h, link, mono } from "./dom.js";
import { fmtDuration } from "./format.js";
import { setCrumbs } from "./page.js";
import { deliveryHref, go, searchHref, webhookHref } from "./routes.js";
import { stateBadge, statusCell, when } from "./widgets.js";

const PAGE_SIZE = 50;
// The two lists searched, each paged by its own cursor: "" its first page, "-" used up.
const STREAMS = [{ param: "object_id", cursor: "o" }, { param: "event_id", cursor: "e" }];

const seqOf = (d) => Number(String(d.id).split("_")[1]) || 0;

/** Wire the header's search box: a delivery id opens it, anything else is searched for. */
export function initSearch() {
  const form = $("search-form");
  const input = $("search-input");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = input.value.trim();
    if (!q) return;
    go(/^dlv_\S+$/.test(q) ? deliveryHref(q) : searchHref(q));
  });
  // The box shows what the results view is for, also when it was opened by its address.
  window.addEventListener("hashchange", () => {
    const m = /^#\/search\?(.*)$/.exec(location.hash);
    if (m) input.value = new URLSearchParams(m[1]).get("q") || "";
  });
}

/**
 * The deliveries of both lists merged, newest first, ``PAGE_SIZE`` of them, and each list's
 * cursor for the next page. Every item taken is at least as new as the last one taken, so
 * each list resumes after that one (a list whose page held nothing older is used up).
 */
export function merge(pages, limit) {
  const seen = new Map();
  for (const p of pages) for (const d of (p ? p.deliveries : [])) seen.set(d.id, d);
  const taken = [...seen.values()].sort((a, b) => seqOf(b) - seqOf(a)).slice(0, limit);
  const cutoff = taken.length ? seqOf(taken[taken.length - 1]) : 0;
  const next = pages.map((p) => {
    if (!p) return "-";
    const more = p.next || p.deliveries.some((d) => seqOf(d) < cutoff);
    return more ? String(cutoff) : "-";
  });
  return { deliveries: taken, next };
}

export async function fetchData(route, signal) {
  if (!route.q) return { deliveries: [], next: ["-", "-"] };
  const pages = await Promise.all(STREAMS.map(({ param, cursor }) => {
    const at = route[cursor];
    if (at === "-") return null;
    const q = new URLSearchParams({ [param]: route.q, limit: String(PAGE_SIZE) });
    if (at) q.set("before", at);
    return api(`/v1/deliveries?${q}`, { signal });
  }));
  return merge(pages, PAGE_SIZE);
}

function row(d) {
  return h("tr", { class: "row-link", "data-delivery": d.id, "data-state": d.state, "data-href": deliveryHref(d.id) },
    h("td", { class: "nowrap" }, link(deliveryHref(d.id), { class: "row-time" }, when(d.created_at))),
    h("td", {}, link(webhookHref(d.webhook_id), {}, d.webhook_id)),
    h("td", {}, stateBadge(d.state)),
    h("td", { class: "num" }, statusCell(d.status_code, d.error)),
    h("td", { class: "num" }, String(d.attempts)),
    h("td", { class: "num" }, fmtDuration(d.duration_ms)),
    h("td", { class: "num" }, String(d.items)),
    h("td", { class: "cell-events" }, (d.events || []).map((e) => h("span", { class: "event" }, e))),
    h("td", { class: "cell-id" }, mono(d.id)));
}

export function render(data, route) {
  document.title = `Search ${route.q} · hookd`;
  setCrumbs({ text: "Webhooks", href: "#/" }, { text: `Search “${route.q}”` });
  const input = $("search-input");
  if (document.activeElement !== input) input.value = route.q;
  const paged = route.o || route.e;
  const more = data.next.some((n) => n !== "-");
  const what = h("span", {}, "Deliveries that carried object ", mono(route.q), " or event ", mono(route.q),
    ", batched ones included, newest first.");
  return h("section", { class: "search-results", "data-query": route.q },
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Search"), h("p", { class: "muted" }, what))),
    h("div", { class: "card table-card" },
      data.deliveries.length
        ? h("table", { class: "grid deliveries" },
          h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", {}, "Webhook"), h("th", {}, "State"),
            h("th", { class: "num" }, "Status"), h("th", { class: "num" }, "Attempts"), h("th", { class: "num" }, "Duration"),
            h("th", { class: "num" }, "Items"), h("th", {}, "Events"), h("th", { class: "cell-id" }, "Delivery"))),
          h("tbody", {}, data.deliveries.map(row)))
        : h("p", { class: "empty", id: "search-empty" }, paged ? "No older deliveries." : "No delivery carried that object or event."),
      paged || more ? h("div", { class: "pager" },
        h("button", { type: "button", class: "btn btn-small", disabled: !paged, "data-action": "newest",
          onclick: () => go(searchHref(route.q)) }, "← Newest"),
        h("span", { class: "muted" }, paged ? "Older deliveries" : "Newest first"),
        h("button", { type: "button", class: "btn btn-small", disabled: !more, "data-action": "older",
          onclick: () => go(searchHref(route.q, data.next[0], data.next[1])) }, "Older →")) : null));
}
