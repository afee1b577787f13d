import assert from "node:assert/strict";
import {
  configureLogging,
  getLogger,
  parseLogLevel,
  redact,
  REDACTED,
  resetLogging,
  resolveLogFormat,
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
    await configureLogging({ level: "info", format: "json", write: (l) => lines.push(l) });
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
  await configureLogging({ level: "info", format: "json", write: (l) => lines.push(l) });
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

Deno.test("resolveLogFormat(): pretty on a terminal, JSON elsewhere, LOG_FORMAT wins", () => {
  assert.equal(resolveLogFormat({ stderrIsTerminal: true }), "pretty");
  assert.equal(resolveLogFormat({ stderrIsTerminal: false }), "json");
  assert.equal(resolveLogFormat({ logFormat: "auto", stderrIsTerminal: false }), "json");
  assert.equal(resolveLogFormat({ logFormat: "json", stderrIsTerminal: true }), "json");
  assert.equal(resolveLogFormat({ logFormat: "PRETTY", stderrIsTerminal: false }), "pretty");
  assert.throws(() => resolveLogFormat({ logFormat: "xml", stderrIsTerminal: true }), (e) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.field, "LOG_FORMAT");
    assert.match(e.message, /Cannot use "xml" as LOG_FORMAT: expected one of auto, json, pretty/);
    return true;
  });
});

Deno.test("pretty lines: time, level, message, then the fields the message does not show", async () => {
  const lines: string[] = [];
  await configureLogging({ level: "debug", format: "pretty", write: (l) => lines.push(l) });
  try {
    const log = getLogger(["pipeline", "runtime"]);
    log.info("Stage {stage} started", {
      stage: "pay",
      partitions: [0, 1],
      group: "payment-service",
    });
    log.warn("Retrying {key}", { key: "o-17", tier: 1, error: new TypeError("gateway 503") });
    log.debug("Connecting", { sasl: { password: "hunter2" }, note: "two words" });
  } finally {
    await resetLogging();
  }
  assert.equal(lines.length, 3);
  const clock = String.raw`\d\d:\d\d:\d\d\.\d{3}`;
  assert.match(
    lines[0],
    new RegExp(`^${clock} INFO  Stage "pay" started  partitions=\\[0,1\\] group=payment-service$`),
  );
  assert.match(
    lines[1],
    new RegExp(`^${clock} WARN  Retrying "o-17"  tier=1 error="TypeError: gateway 503"$`),
  );
  assert.match(lines[2], new RegExp(`^${clock} DEBUG Connecting  sasl=.* note="two words"$`));
  assert.ok(!lines[2].includes("hunter2"), lines[2]);
  for (const line of lines) assert.ok(!line.includes("\x1b"), "no colour unless asked");
});

Deno.test(
  "pretty lines end with the trace id while a span is active, and colour on request",
  requires("env", "net"),
  async () => {
    await using receiver = await startOtlpReceiver();
    const lines: string[] = [];
    await configureLogging({
      level: "info",
      format: "pretty",
      color: true,
      write: (l) => lines.push(l),
    });
    const telemetry = await setupTelemetry({
      serviceName: "log-test",
      env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.endpoint}/v1/traces` },
    });
    try {
      let traceId: string | undefined;
      await telemetry.instrumentation.traceSend("t", {}, {}, () => {
        getLogger("pipeline").error("Send failed", { topic: "t" });
        traceId = currentTraceIds().trace_id;
        return Promise.resolve();
      });
      assert.equal(lines.length, 1);
      assert.ok(lines[0].includes("\x1b[31mERROR\x1b[0m"), JSON.stringify(lines[0]));
      const plain = stripAnsi(lines[0]);
      assert.ok(plain.endsWith(`Send failed  topic=t trace_id=${traceId}`), plain);
    } finally {
      await telemetry.shutdown();
      await resetLogging();
    }
  },
);

/** ANSI colour escapes (ESC, `[`, parameters, `m`). */
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");

function stripAnsi(text: string): string {
  return text.replaceAll(ANSI, "");
}

/** The pretty line of LOG_ONE_LINE's record. */
const PAY_STARTED = /^\d\d:\d\d:\d\d\.\d{3} INFO {2}Stage "pay" started {2}partition=3$/;

/** Runs `script` (a module's source) with `env`, its stderr on a terminal or a pipe. */
async function runLogging(
  source: string,
  env: Record<string, string>,
  terminal: boolean,
): Promise<string> {
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(file, source);
    const base = { ...Deno.env.toObject(), ...env };
    delete base.RUST_BACKTRACE;
    delete base.NO_COLOR;
    // The temporary file lies outside the repository: name its import map.
    const config = new URL("../../../deno.json", import.meta.url).pathname;
    const args = ["run", "-A", `--config=${config}`, file];
    const command = [Deno.execPath(), ...args].join(" ");
    // util-linux `script` gives the child a pseudo-terminal: its stderr is a TTY.
    const out = await new Deno.Command(terminal ? "script" : Deno.execPath(), {
      args: terminal ? ["-qec", command, "/dev/null"] : args,
      env: base,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(terminal ? out.stdout : out.stderr);
    assert.equal(out.code, 0, text);
    return text.replaceAll("\r", "").trim();
  } finally {
    await Deno.remove(file);
  }
}

const LOG_ONE_LINE = `
  import { configureLogging, getLogger } from ${
  JSON.stringify(import.meta.resolve("../../../pipeline/log.ts"))
};
  await configureLogging({ level: "info" });
  getLogger("pipeline").info("Stage {stage} started", { stage: "pay", partition: 3 });
`;

Deno.test(
  "on a terminal log lines are short; LOG_FORMAT=json keeps JSON there",
  requires("env", "read", "write", "run"),
  async () => {
    const pretty = (await runLogging(LOG_ONE_LINE, {}, true)).split("\n").at(-1)!;
    const plain = stripAnsi(pretty);
    assert.notEqual(plain, pretty, "coloured on a terminal");
    assert.match(plain, PAY_STARTED);
    const json = (await runLogging(LOG_ONE_LINE, { LOG_FORMAT: "json" }, true)).split("\n").at(-1)!;
    assert.equal(JSON.parse(json).message, 'Stage "pay" started');
  },
);

Deno.test(
  "off a terminal log lines are JSON; LOG_FORMAT=pretty forces short lines",
  requires("env", "read", "write", "run"),
  async () => {
    const json = (await runLogging(LOG_ONE_LINE, {}, false)).split("\n").at(-1)!;
    assert.equal(JSON.parse(json).partition, 3);
    const pretty = (await runLogging(LOG_ONE_LINE, { LOG_FORMAT: "pretty" }, false)).split("\n")
      .at(-1)!;
    assert.match(pretty, PAY_STARTED);
  },
);
