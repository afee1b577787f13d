/**
 * kafkajs 2.2.4 arms `setTimeout` with a negative delay in its request queue (the throttle
 * check runs before any throttling happened), and Deno's Node layer prints a
 * `TimeoutNegativeWarning` for it on stderr. The delay is clamped to 1 ms, so the warning is
 * noise; programs that own their process (the broker CLI, the test runner) drop it.
 *
 * @module
 */

import process from "node:process";

/**
 * Drops `TimeoutNegativeWarning` process warnings and passes every other warning to the
 * listeners that were registered before (Deno's default printer among them).
 *
 * @example
 * ```ts
 * import { dropTimeoutNegativeWarnings } from "./kafkajs_warning.ts";
 * dropTimeoutNegativeWarnings();
 * ```
 */
export function dropTimeoutNegativeWarnings(): void {
  const previous = process.listeners("warning");
  process.removeAllListeners("warning");
  process.on("warning", function forwardWarning(warning: Error) {
    // Warnings are plain Error objects told apart only by `name`; no class to test against.
    if (warning.name === "TimeoutNegativeWarning") return;
    for (const listener of previous) listener.call(process, warning);
  });
}
