/**
 * What the runtime asks of telemetry, as one small interface: spans around sends, record
 * processing and handler attempts, and the metrics it records. `noopInstrumentation` costs
 * next to nothing; the OpenTelemetry implementation lives in `telemetry/`.
 *
 * @module
 */
import type { Counter, Histogram } from "@opentelemetry/api";
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

/** How a record's delivery ended: the `outcome` label, and the runner's outcome kinds. */
export type ProcessOutcome = "output" | "dead-lettered" | "retry-scheduled" | "duplicate";

/** One partition's consumer lag, reported by a lag observer. */
export interface LagSample {
  /** The topic. */
  readonly topic: string;
  /** The partition. */
  readonly partition: number;
  /** The consumer group. */
  readonly group: string;
  /** Records not yet committed by the group (high watermark minus committed offset). */
  readonly lag: number;
}

/** The runner's metrics. Every method is a no-op when telemetry is off. */
export interface PipelineMetrics {
  /** A record was consumed (`messages_consumed` and semconv `consumed.messages`). */
  consumed(stage: string, topic: string, partition: number, group?: string): void;
  /** A handler attempt failed (`messages_failed`). */
  failed(stage: string, errorType: string): void;
  /** A record went to the dead-letter topic `topic` (`dlq_messages`). */
  deadLettered(stage: string, errorType: string, topic: string): void;
  /** A retry was scheduled, in place (tier 0) or on retry topic `tier` (`pipeline_retries`). */
  retried(stage: string, tier: number): void;
  /** A redelivered record was skipped as already done (`pipeline_duplicates_skipped`). */
  duplicateSkipped(stage: string): void;
  /**
   * A record's processing took `ms` milliseconds: records semconv `messaging.process.duration`
   * in seconds and, when the stage declared one, its own millisecond histogram.
   */
  processDuration(
    stage: string,
    topic: string,
    ms: number,
    outcome: ProcessOutcome,
    stageHistogram?: MetricName,
  ): void;
  /** Records were sent to `topic` (semconv `sent.messages`). */
  sent(topic: string, count?: number, errorType?: string): void;
  /** A client operation (`send`, `receive`, `commit`) took `seconds` (semconv). */
  operationDuration(operation: string, topic: string, seconds: number, errorType?: string): void;
  /** Records in flight changed by `delta` (`pipeline_records_in_flight`). */
  inFlight(delta: number, stage?: string): void;
  /**
   * Registers a lag source read at each metric export (`pipeline_consumer_lag`). Returns a
   * function that unregisters it.
   */
  observeLag(fn: () => readonly LagSample[]): () => void;
  /** The time from an event's creation to its final outcome (`pipeline_end_to_end_latency_ms`). */
  e2eLatency(stage: string, ms: number): void;
  /** The supervisor restarted a crashed worker (`pipeline_worker_restarts`). */
  workerRestart(stage: string): void;
  /** A counter declared with `counter()` from names.ts, created once and cached. */
  counter(name: MetricName): Counter;
  /** A histogram declared with `histogram()` from names.ts, created once and cached. */
  histogram(name: MetricName): Histogram;
}

const NOOP_COUNTER: Counter = { add() {} };
const NOOP_HISTOGRAM: Histogram = { record() {} };

/** Metrics that record nothing: what the runner gets when metrics are off. */
export const NOOP_PIPELINE_METRICS: PipelineMetrics = Object.freeze({
  consumed() {},
  failed() {},
  deadLettered() {},
  retried() {},
  duplicateSkipped() {},
  processDuration() {},
  sent() {},
  operationDuration() {},
  inFlight() {},
  observeLag: () => () => {},
  e2eLatency() {},
  workerRestart() {},
  counter: () => NOOP_COUNTER,
  histogram: () => NOOP_HISTOGRAM,
});

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
  readonly metrics: PipelineMetrics;
}

function nothing(): void {}

/** Instrumentation that records nothing. */
export const noopInstrumentation: Instrumentation = {
  traceSend: (_topic, _headers, _attributes, fn) => fn(),
  traceProcess: (_record, _group, _stage, fn) => fn(),
  traceAttempt: (_stage, _attempt, fn) => fn(),
  setSpanAttributes: nothing,
  recordError: nothing,
  metrics: NOOP_PIPELINE_METRICS,
};
