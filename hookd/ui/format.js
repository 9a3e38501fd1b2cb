// Text for API values: states, HTTP statuses, times, sizes and JSON. Pure functions, no DOM.

export const STATES = ["pending", "delivering", "retrying", "succeeded", "failed"];

export const STATE_META = {
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

// Webhook types: standard (section 4's payloads) and the pre-configured chat services.
export const TYPE_LABELS = { standard: "Standard", slack: "Slack", teams: "Microsoft Teams", discord: "Discord" };

export const ERROR_KINDS = {
  timeout: "timed out", connect: "connection failed", dns: "name not resolved",
  tls: "TLS failed", proxy: "proxy failed or refused", blocked: "blocked by the address guard",
  http: "bad HTTP answer",
};

/** Whether an HTTP status counts as delivered. */
export const isOk = (code) => code != null && code >= 200 && code < 300;

/** "500 Internal Server Error": every place on the page names a status this way. */
export const statusLabel = (code) => `${code} ${REASONS[code] || ""}`.trim();

export function fmtDuration(ms) {
  if (ms == null) return "—";
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  return `${(ms / 60000).toFixed(1)} min`;
}

const pad = (n) => String(n).padStart(2, "0");

/** The local time of day, with the date in front when it is not today. */
export function fmtClock(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  const now = new Date();
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === now.toDateString()) return time;
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return `${date} ${time}`;
}

export function fmtRelative(iso) {
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

export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/**
 * JSON re-indented by two spaces as [class, text] pieces, or null when ``text`` is not JSON.
 * The original tokens are kept as they are (no JSON.parse round trip), so a large integer
 * id or an escaped character reads exactly as it was sent.
 */
export function prettyJson(text) {
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

/** Time left until a deadline, for a countdown: "2:05:09", "4:07", "9 s", or "due now" once passed. */
export function fmtCountdown(ms) {
  if (ms <= 0) return "due now";
  const total = Math.ceil(ms / 1000);
  if (total < 60) return `${total} s`;
  const hours = Math.floor(total / 3600);
  const mins = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  return hours ? `${hours}:${pad(mins)}:${pad(secs)}` : `${mins}:${pad(secs)}`;
}
