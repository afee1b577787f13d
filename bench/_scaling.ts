/**
 * The scaling bench (`deno task bench --scaling`): do Deno workers scale? The payment stage
 * with a gateway that burns a fixed CPU time per order (`--burn-us`) runs in 1 and in 2
 * supervisor workers (each run its own process, `_scaling_variant.ts`) over the same orders,
 * written beforehand and made visible at once when every worker consumes; the two alternate
 * for a few rounds and the medians are compared against the target: 2 workers at least 1.5x
 * the records/s of 1.
 *
 * @module
 */
import { PipelineError } from "../pipeline/errors.ts";
import { createBurnPipeline, scalingPipelineOptions } from "./_burn_pipeline.ts";
import type { ScalingRun } from "./_scaling_variant.ts";
import { runBenchChild } from "./_child.ts";
import { median } from "./_stats.ts";

/** The target of issue 10: 2 workers process at least this many times the records/s of 1. */
export const SCALING_TARGET = 1.5;

/** Options for {@linkcode runScalingBench}. */
export interface ScalingBenchOptions {
  /** Bootstrap brokers, `host:port` each. */
  readonly brokers: readonly string[];
  /** Orders per run: each run writes the same ones (seed 3) to a topic of its own. */
  readonly records: number;
  /** Partitions of every topic; even, so two workers get as many each. */
  readonly partitions: number;
  /** CPU time burnt per order, in µs. */
  readonly burnUs: number;
  /** Rounds: each runs 1 worker then 2 (alternating which goes first). */
  readonly rounds: number;
  /** Names end in this. */
  readonly suffix: string;
  /** Give up on one run after this long, in ms. */
  readonly timeoutMs: number;
  /** Receives every topic created, for cleanup. */
  readonly topicsUsed: string[];
  /** Progress lines. */
  readonly say: (line: string) => void;
}

/** What the scaling bench found. */
export interface ScalingResult {
  /** The settings. */
  readonly records: number;
  readonly partitions: number;
  readonly burnUs: number;
  /** Every run, in the order they ran. */
  readonly runs: readonly ScalingRun[];
  /** Median records/s (from the orders made visible to the last outcome), per worker count. */
  readonly median: { readonly oneWorker: number; readonly twoWorkers: number };
  /** `median.twoWorkers / median.oneWorker`. */
  readonly ratio: number;
  /** Median cores kept busy while processing, per worker count (what the machine gave). */
  readonly coresUsed: { readonly oneWorker: number; readonly twoWorkers: number };
  /** Median process CPU µs per record, per worker count (what the framework spent). */
  readonly cpuUsPerRecord: { readonly oneWorker: number; readonly twoWorkers: number };
  /**
   * Loop turns of two spinning workers over one's, measured before and after the runs: what
   * the machine gave a second thread (see {@linkcode machineCeiling}).
   */
  readonly machineCeiling: { readonly before: number; readonly after: number };
  /** {@linkcode SCALING_TARGET}. */
  readonly target: number;
  /** Whether `ratio` reached the target. */
  readonly pass: boolean;
}

async function runChild(
  options: ScalingBenchOptions,
  workers: number,
  suffix: string,
): Promise<ScalingRun> {
  const script = new URL("./_scaling_variant.ts", import.meta.url);
  return await runBenchChild<ScalingRun>(
    script,
    [
      // Per-thread CPU time is in /proc/self/task, which Deno reads only with every permission.
      "--allow-all",
    ],
    [
      "--brokers",
      options.brokers.join(","),
      "--suffix",
      suffix,
      "--records",
      String(options.records),
      "--partitions",
      String(options.partitions),
      "--workers",
      String(workers),
      "--burn-us",
      String(options.burnUs),
      "--timeout-ms",
      String(options.timeoutMs),
    ],
    `the scaling bench with ${workers} worker(s)`,
  );
}

/** Spins `count` workers at once for `ms` and returns the loop turns they made in all. */
async function spin(count: number, ms: number): Promise<number> {
  const url = new URL("./_spin_worker.ts", import.meta.url);
  const workers = Array.from({ length: count }, () => new Worker(url, { type: "module" }));
  try {
    const turns = await Promise.all(
      workers.map((worker) =>
        new Promise<number>((resolve, reject) => {
          worker.onmessage = (event: MessageEvent<number>) => resolve(event.data);
          worker.onerror = (event) => {
            event.preventDefault();
            reject(new PipelineError(`Cannot calibrate the scaling bench: ${event.message}`));
          };
          worker.postMessage({ ms });
        })
      ),
    );
    return turns.reduce((sum, n) => sum + n, 0);
  } finally {
    workers.forEach((worker) => worker.terminate());
  }
}

/**
 * What this machine gives a second thread right now: the loop turns of two workers spinning at
 * once over those of one alone, median of `rounds` (1 s each). No worker count can beat it: a
 * ratio 2w/1w below the target is the machine's when this is below the target too.
 */
export async function machineCeiling(rounds: number): Promise<number> {
  const ratios: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const one = await spin(1, 1000);
    const two = await spin(2, 1000);
    ratios.push(two / one);
  }
  return Math.round(median(ratios) * 100) / 100;
}

