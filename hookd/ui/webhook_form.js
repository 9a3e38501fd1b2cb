// Views #/new-webhook and #/webhooks/{id}/edit: the form that creates (POST) or replaces
// (PUT with If-Match) a webhook managed through the API, with each server-side problem
// shown next to its field. Config-file webhooks are shown as read-only here.

import { canManage } from "./access.js";
import { api } from "./api.js";
import { h, link } from "./dom.js";
import { basics, credentials, more, payload, triggers } from "./form_sections.js";
import { clearErrors, showErrors } from "./form_widgets.js";
import { setCrumbs, toast } from "./page.js";
import { editHref, enc, go, webhookHref } from "./routes.js";
import { generatedSecrets, secretCard } from "./secret_once.js";
import { blankState, stateFromConfig, toDocument } from "./webhook_doc.js";

/** The form is not refreshed by the page's timer: that would throw away what is being typed. */
export const refreshes = false;

/** The catalogue and the types seen, for the triggers' suggestions; none when hookd has no such call (404) or refuses it. */
async function eventTypes(signal) {
  try {
    const out = await api("/v1/event-types", { signal });
    return Array.isArray(out && out.event_types) ? out.event_types.filter((t) => t && typeof t.name === "string") : [];
  } catch (err) {
    if (signal.aborted) throw err;
    return [];
  }
}

/** {hook: {body, etag} or null for a new webhook, types}. */
export async function fetchData(route, signal) {
  const [hook, types] = await Promise.all([
    route.id ? api(`/v1/webhooks/${enc(route.id)}`, { signal, withEtag: true }) : null,
    eventTypes(signal),
  ]);
  return { hook, types };
}

function readOnly(w, why, detail) {
  return h("section", { class: "card empty", "data-read-only": w ? w.source : "token" },
    h("h1", {}, why), h("p", {}, detail),
    h("p", {}, link(w ? webhookHref(w.id) : "#/", {}, w ? `Back to ${w.name || w.id}` : "Back to all webhooks")));
}

/** The box over the form for problems that belong to no one field, and for 412. */
function generalBox() {
  return h("div", { class: "form-errors", role: "alert", hidden: true, "data-form-errors": "true" });
}

function showGeneral(box, lines, extra) {
  box.replaceChildren(h("ul", {}, lines.map((l) => h("li", {}, l))), ...(extra ? [extra] : []));
  box.hidden = !lines.length;
  if (!box.hidden) box.scrollIntoView({ block: "center" });
}

/** Show a refused save: 422 details by their fields, 412 with a way to reload, anything else in the box. */
function showRefusal(err, form, box, id) {
  if (err.status === 422) {
    const rest = showErrors(form, err.details);
    const placed = err.details.length - rest.length;
    const lines = rest.map((d) => (d.path ? `${d.path}: ${d.message}` : d.message));
    if (placed) lines.unshift(`${placed} problem${placed === 1 ? "" : "s"} marked at ${placed === 1 ? "its field" : "their fields"} below.`);
    showGeneral(box, lines.length ? lines : [err.message]);
    const first = form.querySelector("[aria-invalid], .field-error");
    if (first && !rest.length) first.scrollIntoView({ block: "center" });
    return;
  }
  if (err.status === 409 && err.code === "conflict") {
    showErrors(form, [{ path: "id", message: err.message }]);
    showGeneral(box, ["That id is taken: choose another, or leave it blank for a generated one."]);
    return;
  }
  if (err.status === 412) {
    showGeneral(box, ["This webhook was changed by someone else since this form was opened; saving now would overwrite their change."],
      h("button", { type: "button", class: "btn btn-small", "data-action": "reload-webhook", onclick: () => go(editHref(id)) },
        "Reload it (your edits here are dropped)"));
    return;
  }
  showGeneral(box, [err.status ? `hookd answered ${err.status}: ${err.message}` : err.message]);
}

/** The view: a form over the state, or why there is none. */
export function render(data, route) {
  const existing = data.hook ? data.hook.body : null;
  const name = existing ? existing.name || existing.id : "New webhook";
  document.title = `${existing ? `Edit ${name}` : name} · hookd`;
  setCrumbs({ text: "Webhooks", href: "#/" }, ...(existing ? [{ text: name, href: webhookHref(existing.id) }, { text: "Edit" }] : [{ text: name }]));
  if (existing && existing.source !== "api") {
    return readOnly(existing, "From the config file",
      "This webhook is a [[webhooks]] table of hookd's config file: change it there and reload hookd. Only webhooks created through the API or this page are edited here.");
  }
  if (!canManage()) return readOnly(existing, "Not allowed", "This page's API token may read but not change webhooks.");

  const base = existing ? existing.config : {};
  const state = existing ? stateFromConfig(base) : blankState();
  const box = generalBox();
  const save = h("button", { type: "submit", class: "btn btn-primary", id: "save-webhook", "data-action": "save" }, existing ? "Save changes" : "Create webhook");
  const root = h("section", { class: "webhook-form", "data-form": existing ? "edit" : "new", "data-webhook": existing ? existing.id : null });
  const form = h("form", {
    novalidate: true, autocomplete: "off",
    onsubmit: async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      showGeneral(box, []);
      save.disabled = true;
      save.textContent = "Saving…";
      try {
        const out = existing
          ? await api(`/v1/webhooks/${enc(existing.id)}`, { method: "PUT", json: toDocument(state, base), ifMatch: data.hook.etag, withEtag: true })
          : await api("/v1/webhooks", { method: "POST", json: toDocument(state, base), withEtag: true });
        const secrets = generatedSecrets(out.body);
        if (secrets.length) {
          root.replaceChildren(secretCard(out.body, secrets, !existing));
          window.scrollTo(0, 0);
        } else {
          toast(`${out.body.name || out.body.id} ${existing ? "saved" : "created"}`);
          go(webhookHref(out.body.id));
        }
      } catch (err) {
        save.disabled = false;
        save.textContent = existing ? "Save changes" : "Create webhook";
        showRefusal(err, form, box, existing && existing.id);
      }
    },
  },
  box,
  basics(state, Boolean(existing)),
  triggers(state, data.types),
  payload(state),
  credentials(state, Boolean(existing)),
  more(state),
  h("div", { class: "form-actions" }, save, link(existing ? webhookHref(existing.id) : "#/", { class: "btn btn-quiet", "data-action": "cancel" }, "Cancel")));
  root.append(
    h("div", { class: "page-head" }, h("div", { class: "head-main" },
      h("h1", {}, existing ? `Edit ${name}` : "New webhook"),
      h("p", { class: "muted" }, existing
        ? "Saved changes are in force at once: the address, auth and secret for every attempt from then on, retries included; the payload for events routed after it."
        : "A webhook created here is kept in hookd's store and routes at once, with no reload."))),
    form);
  return root;
}
