/**
 * Small PromQL builders shared by the dashboards and the alert rules, so every query takes its
 * metric and label names from the names tables instead of spelling them out.
 *
 * @module
 */
import {
  LABEL,
  MESSAGING_LABEL,
  type MetricName,
  SPAN_METRIC_LABEL,
} from "../pipeline/telemetry/names.ts";

/** Grafana's rate window macro: at least four scrape intervals, resolved by Grafana. */
export const RATE_INTERVAL = "$__rate_interval";

/** Prometheus' histogram bucket bound label (Prometheus' own name, not ours). */
export const LE = "le";

/** A label key from the names tables, or Prometheus' `le`. */
export type LabelKey =
  | (typeof LABEL)[keyof typeof LABEL]
  | (typeof MESSAGING_LABEL)[keyof typeof MESSAGING_LABEL]
  | (typeof SPAN_METRIC_LABEL)[keyof typeof SPAN_METRIC_LABEL]
  | typeof LE;

/** Equality matchers: label to value; a value that is an array matches any of its items. */
export type Matchers = Readonly<Partial<Record<LabelKey, string | readonly string[]>>>;

/** Escapes a string for a PromQL regular expression (RE2), matching it literally. */
function literalRegex(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * `name{a="x", b=~"y|z"}`: a series selector, or the bare name without matchers.
 *
 * @example
 * ```ts
 * selector("dlq_messages_total", { stage: "pay" }); // 'dlq_messages_total{stage="pay"}'
 * ```
 */
export function selector(name: string, where: Matchers = {}): string {
  const matchers = Object.entries(where).map(([label, value]) => {
    if (typeof value === "string") return `${label}=${JSON.stringify(value)}`;
    const values = value as readonly string[];
    if (values.length === 1) return `${label}=${JSON.stringify(values[0])}`;
    return `${label}=~${JSON.stringify(values.map(literalRegex).join("|"))}`;
  });
  return matchers.length === 0 ? name : `${name}{${matchers.join(", ")}}`;
}

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
  /**
   * Label matchers selecting the series.
   *
   * @default {{}}
   */
  where?: Matchers;
}

/** `rate(<counter>[window])`. */
export function rate(
  metric: MetricName,
  window: string = RATE_INTERVAL,
  where: Matchers = {},
): string {
  return `rate(${selector(metric.prom, where)}[${window}])`;
}

/** `increase(<counter>[window])`. */
export function increase(
  metric: MetricName,
  window: string = RATE_INTERVAL,
  where: Matchers = {},
): string {
  return `increase(${selector(metric.prom, where)}[${window}])`;
}

/** `sum by (labels) (rate(<counter>{where}[window]))`. */
export function sumRate(metric: MetricName, options: RangeOptions = {}): string {
  const { window = RATE_INTERVAL, by = [], where = {} } = options;
  return sumBy(by, rate(metric, window, where));
}

/**
 * `sum by (labels) (rate(<histogram>_count{where}[window]))`: how many observations per
 * second, e.g. records processed per outcome.
 */
export function countRate(metric: MetricName, options: RangeOptions = {}): string {
  const { window = RATE_INTERVAL, by = [], where = {} } = options;
  return sumBy(by, `rate(${selector(`${metric.prom}_count`, where)}[${window}])`);
}

/**
 * `histogram_quantile(q, sum by (le, ...labels) (rate(<histogram>_bucket{where}[window])))`:
 * the quantile over the selected series of a histogram, optionally kept apart by `options.by`.
 */
export function quantile(q: number, metric: MetricName, options: RangeOptions = {}): string {
  const { window = RATE_INTERVAL, by = [], where = {} } = options;
  const buckets = `rate(${selector(`${metric.prom}_bucket`, where)}[${window}])`;
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