/** Writes the orders once, then runs 1 and 2 workers alternately, `rounds` times each. */
export async function runScalingBench(options: ScalingBenchOptions): Promise<ScalingResult> {
  options.say(
    "scaling: how much CPU a second thread gets on this machine now (spinning workers) ...",
  );
  const ceilingBefore = await machineCeiling(options.rounds);
  const runs: ScalingRun[] = [];
  for (let round = 0; round < options.rounds; round++) {
    // Alternating which goes first: neither always runs on a broker warmed by the other.
    const order = round % 2 === 0 ? [1, 2] : [2, 1];
    for (const workers of order) {
      const suffix = `${options.suffix}-r${round}-w${workers}`;
      const pipeline = createBurnPipeline(scalingPipelineOptions({ ...options, suffix }));
      options.topicsUsed.push(...pipeline.topics.map((topic) => topic.name));
      options.say(
        `scaling: round ${round + 1}/${options.rounds}, ${workers} worker(s) over ` +
          `${options.records} orders, ${options.burnUs} µs burnt each ...`,
      );
      const run = await runChild(options, workers, suffix);
      options.say(
        `  ${run.recordsPerSecond} records/s (${run.processMs} ms, after ${run.startMs} ms of ` +
          `start-up); ${run.coresUsed} cores busy; CPU ms main ${run.cpuMs.main}, workers ` +
          `${run.cpuMs.workers.join("+")}, other ${run.cpuMs.other}`,
      );
      runs.push(run);
    }
  }
  const oneWorker = median(runs.filter((r) => r.workers === 1).map((r) => r.recordsPerSecond));
  const twoWorkers = median(runs.filter((r) => r.workers === 2).map((r) => r.recordsPerSecond));
  const ratio = Math.round((twoWorkers / oneWorker) * 100) / 100;
  const ceilingAfter = await machineCeiling(options.rounds);
  const medianOf = (workers: number, pick: (run: ScalingRun) => number) =>
    median(runs.filter((r) => r.workers === workers).map(pick));
  return {
    records: options.records,
    partitions: options.partitions,
    burnUs: options.burnUs,
    runs,
    median: { oneWorker, twoWorkers },
    ratio,
    coresUsed: {
      oneWorker: medianOf(1, (r) => r.coresUsed),
      twoWorkers: medianOf(2, (r) => r.coresUsed),
    },
    cpuUsPerRecord: {
      oneWorker: medianOf(1, (r) => r.cpuUsPerRecord),
      twoWorkers: medianOf(2, (r) => r.cpuUsPerRecord),
    },
    machineCeiling: { before: ceilingBefore, after: ceilingAfter },
    target: SCALING_TARGET,
    pass: ratio >= SCALING_TARGET,
  };
}

/** The result as text lines. */
export function describeScaling(result: ScalingResult): string[] {
  const lines = [
    `workers, payment stage burning ${result.burnUs} µs of CPU per order, ${result.records} ` +
    `orders, ${result.partitions} partitions (records/s from the orders made visible to the last ` +
    `outcome durable; median of ${result.runs.length / 2}):`,
    `  1 worker:  ${result.median.oneWorker} records/s, ${result.coresUsed.oneWorker} cores busy, ` +
    `${result.cpuUsPerRecord.oneWorker} µs CPU/record`,
    `  2 workers: ${result.median.twoWorkers} records/s, ${result.coresUsed.twoWorkers} cores busy, ` +
    `${result.cpuUsPerRecord.twoWorkers} µs CPU/record`,
    `  2w/1w: ${result.ratio}x (target >= ${result.target}x): ${result.pass ? "PASS" : "FAIL"}`,
    `  this machine's ceiling (2 spinning workers / 1, before and after): ` +
    `${result.machineCeiling.before}x, ${result.machineCeiling.after}x`,
  ];
  for (const run of result.runs) {
    lines.push(
      `  run ${run.workers}w: ${run.recordsPerSecond} rec/s, first outcome after ` +
        `${run.firstOutcomeMs} ms, ${run.coresUsed} cores busy; CPU ms main ${run.cpuMs.main}, workers ` +
        `${run.cpuMs.workers.join(" + ")}, other threads ${run.cpuMs.other}; ` +
        `${run.cpuUsPerRecord} µs CPU/record` +
        (run.stateChanges.length > 0 ? `; rebalanced: ${run.stateChanges.join(", ")}` : ""),
    );
  }
  return lines;
}

/** Settings of `deno task bench --scaling`. */
export interface ScalingModeOptions extends Omit<ScalingBenchOptions, "topicsUsed"> {
  /** Where the JSON result goes. */
  readonly out: string;
  /** Deletes the run's topics at the end (or not, to keep them). */
  readonly cleanup: (topics: string[]) => Promise<void>;
}

/** `deno task bench --scaling`: runs the scaling bench, prints it, writes its JSON. */
export async function scalingMode(options: ScalingModeOptions): Promise<ScalingResult> {
  const topicsUsed: string[] = [];
  try {
    const result = await runScalingBench({ ...options, topicsUsed });
    console.log(["", ...describeScaling(result)].join("\n"));
    const file = await writeModeResult(options.out, "scaling", {
      brokers: options.brokers.join(","),
      ...result,
    });
    console.log(`\nresults: ${file}`);
    return result;
  } finally {
    await options.cleanup(topicsUsed);
  }
}

/** Writes `<out>/<kind>-<date>.json` with the host's load, and returns its path. */
export async function writeModeResult(
  out: string,
  kind: string,
  result: Record<string, unknown>,
): Promise<string> {
  await Deno.mkdir(out, { recursive: true });
  const date = new Date();
  const stamp = date.toISOString().replace(/\.\d+Z$/, "Z").replaceAll(":", "-");
  const file = `${out}/${kind}-${stamp}.json`;
  const host = {
    cores: navigator.hardwareConcurrency,
    deno: Deno.version.deno,
    loadavg: Deno.loadavg(),
  };
  await Deno.writeTextFile(
    file,
    JSON.stringify({ date: date.toISOString(), host, ...result }, null, 2) + "\n",
  );
  return file;
}
