/**
 * A full garbage collection on demand, for the one moment the framework knows a burst of
 * garbage has just ended: a state restore. A restore decodes every changelog record of its
 * partitions, live or long deleted, and V8 sizes its heap for that burst; left alone it keeps
 * the larger heap (and the RSS) for minutes while the member's steady work refills it, so a
 * member's memory would depend on how much history its changelog holds. One full collection
 * right after the restore resets both.
 *
 * V8 exposes `gc` only with `--expose-gc`; the flag is set at run time through `node:v8`, which
 * adds `gc` to contexts created afterwards (one `node:vm` context here), not to the program's own
 * globals.
 *
 * @module
 */
import v8 from "node:v8";
import vm from "node:vm";

let collect: (() => void) | null | undefined;

/**
 * Runs a full, blocking garbage collection (tens of ms for a heap of a few hundred MiB).
 *
 * @returns whether a collection ran (`false` where the runtime refuses the flag).
 */
export function collectGarbage(): boolean {
  if (collect === undefined) {
    try {
      v8.setFlagsFromString("--expose-gc");
      collect = vm.runInNewContext("gc") as () => void;
    } catch {
      collect = null;
    }
  }
  if (collect === null) return false;
  collect();
  return true;
}
