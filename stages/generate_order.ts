/**
 * The order generator: deterministic under a seed (the same seed makes the same orders), with
 * ids shaped like the reference's UUIDs.
 *
 * @module
 */
import { seededRandom } from "../pipeline/random.ts";
import type { Random } from "../pipeline/random.ts";
import { CURRENCIES } from "./events.ts";
import type { OrderPlaced } from "./events.ts";

/** Options for {@linkcode createOrderGenerator}. */
export interface OrderGeneratorOptions {
  /**
   * The seed; equal seeds make equal orders.
   * @default 1
   */
  readonly seed?: number;
  /**
   * The clock stamping `created_at`, ms since the epoch.
   * @default Date.now
   */
  readonly now?: () => number;
  /**
   * Distinct users orders are spread over.
   * @default 1000
   */
  readonly users?: number;
}

function hex(random: Random, digits: number): string {
  let text = "";
  for (let i = 0; i < digits; i++) text += Math.floor(random() * 16).toString(16);
  return text;
}

/** A version-4-shaped UUID from a seeded source. */
export function seededUuid(random: Random): string {
  const variant = (8 + Math.floor(random() * 4)).toString(16);
  return `${hex(random, 8)}-${hex(random, 4)}-4${hex(random, 3)}-${variant}${hex(random, 3)}-${
    hex(random, 12)
  }`;
}

/**
 * Creates a generator of `OrderPlaced` events.
 *
 * @example
 * ```ts
 * import { createOrderGenerator } from "./generate_order.ts";
 * const next = createOrderGenerator({ seed: 7, now: () => 0 });
 * console.log(next().event_type); // OrderPlaced
 * ```
 */
export function createOrderGenerator(options: OrderGeneratorOptions = {}): () => OrderPlaced {
  const { seed = 1, now = Date.now, users = 1000 } = options;
  const random = seededRandom(seed);
  return function generateOrder(): OrderPlaced {
    const cents = 500 + Math.floor(random() * 49_500);
    return {
      event_type: "OrderPlaced",
      event_version: 1,
      order_id: seededUuid(random),
      user_id: `user-${1 + Math.floor(random() * users)}`,
      amount: cents / 100,
      currency: CURRENCIES[Math.floor(random() * CURRENCIES.length)],
      created_at: new Date(now()).toISOString(),
    };
  };
}
