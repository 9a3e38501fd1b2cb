// The one time a generated signing secret is shown: after the save that made it, with a
// Copy button. It lives only in this card's elements; leaving the card forgets it.

import { h, link } from "./dom.js";
import { setCrumbs } from "./page.js";
import { webhookHref } from "./routes.js";

/** The secrets an answer shows in clear: the ones just generated (every other entry is ***). */
export const generatedSecrets = (view) => ((view.config && view.config.secret) || []).filter((s) => s !== "***");

async function copy(box, btn, note) {
  try {
    await navigator.clipboard.writeText(box.value);
    btn.textContent = "Copied";
    note.textContent = "";
  } catch {
    // No clipboard (a page not served over https or localhost) or no permission: select it for Ctrl+C.
    box.focus();
    box.select();
    note.textContent = "The browser would not copy it: the secret is selected, press Ctrl+C (⌘C on a Mac) to copy it.";
  }
}

function secretLine(secret, i) {
  const box = h("input", {
    type: "text", class: "mono secret-value", value: secret, readonly: true, spellcheck: "false", autocomplete: "off",
    id: i ? null : "new-secret", "data-secret": String(i), "aria-label": "Signing secret",
    onfocus: (ev) => ev.currentTarget.select(),
  });
  const note = h("p", { class: "hint copy-note", role: "status" });
  const btn = h("button", { type: "button", class: "btn btn-primary", "data-action": "copy-secret", onclick: () => copy(box, btn, note) }, "Copy");
  return h("div", { class: "secret-line" }, h("div", { class: "secret-row" }, box, btn), note);
}

/** The card shown in place of the form after a save that generated ``secrets`` for webhook ``w``. */
export function secretCard(w, secrets, created) {
  const name = w.name || w.id;
  document.title = `${created ? "Created" : "Saved"} ${name} · hookd`;
  setCrumbs({ text: "Webhooks", href: "#/" }, { text: name, href: webhookHref(w.id) }, { text: "Signing secret" });
  return h("section", { class: "card secret-card", "data-webhook": w.id, "data-secret-card": "true" },
    h("h1", {}, created ? `Webhook ${name} created` : `Webhook ${name} saved`),
    h("p", {}, secrets.length > 1 ? "Its new signing secrets:" : "Its new signing secret, for the receiver to check the webhook-signature header:"),
    secrets.map(secretLine),
    h("p", { class: "secret-warning", role: "note" },
      "This is the only time hookd shows this secret: it keeps it to sign, but every later view shows ***. ",
      "Copy it into the receiver's configuration before you leave this page."),
    h("p", {}, link(webhookHref(w.id), { class: "btn", "data-action": "to-webhook" }, "Done: go to the webhook")));
}
