import assert from "node:assert/strict";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { createPipelineMetrics } from "../../../pipeline/telemetry/metrics.ts";
import { METRIC } from "../../../pipeline/telemetry/names.ts";
import {
  PrometheusReader,
  renderPrometheus,
  toMetricFamilies,
} from "../../../pipeline/telemetry/prometheus.ts";
import type { MetricFamily } from "../../../pipeline/telemetry/prometheus.ts";
import { ORDER_METRIC } from "../../../stages/telemetry.ts";
import { tool, toolTest } from "../../infra/_tools.ts";

/** Records every framework and orders metric once, and renders the reader's exposition. */
async function everyMetric(instance: string): Promise<MetricFamily[]> {
  const reader = new PrometheusReader();
  const provider = new MeterProvider({
    resource: resourceFromAttributes({
      "service.name": "payment-service",
      "service.instance.id": instance,
    }),
    readers: [reader],
  });
  const m = createPipelineMetrics(provider.getMeter("pipeline"));
  m.consumed("pay", "orders", 0, "payment-service");
  m.failed("pay", "GatewayUnavailableError");
  m.deadLettered("pay", "GatewayUnavailableError", "orders.dlq");
  m.retried("pay", 0);
  m.duplicateSkipped("pay");
  m.processDuration("pay", "orders", 12, "output", ORDER_METRIC.PAYMENT_PROCESSING_LATENCY);
  m.sent("payments");
  m.operationDuration("send", "payments", 0.004);
  m.inFlight(1);
  m.observeLag(() => [{ topic: "orders", partition: 0, group: "payment-service", lag: 7 }]);
  m.e2eLatency("pay", 40);
  m.workerRestart("pay");
  m.counter(ORDER_METRIC.ORDERS_PUBLISHED).add(3);
  m.counter(ORDER_METRIC.ORDERS_FAILED).add(0);
  m.histogram(ORDER_METRIC.ORDER_PUBLISH_LATENCY).record(2);
  const families = await reader.snapshot();
  await provider.shutdown();
  return families;
}

Deno.test("renderPrometheus() names every metric as Prometheus sees it through the Collector", async () => {
  const text = renderPrometheus(await everyMetric("w0"));
  const typed = new Map(
    [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]),
  );
  const expected = [...Object.values(METRIC), ...Object.values(ORDER_METRIC)];
  for (const name of expected) {
    assert.ok(typed.has(name.prom), `${name.prom} in:\n${text}`);
  }
  assert.equal(typed.size, expected.length, [...typed.keys()].join(", "));
  assert.equal(typed.get(METRIC.MESSAGES_CONSUMED.prom), "counter");
  assert.equal(typed.get(METRIC.CONSUMER_LAG.prom), "gauge");
  assert.equal(typed.get(METRIC.IN_FLIGHT.prom), "gauge");
  assert.equal(typed.get(ORDER_METRIC.PAYMENT_PROCESSING_LATENCY.prom), "histogram");
});

Deno.test("renderPrometheus() writes cumulative buckets, +Inf, sum, count and resource labels", () => {
  const text = renderPrometheus([{
    name: "latency_ms",
    type: "histogram",
    help: "Latency",
    samples: [{
      labels: { service_instance_id: "w0", stage: 'a"b' },
      buckets: { bounds: [1, 5], counts: [2, 3, 1] },
      sum: 20,
      count: 6,
    }],
  }]);
  assert.equal(
    text,
    [
      "# HELP latency_ms Latency",
      "# TYPE latency_ms histogram",
      'latency_ms_bucket{service_instance_id="w0",stage="a\\"b",le="1"} 2',
      'latency_ms_bucket{service_instance_id="w0",stage="a\\"b",le="5"} 5',
      'latency_ms_bucket{service_instance_id="w0",stage="a\\"b",le="+Inf"} 6',
      'latency_ms_sum{service_instance_id="w0",stage="a\\"b"} 20',
      'latency_ms_count{service_instance_id="w0",stage="a\\"b"} 6',
      "",
    ].join("\n"),
  );
});

Deno.test("renderPrometheus() merges two workers' families under one TYPE line", async () => {
  const text = renderPrometheus([...(await everyMetric("w0")), ...(await everyMetric("w1"))]);
  assert.equal([...text.matchAll(/^# TYPE messages_consumed_total /gm)].length, 1);
  assert.match(text, /messages_consumed_total\{[^}]*service_instance_id="w0"[^}]*\} 1/);
  assert.match(text, /messages_consumed_total\{[^}]*service_instance_id="w1"[^}]*\} 1/);
});

Deno.test("toMetricFamilies() leaves out nothing recorded and adds no unit suffix", async () => {
  const families = await everyMetric("w0");
  assert.ok(families.every((f) => !/_milliseconds|_seconds$/.test(f.name)));
  assert.deepEqual(
    toMetricFamilies({ resource: resourceFromAttributes({}), scopeMetrics: [] }),
    [],
  );
});

toolTest(
  "promtool check metrics accepts the exposition of every metric of two workers",
  [await tool("promtool")],
  async ([promtool]) => {
    const text = renderPrometheus([...(await everyMetric("w0")), ...(await everyMetric("w1"))]);
    const child = new Deno.Command(promtool, {
      args: ["check", "metrics"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(text));
    await writer.close();
    const { code, stdout, stderr } = await child.output();
    const said = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    // A parse error (a second TYPE line, a bad label) exits 1. Lint findings exit 3: the only
    // ones allowed are the reference's `_ms` names, which the dashboards keep on purpose.
    assert.ok(code === 0 || code === 3, `promtool exited ${code}: ${said}`);
    const findings = said.split("\n").filter((line) => line.trim() !== "");
    assert.deepEqual(
      findings.filter((line) =>
        !line.endsWith("metric names should not contain abbreviated units")
      ),
      [],
    );
  },
);
