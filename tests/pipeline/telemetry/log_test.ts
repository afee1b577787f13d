import assert from "node:assert/strict";
import {
  configureLogging,
  getLogger,
  parseLogLevel,
  redact,
  REDACTED,
  resetLogging,
} from "../../../pipeline/log.ts";
import { setupTelemetry } from "../../../pipeline/telemetry/setup.ts";
import { currentTraceIds } from "../../../pipeline/telemetry/instrumentation.ts";
import { ConfigError } from "../../../pipeline/errors.ts";
import { startOtlpReceiver } from "../../_otlp_receiver.ts";
import { requires } from "../../_permissions.ts";

Deno.test(
  "log lines are JSON with trace_id and span_id while a span is active",
  requires("env", "net"),
  async () => {
    await using receiver = await startOtlpReceiver();
    const lines: string[] = [];
    await configureLogging({ level: "info", write: (l) => lines.push(l) });
    const telemetry = await setupTelemetry({
      serviceName: "log-test",
      env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.endpoint}/v1/traces` },
    });
    try {
      const log = getLogger(["pipeline", "test"]);
      log.info("Outside any span");
      let ids: { trace_id?: string; span_id?: string } = {};
      await telemetry.instrumentation.traceSend("t", {}, {}, async () => {
        await Promise.resolve();
        log.info("Sent {count} records", { count: 3, stage: "s1" });
        ids = currentTraceIds();
      });
      log.debug("Below the level");
      assert.equal(lines.length, 2);
      const outside = JSON.parse(lines[0]);
      assert.equal(outside.level, "info");
      assert.equal(outside.logger, "pipeline.test");
      assert.equal(outside.message, "Outside any span");
      assert.ok(!("trace_id" in outside) && !("span_id" in outside));
      assert.ok(!Number.isNaN(Date.parse(outside.ts)));
      const inside = JSON.parse(lines[1]);
      assert.equal(inside.message, "Sent 3 records");
      assert.equal(inside.count, 3);
      assert.equal(inside.stage, "s1");
      assert.match(inside.trace_id, /^[0-9a-f]{32}$/);
      assert.equal(inside.trace_id, ids.trace_id);
      assert.equal(inside.span_id, ids.span_id);
    } finally {
      await telemetry.shutdown();
      await resetLogging();
    }
  },
);

Deno.test("secrets are redacted in properties, nested values and the message", async () => {
  const lines: string[] = [];
  await configureLogging({ level: "info", write: (l) => lines.push(l) });
  try {
    getLogger("pipeline").info("Connecting with {password} as {user}", {
      user: "svc",
      password: "hunter2",
      sasl: { mechanism: "plain", username: "u", password: "p" },
      config: { clientSecret: "s3", Authorization: "Bearer abc", apiToken: "t0k", port: 9092 },
      SASL_PASSWORD: "x",
      error: new Error("boom"),
    });
    assert.equal(lines.length, 1);
    const text = lines[0];
    for (const secret of ["hunter2", "Bearer abc", "t0k", 's3"', '"p"']) {
      assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
    }
    const line = JSON.parse(text);
    assert.equal(line.message, `Connecting with "${REDACTED}" as "svc"`);
    assert.equal(line.password, REDACTED);
    assert.equal(line.sasl, REDACTED);
    assert.equal(line.SASL_PASSWORD, REDACTED);
    assert.deepEqual(line.config, {
      clientSecret: REDACTED,
      Authorization: REDACTED,
      apiToken: REDACTED,
      port: 9092,
    });
    assert.equal(line.error.type, "Error");
    assert.equal(line.error.message, "boom");
  } finally {
    await resetLogging();
  }
  assert.deepEqual(redact({ a: [{ token: 1 }], b: 2n }), { a: [{ token: REDACTED }], b: "2" });
});

Deno.test(
  "OTLP log export carries trace ids and redacted attributes",
  requires("env", "net"),
  async () => {
    await using receiver = await startOtlpReceiver();
    const telemetry = await setupTelemetry({
      serviceName: "log-test",
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_METRICS_EXPORTER: "none" },
    });
    await configureLogging({ level: "info", otlp: true, write: () => {} });
    try {
      await telemetry.instrumentation.traceAttempt("s", 1, () => {
        getLogger(["pipeline", "otlp"]).warn("Retrying {stage}", { stage: "s", token: "abc" });
        return Promise.resolve();
      });
      await telemetry.forceFlush();
      const log = await receiver.waitFor((r) => r.logs[0], 5000, "a log record");
      const span = await receiver.waitFor((r) => r.spans[0], 5000, "a span");
      assert.equal(log.body, 'Retrying "s"');
      assert.equal(log.severityText, "WARNING");
      assert.equal(log.severityNumber, 13);
      assert.equal(log.attributes.token, REDACTED);
      assert.equal(log.attributes["log.logger"], "pipeline.otlp");
      assert.equal(log.traceId, span.traceId);
      assert.equal(log.spanId, span.spanId);
      assert.equal(log.resource["service.name"], "log-test");
    } finally {
      await telemetry.shutdown();
      await resetLogging();
    }
  },
);

Deno.test(
  "logs go to stderr, leaving stdout for the command's output",
  requires("env", "run"),
  async () => {
    const script = `
    import { configureLogging, getLogger } from ${
      JSON.stringify(import.meta.resolve("../../../pipeline/log.ts"))
    };
    await configureLogging({ level: "info" });
    getLogger("pipeline").info("On stderr {n}", { n: 1 });
    console.log(JSON.stringify({ summary: true }));
  `;
    const env = { ...Deno.env.toObject() };
    delete env.RUST_BACKTRACE;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--ext=ts", script],
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout).trim();
    const stderr = new TextDecoder().decode(out.stderr).trim();
    assert.equal(out.code, 0, stderr);
    assert.deepEqual(JSON.parse(stdout), { summary: true });
    assert.equal(JSON.parse(stderr.split("\n").at(-1)!).message, "On stderr 1");
  },
);

Deno.test("parseLogLevel() names the variable on a bad value", () => {
  assert.equal(parseLogLevel("WARN"), "warning");
  assert.equal(parseLogLevel("debug"), "debug");
  assert.throws(() => parseLogLevel("loud", "PIPELINE_LOG_LEVEL"), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.field, "PIPELINE_LOG_LEVEL");
    assert.match(e.message, /PIPELINE_LOG_LEVEL/);
    return true;
  });
});
