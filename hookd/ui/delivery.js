// View #/deliveries/{id}: one delivery's facts, attempt timeline, items, request and
// response, and the Resend button.

import { api } from "./api.js";
import { h, link, mono } from "./dom.js";
import { ERROR_KINDS, STATE_META, fmtDuration, isOk, statusLabel } from "./format.js";
import { setCrumbs, toast } from "./page.js";
import { deliveryHref, enc, go, webhookHref } from "./routes.js";
import { TYPE_LABELS } from "./format.js";
import { can } from "./scopes.js";
import { bodyBlock, headersTable, section, stateBadge, statusCell, typeTag, when } from "./widgets.js";

export const fetchData = (route, signal) => api(`/v1/deliveries/${enc(route.id)}`, { signal });

function attemptLine(a) {
  const ok = isOk(a.status_code);
  const outcome = a.status_code != null
    ? statusLabel(a.status_code)
    : `${a.error || "error"}: ${ERROR_KINDS[a.error] || "no answer"}`;
  return h("li", { class: `attempt ${ok ? "attempt-ok" : "attempt-bad"}`, "data-attempt": a.n },
    h("span", { class: "attempt-mark", "aria-hidden": "true" }, ok ? "✓" : "✕"),
    h("div", { class: "attempt-body" },
      h("div", { class: "attempt-title" },
        h("b", {}, `Attempt ${a.n}`), h("span", { class: "tag" }, a.trigger || (a.manual ? "manual" : "scheduled"))),
      h("div", { class: "attempt-outcome" }, h("span", { class: `code ${ok ? "code-ok" : "code-bad"}` }, outcome),
        h("span", { class: "muted" }, ` in ${fmtDuration(a.duration_ms)}`)),
      h("div", { class: "muted small" }, when(a.started_at))));
}

function timeline(d, attempts) {
  return h("ol", { class: "timeline" },
    h("li", { class: "attempt attempt-info" }, h("span", { class: "attempt-mark", "aria-hidden": "true" }, "+"),
      h("div", { class: "attempt-body" }, h("div", { class: "attempt-title" }, h("b", {}, d.resend_of ? "Resend created" : "Created")),
        h("div", { class: "muted small" }, when(d.created_at)))),
    attempts.map(attemptLine),
    d.state === "retrying" && d.next_attempt_at
      ? h("li", { class: "attempt attempt-next" }, h("span", { class: "attempt-mark", "aria-hidden": "true" }, "↻"),
        h("div", { class: "attempt-body" }, h("div", { class: "attempt-title" }, h("b", {}, `Attempt ${attempts.length + 1}`), h("span", { class: "tag" }, "scheduled")),
          h("div", { class: "muted small" }, "Due ", when(d.next_attempt_at))))
      : null,
    d.state === "pending" || d.state === "delivering"
      ? h("li", { class: "attempt attempt-next" }, h("span", { class: "attempt-mark", "aria-hidden": "true" }, STATE_META[d.state].icon),
        h("div", { class: "attempt-body" }, h("div", { class: "attempt-title" }, h("b", {}, d.state === "pending" ? "Waiting for its turn" : "Attempt in flight"))))
      : null);
}

function resendButton(d, reason) {
  return h("button", {
    type: "button", class: "btn btn-primary", id: "resend", "data-action": "resend", disabled: Boolean(reason),
    title: reason || "Send the same body again as a new delivery, with the same webhook-id",
    "aria-describedby": reason ? "resend-reason" : null,
    onclick: async (ev) => {
      const btn = ev.currentTarget;
      btn.disabled = true;
      btn.textContent = "Resending…";
      try {
        const out = await api(`/v1/deliveries/${enc(d.id)}/resend`, { method: "POST" });
        toast(`Resent as ${out.delivery_id}`);
        go(deliveryHref(out.delivery_id));
      } catch (err) {
        btn.disabled = false;
        btn.textContent = "Resend";
        toast(`Resend failed: ${err.message}`);
      }
    },
  }, "↻ Resend");
}

/** A pre-configured webhook's message as it was rendered and sent (the body holds it, escaped for the service). */
function messagePart(d, light) {
  if (d.text != null) {
    return [
      h("p", { class: "muted small" }, `The template rendered for this event, exactly as sent to ${TYPE_LABELS[d.webhook_type] || d.webhook_type}`,
        d.webhook_type === "slack" ? " (Slack shows &amp; &lt; &gt; as & < >)." : "."),
      h("pre", { class: "body message-text", id: "message-text", "data-key": "message-text", tabindex: "0" }, d.text),
    ];
  }
  return light ? notKept() : h("p", { class: "muted" }, "The body is not a message of this webhook's type (sent before its type changed).");
}

const notKept = () => h("p", { class: "muted" }, "Not kept: this webhook keeps lightweight logs (states, codes and timings only).");

