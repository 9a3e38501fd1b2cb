// Calls to hookd's admin API (/v1/…): the bearer token, asking for one on 401, and errors
// as ApiError.

import { askToken, currentToken } from "./token.js";

export class ApiError extends Error {
  /** ``status`` 0 means hookd did not answer at all. */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const unreachable = (err) => new ApiError(0, "unreachable", `hookd is not answering (${err.message})`);

/**
 * The decoded answer to ``method path``. A call aborted through ``signal`` rejects with the
 * browser's AbortError, never with an ApiError, so it is not mistaken for hookd being down.
 */
export async function api(path, { method = "GET", signal } = {}) {
  for (;;) {
    const sent = currentToken();
    const headers = { Accept: "application/json" };
    if (sent) headers.Authorization = `Bearer ${sent}`;
    let resp;
    let text;
    try {
      resp = await fetch(path, { method, headers, cache: "no-store", signal });
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
      throw new ApiError(resp.status, e.code || `http_${resp.status}`, e.message || text || resp.statusText);
    }
    return body;
  }
}
