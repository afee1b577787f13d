/**
 * A Web Worker that only spins: told `{ ms }`, it burns the CPU for that long (wall time) and
 * answers how many loop turns it made. The scaling bench runs one, then two at once, to learn
 * how much CPU this machine gives a second thread right now (see `_scaling.ts`).
 *
 * @module
 */

/** The worker's global scope, as far as this module uses it. */
interface SpinScope {
  postMessage(message: number): void;
  onmessage: ((event: MessageEvent<{ ms: number }>) => void) | null;
}

const scope = globalThis as unknown as SpinScope;

scope.onmessage = (event) => {
  const until = performance.now() + event.data.ms;
  let turns = 0;
  while (performance.now() < until) turns++;
  scope.postMessage(turns);
};
