/**
 * The framework's one instrumentation interface: spans around sends, record processing and
 * handler attempts, and the metrics the runtime records. Everything that instruments (runner,
 * publisher, DLQ replay, domain code) takes an {@linkcode Instrumentation};
 * {@linkcode noopInstrumentation} costs next to nothing, and the OpenTelemetry implementation
 * is `createInstrumentation()` in `telemetry/instrumentation.ts`, which `setupTelemetry()` hands
 * out as `telemetry.instrumentation`.
 *
 * @example
 * ```ts
 * import { noopInstrumentation } from "./instrumentation.ts";
 * const headers: Record<string, string> = {};
 * await noopInstrumentation.traceSend("events", headers, { key: "k" }, () => Promise.resolve());
 * noopInstrumentation.metrics.sent("events");
 * ```
 *
 * @module
 */
import type { Counter, Histogram, Span } from "@opentelemetry/api";
import { INVALID_SPAN_CONTEXT, trace } from "@opentelemetry/api";
import type { MetricName } from "./telemetry/names.ts";
import type { ConsumedRecord, RecordHeaders } from "./transport/transport.ts";

/** Attributes a span or metric may carry. */
export type Attributes = Record<string, string | number | boolean>;

/** What a send span records besides the topic. */
export interface SendAttributes {
  /** The record key, as text (`messaging.kafka.message.key`). */
  readonly key?: string;
  /** The partition, when known before sending. */
  readonly partition?: number;
  /** The stage or source sending (`pipeline.stage`). */
  readonly stage?: string;
  /** More attributes for the span. */
  readonly extra?: Attributes;
}

/**
 * How a CONSUMER span relates to the producer's context found in the record headers:
 * `parent` makes it a child (one trace from the first send to the last outcome), `link` starts
 * a new trace with a span link to the producer.
 */
export type ParentingMode = "parent" | "link";

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

/** Tracing and metrics for the runtime: the one interface every instrumented part takes. */
export interface Instrumentation {
  /** Whether spans are recorded at all; `false` means every trace call just runs its function. */
  readonly enabled: boolean;
  /** How consumer spans relate to the producer context in the record headers. */
  readonly mode: ParentingMode;
  /**
   * Runs `fn` inside a PRODUCER span `send <topic>`, a child of the active context, after
   * writing that span's `traceparent` (and `tracestate`) into `headers`: build the outgoing
   * record's headers from this same object, inside or after this call. On rejection the span
   * gets `error.type` and status ERROR, and the rejection is passed on.
   */
  traceSend<T>(
    topic: string,
    headers: RecordHeaders,
    attributes: SendAttributes,
    fn: () => Promise<T>,
  ): Promise<T>;
  /**
   * Runs `fn` inside a CONSUMER span `process <topic>` for a consumed record. Its parent is the
   * context in the record headers (mode `parent`), or it starts a trace linked to that context
   * (mode `link`). The span is active during `fn`, so sends and attempts inside are its
   * children. `fn` gets the span, to add attributes; rejection marks it failed.
   */
  traceProcess<T>(
    record: ConsumedRecord,
    group: string,
    stage: string,
    fn: (span: Span) => Promise<T>,
  ): Promise<T>;
  /**
   * Runs one handler attempt inside an INTERNAL span `attempt <stage>` with `pipeline.attempt`
   * (1 for the first try). A rejected attempt is recorded (status ERROR, an exception event,
   * `error.type`) and the rejection passed on, so the caller decides to retry.
   */
  traceAttempt<T>(stage: string, attempt: number, fn: () => Promise<T>): Promise<T>;
  /**
   * Adds attributes to the span of the record being handled (and to the active span, when that
   * is an attempt span): how a stage's `setAttributes` reaches the record's `process` span.
   */
  setSpanAttributes(attributes: Attributes): void;
  /** Marks the active span failed without throwing (a record that was dead-lettered). */
  recordError(error: unknown): void;
  /** The runtime's metrics. */
  readonly metrics: PipelineMetrics;
}

function nothing(): void {}

/** A span that records nothing, handed to `traceProcess` functions when tracing is off. */
const NOOP_SPAN: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** Instrumentation that records nothing and runs each function directly. */
export const noopInstrumentation: Instrumentation = Object.freeze({
  enabled: false,
  mode: "parent",
  traceSend: function traceSendNoop<T>(
    _topic: string,
    _headers: RecordHeaders,
    _attributes: SendAttributes,
    fn: () => Promise<T>,
  ): Promise<T> {
    return fn();
  },
  traceProcess: function traceProcessNoop<T>(
    _record: ConsumedRecord,
    _group: string,
    _stage: string,
    fn: (span: Span) => Promise<T>,
  ): Promise<T> {
    return fn(NOOP_SPAN);
  },
  traceAttempt: function traceAttemptNoop<T>(
    _stage: string,
    _attempt: number,
    fn: () => Promise<T>,
  ): Promise<T> {
    return fn();
  },
  setSpanAttributes: nothing,
  recordError: nothing,
  metrics: NOOP_PIPELINE_METRICS,
});
