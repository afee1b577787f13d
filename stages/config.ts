/**
 * The orders pipeline's settings: one spec that the command parses, `--help` prints, and the
 * README's configuration table is generated from. Environment names follow the reference
 * services.
 *
 * @module
 */
import { setting } from "../pipeline/config.ts";
import { HEALTH_CONFIG } from "../pipeline/service_config.ts";
import { DEFAULT_KAFKA_CLIENT, KAFKA_CLIENTS } from "../pipeline/transport/kafka_client.ts";
import { GUARANTEE_CONFIG } from "../pipeline/guarantee.ts";
import { REFERENCE_RETRY, retryPolicy } from "../pipeline/retry.ts";
import type { RetryPolicy } from "../pipeline/retry.ts";

/** Retry presets the command offers. */
export const RETRY_PRESETS = ["reference", "backoff", "tiered"] as const;

/** Every setting of `deno task pipeline`. */
export const ORDERS_CONFIG = {
  brokers: setting({
    type: "string",
    env: "KAFKA_BROKERS",
    description:
      "Comma-separated Kafka-API brokers (host:port); unset runs on the embedded in-process transport",
  }),
  kafkaClient: setting({
    type: "string",
    env: "KAFKA_CLIENT",
    default: DEFAULT_KAFKA_CLIENT,
    choices: KAFKA_CLIENTS,
    description:
      "Kafka client of the broker transport: kafkajs or platformatic (@platformatic/kafka)",
  }),
  ordersTopic: setting({
    type: "string",
    env: "ORDERS_TOPIC",
    default: "orders",
    description: "Topic orders are published to",
  }),
  paymentsTopic: setting({
    type: "string",
    env: "PAYMENTS_TOPIC",
    default: "payments",
    description: "Topic PaymentProcessed events are written to",
  }),
  dlqTopic: setting({
    type: "string",
    env: "DLQ_TOPIC",
    default: "orders.dlq",
    description: "Dead-letter topic",
  }),
  groupId: setting({
    type: "string",
    env: "GROUP_ID",
    default: "payment-service",
    description: "Consumer group of the payment stage",
  }),
  partitions: setting({
    type: "integer",
    env: "ORDERS_PARTITIONS",
    flag: "partitions",
    default: 3,
    min: 1,
    max: 1000,
    description: "Partitions of the orders and payments topics (when the pipeline creates them)",
  }),
  replicationFactor: setting({
    type: "integer",
    env: "REPLICATION_FACTOR",
    flag: "replication-factor",
    default: 1,
    min: 1,
    max: 32,
    description:
      "Replication factor of the topics the pipeline creates (3 on a production cluster); an existing topic with fewer replicas is used as it is, with a warning",
  }),
  minInsyncReplicas: setting({
    type: "integer",
    env: "MIN_INSYNC_REPLICAS",
    flag: "min-insync-replicas",
    min: 1,
    max: 32,
    description:
      "min.insync.replicas of the topics the pipeline creates (at most REPLICATION_FACTOR; 2 with a factor of 3); unset keeps the broker's default",
  }),
  workers: setting({
    type: "integer",
    env: "PAYMENT_WORKERS",
    flag: "workers",
    min: 1,
    description: "Payment workers (consumer group members); default min(partitions, cores)",
  }),
  gatewayUrl: setting({
    type: "string",
    env: "GATEWAY_URL",
    flag: "gateway-url",
    description:
      "Base URL of the payment gateway service (deno task gateway); unset starts one in this process on a free loopback port, with the failure rate, latency and timeout rate below",
  }),
  gatewayTimeoutMs: setting({
    type: "integer",
    env: "GATEWAY_TIMEOUT_MS",
    flag: "gateway-timeout-ms",
    default: 2000,
    min: 1,
    max: 600_000,
    description:
      "Timeout of one charge attempt, in milliseconds; a timed-out attempt is retried with the same idempotency key",
  }),
  failureRate: setting({
    type: "number",
    env: "PAYMENT_FAILURE_RATE",
    flag: "failure-rate",
    default: 0.2,
    min: 0,
    max: 1,
    description:
      "Probability that one charge request to the in-process gateway is answered 503 (with GATEWAY_URL, the gateway's own setting applies)",
  }),
  gatewayTimeoutRate: setting({
    type: "number",
    env: "PAYMENT_TIMEOUT_RATE",
    flag: "timeout-rate",
    default: 0,
    min: 0,
    max: 1,
    description:
      "Probability that the in-process gateway charges a request but answers only after the attempt's timeout",
  }),
  gatewayLatencyMs: setting({
    type: "integer",
    env: "PAYMENT_LATENCY_MS",
    flag: "gateway-latency-ms",
    default: 5,
    min: 0,
    max: 60_000,
    description: "Latency of the in-process gateway per charge request, in milliseconds",
  }),
  retry: setting({
    type: "string",
    env: "RETRY_POLICY",
    flag: "retry",
    default: "backoff",
    choices: RETRY_PRESETS,
    description:
      "reference: 3 attempts 1 s apart, then DLQ; backoff: 3 attempts, jittered exponential from 100 ms; tiered: backoff, then retry topics (1 s, 5 s), then DLQ",
  }),
  stateRetentionMs: setting({
    type: "integer",
    env: "STATE_RETENTION_MS",
    flag: "state-retention-ms",
    default: 7 * 24 * 3600 * 1000,
    min: 1,
    description:
      "How long the payment stage remembers an order's outcome (its state entry), in ms: a redelivery within it is skipped as a duplicate; memory holds the order ids of this window",
  }),
  ...GUARANTEE_CONFIG,
  maxOrders: setting({
    type: "integer",
    env: "MAX_ORDERS",
    flag: "max-orders",
    min: 0,
    description:
      "Generate this many orders, drain, print the summary and exit; unset runs until stopped",
  }),
  rate: setting({
    type: "number",
    env: "ORDER_RATE",
    flag: "rate",
    default: 10,
    min: 0,
    description: "Orders generated per second; 0 is as fast as possible",
  }),
  duration: setting({
    type: "number",
    env: "DURATION_SECONDS",
    flag: "duration",
    min: 0,
    description: "Stop generating after this many seconds, drain and exit",
  }),
  seed: setting({
    type: "integer",
    env: "SEED",
    flag: "seed",
    min: 0,
    max: 2 ** 31 - 1,
    description:
      "Seed of the order generator and the gateway's failures (equal seeds, equal runs); default a fresh one per run, printed, so a second run never repeats the first's order ids",
  }),
  traceParenting: setting({
    type: "string",
    env: "TRACE_PARENTING",
    flag: "trace-parenting",
    default: "parent",
    choices: ["parent", "link"],
    description:
      "How a consumer's process span relates to the producer's span in the record headers: as its child (one trace per order) or in a new trace with a span link",
  }),
  logLevel: setting({
    type: "string",
    env: "LOG_LEVEL",
    flag: "log-level",
    default: "info",
    choices: ["trace", "debug", "info", "warning", "error", "fatal"],
    description:
      "Lowest level of the log lines on stderr (record-scoped lines carry trace_id and span_id)",
  }),
  logFormat: setting({
    type: "string",
    env: "LOG_FORMAT",
    default: "auto",
    choices: ["auto", "json", "pretty"],
    description:
      "Log lines on stderr: JSON objects, short lines for a person (time, level, message, key fields), or auto: short on a terminal, JSON otherwise",
  }),
  stopGrace: setting({
    type: "number",
    env: "STOP_GRACE_SECONDS",
    flag: "stop-grace",
    default: 20,
    min: 0,
    description:
      "After SIGINT/SIGTERM, how long to let published orders finish; on Kafka what is left stays on the broker for the next run",
  }),
  drainTimeout: setting({
    type: "number",
    env: "DRAIN_TIMEOUT_SECONDS",
    flag: "drain-timeout",
    default: 120,
    min: 1,
    description:
      "When generation ends (--max-orders, --duration), how long to wait for every published order's outcome, in seconds",
  }),
  ...HEALTH_CONFIG,
} as const;

