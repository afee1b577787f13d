/**
 * Metrics in the Prometheus text format, for those who scrape `/metrics` rather than push OTLP.
 *
 * A {@linkcode PrometheusReader} is one more reader on the process's (or a worker's)
 * MeterProvider; {@linkcode renderPrometheus} writes what readers collected as the text
 * exposition format 0.0.4. Rendered here rather than with `@opentelemetry/exporter-prometheus`
 * so the series names are, by construction, the ones Prometheus sees through the Collector
 * (`MetricName.prom` in names.ts: dots made underscores, `_total` on counters, no unit suffix),
 * with no new dependency, and so the families of several workers merge into one exposition
 * (a family's `# TYPE` may appear once per scrape). Resource attributes `service.*` become the
 * labels the Collector's `resource_constant_labels` gives them (`service_name`,
 * `service_instance_id`, `service_version`), which tells the workers of a process apart.
 *
 * @example
 * ```ts
 * import { MeterProvider } from "@opentelemetry/sdk-metrics";
 * import { PrometheusReader, renderPrometheus } from "./prometheus.ts";
 * const reader = new PrometheusReader();
 * const provider = new MeterProvider({ readers: [reader] });
 * provider.getMeter("demo").createCounter("messages_consumed").add(2, { stage: "pay" });
 * const text = renderPrometheus(await reader.snapshot());
 * console.log(text.includes('messages_consumed_total{stage="pay"} 2')); // true
 * await provider.shutdown();
 * ```
 *
 * @module
 */
import type { Attributes } from "@opentelemetry/api";
import { DataPointType, MetricReader } from "@opentelemetry/sdk-metrics";
import type { ResourceMetrics } from "@opentelemetry/sdk-metrics";

/** One series of a family: its labels and value(s). Plain data, so workers can post it. */
export interface MetricSample {
  /** Label names (already Prometheus-safe) to values. */
  readonly labels: Readonly<Record<string, string>>;
  /** The value, for counters and gauges. */
  readonly value?: number;
  /** Histograms: upper bounds and per-bucket (not cumulative) counts, one more than bounds. */
  readonly buckets?: { readonly bounds: readonly number[]; readonly counts: readonly number[] };
  /** Histograms: the sum of observations. */
  readonly sum?: number;
  /** Histograms: the number of observations. */
  readonly count?: number;
}

/** A metric family as Prometheus names it. */
export interface MetricFamily {
  /** The series name (for histograms, the base of `_bucket`, `_sum`, `_count`). */
  readonly name: string;
  /** The Prometheus type. */
  readonly type: "counter" | "gauge" | "histogram";
  /** The `# HELP` text. */
  readonly help: string;
  /** Its series. */
  readonly samples: readonly MetricSample[];
}

/** The resource attributes that become labels, as the Collector names them. */
const RESOURCE_LABELS = ["service.name", "service.instance.id", "service.version"] as const;

/** A Prometheus metric or label name from an OpenTelemetry one: invalid characters become `_`. */
export function prometheusName(name: string): string {
  const safe = name.replace(/[^a-zA-Z0-9_:]/g, "_");
  return /^[0-9]/.test(safe) ? `_${safe}` : safe;
}

function labelsOf(attributes: Attributes, base: Record<string, string>): Record<string, string> {
  const labels: Record<string, string> = { ...base };
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null) continue;
    labels[prometheusName(key)] = Array.isArray(value) ? JSON.stringify(value) : String(value);
  }
  return labels;
}

/**
 * Turns collected OpenTelemetry metrics into Prometheus families. Cumulative temporality is
 * assumed (the SDK's default for pull readers). Exponential histograms are left out: the
 * framework records none.
 */
