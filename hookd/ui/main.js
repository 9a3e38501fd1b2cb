// hookd deliveries page: plain ES modules over the admin API (/v1/…), no framework, no build.
// This module picks the view location.hash names, loads it, and refreshes it every few
// seconds; each view module fetches its own data and builds its own elements.

import { $, h, link } from "./dom.js";
import * as delivery from "./delivery.js";
import { isPaused, setCrumbs, setLive, showBanner } from "./page.js";
import { go, parseRoute } from "./routes.js";
import { loadScopes, scopesKey } from "./scopes.js";
import { initToken } from "./token.js";
import * as webhook from "./webhook.js";
import * as search from "./search.js";
import * as form from "./webhook_form.js";
import * as webhooks from "./webhooks.js";
import { refreshTimes } from "./widgets.js";

const REFRESH_MS = 2500;
const VIEWS = { overview: webhooks, webhook, delivery, form, search };

const view = $("view");
// The load on its way, if any: {controller, navigated}. A navigation (or a forced refresh)
// aborts it, so the answer for a view that has been left is never read, let alone rendered.
let inFlight = null;
let lastJson = null;

function selectionInView() {
  const sel = window.getSelection();
  return sel && !sel.isCollapsed && view.contains(sel.anchorNode);
}

/** Show a freshly rendered view; on a refresh keep the open sections and the scroll positions. */
function swapIn(node, navigated) {
  const open = new Map([...view.querySelectorAll("details[data-key]")].map((el) => [el.dataset.key, el.open]));
  const scroll = [...view.querySelectorAll("pre[data-key]")].map((el) => [el.dataset.key, el.scrollTop, el.scrollLeft]);
  const y = window.scrollY;
  if (!navigated) {
    for (const el of node.querySelectorAll("details[data-key]")) if (open.has(el.dataset.key)) el.open = open.get(el.dataset.key);
  }
  view.replaceChildren(node);
  if (navigated) {
    window.scrollTo(0, 0);
    return;
  }
  for (const [k, top, left] of scroll) {
    const el = view.querySelector(`pre[data-key="${k}"]`);
    if (el) { el.scrollTop = top; el.scrollLeft = left; }
  }
  window.scrollTo(0, y);
}

function showError(err) {
  lastJson = null;
  setCrumbs({ text: "Webhooks", href: "#/" }, { text: "Not found" });
  view.replaceChildren(h("div", { class: "card empty", "data-error": err.code },
    h("h1", {}, err.status === 404 ? "Not found" : "Something went wrong"),
    h("p", {}, err.message), h("p", {}, link("#/", {}, "Back to all webhooks"))));
}

/**
 * Fetch the current view and render it when its data changed. ``navigated``: the hash
 * changed (start afresh). ``force``: refresh even though a load is on its way (after an
 * action); a plain refresh tick skips then.
 */
async function load(navigated, force) {
  if (inFlight && !navigated && !force) return;
  // A view that holds the user's input (the webhook form) is loaded once per navigation.
  if (!navigated && !force && VIEWS[parseRoute().name].refreshes === false) return;
  if (inFlight) {
    inFlight.controller.abort();
    // A forced refresh that cuts a navigation short finishes that navigation's work.
    navigated = navigated || inFlight.navigated;
  }
  const controller = new AbortController();
  const { signal } = controller;
  inFlight = { controller, navigated };
  const route = parseRoute();
  const v = VIEWS[route.name];
  if (navigated) {
    lastJson = null;
    showBanner(null);
  }
  const slow = navigated
    ? setTimeout(() => { if (!signal.aborted) view.replaceChildren(h("p", { class: "placeholder" }, "Loading…")); }, 200)
    : null;
  try {
    await loadScopes(signal); // a fetch only the first time and after the token changed
    const data = await v.fetchData(route, signal);
    if (signal.aborted) return;
    setLive({ offline: false, lastOk: Date.now() });
    showBanner(null);
    const json = JSON.stringify([data, scopesKey()]);
    if (json === lastJson || (!navigated && selectionInView())) return;
    lastJson = json;
    swapIn(v.render(data, route, { refresh: () => load(false, true) }), navigated);
  } catch (err) {
    if (signal.aborted) return;
    if (err.status === 0) {
      setLive({ offline: true });
      showBanner(`${err.message}. The page keeps trying every few seconds.`);
    } else if (navigated || err.status === 404) {
      showError(err);
    } else {
      showBanner(`The API answered ${err.status}: ${err.message}`);
    }
  } finally {
    clearTimeout(slow);
    if (inFlight && inFlight.controller === controller) inFlight = null;
  }
}

// A click anywhere on a linked row opens it, unless the user is selecting text.
view.addEventListener("click", (ev) => {
  const row = ev.target.closest("tr[data-href]");
  if (!row || ev.target.closest("a, button") || selectionInView()) return;
  go(row.dataset.href);
});

$("live-toggle").addEventListener("click", () => {
  setLive({ paused: !isPaused() });
  if (!isPaused()) load(false);
});

initToken(() => load(false, true));
search.initSearch();
window.addEventListener("hashchange", () => load(true));
document.addEventListener("visibilitychange", () => { if (!document.hidden && !isPaused()) load(false); });
setInterval(() => {
  refreshTimes();
  setLive();
  if (!isPaused() && !document.hidden) load(false);
}, REFRESH_MS);

setLive();
load(true);
// Reached only when every module was fetched and evaluated: the browser tests wait for it.
document.documentElement.dataset.ready = "true";
