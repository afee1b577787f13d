/**
 * The payment stage: charge each placed order once, emit `PaymentProcessed`. Idempotent by
 * `order_id`, its record key: the runtime skips an order that already has an outcome (kept in
 * the stage's partitioned state, restored from its changelog), dead-letters an order under
 * another order's key (`KeyMismatchError`), and the charge carries `order_id` as its
 * idempotency key, as real gateways take one. The simulated gateway keeps its keys in memory,
 * per worker: it models the key, not a gateway's durable storage.
 *
 * @module
 */
import { defineStage } from "../pipeline/stage.ts";
import type { Stage } from "../pipeline/stage.ts";
import { OrderPlacedV1, PaymentProcessedV1 } from "./events.ts";
import type { OrderPlaced, PaymentProcessed } from "./events.ts";
import type { PaymentGateway } from "./payment_gateway.ts";
import { ORDER_METRIC } from "./telemetry.ts";

/** The payment stage's stable name. */
export const PROCESS_PAYMENT = "process-payment";

/** Business attributes set on the `process` span of each order. */
export const ORDER_ATTR = {
  ORDER_ID: "order.id",
  USER_ID: "user.id",
  AMOUNT: "amount",
} as const;

/**
 * `new Date(ms).toISOString()`, remembered for the last millisecond asked: thousands of orders
 * a second share a few hundred distinct milliseconds.
 */
function createIsoTime(): (ms: number) => string {
  let lastMs = Number.NaN;
  let lastIso = "";
  return function isoTime(ms: number): string {
    if (ms !== lastMs) {
      lastIso = new Date(ms).toISOString();
      lastMs = ms;
    }
    return lastIso;
  };
}

/** Creates the payment stage over a gateway. */
export function createProcessPaymentStage(
  gateway: PaymentGateway,
): Stage<OrderPlaced, PaymentProcessed> {
  const isoTime = createIsoTime();
  return defineStage({
    name: PROCESS_PAYMENT,
    input: OrderPlacedV1,
    output: PaymentProcessedV1,
    requireKey: true,
    maxValueBytes: 64 * 1024,
    processingLatency: ORDER_METRIC.PAYMENT_PROCESSING_LATENCY,
    key: (order) => order.order_id,
    outputKey: (payment) => payment.order_id,
    async handle(order, context) {
      context.setAttributes({
        [ORDER_ATTR.ORDER_ID]: order.order_id,
        [ORDER_ATTR.USER_ID]: order.user_id,
        [ORDER_ATTR.AMOUNT]: order.amount,
      });
      const charge = await gateway.charge({
        idempotencyKey: order.order_id,
        amount: order.amount,
        currency: order.currency,
        attempt: context.attempt,
      }, context.signal);
      return {
        event_type: "PaymentProcessed",
        event_version: 1,
        order_id: order.order_id,
        payment_id: charge.paymentId,
        user_id: order.user_id,
        amount: order.amount,
        currency: order.currency,
        status: "succeeded",
        attempts: context.attempt,
        order_created_at: order.created_at,
        processed_at: isoTime(context.clock.now()),
      };
    },
  });
}
