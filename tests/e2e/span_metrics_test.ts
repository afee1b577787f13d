/**
 * End-to-end exemplars of the span-metrics panels. Tempo cannot run here, so a small HTTP
 * server on 127.0.0.1 exposes span metrics the way Tempo's metrics generator names and labels
 * them (`traces_spanmetrics_latency_*`, intrinsic dimensions, the dimensions of
 * `infra/tempo/tempo.yaml`, exemplars under the label `trace_id_label_name` sets) in the
 * OpenMetrics text format. Debian's Prometheus scrapes it with exemplar storage on. Then every
 * dashboard query that asks for exemplars returns data, and Prometheus' exemplar API (what
 * Grafana calls for those queries) returns exemplars whose trace-id label is the one Grafana's
 * Prometheus datasource turns into a Tempo link.
 *
 * Ignored with the reason on a machine without Prometheus; failed under CI.
 */

import assert from "node:assert/strict";
import { parse } from "yaml";
import { ORDERS_DESCRIPTION, PANEL_QUERIES } from "../../dashboards/mod.ts";
import {
  EXEMPLAR_TRACE_ID_LABEL,
  SPAN_KIND_LABEL,
  SPAN_METRIC,
  SPAN_METRIC_LABEL,
} from "../../pipeline/telemetry/names.ts";
import { pollUntil, queryPrometheus, startPrometheus } from "../_observability.ts";
import { INFRA } from "../infra/_infra_files.ts";
import { PROMETHEUS_TOOL, toolTest } from "./_e2e.ts";

const BOUNDS = [0.005, 0.01, 0.05, 0.1, 0.5, 1];

/** A trace id per series, so each exemplar says which span it came from. */
function traceId(n: number): string {
  return n.toString(16).padStart(32, "0");
}

/** Tempo-shaped span metrics: a CONSUMER series per stage, and a PRODUCER one for contrast. */
function spanSeries(): { labels: Record<string, string>; traceId: string }[] {
  const series = ORDERS_DESCRIPTION.stages.map((stage, i) => ({
    labels: <Record<string, string>> {
      [SPAN_METRIC_LABEL.SERVICE]: "payment-service",
      [SPAN_METRIC_LABEL.SPAN_NAME]: `process ${stage.input}`,
      [SPAN_METRIC_LABEL.SPAN_KIND]: SPAN_KIND_LABEL.CONSUMER,
      [SPAN_METRIC_LABEL.STATUS_CODE]: "STATUS_CODE_UNSET",
      [SPAN_METRIC_LABEL.STAGE]: stage.name,
      [SPAN_METRIC_LABEL.DESTINATION]: stage.input,
      [SPAN_METRIC_LABEL.OPERATION_TYPE]: "process",
    },
    traceId: traceId(i + 1),
  }));
  series.push({
    labels: {
      [SPAN_METRIC_LABEL.SERVICE]: "order-service",
      [SPAN_METRIC_LABEL.SPAN_NAME]: "send orders",
      [SPAN_METRIC_LABEL.SPAN_KIND]: SPAN_KIND_LABEL.PRODUCER,
      [SPAN_METRIC_LABEL.STATUS_CODE]: "STATUS_CODE_UNSET",
      [SPAN_METRIC_LABEL.STAGE]: ORDERS_DESCRIPTION.stages[0].name,
      [SPAN_METRIC_LABEL.DESTINATION]: "orders",
      [SPAN_METRIC_LABEL.OPERATION_TYPE]: "send",
    },
    traceId: "f".repeat(32),
  });
  return series;
}

/** The OpenMetrics text of scrape number `n`: every counter grows by 10 spans a scrape. */
function exposition(n: number, traceIdLabel: string): string {
  const name = SPAN_METRIC.LATENCY.prom;
  const lines = [`# TYPE ${name} histogram`];
  const now = Date.now() / 1000;
  for (const { labels, traceId } of spanSeries()) {
    const base = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(",");
    const count = 10 * n;
    for (const le of BOUNDS) {
      // Every span takes 30 ms: buckets from 0.05 s up hold them all; 0.05 carries the exemplar.
      const inBucket = le >= 0.05 ? count : 0;
      const exemplar = le === 0.05
        ? ` # {${traceIdLabel}="${traceId}"} 0.03 ${now.toFixed(3)}`
        : "";
      lines.push(`${name}_bucket{${base},le="${le}"} ${inBucket}${exemplar}`);
    }
    lines.push(`${name}_bucket{${base},le="+Inf"} ${count}`);
    lines.push(`${name}_sum{${base}} ${(0.03 * count).toFixed(3)}`);
    lines.push(`${name}_count{${base}} ${count}`);
  }
  lines.push("# EOF");
  return lines.join("\n") + "\n";
}

