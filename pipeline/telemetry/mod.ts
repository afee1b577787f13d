/**
 * Telemetry: the names table shared by the runtime, dashboards and alerts.
 *
 * @module
 */
export * from "./names.ts";
