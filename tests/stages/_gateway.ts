/**
 * Shared by the gateway tests.
 *
 * @module
 */

/** Loopback tests are ignored when the test process may not open sockets (plain `deno test`). */
export const NO_NET = Deno.permissions.querySync({ name: "net", host: "127.0.0.1" }).state !==
  "granted";
