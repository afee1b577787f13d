/**
 * A small PromQL scanner for tests: which metric names, label names and functions an
 * expression uses. Enough for the queries `dashboards/` builds; not a full PromQL parser.
 *
 * @module
 */
import {
  LABEL,
  MESSAGING_LABEL,
  METRIC,
  type MetricName,
  SPAN_METRIC,
  SPAN_METRIC_LABEL,
} from "../../pipeline/telemetry/names.ts";
import { ORDER_METRIC } from "../../stages/telemetry.ts";

/** What an expression refers to. */
export interface PromqlNames {
  /** Series names (`orders_published_total`, `x_bucket`, ...). */
  metrics: string[];
  /** Label names in `by (...)`, `without (...)`, `on (...)`, `ignoring (...)` and matchers. */
  labels: string[];
  /** Functions and aggregation operators called. */
  functions: string[];
  /** Series names passed straight to `rate()`, `increase()`, `irate()`, `deriv()`. */
  rangeArguments: { fn: string; metric: string }[];
}

const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset"]);
const GROUPING = /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g;
const MATCHERS = /\{([^}]*)\}/g;

/** Scans an expression for the names it uses. */
export function promqlNames(expr: string): PromqlNames {
  const labels: string[] = [];
  let rest = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  rest = rest.replace(GROUPING, (_, _kw: string, list: string) => {
    labels.push(...list.split(",").map((l) => l.trim()).filter((l) => l !== ""));
    return " ";
  });
  rest = rest.replace(MATCHERS, (_, body: string) => {
    for (const m of body.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)) labels.push(m[1]);
    return " ";
  });
  const rangeArguments = [
    ...rest.matchAll(/\b(rate|irate|increase|deriv)\(\s*([a-zA-Z_:][\w:]*)\s*\[/g),
  ]
    .map((m) => ({ fn: m[1], metric: m[2] }));
  rest = rest.replace(/\[[^\]]*\]/g, " ");
  const metrics: string[] = [];
  const functions: string[] = [];
  for (const m of rest.matchAll(/([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    const [, name, call] = m;
    const before = rest[m.index - 1];
    if (before !== undefined && /[\d.]/.test(before)) continue; // a number like 1e3
    if (KEYWORDS.has(name)) continue;
    if (call) functions.push(name);
    else metrics.push(name);
  }
  return { metrics, labels, functions, rangeArguments };
}

/** Every metric name the names tables declare (Tempo's span metrics included). */
export const DECLARED_METRICS: readonly MetricName[] = [
  ...Object.values(METRIC),
  ...Object.values(ORDER_METRIC),
  ...Object.values(SPAN_METRIC),
];

/**
 * What a declared metric is. The names table does not say, so: counters show `_total`, and of
 * the rest, the ones with a time unit are histograms (the framework's gauges count records).
 */
export function metricKind(metric: MetricName): "counter" | "gauge" | "histogram" {
  if (metric.prom.endsWith("_total")) return "counter";
  return metric.unit === "1" ? "gauge" : "histogram";
}

/** Every series name Prometheus may show for a declared metric, with its kind. */
export function declaredSeries(): Map<string, "counter" | "gauge" | "histogram"> {
  const series = new Map<string, "counter" | "gauge" | "histogram">();
  for (const metric of DECLARED_METRICS) {
    const kind = metricKind(metric);
    if (kind === "histogram") {
      for (const suffix of ["_bucket", "_sum", "_count"]) series.set(metric.prom + suffix, kind);
    } else {
      series.set(metric.prom, kind);
    }
  }
  return series;
}

/** Every label name the names tables declare, and Prometheus' bucket label `le`. */
export const DECLARED_LABELS: ReadonlySet<string> = new Set([
  ...Object.values(LABEL),
  ...Object.values(MESSAGING_LABEL),
  ...Object.values(SPAN_METRIC_LABEL),
  "le",
]);

/** PromQL functions and aggregations the dashboards may use. */
export const KNOWN_FUNCTIONS: ReadonlySet<string> = new Set([
  "sum",
  "max",
  "min",
  "avg",
  "count",
  "rate",
  "irate",
  "increase",
  "deriv",
  "histogram_quantile",
  "vector",
  "clamp_min",
  "topk",
]);
