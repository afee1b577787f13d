/**
 * The orders domain's events, as schemas: validated at runtime, typed at compile time.
 *
 * @module
 */
import { z } from "zod";

/** ISO 8601 timestamps, as the reference services wrote them. */
const Timestamp = z.iso.datetime({ offset: true });

/** Currencies the payment gateway accepts. */
export const CURRENCIES = ["USD", "EUR", "GBP"] as const;

/**
 * `OrderPlaced` version 1: the reference Order service's event, field for field. An unknown
 * `event_version` is refused with a message naming it, so a producer that moved on to v2
 * dead-letters instead of being misread.
 */
export const OrderPlacedV1 = z.object({
  event_type: z.literal("OrderPlaced"),
  event_version: z.literal(1, {
    error: "Unsupported OrderPlaced event_version: this consumer reads version 1",
  }),
  order_id: z.string().min(1).max(64),
  user_id: z.string().min(1).max(64),
  amount: z.number().positive().max(1_000_000),
  currency: z.enum(CURRENCIES),
  created_at: Timestamp,
});

/** An order, as placed. */
export type OrderPlaced = z.infer<typeof OrderPlacedV1>;

/** `PaymentProcessed` version 1: one per paid order, keyed by `order_id`. */
export const PaymentProcessedV1 = z.object({
  event_type: z.literal("PaymentProcessed"),
  event_version: z.literal(1),
  order_id: z.string().min(1).max(64),
  payment_id: z.string().min(1),
  user_id: z.string().min(1).max(64),
  amount: z.number().positive(),
  currency: z.enum(CURRENCIES),
  status: z.literal("succeeded"),
  attempts: z.number().int().positive(),
  order_created_at: Timestamp,
  processed_at: Timestamp,
});

/** A payment, as processed. */
export type PaymentProcessed = z.infer<typeof PaymentProcessedV1>;
