// What can be done to a webhook from its page, and where it comes from: Edit and Delete for
// webhooks managed through the API, Send test for any, and the source mark.

import { canManage } from "./access.js";
import { api } from "./api.js";
import { h, link, mono } from "./dom.js";
import { toast } from "./page.js";
import { deliveryHref, editHref, enc, go } from "./routes.js";
import { ago } from "./widgets.js";

// The last test sent per webhook, {id, at}: the view is redrawn every few seconds, the link stays.
const lastTest = new Map();

/** Where the webhook comes from: the config file (read-only here) or the API. */
export function sourceMark(w) {
  return w.source === "config"
    ? h("span", { class: "tag tag-source", "data-source": "config", title: "A [[webhooks]] table of the config file: change it there and reload" }, "from the config file")
    : h("span", { class: "tag tag-source tag-api", "data-source": "api", title: "Created through the API or this page; kept in hookd's store" }, "API");
}

function testButton(w, after) {
  return h("button", {
    type: "button", class: "btn", "data-action": "test", title: "Send one hookd.ping delivery now, outside batching",
    onclick: async (ev) => {
      const btn = ev.currentTarget;
      btn.disabled = true;
      btn.textContent = "Sending…";
      try {
        const out = await api(`/v1/webhooks/${enc(w.id)}/test`, { method: "POST" });
        lastTest.set(w.id, { id: out.delivery_id, at: new Date().toISOString() });
        toast(`Test ping sent as ${out.delivery_id}`);
      } catch (err) {
        toast(`Could not send a test: ${err.message}`);
      }
      after();
    },
  }, "Send test");
}

function testNote(w) {
  const t = lastTest.get(w.id);
  if (!t) return null;
  return h("span", { class: "note", "data-test-delivery": t.id },
    "Test ping sent ", ago(t.at, "muted"), ": ", link(deliveryHref(t.id), {}, "view delivery ", mono(t.id)));
}

/**
 * The dialog that names the webhook and deletes it on confirmation, with If-Match set to the
 * ETag of the version the page shows; ``cancelled`` runs when it is closed without deleting.
 */
function confirmDelete(w, etag, cancelled) {
  let deleted = false;
  const name = w.name && w.name !== w.id ? `${w.name} (${w.id})` : w.id;
  const error = h("p", { class: "token-error", hidden: true, role: "alert" });
  const yes = h("button", { type: "submit", class: "btn btn-danger", "data-action": "confirm-delete" }, "Delete webhook");
  const dialog = h("dialog", { class: "token-dialog confirm-dialog", id: "delete-dialog", "aria-labelledby": "delete-title" },
    h("form", {
      method: "dialog",
      onsubmit: async (ev) => {
        ev.preventDefault();
        yes.disabled = true;
        yes.textContent = "Deleting…";
        try {
          await api(`/v1/webhooks/${enc(w.id)}`, { method: "DELETE", ifMatch: etag });
          deleted = true;
          dialog.close();
          toast(`Webhook ${w.id} deleted`);
          go("#/");
        } catch (err) {
          yes.disabled = false;
          yes.textContent = "Delete webhook";
          error.textContent = err.status === 412
            ? "It was changed since this page showed it: close this, look at the current version, and delete again if you still want to."
            : `hookd refused: ${err.message}`;
          error.hidden = false;
        }
      },
    },
    h("h2", { id: "delete-title" }, "Delete ", mono(name), "?"),
    h("p", {}, "It stops routing at once. Its pending deliveries and open batches are kept, and go out only if a webhook of the same id is created again."),
    h("p", { class: "muted" }, "Its delivery log stays readable until it is pruned."),
    error,
    h("div", { class: "dialog-actions" },
      h("button", { type: "button", class: "btn btn-quiet", "data-action": "cancel-delete", onclick: () => dialog.close() }, "Cancel"),
      yes)));
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (!deleted) cancelled();
  });
  document.body.append(dialog);
  dialog.showModal();
}

/** The webhook page's buttons (only those the token may use; ``more``: other views' buttons) and the last test's link. */
export function webhookActions(w, etag, refresh, ...more) {
  if (!canManage()) return null;
  const managed = w.source === "api";
  return h("div", { class: "actions" },
    h("div", { class: "action-buttons" },
      managed ? link(editHref(w.id), { class: "btn", "data-action": "edit" }, "Edit") : null,
      testButton(w, refresh),
      more,
      managed ? h("button", { type: "button", class: "btn btn-danger-quiet", "data-action": "delete", onclick: () => confirmDelete(w, etag, refresh) }, "Delete") : null),
    testNote(w));
}
