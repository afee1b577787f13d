/**
 * Every telemetry name in one table: span names, metric names, attribute keys. The runtime,
 * the dashboards and the alert rules import these constants, so a rename cannot silently break
 * a panel.
 *
 * Metric names are given twice: the OpenTelemetry instrument name the SDK records, and the
 * name Prometheus shows after the Collector's Prometheus exporter translates it (counters gain
 * `_total`, dots become underscores; unit suffixes are off in the Collector config so the
 * reference's names stay as they were).
 *
 * @module
 */

/** Attribute keys from the OpenTelemetry messaging semantic conventions, plus ours. */
export const ATTR = {
  MESSAGING_SYSTEM: "messaging.system",
  MESSAGING_DESTINATION_NAME: "messaging.destination.name",
  MESSAGING_OPERATION_TYPE: "messaging.operation.type",
  MESSAGING_OPERATION_NAME: "messaging.operation.name",
  MESSAGING_KAFKA_MESSAGE_KEY: "messaging.kafka.message.key",
  MESSAGING_KAFKA_OFFSET: "messaging.kafka.offset",
  MESSAGING_DESTINATION_PARTITION_ID: "messaging.destination.partition.id",
  MESSAGING_CONSUMER_GROUP_NAME: "messaging.consumer.group.name",
  ERROR_TYPE: "error.type",
  /** The pipeline stage (ours). */
  PIPELINE_STAGE: "pipeline.stage",
  /** The retry attempt number, 1 for the first try (ours). */
  PIPELINE_ATTEMPT: "pipeline.attempt",
  /** The retry tier, 0 for the main topic (ours). */
  PIPELINE_RETRY_TIER: "pipeline.retry.tier",
} as const;

/** `messaging.operation.type` values from the semantic conventions. */
export const OPERATION_TYPE = {
  SEND: "send",
  PROCESS: "process",
  RECEIVE: "receive",
} as const;

/** Span names: `send <topic>` (PRODUCER) and `process <topic>` (CONSUMER). */
export const SPAN = {
  send: (topic: string): string => `send ${topic}`,
  process: (topic: string): string => `process ${topic}`,
  /** A child span per handler attempt, carrying `pipeline.attempt`. */
  attempt: (stage: string): string => `attempt ${stage}`,
} as const;

/** A metric as the SDK records it and as Prometheus shows it. */
export interface MetricName {
  /** The OpenTelemetry instrument name. */
  readonly otel: string;
  /** The Prometheus series name (for histograms, the base of `_bucket`, `_sum`, `_count`). */
  readonly prom: string;
  /** The unit, UCUM. */
  readonly unit: string;
  /** What it measures. */
  readonly description: string;
}

/**
 * Declares a counter's names. Exported so domain code (`stages/`) declares its own metrics the
 * same way.
 */
export function counter(otel: string, description: string, unit = "1"): MetricName {
  return { otel, prom: `${otel.replaceAll(".", "_")}_total`, unit, description };
}

/** Declares a histogram's names. */
export function histogram(otel: string, description: string, unit: string): MetricName {
  return { otel, prom: otel.replaceAll(".", "_"), unit, description };
}

/** Declares a gauge's names. */
export function gauge(otel: string, description: string, unit = "1"): MetricName {
  return { otel, prom: otel.replaceAll(".", "_"), unit, description };
}

/**
 * Every metric the framework records. Stage-specific names (the reference's
 * `orders_published_total`, `payment_processing_latency_ms`, ...) are declared by the domain
 * with {@linkcode counter} and {@linkcode histogram}.
 */
export const METRIC = {
  // The reference's generic consumer names.
  MESSAGES_CONSUMED: counter("messages_consumed", "Records consumed by a stage"),
  MESSAGES_FAILED: counter("messages_failed", "Handler attempts that failed"),
  DLQ_MESSAGES: counter("dlq_messages", "Records sent to the dead-letter queue"),
  // Semantic-convention messaging metrics.
  MESSAGING_SENT: counter("messaging.client.sent.messages", "Messages sent (semconv)"),
  MESSAGING_CONSUMED: counter("messaging.client.consumed.messages", "Messages consumed (semconv)"),
  MESSAGING_PROCESS_DURATION: histogram(
    "messaging.process.duration",
    "Duration of processing one message (semconv)",
    "s",
  ),
  MESSAGING_OPERATION_DURATION: histogram(
    "messaging.client.operation.duration",
    "Duration of a messaging client operation (semconv)",
    "s",
  ),
  // Ours.
  RETRIES: counter("pipeline_retries", "Retries, by stage and tier"),
  DUPLICATES_SKIPPED: counter("pipeline_duplicates_skipped", "Redelivered records skipped"),
  WORKER_RESTARTS: counter("pipeline_worker_restarts", "Workers restarted after a crash"),
  IN_FLIGHT: gauge("pipeline_records_in_flight", "Records being handled now"),
  CONSUMER_LAG: gauge("pipeline_consumer_lag", "Records not yet committed, per partition"),
  END_TO_END_LATENCY: histogram(
    "pipeline_end_to_end_latency_ms",
    "Time from the event's creation to its final outcome",
    "ms",
  ),
} as const satisfies Record<string, MetricName>;

