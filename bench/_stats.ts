/**
 * Small statistics helpers for the benchmark: percentiles and one-line summaries.
 *
 * @module
 */

/** Percentiles of a sample, in the sample's unit. */
export interface Percentiles {
  /** How many values. */
  readonly count: number;
  /** The median. */
  readonly p50: number;
  /** The 95th percentile. */
  readonly p95: number;
  /** The 99th percentile. */
  readonly p99: number;
  /** The largest value. */
  readonly max: number;
  /** The arithmetic mean. */
  readonly mean: number;
}

/**
 * Nearest-rank percentiles of `values` (not modified). An empty sample gives zeros.
 *
 * @example
 * ```ts
 * import { percentiles } from "./_stats.ts";
 * console.log(percentiles([1, 2, 3, 4]).p50); // 2
 * ```
 */
export function percentiles(values: readonly number[]): Percentiles {
  if (values.length === 0) return { count: 0, p50: 0, p95: 0, p99: 0, max: 0, mean: 0 };
  const sorted = Float64Array.from(values).sort();
  const rank = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  let sum = 0;
  for (const value of sorted) sum += value;
  return {
    count: sorted.length,
    p50: round(rank(0.5)),
    p95: round(rank(0.95)),
    p99: round(rank(0.99)),
    max: round(sorted[sorted.length - 1]),
    mean: round(sum / sorted.length),
  };
}

/** Rounds to two decimals, for readable JSON. */
export function round(value: number, decimals = 2): number {
  const scale = 10 ** decimals;
  return Math.round(value * scale) / scale;
}

/** `p50 1.2 / p95 3.4 / p99 5.6 / max 7.8 ms (n=100)` */
export function describePercentiles(p: Percentiles, unit = "ms"): string {
  return `p50 ${p.p50} / p95 ${p.p95} / p99 ${p.p99} / max ${p.max} ${unit} (n=${p.count})`;
}

/** The median of a non-empty list. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
