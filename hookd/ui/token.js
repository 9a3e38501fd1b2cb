// The API token: kept for this browser tab, asked for in the token dialog, forgotten with
// the "Forget token" button.

import { $ } from "./dom.js";
import { toast } from "./page.js";

const TOKEN_KEY = "hookd.token";

let token = sessionStorage.getItem(TOKEN_KEY);
let waiter = null; // one dialog for every call that was refused meanwhile

export const currentToken = () => token;

function showForgetButton() { $("forget-token").hidden = !token; }

/** Open the dialog (saying the last token was refused, if ``refused``); settles once a token is entered. */
export function askToken(refused) {
  if (waiter) return waiter;
  const dialog = $("token-dialog");
  const form = $("token-form");
  const input = $("token-input");
  $("token-error").hidden = !refused;
  input.value = "";
  waiter = new Promise((resolve) => {
    const onSubmit = (ev) => {
      ev.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      token = value;
      sessionStorage.setItem(TOKEN_KEY, value);
      form.removeEventListener("submit", onSubmit);
      dialog.close();
      waiter = null;
      showForgetButton();
      resolve();
    };
    form.addEventListener("submit", onSubmit);
  });
  dialog.showModal();
  input.focus();
  return waiter;
}

/** Wire the dialog and the Forget button; ``onForget`` runs after the token is dropped. */
export function initToken(onForget) {
  $("token-dialog").addEventListener("cancel", (ev) => ev.preventDefault()); // nothing works without it
  $("forget-token").addEventListener("click", () => {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    showForgetButton();
    toast("Token forgotten for this tab");
    onForget();
  });
  showForgetButton();
}