function requestPart(req, light) {
  if (!req) return light ? notKept() : h("p", { class: "muted" }, "No attempt yet.");
  return [
    h("div", { class: "reqline" }, h("span", { class: "method" }, req.method), mono(req.url)),
    req.proxy ? h("p", { class: "muted" }, "Through the proxy ", mono(req.proxy)) : null,
    h("h3", {}, "Headers"), headersTable(req.headers),
    bodyBlock("Body", req.body, "req-body", req.method === "GET" ? "No body (GET: the envelope is in the query string)" : "Empty body"),
  ];
}

function responsePart(res, light) {
  if (res && res.status != null) {
    return [
      h("div", { class: "reqline" }, h("span", { class: `code ${isOk(res.status) ? "code-ok" : "code-bad"} code-big` }, statusLabel(res.status)),
        res.truncated ? h("span", { class: "tag tag-warn" }, "body truncated at max_response_bytes") : null),
      h("h3", {}, "Headers"), headersTable(res.headers),
      bodyBlock("Body", res.body, "res-body"),
    ];
  }
  if (res) {
    return h("div", { class: "reqline" }, h("span", { class: "code code-bad code-big" }, res.error || "error"),
      h("span", {}, ERROR_KINDS[res.error] || ""), res.message ? h("p", { class: "mono small" }, res.message) : null);
  }
  return light ? notKept() : h("p", { class: "muted" }, "No response yet.");
}

export function render(d) {
  document.title = `Delivery ${d.id} · hookd`;
  setCrumbs({ text: "Webhooks", href: "#/" }, { text: d.webhook_id, href: webhookHref(d.webhook_id) }, { text: d.id });
  const light = Boolean(d.lightweight_logs);
  const attempts = Array.isArray(d.attempts) ? d.attempts : [];
  const resendReason = light
    ? "Resend is unavailable: this webhook keeps lightweight logs, so the request body was not stored."
    : null;

  const facts = [
    ["Webhook", link(webhookHref(d.webhook_id), {}, d.webhook_id)],
    d.webhook_type ? ["Type", h("span", { id: "webhook-type", "data-type": d.webhook_type }, TYPE_LABELS[d.webhook_type] || d.webhook_type)] : null,
    ["Created", when(d.created_at)],
    ["Finished", d.finished_at ? when(d.finished_at) : h("span", { class: "muted" }, "—")],
    ["Events", (d.events || []).map((e) => h("span", { class: "event" }, e))],
    ["Triggers", (d.triggers || []).map((t) => h("span", { class: "tag" }, t))],
    ["Message id", mono(d.message_id || "—", { title: "The webhook-id header: the same on every attempt and resend" })],
    ["Last status", h("span", {}, statusCell(d.status_code, d.error), d.duration_ms != null ? h("span", { class: "muted" }, ` in ${fmtDuration(d.duration_ms)}`) : null)],
    d.resend_of ? ["Resend of", link(deliveryHref(d.resend_of), { "data-resend-of": d.resend_of }, mono(d.resend_of))] : null,
  ].filter(Boolean);

  const items = d.item_ids || [];
  return h("section", { class: "delivery", "data-delivery": d.id, "data-state": d.state },
    h("div", { class: "page-head" },
      h("div", { class: "head-main" },
        h("h1", {}, "Delivery ", h("span", { class: "mono h1-id", id: "delivery-id" }, d.id)),
        h("div", { class: "head-badges" }, stateBadge(d.state, "badge-big"), typeTag(d.webhook_type),
          d.manual ? h("span", { class: "tag" }, "manual resend") : null,
          light ? h("span", { class: "tag" }, "lightweight logs") : null)),
      // A token without the manage scope cannot resend: no button to be refused.
      can("manage") ? h("div", { class: "head-side resend-box" }, resendButton(d, resendReason),
        light ? h("p", { class: "resend-reason", id: "resend-reason" }, resendReason) : null) : null),
    h("div", { class: "card facts" }, h("dl", {}, facts.map(([k, v]) => h("div", { class: "fact" }, h("dt", {}, k), h("dd", {}, v))))),
    h("div", { class: "detail-grid" },
      h("div", { class: "detail-side" },
        h("div", { class: "card" }, h("h2", { class: "card-title" }, `Attempts (${attempts.length})`), timeline(d, attempts)),
        h("div", { class: "card" }, h("h2", { class: "card-title" }, `Items (${items.length})`),
          items.length ? h("ul", { class: "items" }, items.map((id) => h("li", {}, mono(id)))) : h("p", { class: "muted" }, "None"))),
      h("div", { class: "detail-main" },
        d.webhook_type && d.webhook_type !== "standard"
          ? h("div", { class: "card" }, section("Message", "message", true, messagePart(d, light)))
          : null,
        h("div", { class: "card" }, section("Response", "response", true, responsePart(d.response, light))),
        h("div", { class: "card" }, section("Request", "request", true, requestPart(d.request, light))))));
}
