import assert from "node:assert/strict";
import { propagation, trace } from "@opentelemetry/api";
import { noopTelemetry, setupTelemetry } from "../../../pipeline/telemetry/setup.ts";
import { currentTraceIds } from "../../../pipeline/telemetry/instrumentation.ts";
import { configureLogging, resetLogging } from "../../../pipeline/log.ts";
import type { ConsumedRecord, RecordHeaders } from "../../../pipeline/transport/transport.ts";
import { startOtlpReceiver } from "../../_otlp_receiver.ts";
import { requires } from "../../_permissions.ts";

const record: ConsumedRecord = {
  topic: "events",
  partition: 0,
  offset: 0,
  key: null,
  value: null,
  headers: {},
  timestamp: 0,
};

Deno.test(
  "telemetry with no endpoint is off, registers nothing and exports nothing",
  requires("env", "net"),
  async () => {
    await using receiver = await startOtlpReceiver();
    const telemetry = await setupTelemetry({ serviceName: "off", env: {} });
    assert.equal(telemetry.mode, "off");
    assert.equal(telemetry.instrumentation.enabled, false);
    const headers: RecordHeaders = {};
    const result = await telemetry.instrumentation.traceSend("t", headers, {}, () => {
      assert.deepEqual(currentTraceIds(), {});
      return Promise.resolve(42);
    });
    assert.equal(result, 42);
    assert.deepEqual(headers, {}, "no traceparent written");
    await telemetry.instrumentation.traceProcess(record, "g", "s", (span) => {
      assert.equal(span.isRecording(), false);
      return Promise.resolve();
    });
    telemetry.metrics.consumed("s", "t", 0);
    telemetry.metrics.counter({ otel: "x", prom: "x_total", unit: "1", description: "" }).add(1);
    await telemetry.forceFlush();
    await telemetry.shutdown();
    // Nothing was registered globally: the API still hands out its no-op objects.
    assert.equal(propagation.fields().length, 0);
    assert.equal(trace.getTracer("x").startSpan("y").isRecording(), false);
    assert.equal(receiver.requests.length, 0);
  },
);

Deno.test("disabled instrumentation costs about a function call", async () => {
  const ins = noopTelemetry().instrumentation;
  const metrics = noopTelemetry().metrics;
  const fn = () => Promise.resolve(1);
  const rounds = 50_000;
  async function time(body: () => Promise<unknown>): Promise<number> {
    const start = performance.now();
    for (let i = 0; i < rounds; i++) await body();
    return performance.now() - start;
  }
  // Warm both paths up, then take the best of three of each (the machine is shared).
  await time(fn);
  await time(() => ins.traceProcess(record, "g", "s", fn));
  let bare = Infinity;
  let wrapped = Infinity;
  for (let i = 0; i < 3; i++) {
    bare = Math.min(bare, await time(fn));
    wrapped = Math.min(
      wrapped,
      await time(() =>
        ins.traceProcess(record, "g", "s", () => {
          metrics.consumed("s", "events", 0);
          return ins.traceAttempt("s", 1, () => ins.traceSend("out", {}, {}, fn));
        })
      ),
    );
  }
  const perCallUs = ((wrapped - bare) / rounds) * 1000;
  assert.ok(perCallUs < 5, `overhead ${perCallUs.toFixed(3)} µs per record`);
});

