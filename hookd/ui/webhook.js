// View #/webhooks/{id}: one webhook's name, address, source, health, actions and
// configuration, around its deliveries list.

import { api } from "./api.js";
import { h } from "./dom.js";
import { batchesSection, fetchBatches } from "./batches.js";
import { deliveriesList, fetchDeliveries } from "./deliveries.js";
import { disabledNote, enableButton, enabledBadge, lastCell } from "./health.js";
import { setCrumbs } from "./page.js";
import { enc } from "./routes.js";
import { recoverButton } from "./recover.js";
import { sourceMark, webhookActions } from "./webhook_actions.js";
import { bodyBlock, section, typeTag } from "./widgets.js";

/** [{body: webhook, etag}, page of deliveries, open batches]: the ETag is what Delete's If-Match names. */
export const fetchData = (route, signal) => Promise.all([
  api(`/v1/webhooks/${enc(route.id)}`, { signal, withEtag: true }),
  fetchDeliveries(route, signal),
  fetchBatches(route.id, signal),
]);

/** ``ctx.refresh`` reloads the view (after Enable, Send test, or a Delete not done). */
export function render([{ body: w, etag }, page, batches], route, ctx) {
  document.title = `${w.name || w.id} · hookd`;
  setCrumbs({ text: "Webhooks", href: "#/" }, { text: w.name || w.id });
  const origin = w.source === "config" ? "As loaded from the config file" : "As created through the API";
  return h("section", { class: "webhook", "data-webhook": w.id, "data-source": w.source },
    h("div", { class: "page-head" },
      h("div", { class: "head-main" },
        h("h1", {}, w.name || w.id, w.name && w.name !== w.id ? h("span", { class: "h1-id mono" }, w.id) : null, typeTag(w.type)),
        h("div", { class: "hook-url", title: w.url }, w.config ? `${w.config.method} ` : "", w.url),
        h("div", { class: "head-badges" }, sourceMark(w))),
      h("div", { class: "head-side" }, webhookActions(w, etag, ctx.refresh, recoverButton(w, ctx.refresh)), enabledBadge(w), disabledNote(w), enableButton(w, ctx.refresh),
        w.last_at ? h("span", { class: "note" }, "Last attempt ", lastCell(w)) : null)),
    batchesSection(w, batches, ctx.refresh),
    deliveriesList(w, page, route),
    w.config ? section("Configuration", "config", false,
      h("p", { class: "muted" }, `${origin}; secrets are shown as ***.`),
      bodyBlock(null, JSON.stringify(w.config), "config-body")) : null);
}
