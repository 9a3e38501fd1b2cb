// View #/webhooks/{id}: one webhook's name, address, health and configuration, around its
// deliveries list.

import { api } from "./api.js";
import { h } from "./dom.js";
import { deliveriesList, fetchDeliveries } from "./deliveries.js";
import { disabledNote, enableButton, enabledBadge, lastCell } from "./health.js";
import { setCrumbs } from "./page.js";
import { enc } from "./routes.js";
import { bodyBlock, section, typeTag } from "./widgets.js";

/** [webhook, page of deliveries]. */
export const fetchData = (route, signal) => Promise.all([
  api(`/v1/webhooks/${enc(route.id)}`, { signal }),
  fetchDeliveries(route, signal),
]);

/** ``ctx.refresh`` reloads the view (after Enable). */
export function render([w, page], route, ctx) {
  document.title = `${w.name || w.id} · hookd`;
  setCrumbs({ text: "Webhooks", href: "#/" }, { text: w.name || w.id });
  return h("section", { class: "webhook", "data-webhook": w.id },
    h("div", { class: "page-head" },
      h("div", { class: "head-main" },
        h("h1", {}, w.name || w.id, w.name && w.name !== w.id ? h("span", { class: "h1-id mono" }, w.id) : null, typeTag(w.type)),
        h("div", { class: "hook-url", title: w.url }, w.config ? `${w.config.method} ` : "", w.url)),
      h("div", { class: "head-side" }, enabledBadge(w), disabledNote(w), enableButton(w, ctx.refresh),
        w.last_at ? h("span", { class: "note" }, "Last attempt ", lastCell(w)) : null)),
    deliveriesList(w, page, route),
    w.config ? section("Configuration", "config", false,
      h("p", { class: "muted" }, "As loaded from the config file; secrets are shown as ***."),
      bodyBlock(null, JSON.stringify(w.config), "config-body")) : null);
}
