/**
 * Telemetry: OpenTelemetry setup from the `OTEL_*` environment, the tracing and metrics API the
 * stage runner calls, and the names table shared by the runtime, dashboards and alerts.
 *
 * @example
 * ```ts ignore
 * import { setupTelemetry } from "./mod.ts";
 * const telemetry = await setupTelemetry({ serviceName: "payment-service", instanceId: "w0" });
 * const { instrumentation, metrics } = telemetry;
 * // ... instrumentation.traceProcess(record, group, stage, fn), metrics.consumed(...) ...
 * await telemetry.shutdown();
 * ```
 *
 * @module
 */
export * from "./names.ts";
export * from "./config.ts";
export * from "./instrumentation.ts";
// The framework's one instrumentation interface, which `./instrumentation.ts` implements.
export type { Instrumentation, ParentingMode, SendAttributes } from "../instrumentation.ts";
export * from "./metrics.ts";
export * from "./setup.ts";
