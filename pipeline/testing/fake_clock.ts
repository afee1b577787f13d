import type { Clock } from "../clock.ts";

/** Options for {@linkcode FakeClock}. */
export interface FakeClockOptions {
  /**
   * The starting time, in milliseconds since the epoch.
   * @default 0
   */
  start?: number;
  /**
   * When `true`, every `sleep` moves time forward by its own length and resolves at once:
   * virtual time for whole-pipeline tests, where retries "wait" seconds in microseconds.
   * When `false`, sleeps resolve only when the test calls {@linkcode FakeClock.advance}.
   * @default false
   */
  autoAdvance?: boolean;
}

interface Sleeper {
  due: number;
  resolve: () => void;
}

/**
 * A clock the test drives.
 *
 * @example
 * ```ts
 * import { FakeClock } from "./fake_clock.ts";
 * const clock = new FakeClock();
 * const slept = clock.sleep(1000);
 * clock.advance(1000);
 * await slept;
 * console.log(clock.now()); // 1000
 * ```
 */
export class FakeClock implements Clock {
  #now: number;
  #autoAdvance: boolean;
  #sleepers: Sleeper[] = [];
  /** Every sleep requested so far, in milliseconds, in order. */
  readonly sleeps: number[] = [];

  /** Creates a clock at `options.start`. */
  constructor(options: FakeClockOptions = {}) {
    const { start = 0, autoAdvance = false } = options;
    this.#now = start;
    this.#autoAdvance = autoAdvance;
  }

  /** The current fake time. */
  now(): number {
    return this.#now;
  }

  /** Waits for fake time to pass `ms`. */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#autoAdvance) {
      this.#now += Math.max(0, ms);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const sleeper: Sleeper = { due: this.#now + Math.max(0, ms), resolve };
      this.#sleepers.push(sleeper);
      signal?.addEventListener("abort", () => {
        this.#sleepers = this.#sleepers.filter((s) => s !== sleeper);
        reject(signal.reason);
      }, { once: true });
    });
  }

  /** The number of sleeps waiting for time to pass. */
  get pending(): number {
    return this.#sleepers.length;
  }

  /** Moves time forward and wakes every sleep that is due. */
  advance(ms: number): void {
    this.#now += ms;
    const due = this.#sleepers.filter((s) => s.due <= this.#now);
    this.#sleepers = this.#sleepers.filter((s) => s.due > this.#now);
    for (const sleeper of due) sleeper.resolve();
  }
}
