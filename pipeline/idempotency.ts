/**
 * Idempotency: a keyed stage (one that declares `key`) remembers which inputs already have an
 * outcome, so a redelivered record (after a crash, a rebalance, a replay) is skipped instead of
 * handled twice.
 *
 * @module
 */

/** What became of an input. */
export type KnownOutcome = "output" | "dead-lettered";

/** Remembers the outcome of inputs by key. */
export interface IdempotencyStore {
  /**
   * Brings the store up to date before records are checked against it, e.g. after this member
   * took over partitions another member handled (a changelog-backed store reads the changelog
   * to its end). A no-op for stores that are always current.
   */
  restore(signal?: AbortSignal): Promise<void>;
  /** The outcome recorded for `key`, if any. */
  get(key: string): Promise<KnownOutcome | undefined>;
  /** Records the outcome for `key`, after the outcome is durable. */
  set(key: string, outcome: KnownOutcome): Promise<void>;
}

/**
 * An in-memory store: enough within one process (the embedded transport, tests). Members in
 * other processes or workers need a store backed by the broker.
 */
export function memoryIdempotencyStore(): IdempotencyStore & { readonly size: number } {
  const outcomes = new Map<string, KnownOutcome>();
  return {
    restore(): Promise<void> {
      return Promise.resolve();
    },
    get(key: string): Promise<KnownOutcome | undefined> {
      return Promise.resolve(outcomes.get(key));
    },
    set(key: string, outcome: KnownOutcome): Promise<void> {
      outcomes.set(key, outcome);
      return Promise.resolve();
    },
    get size(): number {
      return outcomes.size;
    },
  };
}
