/**
 * Kafka's default partitioner: murmur2 of the key bytes, made positive, modulo the partition
 * count. The same arithmetic as the Java client's `Utils.murmur2` and kafkajs's
 * `DefaultPartitioner`, so a keyed record lands on the same partition whichever client wrote it.
 *
 * @module
 */

import { PipelineError } from "../errors.ts";

const SEED = 0x9747b28c;
const M = 0x5bd1e995;
const R = 24;

/**
 * The 32-bit murmur2 hash of some bytes, as Kafka's Java `Utils.murmur2` computes it: a signed
 * 32-bit integer.
 *
 * @example
 * ```ts
 * import { murmur2 } from "./murmur2.ts";
 * console.log(murmur2(new TextEncoder().encode("21"))); // -973932308
 * ```
 */
export function murmur2(bytes: Uint8Array): number {
  const length = bytes.length;
  let h = (SEED ^ length) | 0;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = bytes[i4] | (bytes[i4 + 1] << 8) | (bytes[i4 + 2] << 16) | (bytes[i4 + 3] << 24);
    k = Math.imul(k, M);
    k ^= k >>> R;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const tail = length & ~3;
  // Deliberate fall-through, as in the Java original: each case adds one more tail byte.
  switch (length % 4) {
    case 3:
      h ^= bytes[tail + 2] << 16;
    // falls through
    case 2:
      h ^= bytes[tail + 1] << 8;
    // falls through
    case 1:
      h ^= bytes[tail];
      h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/**
 * Kafka's `Utils.toPositive`: clears the sign bit (not the absolute value), so every 32-bit
 * integer maps to a non-negative one.
 */
export function toPositive(value: number): number {
  return value & 0x7fffffff;
}

/**
 * The partition Kafka's default partitioner picks for a keyed record.
 *
 * @example
 * ```ts
 * import { partitionForKey } from "./murmur2.ts";
 * console.log(partitionForKey(new TextEncoder().encode("order-1"), 3));
 * ```
 */
export function partitionForKey(key: Uint8Array, partitions: number): number {
  if (!Number.isSafeInteger(partitions) || partitions < 1) {
    throw new PipelineError(
      `Cannot pick a partition as 'partitions' must be a positive integer: current value is ${partitions}`,
      { field: "partitions" },
    );
  }
  return toPositive(murmur2(key)) % partitions;
}
