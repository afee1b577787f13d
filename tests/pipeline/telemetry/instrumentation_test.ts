import assert from "node:assert/strict";
import { setupTelemetry } from "../../../pipeline/telemetry/setup.ts";
import {
  currentTraceIds,
  recordError,
  setSpanAttributes,
} from "../../../pipeline/telemetry/instrumentation.ts";
import { ATTR, SPAN } from "../../../pipeline/telemetry/names.ts";
import { RetryableError } from "../../../pipeline/errors.ts";
import type { ConsumedRecord, RecordHeaders } from "../../../pipeline/transport/transport.ts";
import { type ReceivedSpan, startOtlpReceiver } from "../../_otlp_receiver.ts";
import { requires } from "../../_permissions.ts";

const SPAN_KIND = { INTERNAL: 1, PRODUCER: 4, CONSUMER: 5 } as const;
const encoder = new TextEncoder();

function consumed(topic: string, headers: RecordHeaders, key = "k-1"): ConsumedRecord {
  return {
    topic,
    partition: 2,
    offset: 41,
    key: encoder.encode(key),
    value: encoder.encode("{}"),
    headers,
    timestamp: 0,
  };
}

function byName(spans: ReceivedSpan[], name: string): ReceivedSpan | undefined {
  return spans.find((s) => s.name === name);
}

