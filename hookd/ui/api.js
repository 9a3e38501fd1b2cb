// Calls to hookd's admin API (/v1/…): the bearer token, asking for one on 401, JSON bodies,
// ETags, and errors as ApiError.

import { askToken, currentToken } from "./token.js";

export class ApiError extends Error {
  /** ``status`` 0 means hookd did not answer at all; ``details`` is the error body's list, if any. */
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = Array.isArray(details) ? details : [];
  }
}

const unreachable = (err) => new ApiError(0, "unreachable", `hookd is not answering (${err.message})`);

/**
 * The decoded answer to ``method path``. A call aborted through ``signal`` rejects with the
 * browser's AbortError, never with an ApiError, so it is not mistaken for hookd being down.
 * ``json`` is sent as the JSON body, ``ifMatch`` as the If-Match header; with ``withEtag``
 * the answer is ``{body, etag}``, the ETag being what a later If-Match must name.
 */
export async function api(path, { method = "GET", signal, json, ifMatch, withEtag = false } = {}) {
  const payload = json === undefined ? undefined : JSON.stringify(json);
  for (;;) {
    const sent = currentToken();
    const headers = { Accept: "application/json" };
    if (sent) headers.Authorization = `Bearer ${sent}`;
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    if (ifMatch) headers["If-Match"] = ifMatch;
    let resp;
    let text;
    try {
      resp = await fetch(path, { method, headers, body: payload, cache: "no-store", signal });
      if (resp.status !== 401) text = await resp.text();
    } catch (err) {
      if (signal && signal.aborted) throw err;
      throw unreachable(err);
    }
    if (resp.status === 401) {
      // Ask only when the token this call carried is still the one in use.
      if (currentToken() === sent) await askToken(Boolean(sent));
      continue;
    }
    let body = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: keep the text
    }
    if (!resp.ok) {
      const e = (body && body.error) || {};
      throw new ApiError(resp.status, e.code || `http_${resp.status}`, e.message || text || resp.statusText, e.details);
    }
    return withEtag ? { body, etag: resp.headers.get("ETag") } : body;
  }
}
