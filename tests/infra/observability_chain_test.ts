/**
 * The telemetry chain of the stack, with the real tools: OTLP/JSON posted to the locally built
 * Collector (the stack's exporter settings), scraped by Debian's Prometheus (the stack's
 * relabelling), read back with PromQL under the names in pipeline/telemetry/names.ts; and
 * traces forwarded by the Collector to an OTLP receiver.
 */

import assert from "node:assert/strict";
import { histogram, METRIC } from "../../pipeline/telemetry/names.ts";
import {
  OTELCOL_BINARY,
  pollUntil,
  queryPrometheus,
  startCollector,
  startPrometheus,
} from "../_observability.ts";
import { startOtlpReceiver } from "../_otlp_receiver.ts";
import { repoPath } from "./_infra_files.ts";
import { tool, toolTest } from "./_tools.ts";

const otelcol = await tool(OTELCOL_BINARY);
const prometheus = await tool("prometheus");

/** The stack's rule files, as prometheus.yml loads them (none yet is fine). */
const RULES_GLOB = repoPath("infra/prometheus/rules/*.yml");
const TRACE_ID = "5b8efff798038103d269b633813fc60c";
const SPAN_ID = "eee19b7ec3c1b174";
/** A domain histogram like the reference's, declared the way stages/ declares its own. */
const PAYMENT_LATENCY = histogram("payment_processing_latency_ms", "Payment latency", "ms");

function attr(key: string, value: string) {
  return { key, value: { stringValue: value } };
}

/** One OTLP/JSON export: a counter with an exemplar, three histograms, a gauge. */
function metricsPayload(nowNs: bigint) {
  const start = String(nowNs - 10_000_000_000n);
  const time = String(nowNs);
  const stage = [attr("stage", "process-payment")];
  const buckets = (unit: string) => unit === "s" ? [0.01, 0.1] : [10, 100];
  const hist = (name: { otel: string; unit: string }) => ({
    name: name.otel,
    unit: name.unit,
    histogram: {
      aggregationTemporality: 2,
      dataPoints: [{
        attributes: stage,
        startTimeUnixNano: start,
        timeUnixNano: time,
        count: "3",
        sum: name.unit === "s" ? 0.12 : 120,
        explicitBounds: buckets(name.unit),
        bucketCounts: ["1", "1", "1"],
        exemplars: [{ timeUnixNano: time, asDouble: 1, traceId: TRACE_ID, spanId: SPAN_ID }],
      }],
    },
  });
  return {
    resourceMetrics: [{
      resource: {
        attributes: [
          attr("service.name", "orders-pipeline"),
          attr("service.instance.id", "worker-1"),
          attr("telemetry.sdk.language", "js"),
        ],
      },
      scopeMetrics: [{
        scope: { name: "observability_chain_test" },
        metrics: [
          {
            name: METRIC.MESSAGES_CONSUMED.otel,
            unit: METRIC.MESSAGES_CONSUMED.unit,
            sum: {
              aggregationTemporality: 2,
              isMonotonic: true,
              dataPoints: [{
                attributes: stage,
                startTimeUnixNano: start,
                timeUnixNano: time,
                asInt: "7",
                exemplars: [{ timeUnixNano: time, asInt: "1", traceId: TRACE_ID, spanId: SPAN_ID }],
              }],
            },
          },
          {
            name: METRIC.IN_FLIGHT.otel,
            unit: METRIC.IN_FLIGHT.unit,
            gauge: { dataPoints: [{ attributes: stage, timeUnixNano: time, asInt: "2" }] },
          },
          hist(PAYMENT_LATENCY),
          hist(METRIC.MESSAGING_PROCESS_DURATION),
          hist(METRIC.END_TO_END_LATENCY),
        ],
      }],
    }],
  };
}

