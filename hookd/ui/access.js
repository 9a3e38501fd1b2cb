// What the page's token may do, decided in one place: every control that changes something
// (New webhook, Edit, Send test, Delete) asks here before it shows.

/**
 * Whether the token may change webhooks (the `manage` scope of SPEC §11). Every token may
 * until the page learns its token's scopes; then this is the one function to answer from them.
 */
export const canManage = () => true;