const C = ORDERS_CONFIG;

/**
 * Every setting of `deno task payments`, the Payment Service: it consumes only, so it has no
 * generation settings; the others mean what they mean for `deno task pipeline`.
 */
export const PAYMENTS_CONFIG = {
  brokers: C.brokers,
  kafkaClient: C.kafkaClient,
  ordersTopic: C.ordersTopic,
  paymentsTopic: C.paymentsTopic,
  dlqTopic: C.dlqTopic,
  groupId: C.groupId,
  partitions: C.partitions,
  replicationFactor: C.replicationFactor,
  minInsyncReplicas: C.minInsyncReplicas,
  workers: C.workers,
  gatewayUrl: C.gatewayUrl,
  gatewayTimeoutMs: C.gatewayTimeoutMs,
  failureRate: C.failureRate,
  gatewayTimeoutRate: C.gatewayTimeoutRate,
  gatewayLatencyMs: C.gatewayLatencyMs,
  retry: C.retry,
  stateRetentionMs: C.stateRetentionMs,
  guarantee: C.guarantee,
  seed: C.seed,
  traceParenting: C.traceParenting,
  logLevel: C.logLevel,
  logFormat: C.logFormat,
  stopGrace: setting({
    type: "number",
    env: "STOP_GRACE_SECONDS",
    flag: "stop-grace",
    default: 20,
    min: 0,
    description:
      "After SIGINT/SIGTERM, how long workers may take to finish their records, commit and leave the group (within an orchestrator's default 30 s grace)",
  }),
  ...HEALTH_CONFIG,
} as const;

/** Every setting of `deno task orders`, the Order Service: it publishes only. */
export const ORDER_SERVICE_CONFIG = {
  brokers: C.brokers,
  kafkaClient: C.kafkaClient,
  ordersTopic: C.ordersTopic,
  paymentsTopic: C.paymentsTopic,
  dlqTopic: C.dlqTopic,
  partitions: C.partitions,
  replicationFactor: C.replicationFactor,
  minInsyncReplicas: C.minInsyncReplicas,
  maxOrders: setting({
    type: "integer",
    env: "MAX_ORDERS",
    flag: "max-orders",
    min: 0,
    description: "Publish this many orders, print the summary and exit; unset runs until stopped",
  }),
  rate: C.rate,
  duration: setting({
    type: "number",
    env: "DURATION_SECONDS",
    flag: "duration",
    min: 0,
    description: "Stop publishing after this many seconds, print the summary and exit",
  }),
  seed: C.seed,
  traceParenting: C.traceParenting,
  logLevel: C.logLevel,
  logFormat: C.logFormat,
  ...HEALTH_CONFIG,
} as const;

/** The retry policy of a preset name from {@linkcode RETRY_PRESETS}. */
export function retryPreset(name: string): RetryPolicy {
  switch (name) {
    case "reference":
      return REFERENCE_RETRY;
    case "tiered":
      return retryPolicy({ maxDelayMs: 1000, tiers: [{ delayMs: 1000 }, { delayMs: 5000 }] });
    default:
      return retryPolicy({ maxDelayMs: 1000 });
  }
}
