// A webhook's health, shown on the webhooks list and on the webhook's own page: enabled or
// why not, the Enable button, and its last attempt.

import { api } from "./api.js";
import { h } from "./dom.js";
import { toast } from "./page.js";
import { enc } from "./routes.js";
import { can } from "./scopes.js";
import { ago, statusCell } from "./widgets.js";

export function enabledBadge(w) {
  if (w.enabled) return h("span", { class: "badge health-on", "data-enabled": "true" }, h("span", { class: "badge-icon", "aria-hidden": "true" }, "●"), "Enabled");
  const label = w.disabled_reason === "auto" ? "Disabled · auto" : w.source === "api" ? "Disabled · settings" : "Disabled · config";
  return h("span", { class: "badge health-off", "data-enabled": "false", "data-reason": w.disabled_reason || "" },
    h("span", { class: "badge-icon", "aria-hidden": "true" }, "⊘"), label);
}

export function disabledNote(w) {
  if (w.enabled) return null;
  if (w.disabled_reason === "auto") {
    const n = w.consecutive_failures;
    return h("span", { class: "note" }, n ? `After ${n} consecutive failed deliveries; new items are kept.` : "New items are kept until it is enabled.");
  }
  if (w.source === "api") return h("span", { class: "note" }, "Turn Enabled on in its settings (Edit) to route again.");
  return h("span", { class: "note" }, "Set enabled = true in the config file and reload.");
}

/** The Enable button of an auto-disabled webhook (null otherwise); ``after`` runs once the call is answered. */
export function enableButton(w, after) {
  if (w.enabled || w.disabled_reason !== "auto" || !can("manage")) return null;
  return h("button", {
    type: "button", class: "btn btn-primary btn-small", "data-action": "enable",
    onclick: async (ev) => {
      const btn = ev.currentTarget;
      btn.disabled = true;
      btn.textContent = "Enabling…";
      try {
        await api(`/v1/webhooks/${enc(w.id)}/enable`, { method: "POST" });
        toast(`${w.name || w.id} enabled: kept items are being delivered`);
      } catch (err) {
        toast(`Could not enable ${w.id}: ${err.message}`);
      }
      if (after) after();
    },
  }, "Enable");
}

export function lastCell(w) {
  if (!w.last_at) return h("span", { class: "muted" }, "No attempt yet");
  return h("span", { class: "last" }, statusCell(w.last_status, w.last_error), " ", ago(w.last_at, "muted"));
}