/** Histogram bucket bounds in milliseconds, chosen for a gateway of tens of ms and retries of seconds. */
export const LATENCY_BUCKETS_MS: readonly number[] = [
  1,
  2,
  5,
  10,
  25,
  50,
  100,
  200,
  300,
  500,
  1000,
  2000,
  5000,
  10000,
  30000,
];

/** The same bounds in seconds, for the semconv duration histograms. */
export const LATENCY_BUCKETS_S: readonly number[] = LATENCY_BUCKETS_MS.map((ms) => ms / 1000);

/** Metric attribute (label) keys beyond the semconv ones. */
export const LABEL = {
  STAGE: "stage",
  TOPIC: "topic",
  PARTITION: "partition",
  GROUP: "group",
  TIER: "tier",
  OUTCOME: "outcome",
  ERROR_TYPE: "error_type",
} as const;

/**
 * The Prometheus label a span or metric attribute becomes: dots (and anything else outside
 * `[a-zA-Z0-9_]`) turn into underscores, as the Collector's Prometheus exporter and Tempo's
 * metrics generator both do.
 *
 * @example
 * ```ts
 * import { ATTR, promLabel } from "./names.ts";
 * promLabel(ATTR.PIPELINE_STAGE); // "pipeline_stage"
 * ```
 */
export function promLabel(attribute: string): string {
  return attribute.replace(/[^a-zA-Z0-9_]/g, "_");
}

/** Labels of the semconv messaging metrics, translated from their attributes. */
export const MESSAGING_LABEL = {
  /** `messaging.destination.name`: the topic sent to or consumed from. */
  DESTINATION: "messaging_destination_name",
} as const satisfies Record<string, string>;

/**
 * The span metrics Tempo's metrics generator derives from every span it receives and
 * remote-writes to Prometheus (`infra/tempo/tempo.yaml`). Unlike the pipeline's own
 * histograms, their points carry exemplars: the trace id of a span they counted.
 */
export const SPAN_METRIC = {
  /** Span duration in seconds (`traces_spanmetrics_latency_bucket`, ...). */
  LATENCY: histogram(
    "traces.spanmetrics.latency",
    "Duration of spans, per service, span name, kind, status and dimension (Tempo)",
    "s",
  ),
  /** Spans counted (`traces_spanmetrics_calls_total`). */
  CALLS: counter(
    "traces.spanmetrics.calls",
    "Spans, per service, span name, kind, status and dimension (Tempo)",
  ),
} as const satisfies Record<string, MetricName>;

/**
 * The span attributes Tempo's span metrics keep as labels (its `span_metrics.dimensions`),
 * besides its intrinsic ones.
 */
export const SPAN_METRIC_DIMENSIONS: readonly string[] = [
  ATTR.MESSAGING_DESTINATION_NAME,
  ATTR.MESSAGING_OPERATION_TYPE,
  ATTR.PIPELINE_STAGE,
];

/** Labels of Tempo's span metrics: its intrinsic dimensions, then ours. */
export const SPAN_METRIC_LABEL = {
  SERVICE: "service",
  SPAN_NAME: "span_name",
  SPAN_KIND: "span_kind",
  STATUS_CODE: "status_code",
  /** `messaging.destination.name`. */
  DESTINATION: "messaging_destination_name",
  /** `messaging.operation.type`. */
  OPERATION_TYPE: "messaging_operation_type",
  /** `pipeline.stage`. */
  STAGE: "pipeline_stage",
} as const satisfies Record<string, string>;

/** Values of Tempo's `span_kind` label. */
export const SPAN_KIND_LABEL = {
  PRODUCER: "SPAN_KIND_PRODUCER",
  CONSUMER: "SPAN_KIND_CONSUMER",
  INTERNAL: "SPAN_KIND_INTERNAL",
} as const;

/**
 * The exemplar label holding a trace id, everywhere: the Collector's OpenMetrics exposition
 * writes `trace_id`, Tempo's metrics generator is told to (`trace_id_label_name`; its default
 * is `traceID`), and Grafana's Prometheus datasource looks it up to open the trace in Tempo.
 */
export const EXEMPLAR_TRACE_ID_LABEL = "trace_id";