interface ExemplarSeries {
  seriesLabels: Record<string, string>;
  exemplars: { labels: Record<string, string> }[];
}

await toolTest(
  "span-metrics panels return data, and their exemplars carry the trace id Grafana links to Tempo",
  [PROMETHEUS_TOOL],
  async () => {
    // The label Tempo writes is the one the Grafana datasource looks up: read both configs.
    const tempo = parse(await Deno.readTextFile(INFRA.tempo)) as {
      overrides: { defaults: { metrics_generator: { trace_id_label_name?: string } } };
    };
    // Unset, Tempo labels exemplars with its default, `traceID`.
    const traceIdLabel = tempo.overrides.defaults.metrics_generator.trace_id_label_name ??
      "traceID";
    const datasources = parse(await Deno.readTextFile(INFRA.grafanaDatasources)) as {
      datasources: {
        uid: string;
        jsonData?: { exemplarTraceIdDestinations?: { name: string }[] };
      }[];
    };
    const destinations = datasources.datasources.find((d) => d.uid === "prometheus")?.jsonData
      ?.exemplarTraceIdDestinations?.map((d) => d.name) ?? [];

    let scrapes = 0;
    const controller = new AbortController();
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      signal: controller.signal,
      onListen: () => {},
    }, () =>
      new Response(exposition(++scrapes, traceIdLabel), {
        headers: { "content-type": "application/openmetrics-text; version=1.0.0; charset=utf-8" },
      }));
    try {
      await using prometheus = await startPrometheus({
        scrapeTarget: `127.0.0.1:${server.addr.port}`,
      });
      const withExemplars = PANEL_QUERIES.filter((query) => query.exemplar);
      assert.ok(withExemplars.length >= 3, "no panel query asks for exemplars");
      for (const query of withExemplars) {
        assert.ok(query.promql.includes(`${SPAN_METRIC.LATENCY.prom}_bucket`), query.promql);
        const rows = await pollUntil(async () => {
          const result = await queryPrometheus(prometheus.url, query.promql);
          return result.length > 0 ? result : undefined;
        }, { timeoutMs: 30_000, intervalMs: 500, description: `data for ${query.promql}` });
        // 30 ms spans: every quantile lands in the (0.01, 0.05] bucket.
        for (const row of rows) assert.ok(row.value > 0.01 && row.value <= 0.05, query.promql);

        const end = Date.now() / 1000;
        const found = await pollUntil(async () => {
          const response = await fetch(
            `${prometheus.url}/api/v1/query_exemplars?query=${
              encodeURIComponent(query.promql)
            }&start=${end - 300}&end=${end + 60}`,
          );
          const body = await response.json() as { status: string; data: ExemplarSeries[] };
          assert.equal(body.status, "success");
          return body.data.length > 0 ? body.data : undefined;
        }, { timeoutMs: 10_000, description: `exemplars of ${query.promql}` });
        for (const series of found) {
          assert.equal(series.seriesLabels[SPAN_METRIC_LABEL.SPAN_KIND], SPAN_KIND_LABEL.CONSUMER);
          for (const exemplar of series.exemplars) {
            // What Grafana does with it: a destination named like the label opens the trace.
            const linked = destinations.filter((name) => name in exemplar.labels);
            assert.deepEqual(linked, [EXEMPLAR_TRACE_ID_LABEL], JSON.stringify(exemplar));
            assert.match(exemplar.labels[EXEMPLAR_TRACE_ID_LABEL], /^[0-9a-f]{32}$/);
          }
        }
      }
    } finally {
      controller.abort();
      await server.finished;
    }
  },
);
