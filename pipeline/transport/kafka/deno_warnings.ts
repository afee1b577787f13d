/**
 * kafkajs 2.2.4 arms `setTimeout` with a negative delay in its request queue (the throttle
 * check runs before any throttling happened), and Deno's Node layer prints a
 * `TimeoutNegativeWarning` for it on stderr. The delay is clamped to 1 ms, so the warning is
 * noise. The Kafka transport drops it once per process or worker; other warnings pass.
 *
 * @module
 */

import process from "node:process";

let installed = false;

/**
 * Drops `TimeoutNegativeWarning` process warnings and passes every other warning to the
 * listeners that were registered before (Deno's default printer among them).
 *
 * @example
 * ```ts
 * import { dropTimeoutNegativeWarnings } from "./deno_warnings.ts";
 * dropTimeoutNegativeWarnings();
 * ```
 */
export function dropTimeoutNegativeWarnings(): void {
  if (installed) return;
  installed = true;
  const previous = process.listeners("warning");
  process.removeAllListeners("warning");
  process.on("warning", function forwardWarning(warning: Error) {
    // Warnings are plain Error objects told apart only by `name`; no class to test against.
    if (warning.name === "TimeoutNegativeWarning") return;
    for (const listener of previous) listener.call(process, warning);
  });
}
