/**
 * The orders pipeline, declared: generate order -> publish to `orders` (keyed by `order_id`)
 * -> consume in group `payment-service` -> process payment -> `payments`, with retries and the
 * `orders.dlq` dead-letter queue.
 *
 * @module
 */
import { definePipeline } from "../pipeline/definition.ts";
import type { Pipeline } from "../pipeline/definition.ts";
import { REFERENCE_RETRY } from "../pipeline/retry.ts";
import type { RetryPolicy } from "../pipeline/retry.ts";
import { OrderPlacedV1, PaymentProcessedV1 } from "./events.ts";
import type { OrderPlaced } from "./events.ts";
import type { PaymentGateway } from "./payment_gateway.ts";
import { createProcessPaymentStage } from "./process_payment.ts";

/** The source that publishes generated orders. */
export const PUBLISH_ORDER = "publish-order";

/** Options for {@linkcode createOrdersPipeline}. */
export interface OrdersPipelineOptions {
  /** The gateway the payment stage charges. */
  readonly gateway: PaymentGateway;
  /**
   * The orders topic (`ORDERS_TOPIC`).
   * @default "orders"
   */
  readonly ordersTopic?: string;
  /**
   * The payments topic (`PAYMENTS_TOPIC`).
   * @default "payments"
   */
  readonly paymentsTopic?: string;
  /**
   * The dead-letter topic (`DLQ_TOPIC`).
   * @default "orders.dlq"
   */
  readonly dlqTopic?: string;
  /**
   * The payment service's consumer group (`GROUP_ID`).
   * @default "payment-service"
   */
  readonly groupId?: string;
  /**
   * Partitions of the orders and payments topics.
   * @default 3
   */
  readonly partitions?: number;
  /**
   * The replication factor of every topic the pipeline creates (`REPLICATION_FACTOR`).
   * @default 1
   */
  readonly replicationFactor?: number;
  /**
   * `min.insync.replicas` of every topic the pipeline creates (`MIN_INSYNC_REPLICAS`); at
   * most `replicationFactor`.
   * @default undefined (the broker's default)
   */
  readonly minInsyncReplicas?: number;
  /**
   * Payment workers.
   * @default 1
   */
  readonly concurrency?: number;
  /**
   * The payment stage's retry policy.
   * @default REFERENCE_RETRY
   */
  readonly retry?: RetryPolicy;
  /**
   * How long the payment stage remembers an order's outcome (`STATE_RETENTION_MS`), in ms.
   * @default 604800000 (7 days)
   */
  readonly stateRetentionMs?: number;
}

/** Declares the orders pipeline. */
export function createOrdersPipeline(options: OrdersPipelineOptions): Pipeline {
  const {
    gateway,
    ordersTopic = "orders",
    paymentsTopic = "payments",
    dlqTopic = "orders.dlq",
    groupId = "payment-service",
    partitions = 3,
    concurrency = 1,
    retry = REFERENCE_RETRY,
    stateRetentionMs,
    replicationFactor = 1,
    minInsyncReplicas,
  } = options;
  // Explicit, not the broker's defaults: the pipeline never relies on broker-side settings.
  const retained = (days: number) => ({
    "cleanup.policy": "delete",
    "retention.ms": String(days * 24 * 3600 * 1000),
    ...(minInsyncReplicas === undefined
      ? {}
      : { "min.insync.replicas": String(minInsyncReplicas) }),
  });
  return definePipeline({
    name: "orders",
    topics: [
      {
        name: ordersTopic,
        partitions,
        replicationFactor,
        schema: OrderPlacedV1,
        config: retained(7),
      },
      {
        name: paymentsTopic,
        partitions,
        replicationFactor,
        schema: PaymentProcessedV1,
        config: retained(7),
      },
      {
        name: dlqTopic,
        partitions: 1,
        replicationFactor,
        deadLetter: true,
        config: retained(30),
      },
    ],
    sources: [{
      name: PUBLISH_ORDER,
      output: ordersTopic,
      schema: OrderPlacedV1,
      key: (order: OrderPlaced) => order.order_id,
    }],
    stages: [{
      stage: createProcessPaymentStage(gateway),
      input: ordersTopic,
      output: paymentsTopic,
      group: groupId,
      deadLetter: dlqTopic,
      retry,
      concurrency,
      stateRetentionMs,
    }],
  });
}
