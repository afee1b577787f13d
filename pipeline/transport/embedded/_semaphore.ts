/**
 * A counting semaphore whose waits can be abandoned through an `AbortSignal`. Waiters are
 * served first come, first served, so partitions sharing a member's slots take turns.
 *
 * @module
 */

/** Limits how many partitions of one member deliver a record at the same time. */
export class Semaphore {
  #free: number;
  readonly #waiting: Array<(granted: boolean) => void> = [];

  constructor(permits: number) {
    this.#free = permits;
  }

  /** Resolves `true` with a permit held, or `false` (no permit) once `signal` is aborted. */
  acquire(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const onAbort = () => {
        const index = this.#waiting.indexOf(grant);
        if (index >= 0) this.#waiting.splice(index, 1);
        resolve(false);
      };
      const grant = (granted: boolean) => {
        signal.removeEventListener("abort", onAbort);
        resolve(granted);
      };
      this.#waiting.push(grant);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Returns a permit, handing it straight to the longest waiter if there is one. */
  release(): void {
    const next = this.#waiting.shift();
    if (next === undefined) this.#free++;
    else next(true);
  }
}

/** Waits `ms` milliseconds, or less if `signal` is aborted first; never rejects. */
export function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
