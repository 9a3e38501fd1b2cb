// Recover on a webhook's page (SPEC §13): resend its failed deliveries of a time window. The
// dialog first asks hookd for the count (a dry run) and says what a recovery would do; only
// then can the operator confirm, and the result is shown in the same dialog.

import { canManage } from "./access.js";
import { api } from "./api.js";
import { h, mono } from "./dom.js";
import { toast } from "./page.js";
import { enc } from "./routes.js";

const PRESETS = [
  { value: "1h", label: "Last hour", ms: 3600e3 },
  { value: "6h", label: "Last 6 hours", ms: 6 * 3600e3 },
  { value: "24h", label: "Last 24 hours", ms: 24 * 3600e3 },
  { value: "7d", label: "Last 7 days", ms: 7 * 86400e3 },
  { value: "custom", label: "From … to …" },
];

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

/** A datetime-local field's value for ``date``, in local time (what the field shows). */
function localValue(date) {
  const d = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

/** The window the form names, as RFC 3339 times fixed now: {since, until} or {problem}. */
function windowOf(preset, sinceField, untilField) {
  const now = new Date();
  const p = PRESETS.find((x) => x.value === preset);
  if (p && p.ms) return { since: new Date(now.getTime() - p.ms).toISOString(), until: now.toISOString() };
  const since = sinceField.value ? new Date(sinceField.value) : null;
  const until = untilField.value ? new Date(untilField.value) : now;
  if (!since || Number.isNaN(since.getTime())) return { problem: "Choose when the window starts." };
  if (Number.isNaN(until.getTime()) || until <= since) return { problem: "The end must be after the start." };
  return { since: since.toISOString(), until: until.toISOString() };
}

/** The dialog: count first, then confirm; ``done`` runs when it closes. */
function openRecover(w, done) {
  const name = w.name && w.name !== w.id ? `${w.name} (${w.id})` : w.id;
  let counted = null; // the window the shown count is for; confirming resends exactly it
  let asked = 0; // answers to an older question are dropped
  const preset = h("select", { id: "recover-preset", "data-field": "preset" },
    PRESETS.map((p) => h("option", { value: p.value }, p.label)));
  const hourAgo = new Date(Date.now() - 3600e3);
  const sinceField = h("input", { type: "datetime-local", id: "recover-since", value: localValue(hourAgo) });
  const untilField = h("input", { type: "datetime-local", id: "recover-until" });
  const custom = h("div", { class: "recover-custom", hidden: true },
    h("label", { for: "recover-since" }, "From"), sinceField,
    h("label", { for: "recover-until" }, "To (empty: now)"), untilField);
  const count = h("p", { class: "recover-count", id: "recover-count", role: "status" }, "Counting…");
  const result = h("p", { class: "recover-result", id: "recover-result", role: "status", hidden: true });
  const yes = h("button", { type: "submit", class: "btn btn-primary", "data-action": "confirm-recover", disabled: true }, "Resend");
  const close = h("button", { type: "button", class: "btn btn-quiet", "data-action": "cancel-recover", onclick: () => dialog.close() }, "Cancel");

  async function recount() {
    const mine = ++asked;
    counted = null;
    delete count.dataset.wouldResend;
    delete count.dataset.skipped;
    yes.disabled = true;
    yes.textContent = "Resend";
    const win = windowOf(preset.value, sinceField, untilField);
    if (win.problem) {
      count.textContent = win.problem;
      return;
    }
    count.textContent = "Counting…";
    try {
      const out = await api(`/v1/webhooks/${enc(w.id)}/recover`, { method: "POST", json: { ...win, dry_run: true } });
      if (mine !== asked) return;
      count.textContent = `${plural(out.would_resend, "failed delivery", "failed deliveries")} will be resent, `
        + `${out.skipped} skipped (lightweight logs).`;
      count.dataset.wouldResend = out.would_resend;
      count.dataset.skipped = out.skipped;
      if (out.would_resend) {
        counted = win;
        yes.disabled = false;
        yes.textContent = `Resend ${out.would_resend}`;
      }
    } catch (err) {
      if (mine === asked) count.textContent = `hookd could not count them: ${err.message}`;
    }
  }

  const form = h("form", {
    method: "dialog",
    onsubmit: async (ev) => {
      ev.preventDefault();
      if (!counted) return;
      yes.disabled = true;
      yes.textContent = "Resending…";
      preset.disabled = sinceField.disabled = untilField.disabled = true;
      try {
        const out = await api(`/v1/webhooks/${enc(w.id)}/recover`, { method: "POST", json: counted });
        result.textContent = `Resent ${plural(out.resent, "delivery", "deliveries")}, ${out.skipped} skipped. `
          + "They go out through the webhook's queue, each with its original webhook-id.";
        result.dataset.resent = out.resent;
        toast(`Recovery of ${w.id}: ${out.resent} resent, ${out.skipped} skipped`);
        yes.hidden = true;
        close.textContent = "Close";
      } catch (err) {
        result.textContent = err.code === "recovery_running"
          ? "A recovery of this webhook is already under way; wait for it to end."
          : `hookd refused: ${err.message}`;
        yes.textContent = "Resend";
        preset.disabled = sinceField.disabled = untilField.disabled = false;
        counted = null;
      }
      result.hidden = false;
    },
  },
  h("h2", { id: "recover-title" }, "Recover ", mono(name)),
  h("p", { class: "muted" }, "Resends the webhook's failed deliveries created in the window, oldest first, each as a new delivery with its original webhook-id."),
  h("label", { for: "recover-preset" }, "Window"), preset, custom,
  count, result,
  h("div", { class: "dialog-actions" }, close, yes));
  const dialog = h("dialog", { class: "token-dialog confirm-dialog", id: "recover-dialog", "aria-labelledby": "recover-title" }, form);
  preset.addEventListener("change", () => {
    custom.hidden = preset.value !== "custom";
    recount();
  });
  sinceField.addEventListener("change", recount);
  untilField.addEventListener("change", recount);
  dialog.addEventListener("close", () => {
    asked++;
    dialog.remove();
    done();
  });
  document.body.append(dialog);
  dialog.showModal();
  recount();
}

/** The Recover button of webhook ``w`` (null for a token without manage). */
export function recoverButton(w, refresh) {
  if (!canManage()) return null;
  return h("button", {
    type: "button", class: "btn", "data-action": "recover", title: "Resend the failed deliveries of a time window",
    onclick: () => openRecover(w, refresh),
  }, "Recover…");
}
