// A webhook's open batches (SPEC §13): each one's key, the items waiting, when it opened, its
// deadline with a countdown that ticks every second on its own (no refetch), timer or spool,
// and "Send now", which flushes them all.

import { canManage } from "./access.js";
import { api } from "./api.js";
import { h, mono } from "./dom.js";
import { fmtCountdown } from "./format.js";
import { toast } from "./page.js";
import { enc } from "./routes.js";
import { when } from "./widgets.js";

export const fetchBatches = (id, signal) => api(`/v1/webhooks/${enc(id)}/batches`, { signal });

const countdownText = (iso) => fmtCountdown(Date.parse(iso) - Date.now());

/** Bring every countdown on the page to the current second. */
function tick() {
  for (const el of document.querySelectorAll("[data-deadline]")) {
    const text = countdownText(el.dataset.deadline);
    if (el.textContent !== text) el.textContent = text;
    el.classList.toggle("countdown-due", text === "due now");
  }
}
setInterval(tick, 1000);

function keyLabel(key) {
  if (key === "*") return "every event";
  if (key.startsWith("t:")) return `trigger ${key.slice(2)}`;
  if (key.startsWith("e:")) return `event type ${key.slice(2)}`;
  return key;
}

function flushButton(w, n, refresh) {
  if (!canManage() || !n) return null;
  return h("button", {
    type: "button", class: "btn btn-small", "data-action": "flush", title: "Send every open batch now, one delivery each",
    onclick: async (ev) => {
      const btn = ev.currentTarget;
      btn.disabled = true;
      btn.textContent = "Sending…";
      try {
        const out = await api(`/v1/webhooks/${enc(w.id)}/batches/flush`, { method: "POST" });
        toast(`${out.deliveries} batch${out.deliveries === 1 ? "" : "es"} sent now`);
      } catch (err) {
        toast(`Could not send the batches: ${err.message}`);
      }
      refresh();
    },
  }, "Send now");
}

/** The items waiting in open batches (``counts.batched``), beside the delivery counts; null when none. */
export function batchedCount(w) {
  const n = (w.counts || {}).batched || 0;
  if (!n) return null;
  return h("span", { class: "count count-batched", "data-count": "batched", title: `${n} item${n === 1 ? "" : "s"} routed, waiting in open batches (items, not deliveries)` },
    h("span", { class: "badge-icon", "aria-hidden": "true" }, "◷"), h("b", {}, String(n)), " batched");
}

/** The open batches card of webhook ``w`` (null when it does not batch and none is open). */
export function batchesSection(w, list, refresh) {
  const batches = (list && list.batches) || [];
  const batching = w.config && w.config.batching && w.config.batching !== "per_occurrence";
  if (!batching && !batches.length) return null;
  const items = batches.reduce((n, b) => n + b.items, 0);
  return h("div", { class: "card table-card batches", id: "open-batches", "data-batches": batches.length },
    h("div", { class: "card-head" },
      h("h2", {}, "Open batches"),
      h("span", { class: "muted" }, batches.length
        ? `${batches.length} open, ${items} item${items === 1 ? "" : "s"} waiting`
        : "None open: the next item opens one"),
      flushButton(w, batches.length, refresh)),
    batches.length ? h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, h("th", {}, "Key"), h("th", { class: "num" }, "Items"), h("th", {}, "Opened"),
        h("th", {}, "Deadline"), h("th", {}, "Leaves in"), h("th", {}, "Kept"))),
      h("tbody", {}, batches.map((b) => h("tr", { "data-batch": b.key },
        h("td", {}, mono(b.key), " ", h("span", { class: "muted" }, keyLabel(b.key))),
        h("td", { class: "num" }, String(b.items)),
        h("td", {}, when(b.opened_at)),
        h("td", {}, when(b.deadline)),
        h("td", { class: "countdown" }, h("span", { "data-deadline": b.deadline }, countdownText(b.deadline))),
        h("td", {}, b.spooled
          ? h("span", { class: "tag", title: "A long wait: its items wait in the SQLite spool, checked every spool_poll_seconds" }, "spooled")
          : h("span", { class: "tag", title: "A short wait: a timer in memory, its items also committed to SQLite" }, "timer")))))) : null);
}
