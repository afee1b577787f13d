/**
 * The latency targets of issue 10, judged on the latency phase of `deno task bench` (run it
 * with `--rate 1000`): p99 from an order's `created_at` to its outcome durable, and to its
 * offset committed.
 *
 * @module
 */
import type { Percentiles } from "./_stats.ts";

/** The offered rate the targets are stated at, in orders/s. */
export const TARGET_RATE = 1000;

/** The targets, in ms. */
export const LATENCY_TARGETS = {
  /** p99 from created to the outcome durable. */
  durableP99Ms: 25,
  /** p99 from created to the offset committed. */
  committedP99Ms: 150,
} as const;

/** One target against what was measured. */
export interface TargetVerdict {
  /** What is measured. */
  readonly name: string;
  /** The measured p99, in ms. */
  readonly p99Ms: number;
  /** The target, in ms. */
  readonly targetMs: number;
  /** Whether the p99 is at most the target. */
  readonly pass: boolean;
}

/** The two targets against the phase's percentiles. */
export function judgeLatency(
  toDurable: Percentiles,
  toCommitted: Percentiles,
): TargetVerdict[] {
  const verdict = (name: string, p: Percentiles, targetMs: number): TargetVerdict => ({
    name,
    p99Ms: p.p99,
    targetMs,
    pass: p.count > 0 && p.p99 <= targetMs,
  });
  return [
    verdict("created -> outcome durable", toDurable, LATENCY_TARGETS.durableP99Ms),
    verdict("created -> offset committed", toCommitted, LATENCY_TARGETS.committedP99Ms),
  ];
}

/** The verdicts as text lines; says so when the rate is not the targets' rate. */
export function describeTargets(verdicts: readonly TargetVerdict[], offeredRate: number): string[] {
  const lines = verdicts.map((v) =>
    `  target p99 ${v.name} <= ${v.targetMs} ms: ${v.p99Ms} ms ${v.pass ? "PASS" : "FAIL"}`
  );
  if (offeredRate !== TARGET_RATE) {
    lines.push(
      `  (the targets are stated at ${TARGET_RATE} orders/s: run with --rate ${TARGET_RATE})`,
    );
  }
  return lines;
}
