/**
 * Retry policy: in-place attempts with capped exponential backoff and full jitter, then
 * optional non-blocking retry tiers (`<topic>.retry.<n>` topics with growing delays), then the
 * dead-letter queue.
 *
 * @module
 */
import { DefinitionError } from "./errors.ts";
import type { Random } from "./random.ts";

/** A non-blocking retry tier: a topic the record waits in before it is tried again. */
export interface RetryTier {
  /** How long a record waits in this tier before it is tried again, in milliseconds. */
  readonly delayMs: number;
}

/** How a stage retries a retryable failure. */
export interface RetryPolicy {
  /** Attempts in place, the first try included (1 = no in-place retry). */
  readonly attempts: number;
  /** The delay before the second attempt, in milliseconds. */
  readonly initialDelayMs: number;
  /** The factor the delay grows by per attempt (1 = constant delay). */
  readonly multiplier: number;
  /** The cap on any one delay, in milliseconds. */
  readonly maxDelayMs: number;
  /**
   * Full jitter: each delay is drawn uniformly from [0, computed delay]. Spreads retries of
   * many records failing together (AWS Architecture Blog, "Exponential Backoff And Jitter").
   */
  readonly jitter: boolean;
  /** Non-blocking tiers tried after the in-place attempts, in order. Empty = straight to DLQ. */
  readonly tiers: readonly RetryTier[];
}

/**
 * The reference services' behaviour: 3 attempts, 1 s apart, then the DLQ.
 */
export const REFERENCE_RETRY: RetryPolicy = Object.freeze({
  attempts: 3,
  initialDelayMs: 1000,
  multiplier: 1,
  maxDelayMs: 1000,
  jitter: false,
  tiers: Object.freeze([]),
});

/**
 * Beyond the reference: 3 quick in-place attempts with jittered exponential backoff, then two
 * non-blocking tiers (5 s, 30 s) so one slow key does not stall its partition.
 */
export const TIERED_RETRY: RetryPolicy = Object.freeze({
  attempts: 3,
  initialDelayMs: 100,
  multiplier: 2,
  maxDelayMs: 1000,
  jitter: true,
  tiers: Object.freeze([{ delayMs: 5000 }, { delayMs: 30000 }]),
});

/** Options for {@linkcode retryPolicy}: every field of {@linkcode RetryPolicy}, optional. */
export type RetryPolicyOptions = Partial<RetryPolicy>;

/**
 * Builds a retry policy from options, with defaults, validated.
 *
 * Defaults: `attempts` 3, `initialDelayMs` 100, `multiplier` 2, `maxDelayMs` 10000,
 * `jitter` true, `tiers` [].
 *
 * @example
 * ```ts
 * import { retryPolicy } from "./retry.ts";
 * const policy = retryPolicy({ attempts: 5, tiers: [{ delayMs: 2000 }] });
 * console.log(policy.multiplier); // 2
 * ```
 */
export function retryPolicy(options: RetryPolicyOptions = {}): RetryPolicy {
  const {
    attempts = 3,
    initialDelayMs = 100,
    multiplier = 2,
    maxDelayMs = 10_000,
    jitter = true,
    tiers = [],
  } = options;
  const policy: RetryPolicy = { attempts, initialDelayMs, multiplier, maxDelayMs, jitter, tiers };
  validateRetryPolicy(policy);
  return Object.freeze({ ...policy, tiers: Object.freeze(tiers.map((t) => ({ ...t }))) });
}

/** Throws a {@linkcode DefinitionError} naming the field when a policy cannot be used. */
export function validateRetryPolicy(policy: RetryPolicy, stage?: string): void {
  const where = stage === undefined ? "retry policy" : `stage "${stage}"`;
  const fail = (field: string, rule: string, value: unknown): never => {
    throw new DefinitionError(
      `Cannot use ${where} as 'retry.${field}' must be ${rule}: current value is ${
        // String() keeps NaN and Infinity readable; JSON.stringify would print null.
        typeof value === "number" ? String(value) : JSON.stringify(value)}`,
      { stage, field: `retry.${field}` },
    );
  };
  if (!Number.isInteger(policy.attempts) || policy.attempts < 1) {
    fail("attempts", "an integer of at least 1", policy.attempts);
  }
  // Infinite delays would sleep forever, and an infinite multiplier makes 0 * Infinity = NaN.
  const finite = (value: number) => Number.isFinite(value);
  if (!(finite(policy.initialDelayMs) && policy.initialDelayMs >= 0)) {
    fail("initialDelayMs", "a finite number of 0 or more", policy.initialDelayMs);
  }
  if (!(finite(policy.multiplier) && policy.multiplier >= 1)) {
    fail("multiplier", "a finite number of 1 or more", policy.multiplier);
  }
  if (!(finite(policy.maxDelayMs) && policy.maxDelayMs >= policy.initialDelayMs)) {
    fail("maxDelayMs", "a finite number of at least 'initialDelayMs'", policy.maxDelayMs);
  }
  policy.tiers.forEach((tier, i) => {
    if (!(finite(tier.delayMs) && tier.delayMs >= 0)) {
      fail(`tiers[${i}].delayMs`, "a finite number of 0 or more", tier.delayMs);
    }
  });
}

/**
 * The delay before attempt `attempt + 1`, after attempt `attempt` (1-based) failed:
 * `min(maxDelayMs, initialDelayMs * multiplier^(attempt-1))`, drawn from [0, that] with
 * jitter.
 *
 * @example
 * ```ts
 * import { backoffDelay, REFERENCE_RETRY } from "./retry.ts";
 * console.log(backoffDelay(REFERENCE_RETRY, 2, Math.random)); // 1000
 * ```
 */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: Random): number {
  const exponential = policy.initialDelayMs * policy.multiplier ** (attempt - 1);
  const capped = Math.min(policy.maxDelayMs, exponential);
  // Whole milliseconds in [0, capped]: flooring capped first keeps a fractional cap a bound.
  return policy.jitter ? Math.floor(random() * (Math.floor(capped) + 1)) : capped;
}

/** The name of a stage input's retry tier topic: `orders` tier 1 is `orders.retry.1`. */
export function retryTopicName(input: string, tier: number): string {
  return `${input}.retry.${tier}`;
}
