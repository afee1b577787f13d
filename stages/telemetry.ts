/**
 * Telemetry names the orders domain adds to the framework's table in
 * `pipeline/telemetry/names.ts`: the reference's order and payment metrics and the services'
 * names. Dashboards and alert rules import them, so a rename cannot silently break a panel.
 *
 * @example
 * ```ts
 * import { ORDER_METRIC } from "./telemetry.ts";
 * ORDER_METRIC.ORDERS_PUBLISHED.prom; // "orders_published_total"
 * ```
 *
 * @module
 */
import { counter, histogram, type MetricName } from "../pipeline/telemetry/names.ts";

/** Metrics the orders domain records, under the reference's names. */
export const ORDER_METRIC = {
  /** Orders published to the orders topic (`orders_published_total`). */
  ORDERS_PUBLISHED: counter("orders_published", "Orders published to the orders topic"),
  /** Orders that could not be published (`orders_failed_total`). */
  ORDERS_FAILED: counter("orders_failed", "Orders that could not be published"),
  /** Send-to-acknowledgement latency of an order, in ms (`order_publish_latency_ms`). */
  ORDER_PUBLISH_LATENCY: histogram(
    "order_publish_latency_ms",
    "Time from send to broker acknowledgement of an order",
    "ms",
  ),
  /** Processing time of one order, retries included, in ms (`payment_processing_latency_ms`). */
  PAYMENT_PROCESSING_LATENCY: histogram(
    "payment_processing_latency_ms",
    "Time to process one order, retries included",
    "ms",
  ),
} as const satisfies Record<string, MetricName>;

/** Service names of the pipeline's two halves (overridable by `OTEL_SERVICE_NAME`). */
export const SERVICE = { ORDER: "order-service", PAYMENT: "payment-service" } as const;

/** `service.version` of both services: the version of this repository's pipeline. */
export const SERVICE_VERSION = "0.1.0";
