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
