// View #/: every webhook with its health, counts by state and last attempt.

import { canManage } from "./access.js";
import { api } from "./api.js";
import { h, link } from "./dom.js";
import { STATES, STATE_META } from "./format.js";
import { disabledNote, enableButton, enabledBadge, lastCell } from "./health.js";
import { setCrumbs } from "./page.js";
import { NEW_WEBHOOK_HREF, webhookHref } from "./routes.js";
import { activityChart } from "./activity_chart.js";
import { batchedCount } from "./batches.js";
import { sourceMark } from "./webhook_actions.js";
import { typeTag } from "./widgets.js";

/** [the webhooks, their last hour's activity (null from a hookd without GET /v1/activity)]. */
export const fetchData = (route, signal) => Promise.all([
  api("/v1/webhooks", { signal }),
  api("/v1/activity?minutes=60", { signal }).catch((err) => {
    if (signal.aborted || err.status === 0) throw err;
    return null;
  }),
]);

function countsStrip(w, compact) {
  const counts = w.counts || {};
  const total = STATES.reduce((n, s) => n + (counts[s] || 0), 0);
  if (!total && compact && !counts.batched) return h("span", { class: "muted" }, "No deliveries yet");
  return h("span", { class: "counts" }, batchedCount(w), STATES.map((s) => {
    const n = counts[s] || 0;
    if (compact && !n) return null;
    return link(webhookHref(w.id, s), {
      class: `count state-${s}${n ? "" : " count-zero"}`, title: `${n} ${s} — show them`, "data-count": s,
    }, h("span", { class: "badge-icon", "aria-hidden": "true" }, STATE_META[s].icon), h("b", {}, String(n)), ` ${s}`);
  }));
}

/** ``ctx.refresh`` reloads the view (after Enable). */
export function render([data, activity], route, ctx) {
  const hooks = data.webhooks || [];
  document.title = "Webhooks · hookd";
  setCrumbs({ text: "Webhooks" });
  const failed = hooks.reduce((n, w) => n + ((w.counts || {}).failed || 0), 0);
  const off = hooks.filter((w) => !w.enabled).length;
  const summary = [`${hooks.length} webhook${hooks.length === 1 ? "" : "s"}`];
  if (off) summary.push(`${off} disabled`);
  if (failed) summary.push(`${failed} failed deliver${failed === 1 ? "y" : "ies"}`);
  const rows = hooks.map((w) => h("tr", {
    class: `row-link${w.enabled ? "" : " row-off"}`, "data-webhook": w.id, "data-source": w.source, "data-href": webhookHref(w.id),
  },
    h("td", { class: "cell-hook" },
      link(webhookHref(w.id), { class: "hook-name" }, w.name || w.id),
      w.name && w.name !== w.id ? h("span", { class: "hook-id mono" }, w.id) : null,
      typeTag(w.type),
      sourceMark(w),
      h("div", { class: "hook-url", title: w.url }, w.url)),
    h("td", {}, enabledBadge(w), h("div", {}, disabledNote(w))),
    h("td", {}, countsStrip(w, true)),
    activity ? h("td", { class: "cell-chart" }, activityChart(activity, activity.webhooks[w.id])) : null,
    h("td", {}, lastCell(w)),
    h("td", { class: "cell-actions" }, enableButton(w, ctx.refresh))));
  return h("section", { class: "overview" },
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Webhooks"), h("p", { class: "muted" }, summary.join(" · "))),
      canManage() ? link(NEW_WEBHOOK_HREF, { class: "btn btn-primary", id: "new-webhook", "data-action": "new-webhook" }, "+ New webhook") : null),
    hooks.length
      ? h("div", { class: "card table-card" }, h("table", { class: "grid" },
        h("thead", {}, h("tr", {}, h("th", {}, "Webhook"), h("th", {}, "Status"), h("th", {}, "Deliveries"),
          activity ? h("th", { title: "Deliveries per minute by outcome (green succeeded, amber retrying, red failed), and the median latency as a line" }, "Last hour") : null,
          h("th", {}, "Last attempt"), h("th", { class: "cell-actions" }, h("span", { class: "sr-only" }, "Actions")))),
        h("tbody", {}, rows)))
      : h("div", { class: "card empty" }, h("p", {}, "No webhooks yet."),
        h("p", { class: "muted" }, canManage() ? "Create one with New webhook, or add a [[webhooks]] table to the config file and reload hookd."
          : "Add a [[webhooks]] table to the config file and reload hookd.")));
}
