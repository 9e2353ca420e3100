"use strict";
// Kuvert's rooms are not end-to-end encrypted, so the bridge's encryption support is never
// switched on. The real package downloads a native binary at install time, which Kuvert's
// installs must not depend on. Loading this module works; using anything from it throws.
const message =
  "Kuvert is installed without @matrix-org/matrix-sdk-crypto-nodejs: end-to-end encryption " +
  "is not supported by Kuvert (see README, 'Encryption').";
function unavailable() {
  throw new Error(message);
}
const handler = {
  get(_target, prop) {
    if (prop === "__esModule") return false;
    if (prop === "then") return undefined;
    if (typeof prop === "symbol") return undefined;
    return new Proxy(unavailable, handler);
  },
  apply: unavailable,
  construct: unavailable,
};
module.exports = new Proxy(unavailable, handler);
