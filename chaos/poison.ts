/**
 * What the fault suite writes: the orders it publishes and every kind of poison record, each
 * with the outcome the runtime owes it. Poison carries the header {@linkcode POISON_HEADER}
 * (its kind), so the checks find it on the broker without trusting anything the runtime says.
 *
 * @module
 */
import type { KcatMessage } from "./_kcat.ts";

/** Header naming the poison kind of a record the suite wrote. */
export const POISON_HEADER = "chaos-poison";

/** Currencies of the orders pipeline's `OrderPlaced` v1. */
const CURRENCIES = ["USD", "EUR", "GBP"] as const;

/**
 * An `OrderPlaced` value as another service would publish it (`stages/events.ts` v1 fields),
 * amount and currency derived from `index` so equal runs write equal orders.
 *
 * @example
 * ```ts
 * import { orderJson } from "./poison.ts";
 * const order = JSON.parse(orderJson("o-1", 1, "2026-01-01T00:00:00.000Z"));
 * console.log(order.event_version); // 1
 * ```
 */
export function orderJson(orderId: string, index: number, createdAt: string, version = 1): string {
  return JSON.stringify({
    event_type: "OrderPlaced",
    event_version: version,
    order_id: orderId,
    user_id: `user-${index % 97}`,
    amount: 1 + (index * 7919 % 49_900) / 100,
    currency: CURRENCIES[index % CURRENCIES.length],
    created_at: createdAt,
  });
}

/** The poison kinds, in the order they are written. */
export const POISON_KINDS = [
  "invalid-json",
  "wrong-schema",
  "unknown-version",
  "null-key",
  "null-value",
  "binary-1000kib",
  "key-mismatch",
  "forged-due-at",
  "forged-attempts",
] as const;

/** One poison kind. */
export type PoisonKind = typeof POISON_KINDS[number];

/** What the runtime owes a poison record. */
export type PoisonExpectation =
  /** One dead letter whose `error_type` is one of these. */
  | { readonly deadLetter: readonly string[] }
  /** The order inside it is valid: exactly one outcome (paid or dead-lettered) for this id. */
  | { readonly outcomeOf: string };

/** One poison record to write. */
export interface PoisonRecord {
  /** Its kind (also its {@linkcode POISON_HEADER}). */
  readonly kind: PoisonKind;
  /** What it is, for the report. */
  readonly description: string;
  /** Where it goes: the stage's input topic or its first retry tier. */
  readonly target: "input" | "retry";
  /** The record. */
  readonly message: KcatMessage;
  /** What the runtime owes it. */
  readonly expect: PoisonExpectation;
  /**
   * A valid order the suite publishes later under this record's key or order id: it must
   * still get exactly one outcome (a poisoned key never marks a later order done, and a
   * second key never charges it twice).
   */
  readonly laterOrderId?: string;
}

/** What {@linkcode poisonRecords} builds the records from. */
export interface PoisonPlan {
  /** Prefix of ids that belong to this run, e.g. `chaos-7-alo`. */
  readonly prefix: string;
  /** Two ids of valid orders the suite publishes after the poison. */
  readonly laterOrderIds: readonly [string, string];
  /** Now, in ms since the epoch (the forged due time lies ten years after it). */
  readonly now: number;
}

/** 1000 KiB: the record that outgrew the dead-letter envelope. */
const BINARY_BYTES = 1000 * 1024;
const TEN_YEARS_MS = 10 * 365 * 24 * 3600 * 1000;

/**
 * Every poison kind as a record. Decode failures are owed a `ValidationError`, records the
 * runtime refuses before decoding a `PoisonRecordError` (a decoder may also call a tombstone
 * or binary bytes invalid: `ValidationError` is accepted there), a record whose key differs
 * from its `order_id` a `KeyMismatchError` (issue 8, part 2). Forged retry headers hide a
 * valid order, owed exactly one outcome in bounded time.
 */
export function poisonRecords(plan: PoisonPlan): PoisonRecord[] {
  const { prefix, laterOrderIds: [unknownVersionKey, mismatchedOrder], now } = plan;
  const created = new Date(now).toISOString();
  const header = (kind: PoisonKind, more: Record<string, string> = {}) => ({
    [POISON_HEADER]: kind,
    ...more,
  });
  const undecodable = ["ValidationError"] as const;
  const refused = ["PoisonRecordError", "ValidationError"] as const;
  const forgedDueAt = `${prefix}-forged-due-at`;
  const forgedAttempts = `${prefix}-forged-attempts`;
  return [
    {
      kind: "invalid-json",
      description: "value is not JSON",
      target: "input",
      message: {
        key: `${prefix}-poison-json`,
        value: '{"event_type":"OrderPlaced",',
        headers: header("invalid-json"),
      },
      expect: { deadLetter: undecodable },
    },
    {
      kind: "wrong-schema",
      description: "JSON of another schema",
      target: "input",
      message: {
        key: `${prefix}-poison-schema`,
        value: '{"hello":"world"}',
        headers: header("wrong-schema"),
      },
      expect: { deadLetter: undecodable },
    },
    {
      kind: "unknown-version",
      description: `event_version 2 under the key of a later valid order`,
      target: "input",
      message: {
        key: unknownVersionKey,
        value: orderJson(unknownVersionKey, 1, created, 2),
        headers: header("unknown-version"),
      },
      expect: { deadLetter: undecodable },
      laterOrderId: unknownVersionKey,
    },
    {
      kind: "null-key",
      description: "valid order without a key",
      target: "input",
      message: {
        key: null,
        value: orderJson(`${prefix}-poison-nokey`, 2, created),
        headers: header("null-key"),
      },
      expect: { deadLetter: ["PoisonRecordError"] },
    },
    {
      kind: "null-value",
      description: "tombstone (null value)",
      target: "input",
      message: { key: `${prefix}-poison-tombstone`, value: null, headers: header("null-value") },
      expect: { deadLetter: refused },
    },
    {
      kind: "binary-1000kib",
      description: "1000 KiB of 0x01 bytes",
      target: "input",
      message: {
        key: `${prefix}-poison-binary`,
        value: new Uint8Array(BINARY_BYTES).fill(1),
        headers: header("binary-1000kib"),
      },
      expect: { deadLetter: refused },
    },
    {
      kind: "key-mismatch",
      description: "key differs from order_id (the order_id of a later valid order)",
      target: "input",
      message: {
        key: `${prefix}-poison-mismatch`,
        value: orderJson(mismatchedOrder, 3, created),
        headers: header("key-mismatch"),
      },
      expect: { deadLetter: ["KeyMismatchError"] },
      laterOrderId: mismatchedOrder,
    },
    {
      kind: "forged-due-at",
      description: "valid order in retry tier 1, x-retry-due-at ten years ahead",
      target: "retry",
      message: {
        key: forgedDueAt,
        value: orderJson(forgedDueAt, 4, created),
        headers: header("forged-due-at", {
          "x-retry-tier": "1",
          "x-retry-due-at": String(now + TEN_YEARS_MS),
          "x-attempts": "1",
        }),
      },
      expect: { outcomeOf: forgedDueAt },
    },
    {
      kind: "forged-attempts",
      description: "valid order on the input, x-attempts 999999, x-retry-tier 9",
      target: "input",
      message: {
        key: forgedAttempts,
        value: orderJson(forgedAttempts, 5, created),
        headers: header("forged-attempts", { "x-attempts": "999999", "x-retry-tier": "9" }),
      },
      expect: { outcomeOf: forgedAttempts },
    },
  ];
}
