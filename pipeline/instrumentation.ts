/**
 * What the runtime asks of telemetry, as one small interface: spans around sends, record
 * processing and handler attempts, and the metrics it records. `noopInstrumentation` costs
 * next to nothing; the OpenTelemetry implementation lives in `telemetry/`.
 *
 * @module
 */
import type { MetricName } from "./telemetry/names.ts";
import type { ConsumedRecord, RecordHeaders } from "./transport/transport.ts";

/** Attributes a span or metric may carry. */
export type Attributes = Record<string, string | number | boolean>;

/** What a send span knows about its record. */
export interface SendAttributes {
  /** The record key, as text. */
  readonly key?: string;
  /** The stage or source sending. */
  readonly stage?: string;
}

/** The metrics the runtime records. */
export interface RuntimeMetrics {
  /** A record was read by a stage. */
  consumed(stage: string, topic: string, partition: number): void;
  /** A handler attempt failed. */
  failed(stage: string, errorType: string): void;
  /** A record was dead-lettered. */
  deadLettered(stage: string, errorType: string, topic: string): void;
  /** A handler attempt was a retry (tier 0: in place; n: in retry tier n). */
  retried(stage: string, tier: number): void;
  /** A redelivered record was skipped. */
  duplicateSkipped(stage: string): void;
  /** A record's processing finished, retries included. */
  processDuration(
    stage: string,
    topic: string,
    ms: number,
    outcome: string,
    extraHistogram?: MetricName,
  ): void;
  /** A record was produced. */
  sent(topic: string): void;
  /** Records in flight went up or down. */
  inFlight(delta: number): void;
  /** A record reached its final outcome `ms` after it was first produced. */
  endToEnd(stage: string, ms: number): void;
}

/** Tracing and metrics for the runtime. */
export interface Instrumentation {
  /**
   * Runs `fn` in a PRODUCER span `send <topic>`, injecting its trace context into `headers`
   * (which the caller then sends).
   */
  traceSend<T>(
    topic: string,
    headers: RecordHeaders,
    attributes: SendAttributes,
    fn: () => Promise<T>,
  ): Promise<T>;
  /** Runs `fn` in a CONSUMER span `process <topic>`, parented to the record's trace context. */
  traceProcess<T>(
    record: ConsumedRecord,
    group: string,
    stage: string,
    fn: () => Promise<T>,
  ): Promise<T>;
  /** Runs `fn` in a span for one handler attempt. */
  traceAttempt<T>(stage: string, attempt: number, fn: () => Promise<T>): Promise<T>;
  /** Adds attributes to the active span. */
  setSpanAttributes(attributes: Attributes): void;
  /** Marks the active span failed without throwing (a record that was dead-lettered). */
  recordError(error: unknown): void;
  /** The runtime's metrics. */
  readonly metrics: RuntimeMetrics;
}

function nothing(): void {}

/** Instrumentation that records nothing. */
export const noopInstrumentation: Instrumentation = {
  traceSend: (_topic, _headers, _attributes, fn) => fn(),
  traceProcess: (_record, _group, _stage, fn) => fn(),
  traceAttempt: (_stage, _attempt, fn) => fn(),
  setSpanAttributes: nothing,
  recordError: nothing,
  metrics: {
    consumed: nothing,
    failed: nothing,
    deadLettered: nothing,
    retried: nothing,
    duplicateSkipped: nothing,
    processDuration: nothing,
    sent: nothing,
    inFlight: nothing,
    endToEnd: nothing,
  },
};