toolTest(
  "OTLP metrics reach Prometheus through the Collector under the names in names.ts",
  [otelcol, prometheus],
  async () => {
    await using collector = await startCollector();
    await using prom = await startPrometheus({
      scrapeTarget: collector.scrapeTarget,
      ruleFiles: [RULES_GLOB],
    });

    const nowNs = BigInt(Date.now()) * 1_000_000n;
    const response = await fetch(`${collector.url}/v1/metrics`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(metricsPayload(nowNs)),
    });
    assert.equal(response.status, 200, await response.text());

    const consumed = await pollUntil(async () => {
      const rows = await queryPrometheus(prom.url, METRIC.MESSAGES_CONSUMED.prom);
      return rows.length > 0 ? rows : undefined;
    }, { timeoutMs: 30_000, description: `${METRIC.MESSAGES_CONSUMED.prom} in Prometheus` });

    assert.equal(consumed.length, 1);
    assert.equal(consumed[0].value, 7);
    assert.equal(consumed[0].metric.__name__, "messages_consumed_total");
    assert.equal(consumed[0].metric.stage, "process-payment");
    // Resource attributes as labels, and the exporter's job/instance kept by honor_labels.
    assert.equal(consumed[0].metric.service_name, "orders-pipeline");
    assert.equal(consumed[0].metric.service_instance_id, "worker-1");
    assert.equal(consumed[0].metric.job, "orders-pipeline");
    assert.equal(consumed[0].metric.instance, "worker-1");
    assert.equal(consumed[0].metric.telemetry_sdk_language, undefined);

    // The rest of the export landed in the same scrape.
    for (
      const name of [
        METRIC.IN_FLIGHT.prom,
        `${PAYMENT_LATENCY.prom}_count`,
        `${PAYMENT_LATENCY.prom}_bucket`,
        `${METRIC.MESSAGING_PROCESS_DURATION.prom}_sum`,
        `${METRIC.END_TO_END_LATENCY.prom}_bucket`,
      ]
    ) {
      const rows = await queryPrometheus(prom.url, name);
      assert.ok(rows.length > 0, `expected series "${name}" in Prometheus`);
    }
    const [p95] = await queryPrometheus(
      prom.url,
      `histogram_quantile(0.95, sum by (le) (${PAYMENT_LATENCY.prom}_bucket))`,
    );
    // A third of the points are above the last bound: the quantile is that bound.
    assert.equal(p95.value, 100);
    const [inFlight] = await queryPrometheus(prom.url, METRIC.IN_FLIGHT.prom);
    assert.equal(inFlight.value, 2);

    // No name kept a unit suffix.
    const names = await (await fetch(`${prom.url}/api/v1/label/__name__/values`)).json() as {
      data: string[];
    };
    const suffixed = names.data.filter((n) => /_(milliseconds|seconds|ratio)(_|$)/.test(n));
    assert.deepEqual(suffixed.filter((n) => !n.startsWith("scrape_")), []);

    // Exemplars (trace ids) are stored, for Grafana's link to Tempo.
    const end = Date.now() / 1000 + 60;
    const exemplars = await pollUntil(async () => {
      const res = await fetch(
        `${prom.url}/api/v1/query_exemplars?query=${
          encodeURIComponent(METRIC.MESSAGES_CONSUMED.prom)
        }&start=${end - 600}&end=${end}`,
      );
      const body = await res.json() as {
        data: Array<{ exemplars: Array<{ labels: Record<string, string> }> }>;
      };
      const found = body.data.flatMap((series) => series.exemplars);
      return found.length > 0 ? found : undefined;
    }, { timeoutMs: 10_000, description: "an exemplar on messages_consumed_total" });
    assert.equal(exemplars[0].labels.trace_id, TRACE_ID);

    // The stack's rule files load into this Prometheus as they do into the stack's.
    const rules = await (await fetch(`${prom.url}/api/v1/rules`)).json() as {
      data: { groups: Array<{ file: string }> };
    };
    const expected = [];
    for await (const entry of Deno.readDir(repoPath("infra/prometheus/rules"))) {
      if (entry.name.endsWith(".yml")) expected.push(entry.name);
    }
    const loaded = new Set(rules.data.groups.map((g) => g.file.split("/").at(-1)));
    assert.deepEqual([...loaded].sort(), expected.sort());
  },
);

toolTest("the Collector forwards OTLP traces to the tracesTo receiver", [otelcol], async () => {
  await using receiver = await startOtlpReceiver();
  await using collector = await startCollector({ tracesTo: receiver.endpoint });
  const nowNs = BigInt(Date.now()) * 1_000_000n;
  const response = await fetch(`${collector.url}/v1/traces`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      resourceSpans: [{
        resource: { attributes: [attr("service.name", "orders-pipeline")] },
        scopeSpans: [{
          scope: { name: "observability_chain_test" },
          spans: [{
            traceId: TRACE_ID,
            spanId: SPAN_ID,
            name: "send orders",
            kind: 4,
            startTimeUnixNano: String(nowNs - 1_000_000n),
            endTimeUnixNano: String(nowNs),
            attributes: [attr("messaging.system", "kafka")],
          }],
        }],
      }],
    }),
  });
  assert.equal(response.status, 200, await response.text());
  const span = await receiver.waitFor(
    (r) => r.spans.find((s) => s.name === "send orders"),
    15_000,
    "span forwarded by the Collector",
  );
  assert.equal(span.traceId, TRACE_ID);
  assert.equal(span.kind, 4);
  assert.equal(span.resource["service.name"], "orders-pipeline");
});
