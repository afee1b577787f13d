/**
 * Adapts a {@linkcode Telemetry} to the runtime's own `Instrumentation` contract
 * (`pipeline/instrumentation.ts`), so the runner takes OpenTelemetry or the no-op through one
 * interface.
 *
 * @example
 * ```ts ignore
 * import { runtimeInstrumentation, setupTelemetry } from "./mod.ts";
 * const telemetry = await setupTelemetry({ serviceName: "payment-service", instanceId: "w0" });
 * const instrumentation = runtimeInstrumentation(telemetry); // hand this to the runner
 * ```
 *
 * @module
 */

import type { Instrumentation as RuntimeInstrumentation } from "../instrumentation.ts";
import { recordError, setRecordAttributes } from "./instrumentation.ts";
import type { Telemetry } from "./setup.ts";

/** The runtime's instrumentation over `telemetry`'s spans and metrics. */
export function runtimeInstrumentation(telemetry: Telemetry): RuntimeInstrumentation {
  const { instrumentation: ins, metrics } = telemetry;
  return {
    traceSend: (topic, headers, attributes, fn) => ins.traceSend(topic, headers, attributes, fn),
    traceProcess: (record, group, stage, fn) => ins.traceProcess(record, group, stage, fn),
    traceAttempt: (stage, attempt, fn) => ins.traceAttempt(stage, attempt, fn),
    // Stages call it from inside an attempt; it must reach the record's process span too.
    setSpanAttributes: ins.enabled ? setRecordAttributes : () => {},
    recordError: ins.enabled ? (error) => recordError(error) : () => {},
    metrics,
  };
}
