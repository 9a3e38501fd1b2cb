// hookd deliveries page: plain JavaScript over the admin API (/v1/…), no framework.
// Views: #/ (webhooks), #/webhooks/{id}?state=&before= (deliveries), #/deliveries/{id}.
"use strict";

(() => {
  const REFRESH_MS = 2500;
  const PAGE_SIZE = 50;
  const TOKEN_KEY = "hookd.token";
  const STATES = ["pending", "delivering", "retrying", "succeeded", "failed"];
  const STATE_META = {
    pending: { icon: "○", label: "Pending" },
    delivering: { icon: "➜", label: "Delivering" },
    retrying: { icon: "↻", label: "Retrying" },
    succeeded: { icon: "✓", label: "Succeeded" },
    failed: { icon: "✕", label: "Failed" },
  };
  const REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 301: "Moved Permanently",
    302: "Found", 303: "See Other", 307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 410: "Gone",
    413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
    425: "Too Early", 429: "Too Many Requests", 500: "Internal Server Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
  };
  const ERROR_KINDS = {
    timeout: "timed out", connect: "connection failed", dns: "name not resolved",
    tls: "TLS handshake failed", http: "bad HTTP answer",
  };

  const $ = (id) => document.getElementById(id);
  const view = $("view");

  // ---- DOM helpers ------------------------------------------------------------------

  /** Build an element; every text goes in as a text node, so nothing from the API is parsed as HTML. */
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  const link = (href, attrs, ...kids) => h("a", { href, ...attrs }, ...kids);
  const mono = (text, attrs) => h("code", { class: "mono", ...attrs }, text);

  function stateBadge(state, extra) {
    const meta = STATE_META[state] || { icon: "•", label: state };
    return h("span", { class: `badge state-${state} ${extra || ""}`, "data-state": state },
      h("span", { class: "badge-icon", "aria-hidden": "true" }, meta.icon), meta.label);
  }

  function statusText(code, error) {
    if (code != null) return String(code);
    if (error) return error;
    return "—";
  }

  function statusCell(code, error) {
    if (code == null && !error) return h("span", { class: "muted" }, "—");
    const ok = code != null && code >= 200 && code < 300;
    const title = code != null ? `${code} ${REASONS[code] || ""}`.trim() : (ERROR_KINDS[error] || error);
    return h("span", { class: `code ${ok ? "code-ok" : "code-bad"}`, title }, statusText(code, error));
  }

  function fmtDuration(ms) {
    if (ms == null) return "—";
    if (ms < 10) return `${ms.toFixed(1)} ms`;
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
    return `${(ms / 60000).toFixed(1)} min`;
  }

  function pad(n) { return String(n).padStart(2, "0"); }

  function fmtClock(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    const now = new Date();
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    if (d.toDateString() === now.toDateString()) return time;
    const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    return `${date} ${time}`;
  }

  function fmtRelative(iso) {
    const secs = (Date.now() - Date.parse(iso)) / 1000;
    const future = secs < 0;
    const s = Math.abs(secs);
    let text;
    if (s < 3) return future ? "now" : "just now";
    if (s < 60) text = `${Math.round(s)} s`;
    else if (s < 3600) text = `${Math.round(s / 60)} min`;
    else if (s < 86400) text = `${Math.round(s / 3600)} h`;
    else text = `${Math.round(s / 86400)} d`;
    return future ? `in ${text}` : `${text} ago`;
  }

  /** A relative time that the ticker keeps current, with the exact time as a tooltip. */
  function ago(iso, cls) {
    if (!iso) return h("span", { class: "muted" }, "—");
    return h("time", { class: `ago ${cls || ""}`, datetime: iso, title: new Date(iso).toString(), "data-ts": iso },
      fmtRelative(iso));
  }

  function when(iso) {
    if (!iso) return h("span", { class: "muted" }, "—");
    return h("span", { class: "when" },
      h("time", { datetime: iso, title: iso }, fmtClock(iso)), " ", ago(iso, "muted"));
  }

  function refreshTimes() {
    for (const el of document.querySelectorAll("[data-ts]")) el.textContent = fmtRelative(el.dataset.ts);
  }

  function fmtBytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
    return `${(n / 1024 / 1024).toFixed(1)} MB`;
  }

  /**
   * JSON re-indented by two spaces as [class, text] pieces, or null when ``text`` is not JSON.
   * The original tokens are kept as they are (no JSON.parse round trip), so a large integer
   * id or an escaped character reads exactly as it was sent.
   */
  function prettyJson(text) {
    try {
      JSON.parse(text);
    } catch {
      return null;
    }
    const tokens = text.match(/"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|[{}[\],:]/g) || [];
    const out = [];
    let depth = 0;
    const newline = () => out.push([null, `\n${"  ".repeat(depth)}`]);
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      if (t === "{" || t === "[") {
        if (tokens[i + 1] === (t === "{" ? "}" : "]")) {
          out.push([null, t + tokens[++i]]);
        } else {
          out.push([null, t]);
          depth++;
          newline();
        }
      } else if (t === "}" || t === "]") {
        depth--;
        newline();
        out.push([null, t]);
      } else if (t === ",") {
        out.push([null, ","]);
        newline();
      } else if (t === ":") {
        out.push([null, ": "]);
      } else if (t[0] === '"') {
        out.push([tokens[i + 1] === ":" ? "j-key" : "j-str", t]);
      } else if (t === "true" || t === "false") {
        out.push(["j-bool", t]);
      } else if (t === "null") {
        out.push(["j-null", t]);
      } else {
        out.push(["j-num", t]);
      }
    }
    return out;
  }

  /** A titled body: JSON pretty-printed and lightly highlighted, anything else shown as it came. */
  function bodyBlock(title, text, key, emptyText) {
    const heading = title ? h("h3", {}, title) : null;
    if (text == null || text === "") {
      return h("div", { class: "body-wrap" }, h("div", { class: "body-bar" }, heading),
        h("p", { class: "muted empty-body" }, emptyText || "Empty body"));
    }
    const pretty = prettyJson(text);
    const pre = h("pre", { class: "body", "data-key": key, tabindex: "0" });
    if (pretty === null) {
      pre.append(text);
    } else {
      for (const [cls, part] of pretty) pre.append(cls ? h("span", { class: cls }, part) : part);
    }
    const copy = h("button", {
      type: "button", class: "btn btn-small btn-quiet copy", title: "Copy the body as it was sent",
      onclick: async (ev) => {
        const btn = ev.currentTarget;
        try {
          await navigator.clipboard.writeText(text);
          btn.textContent = "Copied";
        } catch {
          btn.textContent = "Copy failed";
        }
        setTimeout(() => { btn.textContent = "Copy"; }, 1500);
      },
    }, "Copy");
    const size = new TextEncoder().encode(text).length;
    return h("div", { class: "body-wrap" },
      h("div", { class: "body-bar" }, heading,
        h("span", { class: "body-kind" }, `${pretty !== null ? "JSON · " : ""}${fmtBytes(size)}`), copy),
      pre);
  }

  function headersTable(headers) {
    const entries = Object.entries(headers || {});
    if (!entries.length) return h("p", { class: "muted" }, "No headers");
    return h("table", { class: "headers" },
      h("tbody", {}, entries.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, String(v))))));
  }

  function section(title, key, open, ...kids) {
    return h("details", { class: "section", "data-key": key, open },
      h("summary", {}, h("h2", {}, title)), h("div", { class: "section-body" }, ...kids));
  }

  // ---- API, with the bearer token asked for once ---------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  let token = sessionStorage.getItem(TOKEN_KEY);
  let tokenWaiter = null;

  function askToken(refused) {
    if (tokenWaiter) return tokenWaiter;
    const dialog = $("token-dialog");
    const input = $("token-input");
    $("token-error").hidden = !refused;
    input.value = "";
    tokenWaiter = new Promise((resolve) => {
      const form = $("token-form");
      const onSubmit = (ev) => {
        ev.preventDefault();
        const value = input.value.trim();
        if (!value) return;
        token = value;
        sessionStorage.setItem(TOKEN_KEY, value);
        form.removeEventListener("submit", onSubmit);
        dialog.close();
        tokenWaiter = null;
        updateTokenButton();
        resolve();
      };
      form.addEventListener("submit", onSubmit);
    });
    dialog.showModal();
    input.focus();
    return tokenWaiter;
  }

  $("token-dialog").addEventListener("cancel", (ev) => ev.preventDefault()); // nothing works without it

  function updateTokenButton() { $("forget-token").hidden = !token; }

  $("forget-token").addEventListener("click", () => {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    updateTokenButton();
    toast("Token forgotten for this tab");
    load(false, true);
  });

  async function api(path, options) {
    const opts = options || {};
    for (;;) {
      const sent = token;
      const headers = { Accept: "application/json" };
      if (sent) headers.Authorization = `Bearer ${sent}`;
      let resp;
      try {
        resp = await fetch(path, { method: opts.method || "GET", headers, cache: "no-store" });
      } catch (err) {
        throw new ApiError(0, "unreachable", `hookd is not answering (${err.message})`);
      }
      if (resp.status === 401) {
        // Ask only when the token this call carried is still the one in use.
        if (token === sent) await askToken(Boolean(sent));
        continue;
      }
      const text = await resp.text();
      let body = text;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        // not JSON: keep the text
      }
      if (!resp.ok) {
        const e = (body && body.error) || {};
        throw new ApiError(resp.status, e.code || `http_${resp.status}`, e.message || text || resp.statusText);
      }
      return body;
    }
  }

  // ---- chrome: breadcrumbs, live indicator, banner, toast ------------------------------

  function setCrumbs(...items) {
    const nav = $("crumbs");
    nav.replaceChildren(...items.flatMap((item, i) => [
      i ? h("span", { class: "crumb-sep", "aria-hidden": "true" }, "/") : null,
      item.href ? link(item.href, { class: "crumb" }, item.text) : h("span", { class: "crumb crumb-here", "aria-current": "page" }, item.text),
    ]).filter(Boolean));
  }

  let paused = false;
  let lastOk = null;
  let offline = false;

  function updateLive() {
    const live = $("live");
    live.dataset.mode = paused ? "paused" : offline ? "offline" : lastOk ? "live" : "connecting";
    let text;
    if (paused) text = "Paused";
    else if (offline) text = "Not answering, retrying";
    else if (lastOk) text = `Live · updated ${fmtRelative(new Date(lastOk).toISOString())}`;
    else text = "Connecting…";
    $("live-text").textContent = text;
    $("live-toggle").textContent = paused ? "Resume" : "Pause";
  }

  $("live-toggle").addEventListener("click", () => {
    paused = !paused;
    updateLive();
    if (!paused) load(false);
  });

  function showBanner(message) {
    const b = $("banner");
    if (!message) {
      b.hidden = true;
      return;
    }
    b.replaceChildren(h("span", { class: "banner-icon", "aria-hidden": "true" }, "!"), message);
    b.hidden = false;
  }

  let toastTimer = null;
  function toast(message) {
    const t = $("toast");
    t.textContent = message;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
  }

  // ---- routing -----------------------------------------------------------------------

  function parseRoute() {
    const raw = location.hash.replace(/^#/, "") || "/";
    const [path, qs] = raw.split("?");
    const parts = path.split("/").filter(Boolean).map((p) => {
      try { return decodeURIComponent(p); } catch { return p; }
    });
    const q = new URLSearchParams(qs || "");
    if (parts[0] === "webhooks" && parts[1]) {
      const state = STATES.includes(q.get("state")) ? q.get("state") : "";
      return { name: "webhook", id: parts[1], state, before: q.get("before") || "" };
    }
    if (parts[0] === "deliveries" && parts[1]) return { name: "delivery", id: parts[1] };
    return { name: "overview" };
  }

  const enc = encodeURIComponent;
  const webhookHref = (id, state, before) => {
    const q = new URLSearchParams();
    if (state) q.set("state", state);
    if (before) q.set("before", before);
    const qs = q.toString();
    return `#/webhooks/${enc(id)}${qs ? `?${qs}` : ""}`;
  };
  const deliveryHref = (id) => `#/deliveries/${enc(id)}`;

  function go(href) {
    if (location.hash === href) load(true);
    else location.hash = href;
  }

  // Cursors of the pages before this one, per webhook and filter, for "Newer".
  const pageStack = new Map();

  // ---- views -------------------------------------------------------------------------

  const views = {
    overview: {
      fetch: () => api("/v1/webhooks"),
      render: renderOverview,
    },
    webhook: {
      fetch: (r) => {
        const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
        if (r.state) q.set("state", r.state);
        if (r.before) q.set("before", r.before);
        return Promise.all([
          api(`/v1/webhooks/${enc(r.id)}`),
          api(`/v1/webhooks/${enc(r.id)}/deliveries?${q}`),
        ]);
      },
      render: renderWebhook,
    },
    delivery: {
      fetch: (r) => api(`/v1/deliveries/${enc(r.id)}`),
      render: renderDelivery,
    },
  };

  function countsStrip(w, compact) {
    const counts = w.counts || {};
    const total = STATES.reduce((n, s) => n + (counts[s] || 0), 0);
    if (!total && compact) return h("span", { class: "muted" }, "No deliveries yet");
    return h("span", { class: "counts" }, STATES.map((s) => {
      const n = counts[s] || 0;
      if (compact && !n) return null;
      return link(webhookHref(w.id, s), {
        class: `count state-${s}${n ? "" : " count-zero"}`, title: `${n} ${s} — show them`, "data-count": s,
      }, h("span", { class: "badge-icon", "aria-hidden": "true" }, STATE_META[s].icon), h("b", {}, String(n)), ` ${s}`);
    }));
  }

  function enabledBadge(w) {
    if (w.enabled) return h("span", { class: "badge health-on", "data-enabled": "true" }, h("span", { class: "badge-icon", "aria-hidden": "true" }, "●"), "Enabled");
    const label = w.disabled_reason === "auto" ? "Disabled · auto" : "Disabled · config";
    return h("span", { class: "badge health-off", "data-enabled": "false", "data-reason": w.disabled_reason || "" },
      h("span", { class: "badge-icon", "aria-hidden": "true" }, "⊘"), label);
  }

  function disabledNote(w) {
    if (w.enabled) return null;
    if (w.disabled_reason === "auto") {
      const n = w.consecutive_failures;
      return h("span", { class: "note" }, n ? `After ${n} consecutive failed deliveries; new items are kept.` : "New items are kept until it is enabled.");
    }
    return h("span", { class: "note" }, "Set enabled = true in the config file and reload.");
  }

  function enableButton(w, after) {
    if (w.enabled || w.disabled_reason !== "auto") return null;
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

  function lastCell(w) {
    if (!w.last_at) return h("span", { class: "muted" }, "No attempt yet");
    return h("span", { class: "last" }, statusCell(w.last_status, w.last_error), " ", ago(w.last_at, "muted"));
  }

  function renderOverview(data) {
    const hooks = data.webhooks || [];
    document.title = "Webhooks · hookd";
    setCrumbs({ text: "Webhooks" });
    const failed = hooks.reduce((n, w) => n + ((w.counts || {}).failed || 0), 0);
    const off = hooks.filter((w) => !w.enabled).length;
    const summary = [`${hooks.length} webhook${hooks.length === 1 ? "" : "s"}`];
    if (off) summary.push(`${off} disabled`);
    if (failed) summary.push(`${failed} failed deliver${failed === 1 ? "y" : "ies"}`);
    const rows = hooks.map((w) => h("tr", { class: `row-link${w.enabled ? "" : " row-off"}`, "data-webhook": w.id, "data-href": webhookHref(w.id) },
      h("td", { class: "cell-hook" },
        link(webhookHref(w.id), { class: "hook-name" }, w.name || w.id),
        w.name && w.name !== w.id ? h("span", { class: "hook-id mono" }, w.id) : null,
        h("div", { class: "hook-url", title: w.url }, w.url)),
      h("td", {}, enabledBadge(w), h("div", {}, disabledNote(w))),
      h("td", {}, countsStrip(w, true)),
      h("td", {}, lastCell(w)),
      h("td", { class: "cell-actions" }, enableButton(w, () => load(false, true)))));
    return h("section", { class: "overview" },
      h("div", { class: "page-head" },
        h("div", {}, h("h1", {}, "Webhooks"), h("p", { class: "muted" }, summary.join(" · ")))),
      hooks.length
        ? h("div", { class: "card table-card" }, h("table", { class: "grid" },
          h("thead", {}, h("tr", {}, h("th", {}, "Webhook"), h("th", {}, "Status"), h("th", {}, "Deliveries"),
            h("th", {}, "Last attempt"), h("th", { class: "cell-actions" }, h("span", { class: "sr-only" }, "Actions")))),
          h("tbody", {}, rows)))
        : h("div", { class: "card empty" }, h("p", {}, "No webhooks are configured."),
          h("p", { class: "muted" }, "Add a [[webhooks]] table to the config file and reload hookd.")));
  }

  function renderWebhook([w, page], route) {
    document.title = `${w.name || w.id} · hookd`;
    setCrumbs({ text: "Webhooks", href: "#/" }, { text: w.name || w.id });
    const key = `${w.id}|${route.state}`;
    const stack = pageStack.get(key) || [];
    const counts = w.counts || {};
    const total = STATES.reduce((n, s) => n + (counts[s] || 0), 0);
    const filters = h("div", { class: "filters", role: "group", "aria-label": "Filter by state" },
      [{ s: "", label: "All", n: total }, ...STATES.map((s) => ({ s, label: STATE_META[s].label, n: counts[s] || 0 }))].map(({ s, label, n }) =>
        link(webhookHref(w.id, s), {
          class: `filter${route.state === s ? " filter-on" : ""}${s ? ` state-${s}` : ""}`, "data-filter": s || "all",
          "aria-current": route.state === s ? "true" : null,
        }, s ? h("span", { class: "badge-icon", "aria-hidden": "true" }, STATE_META[s].icon) : null, label, h("span", { class: "filter-n" }, String(n)))));

    const rows = page.deliveries.map((d) => h("tr", { class: "row-link", "data-delivery": d.id, "data-state": d.state, "data-href": deliveryHref(d.id) },
      h("td", { class: "nowrap" }, link(deliveryHref(d.id), { class: "row-time" }, when(d.created_at))),
      h("td", {}, stateBadge(d.state), d.manual ? h("span", { class: "tag", title: "Sent by a manual resend" }, "resend") : null,
        d.state === "retrying" && d.next_attempt_at ? h("span", { class: "note" }, "Next attempt ", ago(d.next_attempt_at)) : null),
      h("td", { class: "num" }, statusCell(d.status_code, d.error)),
      h("td", { class: "num" }, String(d.attempts)),
      h("td", { class: "num" }, fmtDuration(d.duration_ms)),
      h("td", { class: "num" }, String(d.items)),
      h("td", { class: "cell-events" }, (d.events || []).map((e) => h("span", { class: "event" }, e))),
      h("td", { class: "cell-id" }, mono(d.id))));

    const newer = stack.length || route.before;
    const pager = h("div", { class: "pager" },
      h("button", {
        type: "button", class: "btn btn-small", disabled: !newer, "data-action": "newer",
        onclick: () => {
          const prev = stack.pop();
          pageStack.set(key, stack);
          go(webhookHref(w.id, route.state, prev || ""));
        },
      }, "← Newer"),
      h("span", { class: "muted" }, route.before ? `Older deliveries, page ${stack.length + 1}` : "Newest first"),
      h("button", {
        type: "button", class: "btn btn-small", disabled: !page.next, "data-action": "older",
        onclick: () => {
          stack.push(route.before);
          pageStack.set(key, stack);
          go(webhookHref(w.id, route.state, page.next));
        },
      }, "Older →"));

    const emptyText = route.state ? `No ${route.state} deliveries${route.before ? " on this page" : ""}.` : "No deliveries yet.";
    return h("section", { class: "webhook", "data-webhook": w.id },
      h("div", { class: "page-head" },
        h("div", { class: "head-main" },
          h("h1", {}, w.name || w.id, w.name && w.name !== w.id ? h("span", { class: "h1-id mono" }, w.id) : null),
          h("div", { class: "hook-url", title: w.url }, w.config ? `${w.config.method} ` : "", w.url)),
        h("div", { class: "head-side" }, enabledBadge(w), disabledNote(w), enableButton(w, () => load(false, true)),
          w.last_at ? h("span", { class: "note" }, "Last attempt ", lastCell(w)) : null)),
      h("div", { class: "toolbar" }, filters),
      h("div", { class: "card table-card" },
        page.deliveries.length
          ? h("table", { class: "grid deliveries" },
            h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", {}, "State"), h("th", { class: "num" }, "Status"),
              h("th", { class: "num" }, "Attempts"), h("th", { class: "num" }, "Duration"), h("th", { class: "num" }, "Items"),
              h("th", {}, "Events"), h("th", { class: "cell-id" }, "Delivery"))),
            h("tbody", {}, rows))
          : h("p", { class: "empty" }, emptyText),
        (page.next || newer) ? pager : null),
      w.config ? section("Configuration", "config", false,
        h("p", { class: "muted" }, "As loaded from the config file; secrets are shown as ***."),
        bodyBlock(null, JSON.stringify(w.config), "config-body")) : null);
  }

  function attemptLine(a) {
    const ok = a.status_code != null && a.status_code >= 200 && a.status_code < 300;
    const outcome = a.status_code != null
      ? `${a.status_code} ${REASONS[a.status_code] || ""}`.trim()
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

  function renderDelivery(d) {
    document.title = `Delivery ${d.id} · hookd`;
    setCrumbs({ text: "Webhooks", href: "#/" }, { text: d.webhook_id, href: webhookHref(d.webhook_id) }, { text: d.id });
    const light = Boolean(d.lightweight_logs);
    const attempts = Array.isArray(d.attempts) ? d.attempts : [];

    const timeline = h("ol", { class: "timeline" },
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

    const resendReason = light
      ? "Resend is unavailable: this webhook keeps lightweight logs, so the request body was not stored."
      : null;
    const resend = h("button", {
      type: "button", class: "btn btn-primary", id: "resend", "data-action": "resend", disabled: light,
      title: resendReason || "Send the same body again as a new delivery, with the same webhook-id",
      "aria-describedby": light ? "resend-reason" : null,
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

    const facts = [
      ["Webhook", link(webhookHref(d.webhook_id), {}, d.webhook_id)],
      ["Created", when(d.created_at)],
      ["Finished", d.finished_at ? when(d.finished_at) : h("span", { class: "muted" }, "—")],
      ["Events", (d.events || []).map((e) => h("span", { class: "event" }, e))],
      ["Triggers", (d.triggers || []).map((t) => h("span", { class: "tag" }, t))],
      ["Message id", mono(d.message_id || "—", { title: "The webhook-id header: the same on every attempt and resend" })],
      ["Last status", h("span", {}, statusCell(d.status_code, d.error), d.duration_ms != null ? h("span", { class: "muted" }, ` in ${fmtDuration(d.duration_ms)}`) : null)],
      d.resend_of ? ["Resend of", link(deliveryHref(d.resend_of), { "data-resend-of": d.resend_of }, mono(d.resend_of))] : null,
    ].filter(Boolean);

    const req = d.request;
    const res = d.response;
    const notKept = () => h("p", { class: "muted" }, "Not kept: this webhook keeps lightweight logs (states, codes and timings only).");

    let requestPart;
    if (req) {
      requestPart = [
        h("div", { class: "reqline" }, h("span", { class: "method" }, req.method), mono(req.url)),
        h("h3", {}, "Headers"), headersTable(req.headers),
        bodyBlock("Body", req.body, "req-body", req.method === "GET" ? "No body (GET: the envelope is in the query string)" : "Empty body"),
      ];
    } else {
      requestPart = light ? notKept() : h("p", { class: "muted" }, "No attempt yet.");
    }

    let responsePart;
    if (res && res.status != null) {
      const ok = res.status >= 200 && res.status < 300;
      responsePart = [
        h("div", { class: "reqline" }, h("span", { class: `code ${ok ? "code-ok" : "code-bad"} code-big` }, `${res.status} ${REASONS[res.status] || ""}`.trim()),
          res.truncated ? h("span", { class: "tag tag-warn" }, "body truncated at max_response_bytes") : null),
        h("h3", {}, "Headers"), headersTable(res.headers),
        bodyBlock("Body", res.body, "res-body"),
      ];
    } else if (res) {
      responsePart = h("div", { class: "reqline" }, h("span", { class: "code code-bad code-big" }, res.error || "error"),
        h("span", {}, ERROR_KINDS[res.error] || ""), res.message ? h("p", { class: "mono small" }, res.message) : null);
    } else {
      responsePart = light ? notKept() : h("p", { class: "muted" }, "No response yet.");
    }

    const items = d.item_ids || [];
    return h("section", { class: "delivery", "data-delivery": d.id, "data-state": d.state },
      h("div", { class: "page-head" },
        h("div", { class: "head-main" },
          h("h1", {}, "Delivery ", h("span", { class: "mono h1-id", id: "delivery-id" }, d.id)),
          h("div", { class: "head-badges" }, stateBadge(d.state, "badge-big"),
            d.manual ? h("span", { class: "tag" }, "manual resend") : null,
            light ? h("span", { class: "tag" }, "lightweight logs") : null)),
        h("div", { class: "head-side resend-box" }, resend,
          light ? h("p", { class: "resend-reason", id: "resend-reason" }, resendReason) : null)),
      h("div", { class: "card facts" }, h("dl", {}, facts.map(([k, v]) => h("div", { class: "fact" }, h("dt", {}, k), h("dd", {}, v))))),
      h("div", { class: "detail-grid" },
        h("div", { class: "detail-side" },
          h("div", { class: "card" }, h("h2", { class: "card-title" }, `Attempts (${attempts.length})`), timeline),
          h("div", { class: "card" }, h("h2", { class: "card-title" }, `Items (${items.length})`),
            items.length ? h("ul", { class: "items" }, items.map((id) => h("li", {}, mono(id)))) : h("p", { class: "muted" }, "None"))),
        h("div", { class: "detail-main" },
          h("div", { class: "card" }, section("Response", "response", true, responsePart)),
          h("div", { class: "card" }, section("Request", "request", true, requestPart)))));
  }

  // ---- load / refresh loop -------------------------------------------------------------

  let gen = 0; // bumped by each navigation: answers for an older view are dropped
  let seq = 0; // bumped by each load: an answer older than the one shown is dropped
  let shown = 0;
  let busy = false;
  let lastJson = null;

  function selectionInView() {
    const sel = window.getSelection();
    return sel && !sel.isCollapsed && view.contains(sel.anchorNode);
  }

  /** Fetch the current view; render it when its data changed, keeping scroll and open sections. */
  async function load(navigated, force) {
    const route = parseRoute();
    const v = views[route.name];
    const mine = navigated ? ++gen : gen;
    if (navigated) {
      lastJson = null;
      showBanner(null);
    } else if (busy && !force) {
      return;
    }
    busy = true;
    const me = ++seq;
    const slow = navigated ? setTimeout(() => { if (mine === gen) view.replaceChildren(h("p", { class: "placeholder" }, "Loading…")); }, 200) : null;
    try {
      const data = await v.fetch(route);
      if (mine !== gen || me < shown) return;
      shown = me;
      offline = false;
      lastOk = Date.now();
      showBanner(null);
      const json = JSON.stringify(data);
      if (json === lastJson || (!navigated && selectionInView())) return;
      lastJson = json;
      const open = new Map([...view.querySelectorAll("details[data-key]")].map((el) => [el.dataset.key, el.open]));
      const scroll = [...view.querySelectorAll("pre[data-key]")].map((el) => [el.dataset.key, el.scrollTop, el.scrollLeft]);
      const y = window.scrollY;
      const node = v.render(data, route);
      if (!navigated) {
        for (const el of node.querySelectorAll("details[data-key]")) if (open.has(el.dataset.key)) el.open = open.get(el.dataset.key);
      }
      view.replaceChildren(node);
      if (navigated) {
        window.scrollTo(0, 0);
      } else {
        for (const [k, top, left] of scroll) {
          const el = view.querySelector(`pre[data-key="${k}"]`);
          if (el) { el.scrollTop = top; el.scrollLeft = left; }
        }
        window.scrollTo(0, y);
      }
    } catch (err) {
      if (mine !== gen) return;
      if (err.status === 0) {
        offline = true;
        showBanner(`${err.message}. The page keeps trying every few seconds.`);
      } else if (navigated || err.status === 404) {
        lastJson = null;
        setCrumbs({ text: "Webhooks", href: "#/" }, { text: "Not found" });
        view.replaceChildren(h("div", { class: "card empty", "data-error": err.code },
          h("h1", {}, err.status === 404 ? "Not found" : "Something went wrong"),
          h("p", {}, err.message), h("p", {}, link("#/", {}, "Back to all webhooks"))));
      } else {
        showBanner(`The API answered ${err.status}: ${err.message}`);
      }
    } finally {
      clearTimeout(slow);
      if (mine === gen) busy = false;
      updateLive();
    }
  }

  // A click anywhere on a linked row opens it, unless the user is selecting text.
  view.addEventListener("click", (ev) => {
    const row = ev.target.closest("tr[data-href]");
    if (!row || ev.target.closest("a, button") || selectionInView()) return;
    go(row.dataset.href);
  });

  window.addEventListener("hashchange", () => { busy = false; load(true); });
  document.addEventListener("visibilitychange", () => { if (!document.hidden && !paused) load(false); });
  setInterval(() => {
    refreshTimes();
    updateLive();
    if (!paused && !document.hidden) load(false);
  }, REFRESH_MS);

  updateTokenButton();
  load(true);
})();
