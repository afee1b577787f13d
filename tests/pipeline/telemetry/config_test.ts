import assert from "node:assert/strict";
import { readTelemetryConfig } from "../../../pipeline/telemetry/config.ts";
import { setupTelemetry } from "../../../pipeline/telemetry/setup.ts";
import { ConfigError } from "../../../pipeline/errors.ts";

const base = { serviceName: "svc" };

Deno.test("readTelemetryConfig() is off without an endpoint", () => {
  const config = readTelemetryConfig({}, base);
  assert.equal(config.mode, "off");
  assert.equal(config.serviceName, "svc");
  assert.equal(config.sampler, "parentbased_always_on");
  assert.equal(config.metricExportIntervalMs, 60_000);
});

Deno.test("readTelemetryConfig() derives the signal URLs from OTEL_EXPORTER_OTLP_ENDPOINT", () => {
  const config = readTelemetryConfig({
    OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/",
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: "http://prom:9090/api/v1/otlp/v1/metrics",
    OTEL_EXPORTER_OTLP_HEADERS: "x-tenant=a%20b, authorization=Bearer%20t",
    OTEL_EXPORTER_OTLP_LOGS_HEADERS: "x-tenant=logs",
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_SERVICE_NAME: "from-env",
    OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=test,team=core",
    OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
    OTEL_TRACES_SAMPLER_ARG: "0.25",
    OTEL_METRIC_EXPORT_INTERVAL: "1500",
  }, base);
  assert.equal(config.mode, "sdk");
  assert.equal(config.serviceName, "from-env");
  assert.equal(config.traces?.url, "http://collector:4318/v1/traces");
  assert.equal(config.metrics?.url, "http://prom:9090/api/v1/otlp/v1/metrics");
  assert.equal(config.logs?.url, "http://collector:4318/v1/logs");
  assert.deepEqual(config.traces?.headers, { "x-tenant": "a b", authorization: "Bearer t" });
  assert.deepEqual(config.logs?.headers, { "x-tenant": "logs", authorization: "Bearer t" });
  assert.deepEqual(config.resourceAttributes, { "deployment.environment": "test", team: "core" });
  assert.equal(config.sampler, "parentbased_traceidratio");
  assert.equal(config.samplerRatio, 0.25);
  assert.equal(config.metricExportIntervalMs, 1500);
});

Deno.test("readTelemetryConfig() exports only the signals that have an endpoint", () => {
  const only = readTelemetryConfig(
    { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://127.0.0.1:4318/v1/traces" },
    base,
  );
  assert.equal(only.mode, "sdk");
  assert.ok(only.traces && !only.metrics && !only.logs);
  const none = readTelemetryConfig({
    OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318",
    OTEL_LOGS_EXPORTER: "none",
    OTEL_METRICS_EXPORTER: "none",
  }, base);
  assert.ok(none.traces && !none.metrics && !none.logs);
});

Deno.test("readTelemetryConfig() honours OTEL_SDK_DISABLED and OTEL_DENO", () => {
  const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" };
  assert.equal(readTelemetryConfig({ ...endpoint, OTEL_SDK_DISABLED: "TRUE" }, base).mode, "off");
  assert.equal(readTelemetryConfig({ ...endpoint, OTEL_SDK_DISABLED: "false" }, base).mode, "sdk");
  assert.equal(readTelemetryConfig({ OTEL_DENO: "true" }, base).mode, "deno");
  assert.equal(
    readTelemetryConfig({ OTEL_DENO: "true", OTEL_SDK_DISABLED: "true" }, base).mode,
    "off",
  );
});

const BAD: Array<[string, string]> = [
  ["OTEL_EXPORTER_OTLP_ENDPOINT", "not a url"],
  ["OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://host"],
  ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "::"],
  ["OTEL_EXPORTER_OTLP_HEADERS", "novalue"],
  ["OTEL_EXPORTER_OTLP_METRICS_HEADERS", "=x"],
  ["OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"],
  ["OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc"],
  ["OTEL_TRACES_SAMPLER", "jaeger_remote"],
  ["OTEL_TRACES_SAMPLER_ARG", "1.5"],
  ["OTEL_TRACES_SAMPLER_ARG", "half"],
  ["OTEL_SDK_DISABLED", "yes"],
  ["OTEL_DENO", "1"],
  ["OTEL_METRIC_EXPORT_INTERVAL", "0"],
  ["OTEL_METRIC_EXPORT_INTERVAL", "10s"],
  ["OTEL_BSP_SCHEDULE_DELAY", "-5"],
  ["OTEL_TRACES_EXPORTER", "console"],
  ["OTEL_RESOURCE_ATTRIBUTES", "a=%E0%A4%A"],
];

/** Variables whose values may hold credentials: their errors never echo the value. */
const SECRET_BEARING = new Set([
  "OTEL_EXPORTER_OTLP_HEADERS",
  "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
  "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
  "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
  "OTEL_RESOURCE_ATTRIBUTES",
]);

for (const [name, value] of BAD) {
  Deno.test(`readTelemetryConfig() names ${name} when it is "${value}"`, () => {
    assert.throws(
      () => readTelemetryConfig({ [name]: value }, base),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.equal(e.field, name);
        assert.ok(e.message.includes(name), e.message);
        if (SECRET_BEARING.has(name)) {
          assert.ok(!e.message.includes(value), `the value stays out of the message: ${e.message}`);
        } else {
          assert.ok(e.message.includes(`"${value}"`), e.message);
        }
        assert.ok(!e.message.endsWith("."));
        return true;
      },
    );
  });
}

Deno.test("setupTelemetry() rejects with the ConfigError of a bad variable", async () => {
  await assert.rejects(
    setupTelemetry({ serviceName: "svc", env: { OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf" } }),
    (e: unknown) => e instanceof ConfigError && e.field === "OTEL_EXPORTER_OTLP_PROTOCOL",
  );
});

Deno.test("readTelemetryConfig() keeps header values and URL credentials out of its errors", () => {
  assert.throws(
    () =>
      readTelemetryConfig({ OTEL_EXPORTER_OTLP_HEADERS: "Authorization=Bearer s3cret,oops" }, base),
    (e: unknown) =>
      e instanceof ConfigError && !e.message.includes("s3cret") &&
      e.message.includes("pair 2"),
  );
  assert.throws(
    () => readTelemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "ftp://user:s3cret@host" }, base),
    (e: unknown) => e instanceof ConfigError && !e.message.includes("s3cret"),
  );
});
