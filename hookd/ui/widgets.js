// Pieces the views share: state badges, status cells, times, bodies, header tables and
// collapsible sections.

import { h } from "./dom.js";
import { ERROR_KINDS, STATE_META, TYPE_LABELS, fmtBytes, fmtClock, fmtRelative, isOk, prettyJson, statusLabel } from "./format.js";

export function stateBadge(state, extra) {
  const meta = STATE_META[state] || { icon: "•", label: state };
  return h("span", { class: `badge state-${state} ${extra || ""}`, "data-state": state },
    h("span", { class: "badge-icon", "aria-hidden": "true" }, meta.icon), meta.label);
}

/** A pre-configured webhook's type as a tag (null for a standard webhook: the usual case says nothing). */
export function typeTag(type) {
  if (!type || type === "standard") return null;
  return h("span", { class: "tag tag-type", "data-type": type, title: "A pre-configured webhook: its template, rendered, posted as a chat message" },
    TYPE_LABELS[type] || type);
}

/** The status code (or the error kind when none came back), with its meaning as a tooltip. */
export function statusCell(code, error) {
  if (code == null && !error) return h("span", { class: "muted" }, "—");
  const title = code != null ? statusLabel(code) : (ERROR_KINDS[error] || error);
  return h("span", { class: `code ${isOk(code) ? "code-ok" : "code-bad"}`, title }, code != null ? String(code) : error);
}

/** A relative time that refreshTimes keeps current, with the exact time as a tooltip. */
export function ago(iso, cls) {
  if (!iso) return h("span", { class: "muted" }, "—");
  return h("time", { class: `ago ${cls || ""}`, datetime: iso, title: new Date(iso).toString(), "data-ts": iso },
    fmtRelative(iso));
}

/** The clock time followed by the relative time. */
export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  return h("span", { class: "when" },
    h("time", { datetime: iso, title: iso }, fmtClock(iso)), " ", ago(iso, "muted"));
}

export function refreshTimes() {
  for (const el of document.querySelectorAll("[data-ts]")) el.textContent = fmtRelative(el.dataset.ts);
}

/** A titled body: JSON pretty-printed and lightly highlighted, anything else shown as it came. */
export function bodyBlock(title, text, key, emptyText) {
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

export function headersTable(headers) {
  const entries = Object.entries(headers || {});
  if (!entries.length) return h("p", { class: "muted" }, "No headers");
  return h("table", { class: "headers" },
    h("tbody", {}, entries.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, String(v))))));
}

/** A collapsible section; ``key`` lets a refresh keep it open or closed as the user left it. */
export function section(title, key, open, ...kids) {
  return h("details", { class: "section", "data-key": key, open },
    h("summary", {}, h("h2", {}, title)), h("div", { class: "section-body" }, ...kids));
}
