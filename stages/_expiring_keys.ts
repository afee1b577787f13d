/**
 * A map whose entries expire a fixed time after they were last set: the simulated gateways'
 * idempotency keys (`payment_gateway.ts`, `gateway_service.ts`) and the HTTP gateway's ledger,
 * so that a long run does not grow the process that hosts them.
 *
 * Every entry lives the same `ttlMs` from the moment it is set and a set moves its key to the
 * back, so the Map's insertion order is expiry order: expired keys are always at the front and a
 * sweep costs only what it removes. The expiry of the front entry is remembered, so an operation
 * before it walks no iterator at all. The caller passes `now` (from its injected clock) to every
 * operation, so one request reads one instant and tests need no timers.
 *
 * @module
 */

interface Entry<V> {
  readonly value: V;
  readonly expiresAt: number;
}

/**
 * Keys that expire `ttlMs` after they were last set; `now` must not go back between calls
 * (expiry order is insertion order only on a clock that does not).
 *
 * @example
 * ```ts
 * import { ExpiringKeys } from "./_expiring_keys.ts";
 * const keys = new ExpiringKeys<string, number>(1000);
 * keys.set("o-1", 7, 0);
 * console.log(keys.get("o-1", 999), keys.get("o-1", 1000)); // 7 undefined
 * ```
 */
export class ExpiringKeys<K, V> {
  readonly #ttlMs: number;
  readonly #entries = new Map<K, Entry<V>>();
  /**
   * The expiry of the front entry, or earlier: a key set again leaves the front and this
   * stays behind, which costs one early sweep that finds the true front. Infinite while empty.
   */
  #oldestExpiry = Number.POSITIVE_INFINITY;

  /** Creates an empty map whose entries live `ttlMs` milliseconds from their last set. */
  constructor(ttlMs: number) {
    this.#ttlMs = ttlMs;
  }

  /** Entries held, expired ones that no operation has swept yet included. */
  get size(): number {
    return this.#entries.size;
  }

  /** Removes every entry expired at `now` (an entry expires once `now` reaches its expiry). */
  sweep(now: number): void {
    // Nothing is expired before the front entry is: no iterator for the common case.
    if (this.#oldestExpiry > now) return;
    this.#oldestExpiry = Number.POSITIVE_INFINITY;
    for (const [key, { expiresAt }] of this.#entries) {
      if (expiresAt > now) {
        this.#oldestExpiry = expiresAt;
        break;
      }
      this.#entries.delete(key);
    }
  }

  /** The value of `key` unless it expired by `now` (expired entries are swept first). */
  get(key: K, now: number): V | undefined {
    this.sweep(now);
    return this.#entries.get(key)?.value;
  }

  /** Sets `key` to `value`, to expire `ttlMs` after `now`, behind every other key. */
  set(key: K, value: V, now: number): void {
    this.sweep(now);
    const expiresAt = now + this.#ttlMs;
    // Map.set keeps an existing key in its place; deleted first, it goes to the back, where
    // its new expiry belongs.
    this.#entries.delete(key);
    if (this.#entries.size === 0) this.#oldestExpiry = expiresAt;
    this.#entries.set(key, { value, expiresAt });
  }

  /** The keys and values not expired by `now`, oldest first (expired entries are swept first). */
  entries(now: number): IterableIterator<[K, V]> {
    // Swept here, not in the generator: a generator's body waits for the first next().
    this.sweep(now);
    return this.#values();
  }

  *#values(): IterableIterator<[K, V]> {
    for (const [key, { value }] of this.#entries) yield [key, value];
  }
}
