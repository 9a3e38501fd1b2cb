// Form controls bound to a plain state object (each edit writes its key at once), lists of
// rows to add and remove, and the server's errors placed next to the control they name.
//
// Every control and row carries ``data-path``, the key path of the document it fills
// (``events[0].conditions[1].op``): that is how a 422 detail finds its place.

import { h } from "./dom.js";
import { nearest } from "./webhook_doc.js";

/** A labelled control with an optional hint; a detail's message is added inside it. */
export function field(label, control, hint, attrs) {
  return h("div", { class: "field", ...attrs },
    h("label", {}, h("span", { class: "field-label" }, label), control),
    hint ? h("p", { class: "hint" }, hint) : null);
}

/** A text input bound to ``obj[key]``; ``onInput`` runs after each edit. */
export function input(obj, key, attrs, onInput) {
  return h("input", {
    type: "text", value: obj[key], spellcheck: "false", autocomplete: "off", ...attrs,
    oninput: (ev) => {
      obj[key] = ev.currentTarget.value;
      if (onInput) onInput(ev.currentTarget.value);
    },
  });
}

export const number = (obj, key, attrs) => input(obj, key, { type: "number", step: "any", inputmode: "decimal", ...attrs });

/** A select bound to ``obj[key]``; ``options`` are values, or [value, label] pairs. */
export function select(obj, key, options, attrs, onChange) {
  return h("select", {
    ...attrs,
    onchange: (ev) => {
      obj[key] = ev.currentTarget.value;
      if (onChange) onChange(obj[key]);
    },
  }, options.map((o) => {
    const [value, label] = Array.isArray(o) ? o : [o, o];
    return h("option", { value, selected: value === obj[key] }, label);
  }));
}

/** A checkbox bound to ``obj[key]``, its label beside it. */
export function checkbox(obj, key, label, attrs, hint) {
  return h("div", { class: "field field-check" },
    h("label", {},
      h("input", { type: "checkbox", checked: Boolean(obj[key]), ...attrs, onchange: (ev) => { obj[key] = ev.currentTarget.checked; } }),
      h("span", {}, label)),
    hint ? h("p", { class: "hint" }, hint) : null);
}

/** Show ``el`` only while ``when()`` holds; returns a function to call after what it depends on changed. */
export function showWhen(el, when) {
  const update = () => { el.hidden = !when(); };
  update();
  return update;
}

/**
 * A list of rows over the array ``rows``: ``draw(row, i, rowEl)`` gives a row's controls,
 * ``make(n)`` a new row, ``pathOf(row, i)`` the row's key path. Adding or removing redraws
 * the list, so every path stays the row's index in the document.
 */
export function rowList({ rows, make, draw, pathOf, addLabel, emptyText, name }) {
  const list = h("div", { class: "rows", "data-rows": name });
  const redraw = () => {
    const kids = [
      ...rows.map((row, i) => {
        const el = h("div", { class: "row", "data-path": pathOf(row, i), "data-row": name });
        el.append(...[draw(row, i, el)].flat(Infinity).filter(Boolean),
          h("button", {
            type: "button", class: "btn btn-small btn-quiet row-remove", "aria-label": `Remove ${name} row ${i + 1}`,
            title: "Remove this row", "data-action": `remove-${name}`,
            onclick: () => { rows.splice(i, 1); redraw(); },
          }, "✕"));
        return el;
      }),
      rows.length ? null : h("p", { class: "muted rows-empty" }, emptyText),
      h("button", {
        type: "button", class: "btn btn-small row-add", "data-action": `add-${name}`,
        onclick: () => {
          rows.push(make(rows.length));
          redraw();
          const added = list.querySelectorAll(`:scope > .row`);
          const first = added[added.length - 1]?.querySelector("input, select");
          if (first) first.focus();
        },
      }, `+ ${addLabel}`),
    ];
    list.replaceChildren(...kids.filter(Boolean)); // replaceChildren would write a null as "null"
  };
  redraw();
  return list;
}

/** Remove every error shown by showErrors. */
export function clearErrors(form) {
  for (const el of form.querySelectorAll(".field-error")) el.remove();
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

const CONTROLS = "input, select, textarea";

/**
 * Put each ``{path, message}`` detail next to the visible control or row with the nearest
 * path; return the details that found no place (an empty path: the webhook as a whole).
 */
export function showErrors(form, details) {
  const places = new Map();
  for (const el of form.querySelectorAll("[data-path]")) {
    if (!el.closest("[hidden]") && !places.has(el.dataset.path)) places.set(el.dataset.path, el);
  }
  const unplaced = [];
  for (const d of details) {
    const at = nearest(places.keys(), d.path || "");
    if (at === null) {
      unplaced.push(d);
      continue;
    }
    const el = places.get(at);
    const box = el.matches(".field, .row, .form-section") ? el : el.closest(".field, .row, .form-section");
    if (el.matches(CONTROLS)) el.setAttribute("aria-invalid", "true");
    const text = d.path === at ? d.message : `${d.path}: ${d.message}`;
    box.append(h("p", { class: "field-error", role: "alert", "data-error-for": at, "data-path-error": d.path }, text));
  }
  return unplaced;
}
