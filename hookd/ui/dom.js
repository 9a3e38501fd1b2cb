// Building elements. Every text goes in as a text node and every attribute through
// setAttribute, so nothing that came from the API is ever parsed as HTML (no innerHTML).

export const $ = (id) => document.getElementById(id);

/** An element with attributes (``on…`` keys become listeners) and children (nested arrays flatten, null skips). */
export function h(tag, attrs, ...kids) {
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

export const link = (href, attrs, ...kids) => h("a", { href, ...attrs }, ...kids);

export const mono = (text, attrs) => h("code", { class: "mono", ...attrs }, text);
