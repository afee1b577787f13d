/**
 * CPU time per thread of this process, from Linux's `/proc/self/task`: which thread did the
 * work (the main thread, each Web Worker, the runtime's helpers). Empty elsewhere.
 *
 * @module
 */

/** One thread's CPU time so far. */
export interface ThreadCpu {
  /** The thread id (the main thread's equals the process id). */
  readonly tid: number;
  /** Its name (`/proc/.../comm`), as the runtime set it. */
  readonly name: string;
  /** CPU time spent running, in ms. */
  readonly cpuMs: number;
}

/** CPU time of every live thread of this process; `[]` when `/proc` cannot be read. */
export function threadCpu(): ThreadCpu[] {
  const threads: ThreadCpu[] = [];
  let entries: Iterable<Deno.DirEntry>;
  try {
    entries = Deno.readDirSync("/proc/self/task");
  } catch {
    return threads;
  }
  for (const entry of entries) {
    const tid = Number(entry.name);
    try {
      const name = Deno.readTextFileSync(`/proc/self/task/${tid}/comm`).trim();
      // First field: nanoseconds on a CPU.
      const ns = Number(Deno.readTextFileSync(`/proc/self/task/${tid}/schedstat`).split(" ")[0]);
      threads.push({ tid, name, cpuMs: Math.round(ns / 1e5) / 10 });
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return threads.sort((a, b) => b.cpuMs - a.cpuMs);
}

/** CPU ms per thread over an interval: `after` minus `before`, by thread id. */
export function threadCpuDelta(
  before: readonly ThreadCpu[],
  after: readonly ThreadCpu[],
): ThreadCpu[] {
  const start = new Map(before.map((t) => [t.tid, t.cpuMs]));
  return after.map((t) => ({
    ...t,
    cpuMs: Math.round((t.cpuMs - (start.get(t.tid) ?? 0)) * 10) / 10,
  }))
    .filter((t) => t.cpuMs > 0)
    .sort((a, b) => b.cpuMs - a.cpuMs);
}