Deno.test(
  "shutdown() unregisters the globals so telemetry can be set up again",
  requires("env", "net"),
  async () => {
    await using receiver = await startOtlpReceiver();
    const env = { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.endpoint}/v1/traces` };
    for (let round = 0; round < 2; round++) {
      const telemetry = await setupTelemetry({ serviceName: "again", env });
      assert.equal(telemetry.mode, "sdk");
      assert.deepEqual(propagation.fields().slice(0, 2), ["traceparent", "tracestate"]);
      await telemetry.instrumentation.traceSend(`t${round}`, {}, {}, async () => {
        // The context manager keeps the span active across awaits.
        await new Promise((resolve) => setTimeout(resolve, 1));
        assert.match(currentTraceIds().trace_id ?? "", /^[0-9a-f]{32}$/);
      });
      await telemetry.shutdown();
      await telemetry.shutdown();
    }
    assert.deepEqual(receiver.spans.map((s) => s.name).sort(), ["send t0", "send t1"]);
  },
);

Deno.test(
  "setupTelemetry() refuses to take over providers another setup owns",
  requires("env", "net"),
  async () => {
    const env = { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://127.0.0.1:9/v1/traces" };
    const first = await setupTelemetry({ serviceName: "first", env });
    try {
      await assert.rejects(setupTelemetry({ serviceName: "second", env }), /another one/);
    } finally {
      await first.shutdown();
    }
  },
);

Deno.test(
  "OTLP headers from OTEL_EXPORTER_OTLP_HEADERS reach the receiver",
  requires("env", "net"),
  async () => {
    await using receiver = await startOtlpReceiver();
    const telemetry = await setupTelemetry({
      serviceName: "headers",
      env: {
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.endpoint}/v1/traces`,
        OTEL_EXPORTER_OTLP_HEADERS: "x-scope-orgid=tenant-1",
      },
    });
    try {
      await telemetry.instrumentation.traceSend("t", {}, {}, async () => {});
      await telemetry.forceFlush();
      const request = await receiver.waitFor((r) => r.requests[0], 5000, "a request");
      assert.equal(request.headers["x-scope-orgid"], "tenant-1");
    } finally {
      await telemetry.shutdown();
    }
  },
);

Deno.test("OTEL_DENO=true is detected: nothing registered, a notice logged once", async () => {
  const lines: string[] = [];
  await configureLogging({ level: "info", write: (l) => lines.push(l) });
  try {
    const env = { OTEL_DENO: "true", OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9" };
    const a = await setupTelemetry({ serviceName: "deno", env });
    const b = await setupTelemetry({ serviceName: "deno", env });
    assert.equal(a.mode, "deno");
    assert.equal(b.mode, "deno");
    assert.equal(propagation.fields().length, 0, "no propagator registered here");
    const notices = lines.map((l) => JSON.parse(l)).filter((l) => /built-in/.test(l.message));
    assert.equal(notices.length, 1);
    assert.equal(notices[0].logger, "pipeline.telemetry");
    await a.shutdown();
    await b.shutdown();
  } finally {
    await resetLogging();
  }
});

Deno.test(
  "under real OTEL_DENO=true, spans go out through Deno's own exporter",
  requires("env", "net", "run"),
  async () => {
    await using receiver = await startOtlpReceiver();
    const script = `
    import { setupTelemetry } from ${
      JSON.stringify(import.meta.resolve("../../../pipeline/telemetry/setup.ts"))
    };
    import { configureLogging } from ${
      JSON.stringify(import.meta.resolve("../../../pipeline/log.ts"))
    };
    await configureLogging({ level: "info" });
    const telemetry = await setupTelemetry({ serviceName: "deno-child" });
    const headers = {};
    await telemetry.instrumentation.traceSend("t", headers, {}, async () => {});
    await telemetry.shutdown();
    console.log(JSON.stringify({ mode: telemetry.mode, headers }));
  `;
    const env = { ...Deno.env.toObject() };
    delete env.RUST_BACKTRACE;
    for (const k of Object.keys(env)) if (k.startsWith("OTEL_")) delete env[k];
    Object.assign(env, {
      OTEL_DENO: "true",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_SERVICE_NAME: "deno-child",
    });
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--ext=ts", script],
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const summary = JSON.parse(new TextDecoder().decode(out.stdout).trim());
    assert.equal(summary.mode, "deno");
    assert.match(summary.headers.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.match(stderr, /Deno's built-in OpenTelemetry is on/);
    const request = await receiver.waitFor(
      (r) => r.requests.find((q) => q.path === "/v1/traces"),
      10_000,
      "Deno's trace export",
    );
    assert.match(request.contentType, /protobuf/);
  },
);
