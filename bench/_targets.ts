/**
 * `deno task bench --targets`: issue 10's targets judged in one run. The normal bench (the
 * client comparison and the latency phase at 1 000 orders/s), then the worker scaling bench,
 * then the soak, one after the other on the same broker; each writes its own JSON as when run
 * alone, and this module judges all six targets from them, prints the verdicts and writes them
 * to `targets-<date>.json` next to the others.
 *
 * @module
 */
import type { ClientRow } from "./_clients.ts";
import { LATENCY_TARGETS, type TargetVerdict } from "./_latency_targets.ts";
import type { ScalingResult } from "./_scaling.ts";
import { writeModeResult } from "./_scaling.ts";
import { RSS_TOLERANCE, type SoakResult } from "./_soak.ts";

/** The target of issue 10: the pipeline reaches this fraction of the fastest raw loop. */
export const RAW_RATIO_TARGET = 0.8;

/** One target of issue 10 against what the run measured. */
export interface Target {
  /** The target, as the issue states it. */
  readonly name: string;
  /** What was measured, in words and numbers. */
  readonly measured: string;
  /** Whether it holds. */
  readonly pass: boolean;
}

/** What the parts of a `--targets` run found. */
export interface TargetsInput {
  /** The client comparison's rows (ratios to the fastest raw loop). */
  readonly clients: readonly ClientRow[];
  /** The latency phase's two verdicts. */
  readonly latency: readonly TargetVerdict[];
  /** The scaling bench. */
  readonly scaling: ScalingResult;
  /** The soak. */
  readonly soak: SoakResult;
}

/**
 * The six targets: the pipeline at 0.8x the fastest raw loop (at_least_once; the best of its
 * in-process and 1-worker variants, exactly-once reported apart), 2 workers at 1.5x one, the two
 * latency p99s, the soak's RSS flat and independent of the history.
 */
export function judgeTargets(input: TargetsInput): Target[] {
  const { clients, latency, scaling, soak } = input;
  const atLeastOnce = clients.filter((row) =>
    !row.variant.startsWith("raw-") && !row.variant.includes("-eos") &&
    !row.variant.startsWith("workers2-")
  );
  const best = atLeastOnce.reduce<ClientRow | undefined>(
    (top, row) => top === undefined || row.ratioToFastestRaw > top.ratioToFastestRaw ? row : top,
    undefined,
  );
  const eos = clients.filter((row) => row.variant.endsWith("-eos"))
    .map((row) => row.ratioToFastestRaw);
  const durable = latency.find((v) => v.targetMs === LATENCY_TARGETS.durableP99Ms);
  const committed = latency.find((v) => v.targetMs === LATENCY_TARGETS.committedP99Ms);
  const percent = (fraction: number) => `${(fraction * 100).toFixed(1)}%`;
  const { after, none } = soak.history;
  return [
    {
      name: `pipeline >= ${RAW_RATIO_TARGET}x the fastest raw loop`,
      measured: best === undefined
        ? "no pipeline variant ran"
        : `${best.ratioToFastestRaw}x (${best.variant}, ${best.recordsPerSecond} rec/s, ` +
          `${best.cpuUsPerRecord} µs CPU/rec)` +
          (eos.length > 0 ? `; exactly-once ${Math.min(...eos)}x to ${Math.max(...eos)}x` : ""),
      pass: best !== undefined && best.ratioToFastestRaw >= RAW_RATIO_TARGET,
    },
    {
      name: `2 workers >= ${scaling.target}x 1 worker (CPU-bound handler)`,
      measured: `${scaling.ratio}x (${scaling.median.twoWorkers} vs ${scaling.median.oneWorker} ` +
        `rec/s; machine ceiling ${scaling.machineCeiling.before}x / ` +
        `${scaling.machineCeiling.after}x)`,
      pass: scaling.pass,
    },
    {
      name: `p99 created -> output durable <= ${LATENCY_TARGETS.durableP99Ms} ms at 1 000/s`,
      measured: durable ? `${durable.p99Ms} ms` : "no latency phase",
      pass: durable?.pass ?? false,
    },
    {
      name: `p99 created -> offset committed <= ${LATENCY_TARGETS.committedP99Ms} ms at 1 000/s`,
      measured: committed ? `${committed.p99Ms} ms` : "no latency phase",
      pass: committed?.pass ?? false,
    },
    {
      name: `RSS flat within ${RSS_TOLERANCE * 100}% through the soak`,
      measured: `${percent(soak.spread)} (${soak.rss.min}-${soak.rss.max} MiB after ` +
        `${soak.warmupS} s; ${soak.minutes} min at ${soak.offeredRate}/s)`,
      pass: soak.flat,
    },
    {
      name: "RSS does not depend on the orders before",
      measured: `${soak.historyRatio}x: ${after.rssMiB} MiB after ${soak.orders} orders vs ` +
        `${none.rssMiB} after none (median of the last 30 s of a minute idle; lowest ` +
        `${after.rssLowestMiB} vs ${none.rssLowestMiB}, 3 s after the restore ` +
        `${after.rssSoonMiB} vs ${none.rssSoonMiB}, peak ${after.peakRssMiB} vs ` +
        `${none.peakRssMiB})`,
      pass: soak.historyBounded,
    },
  ];
}

/** The verdicts as text lines. */
export function describeTargetsRun(targets: readonly Target[]): string[] {
  const met = targets.filter((t) => t.pass).length;
  return [
    `issue 10 targets: ${met} of ${targets.length} met`,
    ...targets.map((t) => `  ${t.pass ? "PASS" : "FAIL"}  ${t.name}: ${t.measured}`),
  ];
}

/** Prints the verdicts and writes `targets-<date>.json` into `out`; returns its path. */
export async function reportTargets(
  out: string,
  brokers: readonly string[],
  input: TargetsInput,
): Promise<string> {
  const targets = judgeTargets(input);
  console.log(["", ...describeTargetsRun(targets)].join("\n"));
  return await writeModeResult(out, "targets", { brokers: brokers.join(","), targets });
}
