// What the page's token may do, decided in one place: every control that changes something
// (New webhook, Edit, Send test, Delete) asks here before it shows.

import { can } from "./scopes.js";

/** Whether the token may change webhooks: the `manage` scope of SPEC §11 (GET /v1/token). */
export const canManage = () => can("manage");
