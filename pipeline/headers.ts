/**
 * Header names the runtime writes on records it forwards to retry tiers and the dead-letter
 * queue, in one table (after Spring Kafka's `kafka_dlt-*` headers).
 *
 * @module
 */

/** Header keys written by the runtime. */
export const HEADER = {
  /** The retry tier a record is in (1-based). */
  RETRY_TIER: "x-retry-tier",
  /** When a record in a retry tier is due to be tried again, ms since the epoch. */
  RETRY_DUE_AT: "x-retry-due-at",
  /** Attempts made so far across tiers. */
  ATTEMPTS: "x-attempts",
  /** The topic the record was first read from. */
  ORIGINAL_TOPIC: "x-original-topic",
  /** The partition the record was first read from. */
  ORIGINAL_PARTITION: "x-original-partition",
  /** The offset the record was first read at. */
  ORIGINAL_OFFSET: "x-original-offset",
  /** When the record was first produced, ms since the epoch (for end-to-end latency). */
  ORIGINAL_TIMESTAMP: "x-original-timestamp",
  /** The last error's type. */
  ERROR_TYPE: "x-error-type",
  /** The last error's message. */
  ERROR_REASON: "x-error-reason",
  /** The stage that failed. */
  STAGE: "x-stage",
  /**
   * On a dead letter that is its key's outcome (the record decoded and its key matched): a
   * redelivery of the key is a duplicate. Dead letters without it (undecodable records, keys
   * that do not match) leave their key open.
   */
  KEY_OUTCOME: "x-key-outcome",
  /**
   * On a record that follows an earlier record of its key into a retry tier (ordered retries):
   * the input offset of the record it waits behind.
   */
  PARKED_BEHIND: "x-parked-behind",
  /** Set on records replayed from the DLQ: the DLQ partition/offset they came from. */
  REPLAYED_FROM: "x-replayed-from",
} as const;

/** Header keys of W3C trace context, carried through every hop untouched. */
export const TRACE_HEADERS: readonly string[] = ["traceparent", "tracestate", "baggage"];
