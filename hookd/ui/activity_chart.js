// The overview's per-webhook chart of the last hour: one column per minute, its deliveries
// stacked by outcome (succeeded, retrying, failed), and the median latency as a line over
// them, so an outage's start and end stand out. Plain SVG built here; no charting library.

import { fmtClock, fmtDuration } from "./format.js";

const SVG = "http://www.w3.org/2000/svg"; // a namespace name, nothing is fetched from it
const W = 180; // one minute: 3 units across
const H = 36;
const LINE_TOP = 3; // the latency line keeps clear of the top edge
const OUTCOMES = ["succeeded", "retrying", "failed"]; // bottom to top

/** An SVG element (h() of dom.js makes HTML ones). */
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v != null) el.setAttribute(k, String(v));
  for (const kid of kids.flat()) if (kid != null) el.append(kid instanceof Node ? kid : String(kid));
  return el;
}

/**
 * Columns of the chart from an answer of GET /v1/activity: one per minute from ``since``,
 * {at, succeeded, retrying, failed, total, p50, max}; a minute without deliveries is zero.
 */
export function columns(activity, buckets) {
  const start = Date.parse(activity.since);
  const byMinute = new Map((buckets || []).map((b) => [Math.round((Date.parse(b.minute) - start) / 60000), b]));
  return Array.from({ length: activity.minutes }, (_, i) => {
    const b = byMinute.get(i) || {};
    const [succeeded, retrying, failed] = OUTCOMES.map((o) => b[o] || 0);
    return { at: new Date(start + i * 60000).toISOString(), succeeded, retrying, failed,
      total: succeeded + retrying + failed, p50: b.p50_ms ?? null, max: b.max_ms ?? null };
  });
}

function tip(c) {
  if (!c.total) return `${fmtClock(c.at)} · no deliveries`;
  const parts = OUTCOMES.filter((o) => c[o]).map((o) => `${c[o]} ${o}`);
  return `${fmtClock(c.at)} · ${parts.join(", ")} · latency p50 ${fmtDuration(c.p50)}, max ${fmtDuration(c.max)}`;
}

/** The chart of one webhook's ``buckets`` (its entry of activity.webhooks), as an <svg>. */
export function activityChart(activity, buckets) {
  const cols = columns(activity, buckets);
  const step = W / cols.length;
  const peak = Math.max(1, ...cols.map((c) => c.total));
  const slowest = Math.max(0, ...cols.map((c) => c.p50 || 0));
  const bars = cols.map((c, i) => {
    let y = H;
    const parts = OUTCOMES.filter((o) => c[o]).map((o) => {
      const hgt = Math.max(1, (c[o] / peak) * (H - LINE_TOP));
      y -= hgt;
      return s("rect", { class: `bar bar-${o}`, x: (i * step + 0.3).toFixed(2), y: y.toFixed(2),
        width: (step - 0.6).toFixed(2), height: hgt.toFixed(2), "data-outcome": o, "data-n": c[o] });
    });
    // A full-height hit area per minute carries the tooltip, even for an empty minute.
    return s("g", { "data-minute": c.at }, s("title", {}, tip(c)),
      s("rect", { class: "bar-hit", x: (i * step).toFixed(2), y: 0, width: step.toFixed(2), height: H }), parts);
  });
  const points = cols.map((c, i) => (c.p50 == null || !slowest ? null
    : `${(i * step + step / 2).toFixed(2)},${(LINE_TOP + (1 - c.p50 / slowest) * (H - 2 * LINE_TOP)).toFixed(2)}`));
  // The line breaks where a minute has no latency, rather than drawing a slope across the gap.
  const runs = [[]];
  for (const p of points) {
    if (p != null) runs[runs.length - 1].push(p);
    else if (runs[runs.length - 1].length) runs.push([]);
  }
  const lines = runs.filter((r) => r.length).map((r) => (r.length === 1
    ? s("circle", { class: "latency-dot", cx: r[0].split(",")[0], cy: r[0].split(",")[1], r: 0.9 })
    : s("polyline", { class: "latency", points: r.join(" ") })));
  const totals = OUTCOMES.map((o) => cols.reduce((n, c) => n + c[o], 0));
  const label = `Last ${activity.minutes} minutes: ${totals[0]} succeeded, ${totals[1]} retrying, ${totals[2]} failed`
    + (slowest ? `; slowest median latency ${fmtDuration(slowest)}` : "");
  return s("svg", { class: "activity", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img",
    "aria-label": label, "data-chart": "activity", "data-succeeded": totals[0], "data-retrying": totals[1], "data-failed": totals[2] },
  s("title", {}, label), s("line", { class: "axis", x1: 0, y1: H - 0.25, x2: W, y2: H - 0.25 }), bars, lines);
}
