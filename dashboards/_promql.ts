/**
 * Small PromQL builders shared by the dashboard and the alert rules, so every query takes its
 * metric and label names from the names tables instead of spelling them out.
 *
 * @module
 */
import { LABEL, type MetricName } from "../pipeline/telemetry/names.ts";

/** Grafana's rate window macro: at least four scrape intervals, resolved by Grafana. */
export const RATE_INTERVAL = "$__rate_interval";

/** Prometheus' histogram bucket bound label (Prometheus' own name, not ours). */
export const LE = "le";

/** A label key from the names table, or Prometheus' `le`. */
export type LabelKey = (typeof LABEL)[keyof typeof LABEL] | typeof LE;

/** `sum by (a, b) (expr)`, or `sum (expr)` with no labels. */
export function sumBy(labels: readonly LabelKey[], expr: string): string {
  return labels.length === 0 ? `sum(${expr})` : `sum by (${labels.join(", ")}) (${expr})`;
}

/** `max by (a, b) (expr)`. */
export function maxBy(labels: readonly LabelKey[], expr: string): string {
  return `max by (${labels.join(", ")}) (${expr})`;
}

/** Options of the range-vector builders. */
export interface RangeOptions {
  /**
   * The range window.
   *
   * @default {"$__rate_interval"}
   */
  window?: string;
  /**
   * Labels to keep apart when summing.
   *
   * @default {[]}
   */
  by?: readonly LabelKey[];
}

/** `rate(<counter>[window])`. */
export function rate(metric: MetricName, window: string = RATE_INTERVAL): string {
  return `rate(${metric.prom}[${window}])`;
}

/** `increase(<counter>[window])`. */
export function increase(metric: MetricName, window: string = RATE_INTERVAL): string {
  return `increase(${metric.prom}[${window}])`;
}

/** `sum by (labels) (rate(<counter>[window]))`. */
export function sumRate(metric: MetricName, options: RangeOptions = {}): string {
  const { window = RATE_INTERVAL, by = [] } = options;
  return sumBy(by, rate(metric, window));
}

/**
 * `histogram_quantile(q, sum by (le, ...labels) (rate(<histogram>_bucket[window])))`: the
 * quantile over every series of a histogram, optionally kept apart by `options.by`.
 */
export function quantile(q: number, metric: MetricName, options: RangeOptions = {}): string {
  const { window = RATE_INTERVAL, by = [] } = options;
  const buckets = `rate(${metric.prom}_bucket[${window}])`;
  return `histogram_quantile(${q}, ${sumBy([LE, ...by], buckets)})`;
}

/**
 * Replaces Grafana's macros with fixed values so a panel query runs on Prometheus itself.
 *
 * @example
 * ```ts
 * toPromql("sum(rate(x_total[$__rate_interval]))"); // "sum(rate(x_total[1m]))"
 * ```
 */
export function toPromql(expr: string, rateInterval = "1m"): string {
  return expr.replaceAll(RATE_INTERVAL, rateInterval);
}
