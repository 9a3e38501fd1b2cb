// The parts of the page around the current view: breadcrumbs, the live status, the banner
// and the toast.

import { $, h, link } from "./dom.js";
import { fmtRelative } from "./format.js";

/** Breadcrumbs from {text, href?} items; the last one, without href, is the current page. */
export function setCrumbs(...items) {
  $("crumbs").replaceChildren(...items.flatMap((item, i) => [
    i ? h("span", { class: "crumb-sep", "aria-hidden": "true" }, "/") : null,
    item.href ? link(item.href, { class: "crumb" }, item.text) : h("span", { class: "crumb crumb-here", "aria-current": "page" }, item.text),
  ]).filter(Boolean));
}

const live = { paused: false, offline: false, lastOk: null };

/**
 * Change the live state (any of ``paused``, ``offline``, ``lastOk``) and write the status
 * label from it: the one place the label, its mode and the Pause button's text are set.
 * Called with nothing, it only brings "updated … ago" up to date.
 */
export function setLive(change) {
  Object.assign(live, change);
  const { paused, offline, lastOk } = live;
  $("live").dataset.mode = paused ? "paused" : offline ? "offline" : lastOk ? "live" : "connecting";
  let text;
  if (paused) text = "Paused";
  else if (offline) text = "Not answering, retrying";
  else if (lastOk) text = `Live · updated ${fmtRelative(new Date(lastOk).toISOString())}`;
  else text = "Connecting…";
  $("live-text").textContent = text;
  $("live-toggle").textContent = paused ? "Resume" : "Pause";
}

export const isPaused = () => live.paused;

/** Show ``message`` in the banner under the top bar, or hide the banner when it is null. */
export function showBanner(message) {
  const b = $("banner");
  if (!message) {
    b.hidden = true;
    return;
  }
  b.replaceChildren(h("span", { class: "banner-icon", "aria-hidden": "true" }, "!"), message);
  b.hidden = false;
}

let toastTimer = null;

/** A short note at the bottom of the page that goes away by itself. */
export function toast(message) {
  const t = $("toast");
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
}
