import assert from "node:assert/strict";
import { setupTelemetry } from "../../../pipeline/telemetry/setup.ts";
import {
  counter,
  histogram,
  LATENCY_BUCKETS_MS,
  LATENCY_BUCKETS_S,
  METRIC,
} from "../../../pipeline/telemetry/names.ts";
import { type ReceivedMetric, startOtlpReceiver } from "../../_otlp_receiver.ts";
import { requires } from "../../_permissions.ts";

const ITEMS_PUBLISHED = counter("items_published", "Items published by the test stage");
const HANDLE_LATENCY = histogram("handle_latency_ms", "Handler latency of the test stage", "ms");

Deno.test(
  "PipelineMetrics exports every metric with its name, unit, kind and labels",
  requires("env", "net"),
  async () => {
    await using receiver = await startOtlpReceiver();
    const telemetry = await setupTelemetry({
      serviceName: "metrics-test",
      env: { OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${receiver.endpoint}/v1/metrics` },
    });
    try {
      const m = telemetry.metrics;
      m.consumed("handle", "events", 1, "group-a");
      m.consumed("handle", "events", 1, "group-a");
      m.failed("handle", "RetryableError");
      m.deadLettered("handle", "ValidationError", "events.dlq");
      m.retried("handle", 0);
      m.duplicateSkipped("handle");
      m.processDuration("handle", "events", 12, "output", HANDLE_LATENCY);
      m.processDuration("handle", "events", 2500, "dead-lettered");
      m.sent("results");
      m.operationDuration("send", "results", 0.004);
      m.inFlight(1, "handle");
      m.inFlight(1, "handle");
      m.inFlight(-1, "handle");
      const stop = m.observeLag(
        () => [{ topic: "events", partition: 1, group: "group-a", lag: 7 }],
      );
      m.e2eLatency("handle", 40);
      m.workerRestart("handle");
      m.counter(ITEMS_PUBLISHED).add(3, { stage: "publish" });
      assert.equal(m.counter(ITEMS_PUBLISHED), m.counter(ITEMS_PUBLISHED), "cached");
      await telemetry.forceFlush();
      stop();

      const byName = await receiver.waitFor(
        (r) => {
          const map = new Map<string, ReceivedMetric>(r.metrics.map((x) => [x.name, x]));
          return map.has(METRIC.CONSUMER_LAG.otel) ? map : undefined;
        },
        5000,
        "the lag gauge",
      );
      const get = (name: string) => {
        const metric = byName.get(name);
        assert.ok(metric, `metric ${name} missing; got ${[...byName.keys()].join(", ")}`);
        return metric;
      };
      const counters = [
        METRIC.MESSAGES_CONSUMED,
        METRIC.MESSAGING_CONSUMED,
        METRIC.MESSAGES_FAILED,
        METRIC.DLQ_MESSAGES,
        METRIC.RETRIES,
        METRIC.DUPLICATES_SKIPPED,
        METRIC.MESSAGING_SENT,
        METRIC.WORKER_RESTARTS,
        ITEMS_PUBLISHED,
      ];
      for (const name of counters) {
        const metric = get(name.otel);
        assert.equal(metric.type, "sum", name.otel);
        assert.equal(metric.isMonotonic, true, name.otel);
        assert.equal(metric.unit, name.unit, name.otel);
        assert.equal(metric.description, name.description, name.otel);
      }
      assert.equal(get(METRIC.MESSAGES_CONSUMED.otel).points[0].value, 2);
      assert.deepEqual(get(METRIC.MESSAGES_CONSUMED.otel).points[0].attributes, {
        stage: "handle",
        topic: "events",
        partition: "1",
      });
      assert.deepEqual(get(METRIC.MESSAGING_CONSUMED.otel).points[0].attributes, {
        "messaging.system": "kafka",
        "messaging.destination.name": "events",
        "messaging.destination.partition.id": "1",
        "messaging.operation.name": "process",
        "messaging.consumer.group.name": "group-a",
      });
      assert.deepEqual(get(METRIC.DLQ_MESSAGES.otel).points[0].attributes, {
        stage: "handle",
        error_type: "ValidationError",
        topic: "events.dlq",
      });
      assert.deepEqual(get(METRIC.RETRIES.otel).points[0].attributes, {
        stage: "handle",
        tier: "0",
      });
      assert.equal(get(ITEMS_PUBLISHED.otel).points[0].value, 3);

      const inFlight = get(METRIC.IN_FLIGHT.otel);
      assert.equal(inFlight.type, "sum");
      assert.equal(inFlight.isMonotonic, false);
      assert.equal(inFlight.points[0].value, 1);

      const lag = get(METRIC.CONSUMER_LAG.otel);
      assert.equal(lag.type, "gauge");
      assert.deepEqual(lag.points[0], {
        ...lag.points[0],
        value: 7,
        attributes: { topic: "events", partition: "1", group: "group-a" },
      });

      const processS = get(METRIC.MESSAGING_PROCESS_DURATION.otel);
      assert.equal(processS.type, "histogram");
      assert.equal(processS.unit, "s");
      assert.deepEqual(processS.points[0].explicitBounds, LATENCY_BUCKETS_S);
      const success = processS.points.find((p) => p.attributes.outcome === "output")!;
      assert.equal(success.sum, 0.012);
      assert.equal(success.attributes.stage, "handle");
      assert.equal(success.attributes["messaging.destination.name"], "events");
      const stageMs = get(HANDLE_LATENCY.otel);
      assert.equal(stageMs.unit, "ms");
      assert.deepEqual(stageMs.points[0].explicitBounds, LATENCY_BUCKETS_MS);
      assert.equal(stageMs.points[0].count, 1);
      assert.equal(stageMs.points[0].sum, 12);
      assert.deepEqual(get(METRIC.END_TO_END_LATENCY.otel).points[0].explicitBounds, [
        ...LATENCY_BUCKETS_MS,
      ]);
      assert.deepEqual(get(METRIC.MESSAGING_OPERATION_DURATION.otel).points[0].explicitBounds, [
        ...LATENCY_BUCKETS_S,
      ]);
      assert.equal(get(METRIC.MESSAGES_CONSUMED.otel).resource["service.name"], "metrics-test");
    } finally {
      await telemetry.shutdown();
    }
  },
);

Deno.test(
  "metrics are exported periodically at OTEL_METRIC_EXPORT_INTERVAL",
  requires("env", "net"),
  async () => {
    await using receiver = await startOtlpReceiver();
    const telemetry = await setupTelemetry({
      serviceName: "metrics-test",
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
        OTEL_TRACES_EXPORTER: "none",
        OTEL_LOGS_EXPORTER: "none",
        OTEL_METRIC_EXPORT_INTERVAL: "100",
      },
    });
    try {
      telemetry.metrics.workerRestart("s");
      // No forceFlush: the periodic reader must send it by itself.
      await receiver.waitFor(
        (r) => r.metrics.some((x) => x.name === METRIC.WORKER_RESTARTS.otel),
        5000,
        "a periodic export",
      );
      assert.ok(receiver.requests.every((r) => r.path === "/v1/metrics"));
      assert.ok(receiver.requests.every((r) => r.contentType.includes("application/json")));
    } finally {
      await telemetry.shutdown();
    }
  },
);