Deno.test(
  "traceSend() and traceProcess() make one trace across a header round-trip",
  requires("env", "net"),
  async () => {
    await using receiver = await startOtlpReceiver();
    const telemetry = await setupTelemetry({
      serviceName: "test-worker",
      serviceVersion: "1.2.3",
      instanceId: "w-0",
      env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.endpoint}/v1/traces` },
    });
    try {
      const ins = telemetry.instrumentation;
      assert.equal(ins.enabled, true);
      const headers: RecordHeaders = { "content-type": "application/json" };
      const sentIds = await ins.traceSend(
        "events",
        headers,
        { key: "k-1", partition: 2, stage: "publish", extra: { "item.kind": "x" } },
        () => Promise.resolve(currentTraceIds()),
      );
      assert.match(headers.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      assert.equal(headers.traceparent.split("-")[1], sentIds.trace_id);
      assert.equal(headers.traceparent.split("-")[2], sentIds.span_id);

      // The consumer side sees only the record: the headers are its sole link to the producer.
      const record = consumed("events", { ...headers });
      const outHeaders: RecordHeaders = {};
      await ins.traceProcess(record, "group-a", "handle", async (span) => {
        span.setAttribute("custom.flag", true);
        setSpanAttributes({ "item.id": "id-9" });
        await ins.traceAttempt("handle", 1, () => Promise.reject(new RetryableError("flaky")))
          .catch(() => {});
        await ins.traceAttempt("handle", 2, () => Promise.resolve());
        await ins.traceSend("results", outHeaders, { key: "k-1", stage: "handle" }, async () => {});
      });
      await telemetry.forceFlush();

      const spans = await receiver.waitFor(
        (r) => r.spans.length >= 5 ? r.spans : undefined,
        5000,
        "five spans",
      );
      const send = byName(spans, SPAN.send("events"))!;
      const process = byName(spans, SPAN.process("events"))!;
      const attempts = spans.filter((s) => s.name === SPAN.attempt("handle"));
      const send2 = byName(spans, SPAN.send("results"))!;
      assert.ok(send && process && send2);
      assert.equal(attempts.length, 2);

      // One trace, correct parents.
      for (const s of spans) assert.equal(s.traceId, send.traceId);
      assert.equal(send.parentSpanId, undefined);
      assert.equal(process.parentSpanId, send.spanId);
      for (const a of attempts) assert.equal(a.parentSpanId, process.spanId);
      assert.equal(send2.parentSpanId, process.spanId);
      assert.equal(outHeaders.traceparent.split("-")[2], send2.spanId);

      // Kinds and semconv attributes.
      assert.equal(send.kind, SPAN_KIND.PRODUCER);
      assert.equal(process.kind, SPAN_KIND.CONSUMER);
      assert.equal(attempts[0].kind, SPAN_KIND.INTERNAL);
      assert.deepEqual(send.attributes, {
        [ATTR.MESSAGING_SYSTEM]: "kafka",
        [ATTR.MESSAGING_DESTINATION_NAME]: "events",
        [ATTR.MESSAGING_OPERATION_TYPE]: "send",
        [ATTR.MESSAGING_OPERATION_NAME]: "send",
        [ATTR.MESSAGING_KAFKA_MESSAGE_KEY]: "k-1",
        [ATTR.MESSAGING_DESTINATION_PARTITION_ID]: "2",
        [ATTR.PIPELINE_STAGE]: "publish",
        "item.kind": "x",
      });
      assert.deepEqual(process.attributes, {
        [ATTR.MESSAGING_SYSTEM]: "kafka",
        [ATTR.MESSAGING_DESTINATION_NAME]: "events",
        [ATTR.MESSAGING_OPERATION_TYPE]: "process",
        [ATTR.MESSAGING_OPERATION_NAME]: "process",
        [ATTR.MESSAGING_DESTINATION_PARTITION_ID]: "2",
        [ATTR.MESSAGING_KAFKA_OFFSET]: 41,
        [ATTR.MESSAGING_CONSUMER_GROUP_NAME]: "group-a",
        [ATTR.MESSAGING_KAFKA_MESSAGE_KEY]: "k-1",
        [ATTR.PIPELINE_STAGE]: "handle",
        "custom.flag": true,
        "item.id": "id-9",
      });

      // The failed attempt is recorded, the good one is not.
      const failed = attempts.find((a) => a.attributes[ATTR.PIPELINE_ATTEMPT] === 1)!;
      const ok = attempts.find((a) => a.attributes[ATTR.PIPELINE_ATTEMPT] === 2)!;
      assert.equal(failed.statusCode, 2);
      assert.equal(failed.attributes[ATTR.ERROR_TYPE], "RetryableError");
      assert.equal(failed.events[0].name, "exception");
      assert.equal(failed.events[0].attributes["exception.message"], "flaky");
      assert.equal(ok.statusCode, 0);
      assert.equal(process.statusCode, 0);

      // Resource.
      assert.equal(send.resource["service.name"], "test-worker");
      assert.equal(send.resource["service.version"], "1.2.3");
      assert.equal(send.resource["service.instance.id"], "w-0");
      assert.equal(send.scope, "pipeline");
    } finally {
      await telemetry.shutdown();
    }
  },
);

Deno.test(
  "traceProcess() in link mode starts a new trace linked to the producer",
  requires("env", "net"),
  async () => {
    await using receiver = await startOtlpReceiver();
    const telemetry = await setupTelemetry({
      serviceName: "test-worker",
      mode: "link",
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_METRICS_EXPORTER: "none" },
    });
    try {
      const ins = telemetry.instrumentation;
      assert.equal(ins.mode, "link");
      const headers: RecordHeaders = {};
      await ins.traceSend("events", headers, {}, async () => {});
      await ins.traceProcess(consumed("events", headers), "g", "s", async () => {});
      await telemetry.forceFlush();
      const [send, process] = await receiver.waitFor(
        (r) => {
          const s = byName(r.spans, SPAN.send("events"));
          const p = byName(r.spans, SPAN.process("events"));
          return s && p ? [s, p] : undefined;
        },
        5000,
        "send and process spans",
      );
      assert.notEqual(process.traceId, send.traceId);
      assert.equal(process.parentSpanId, undefined);
      assert.deepEqual(process.links, [{ traceId: send.traceId, spanId: send.spanId }]);
    } finally {
      await telemetry.shutdown();
    }
  },
);

Deno.test(
  "traceProcess() marks the span failed when the handler rejects",
  requires("env", "net"),
  async () => {
    await using receiver = await startOtlpReceiver();
    const telemetry = await setupTelemetry({
      serviceName: "test-worker",
      env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.endpoint}/v1/traces` },
    });
    try {
      const ins = telemetry.instrumentation;
      await assert.rejects(
        ins.traceProcess(
          consumed("events", {}),
          "g",
          "s",
          () => Promise.reject(new TypeError("x")),
        ),
        TypeError,
      );
      await ins.traceProcess(consumed("other", {}), "g", "s", () => {
        recordError(new RetryableError("gave up"));
        return Promise.resolve();
      });
      await assert.rejects(
        ins.traceSend("events", {}, {}, () => Promise.reject(new RetryableError("down"))),
      );
      await telemetry.forceFlush();
      const spans = await receiver.waitFor(
        (r) => r.spans.length >= 3 ? r.spans : undefined,
        5000,
        "three spans",
      );
      const thrown = byName(spans, SPAN.process("events"))!;
      assert.equal(thrown.statusCode, 2);
      assert.equal(thrown.attributes[ATTR.ERROR_TYPE], "TypeError");
      assert.equal(thrown.parentSpanId, undefined, "no producer context: a root span");
      const marked = byName(spans, SPAN.process("other"))!;
      assert.equal(marked.statusCode, 2);
      assert.equal(marked.attributes[ATTR.ERROR_TYPE], "RetryableError");
      assert.equal(marked.events[0].name, "exception");
      const send = byName(spans, SPAN.send("events"))!;
      assert.equal(send.attributes[ATTR.ERROR_TYPE], "RetryableError");
      assert.equal(send.statusCode, 2);
    } finally {
      await telemetry.shutdown();
    }
  },
);

