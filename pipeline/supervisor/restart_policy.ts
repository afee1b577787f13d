/**
 * The supervisor's one restart policy: exponential backoff between restarts of a crashed
 * worker, and a cap on crashes within a sliding window, past which the worker is given up.
 *
 * @module
 */
import { ConfigError } from "../errors.ts";

/** How crashed workers are restarted. */
export interface RestartPolicy {
  /** The delay before the first restart, in milliseconds. */
  readonly initialDelayMs: number;
  /** The factor the delay grows by per crash within the window. */
  readonly multiplier: number;
  /** The cap on any one delay, in milliseconds. */
  readonly maxDelayMs: number;
  /** Crashes within `windowMs` that are still restarted; one more and the worker is given up. */
  readonly maxRestarts: number;
  /** The sliding window crashes are counted in, in milliseconds. */
  readonly windowMs: number;
}

/** The default: 0.5 s, doubling, at most 10 s; more than 5 crashes a minute gives up. */
export const DEFAULT_RESTART_POLICY: RestartPolicy = Object.freeze({
  initialDelayMs: 500,
  multiplier: 2,
  maxDelayMs: 10_000,
  maxRestarts: 5,
  windowMs: 60_000,
});

/** What to do after a crash: restart after `delayMs` (the `attempt`-th restart), or give up. */
export type RestartDecision = { readonly attempt: number; readonly delayMs: number } | null;

/** Throws a {@linkcode ConfigError} naming the field when a policy cannot be used. */
export function validateRestartPolicy(policy: RestartPolicy): void {
  const fields: [keyof RestartPolicy, number, boolean][] = [
    ["initialDelayMs", policy.initialDelayMs, true],
    ["multiplier", policy.multiplier, false],
    ["maxDelayMs", policy.maxDelayMs, true],
    ["maxRestarts", policy.maxRestarts, true],
    ["windowMs", policy.windowMs, false],
  ];
  for (const [field, value, zeroOk] of fields) {
    const ok = Number.isFinite(value) && (zeroOk ? value >= 0 : value > 0) &&
      (field !== "maxRestarts" || Number.isInteger(value)) &&
      (field !== "multiplier" || value >= 1);
    if (!ok) {
      throw new ConfigError(
        `Cannot use restart policy as '${field}' is out of range: current value is ${value}`,
        { field: `restart.${field}` },
      );
    }
  }
}

/**
 * Tracks one worker slot's crashes and decides each time.
 *
 * @example
 * ```ts
 * import { DEFAULT_RESTART_POLICY, RestartTracker } from "./restart_policy.ts";
 * const tracker = new RestartTracker(DEFAULT_RESTART_POLICY);
 * console.log(tracker.crashed(0)); // { attempt: 1, delayMs: 500 }
 * console.log(tracker.crashed(10)); // { attempt: 2, delayMs: 1000 }
 * ```
 */
export class RestartTracker {
  #crashes: number[] = [];
  readonly #policy: RestartPolicy;

  /** Creates a tracker for one worker slot. */
  constructor(policy: RestartPolicy) {
    this.#policy = policy;
  }

  /** Records a crash at `now` and decides: the restart to make, or `null` to give up. */
  crashed(now: number): RestartDecision {
    const { windowMs, maxRestarts, initialDelayMs, multiplier, maxDelayMs } = this.#policy;
    this.#crashes = this.#crashes.filter((at) => now - at < windowMs);
    this.#crashes.push(now);
    const attempt = this.#crashes.length;
    if (attempt > maxRestarts) return null;
    const delayMs = Math.min(maxDelayMs, initialDelayMs * multiplier ** (attempt - 1));
    return { attempt, delayMs };
  }

  /** Crashes within the window as of the last crash. */
  get recentCrashes(): number {
    return this.#crashes.length;
  }
}
