/**
 * Seeded randomness, so every run with the same seed makes the same orders and the same
 * failures.
 *
 * @module
 */

/** A source of uniform numbers in [0, 1). */
export type Random = () => number;

/**
 * A small, fast, seeded generator (mulberry32). Not for secrets.
 *
 * @example
 * ```ts
 * import { seededRandom } from "./random.ts";
 * const a = seededRandom(42), b = seededRandom(42);
 * console.log(a() === b()); // true
 * ```
 */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  return function mulberry32(): number {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