Deno.test(
  "telemetry.instrumentation gives the runner spans and metrics through one interface",
  requires("env", "net"),
  async () => {
    await using receiver = await startOtlpReceiver();
    const telemetry = await setupTelemetry({
      serviceName: "runtime",
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_LOGS_EXPORTER: "none" },
    });
    try {
      const runtime = telemetry.instrumentation;
      assert.equal(runtime.metrics, telemetry.metrics);
      const headers: RecordHeaders = {};
      await runtime.traceSend("events", headers, { key: "k" }, async () => {});
      await runtime.traceProcess(consumed("events", headers), "g", "s", () => {
        runtime.setSpanAttributes({ "item.id": "i-1" });
        runtime.metrics.consumed("s", "events", 2);
        return runtime.traceAttempt("s", 1, () => Promise.resolve());
      });
      await telemetry.forceFlush();
      const process = await receiver.waitFor(
        (r) => byName(r.spans, SPAN.process("events")),
        5000,
        "the process span",
      );
      assert.equal(process.attributes["item.id"], "i-1");
      await receiver.waitFor(
        (r) => r.metrics.find((m) => m.name === "messages_consumed"),
        5000,
        "messages_consumed",
      );
    } finally {
      await telemetry.shutdown();
    }
  },
);

Deno.test(
  "metrics without traces: the instrumentation records metrics and no span",
  requires("env", "net"),
  async () => {
    await using receiver = await startOtlpReceiver();
    const telemetry = await setupTelemetry({
      serviceName: "metrics-only",
      env: { OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${receiver.endpoint}/v1/metrics` },
    });
    try {
      const ins = telemetry.instrumentation;
      assert.equal(ins.enabled, false);
      const headers: RecordHeaders = {};
      await ins.traceSend("events", headers, { key: "k" }, () => Promise.resolve());
      assert.equal(headers.traceparent, undefined, "no tracer: no trace context written");
      ins.metrics.consumed("s", "events", 0);
      await telemetry.forceFlush();
      await receiver.waitFor(
        (r) => r.metrics.find((m) => m.name === "messages_consumed"),
        5000,
        "messages_consumed",
      );
    } finally {
      await telemetry.shutdown();
    }
  },
);