export function toMetricFamilies(metrics: ResourceMetrics): MetricFamily[] {
  const resource: Record<string, string> = {};
  for (const key of RESOURCE_LABELS) {
    const value = metrics.resource.attributes[key];
    if (value !== undefined && value !== null) resource[prometheusName(key)] = String(value);
  }
  const families: MetricFamily[] = [];
  for (const scope of metrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      const base = prometheusName(metric.descriptor.name);
      const help = metric.descriptor.description;
      switch (metric.dataPointType) {
        case DataPointType.SUM:
          families.push({
            name: metric.isMonotonic && !base.endsWith("_total") ? `${base}_total` : base,
            type: metric.isMonotonic ? "counter" : "gauge",
            help,
            samples: metric.dataPoints.map((p) => ({
              labels: labelsOf(p.attributes, resource),
              value: p.value,
            })),
          });
          break;
        case DataPointType.GAUGE:
          families.push({
            name: base,
            type: "gauge",
            help,
            samples: metric.dataPoints.map((p) => ({
              labels: labelsOf(p.attributes, resource),
              value: p.value,
            })),
          });
          break;
        case DataPointType.HISTOGRAM:
          families.push({
            name: base,
            type: "histogram",
            help,
            samples: metric.dataPoints.map((p) => ({
              labels: labelsOf(p.attributes, resource),
              buckets: {
                bounds: [...p.value.buckets.boundaries],
                counts: [...p.value.buckets.counts],
              },
              sum: p.value.sum ?? 0,
              count: p.value.count,
            })),
          });
          break;
        default:
          break;
      }
    }
  }
  return families;
}

/** A pull reader on a MeterProvider: {@linkcode snapshot} collects its metrics as families. */
export class PrometheusReader extends MetricReader {
  /** Collects every instrument now, as Prometheus families. */
  async snapshot(): Promise<MetricFamily[]> {
    const { resourceMetrics } = await this.collect();
    return toMetricFamilies(resourceMetrics);
  }

  /** Nothing to release: the reader holds no connection. */
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }

  /** Nothing buffered: each scrape collects afresh. */
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

function escapeHelp(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function number(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(value);
}

function series(name: string, labels: Readonly<Record<string, string>>, value: number): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return `${name}${pairs.length === 0 ? "" : `{${pairs.join(",")}}`} ${number(value)}`;
}

/**
 * Writes families in the Prometheus text format (version 0.0.4). Families of the same name
 * (one per worker) are merged under one `# HELP` and `# TYPE`; the first one's type and help
 * win.
 */
export function renderPrometheus(families: readonly MetricFamily[]): string {
  const merged = new Map<string, { family: MetricFamily; samples: MetricSample[] }>();
  for (const family of families) {
    const entry = merged.get(family.name);
    if (entry === undefined) {
      merged.set(family.name, { family, samples: [...family.samples] });
    } else if (entry.family.type === family.type) {
      entry.samples.push(...family.samples);
    }
  }
  const lines: string[] = [];
  for (const { family, samples } of merged.values()) {
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`);
    lines.push(`# TYPE ${family.name} ${family.type}`);
    for (const sample of samples) {
      if (family.type !== "histogram") {
        lines.push(series(family.name, sample.labels, sample.value ?? 0));
        continue;
      }
      const bounds = sample.buckets?.bounds ?? [];
      const counts = sample.buckets?.counts ?? [];
      let cumulative = 0;
      bounds.forEach((bound, i) => {
        cumulative += counts[i] ?? 0;
        lines.push(
          series(`${family.name}_bucket`, { ...sample.labels, le: number(bound) }, cumulative),
        );
      });
      lines.push(
        series(`${family.name}_bucket`, { ...sample.labels, le: "+Inf" }, sample.count ?? 0),
      );
      lines.push(series(`${family.name}_sum`, sample.labels, sample.sum ?? 0));
      lines.push(series(`${family.name}_count`, sample.labels, sample.count ?? 0));
    }
  }
  return lines.join("\n") + "\n";
}

/** The `Content-Type` of {@linkcode renderPrometheus}'s output. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
