/**
 * The supervisor's one restart policy: exponential backoff between restarts of a crashed
 * worker, and a cap on crashes within a sliding window, past which the worker is given up.
 *
 * Retriable crashes (a worker that cannot reach the broker: `BrokerUnavailableError`, a
 * consumer the client library stopped) are not counted towards that cap: a broker outage
 * would otherwise use it up in seconds. They back off the same way and are ridden out for
 * `outageToleranceMs` since the first of them without a start in between; past that the
 * worker is given up, so a broker that stays away still ends the process.
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
  /**
   * How long retriable crashes (broker unreachable) are restarted without a successful start
   * in between, in milliseconds, before the worker is given up.
   */
  readonly outageToleranceMs: number;
}

/**
 * The default: 0.5 s, doubling, at most 10 s; more than 5 crashes a minute gives up; a broker
 * outage is ridden out for 2 minutes.
 */
export const DEFAULT_RESTART_POLICY: RestartPolicy = Object.freeze({
  initialDelayMs: 500,
  multiplier: 2,
  maxDelayMs: 10_000,
  maxRestarts: 5,
  windowMs: 60_000,
  outageToleranceMs: 120_000,
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
    ["outageToleranceMs", policy.outageToleranceMs, true],
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
 * console.log(tracker.crashed(20, true)); // { attempt: 1, delayMs: 500 } (not counted)
 * ```
 */
export class RestartTracker {
  #crashes: number[] = [];
  /** When the current run of retriable crashes began, if one is under way. */
  #outageSince: number | undefined;
  /** Retriable crashes since `#outageSince`. */
  #outageCrashes = 0;
  readonly #policy: RestartPolicy;

  /** Creates a tracker for one worker slot. */
  constructor(policy: RestartPolicy) {
    this.#policy = policy;
  }

  /**
   * Records a crash at `now` and decides: the restart to make, or `null` to give up.
   *
   * @param retriable whether the crash said retrying may help (broker unreachable): not
   *   counted towards `maxRestarts`, given up only after `outageToleranceMs` without a start
   */
  crashed(now: number, retriable = false): RestartDecision {
    const { windowMs, maxRestarts, initialDelayMs, multiplier, maxDelayMs } = this.#policy;
    if (retriable) {
      this.#outageSince ??= now;
      this.#outageCrashes++;
      if (now - this.#outageSince > this.#policy.outageToleranceMs) return null;
      const attempt = this.#outageCrashes;
      return {
        attempt,
        delayMs: Math.min(maxDelayMs, initialDelayMs * multiplier ** (attempt - 1)),
      };
    }
    this.#crashes = this.#crashes.filter((at) => now - at < windowMs);
    this.#crashes.push(now);
    const attempt = this.#crashes.length;
    if (attempt > maxRestarts) return null;
    const delayMs = Math.min(maxDelayMs, initialDelayMs * multiplier ** (attempt - 1));
    return { attempt, delayMs };
  }

  /** Records that the worker started: a run of retriable crashes is over. */
  started(): void {
    this.#outageSince = undefined;
    this.#outageCrashes = 0;
  }

  /** Crashes within the window as of the last crash. */
  get recentCrashes(): number {
    return this.#crashes.length;
  }
}
