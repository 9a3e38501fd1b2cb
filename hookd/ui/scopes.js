// What the page's token may do: the scopes GET /v1/token answers, loaded once per token, so
// that views hide the actions it cannot take (``can("manage")``) rather than offer a 403.

import { api } from "./api.js";
import { currentToken } from "./token.js";

let loadedFor; // the token the scopes are for; undefined until the first load
let scopes = new Set();

/** Load the scopes of the token in use, unless they are loaded already. */
export async function loadScopes(signal) {
  if (loadedFor !== undefined && loadedFor === currentToken()) return;
  const out = await api("/v1/token", { signal });
  // api() may have asked for another token on its way: the answer is for the one in use now.
  loadedFor = currentToken();
  scopes = new Set(out.scopes);
}

/** True when the token in use has ``scope``: "ingest", "read" or "manage". */
export const can = (scope) => scopes.has(scope);

/** The scopes as a string, so a view whose data is unchanged still redraws when they change. */
export const scopesKey = () => [...scopes].sort().join(",");
