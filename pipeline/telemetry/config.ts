/**
 * Reads the standard `OTEL_*` environment variables into one validated
 * {@linkcode TelemetryConfig}. Pure: the environment is passed in, so tests inject it.
 *
 * Supported variables (anything else `OTEL_*` is ignored):
 *
 * | variable | meaning |
 * | --- | --- |
 * | `OTEL_SDK_DISABLED` | `true` turns every signal off |
 * | `OTEL_DENO` | `true`: Deno's built-in OpenTelemetry exports; nothing is registered here |
 * | `OTEL_SERVICE_NAME` | overrides the service name given in code |
 * | `OTEL_RESOURCE_ATTRIBUTES` | `key=value,...` added to the resource |
 * | `OTEL_EXPORTER_OTLP_ENDPOINT` | base URL; `/v1/traces`, `/v1/metrics`, `/v1/logs` are appended |
 * | `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT` | full URL of one signal, used as is |
 * | `OTEL_EXPORTER_OTLP_HEADERS`, `..._{TRACES,METRICS,LOGS}_HEADERS` | `key=value,...` |
 * | `OTEL_EXPORTER_OTLP_PROTOCOL`, `..._{TRACES,METRICS,LOGS}_PROTOCOL` | only `http/json` |
 * | `OTEL_{TRACES,METRICS,LOGS}_EXPORTER` | `otlp` (default) or `none` |
 * | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | the standard sampler names |
 * | `OTEL_METRIC_EXPORT_INTERVAL` | milliseconds between metric exports |
 * | `OTEL_BSP_SCHEDULE_DELAY` | milliseconds between span batch exports |
 *
 * A signal is exported only when an endpoint for it is configured: with no endpoint at all,
 * telemetry is off and the instrumentation API costs next to nothing.
 *
 * @module
 */

import { ConfigError } from "../errors.ts";

/** The standard sampler names of `OTEL_TRACES_SAMPLER`. */
export const SAMPLERS = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
] as const;

/** A sampler name from {@linkcode SAMPLERS}. */
export type SamplerName = typeof SAMPLERS[number];

/** Where and how one signal (traces, metrics or logs) is exported. */
export interface SignalExport {
  /** The full OTLP/HTTP URL, e.g. `http://127.0.0.1:4318/v1/traces`. */
  readonly url: string;
  /** Extra HTTP headers (e.g. authentication). */
  readonly headers: Readonly<Record<string, string>>;
}

/** The telemetry configuration read from the environment. */
export interface TelemetryConfig {
  /**
   * `off`: nothing is exported and the API is a no-op; `sdk`: this process exports with the
   * OpenTelemetry JS SDK; `deno`: Deno's built-in OpenTelemetry (`OTEL_DENO=true`) exports.
   */
  readonly mode: "off" | "sdk" | "deno";
  /** The service name, after `OTEL_SERVICE_NAME`. */
  readonly serviceName: string;
  /** Attributes from `OTEL_RESOURCE_ATTRIBUTES`. */
  readonly resourceAttributes: Readonly<Record<string, string>>;
  /** Trace export, or `undefined` when traces are not exported. */
  readonly traces?: SignalExport;
  /** Metric export, or `undefined` when metrics are not exported. */
  readonly metrics?: SignalExport;
  /** Log export, or `undefined` when logs are not exported. */
  readonly logs?: SignalExport;
  /** The sampler. */
  readonly sampler: SamplerName;
  /** The sampling ratio for the `*traceidratio` samplers, in [0, 1]. */
  readonly samplerRatio: number;
  /** Milliseconds between metric exports. */
  readonly metricExportIntervalMs: number;
  /** Milliseconds between span batch exports. */
  readonly spanExportDelayMs: number;
}

/** Options for {@linkcode readTelemetryConfig}. */
export interface ReadTelemetryConfigOptions {
  /** The service name used when `OTEL_SERVICE_NAME` is not set. */
  readonly serviceName: string;
  /**
   * Milliseconds between metric exports when `OTEL_METRIC_EXPORT_INTERVAL` is not set.
   * @default {60000}
   */
  readonly metricExportIntervalMs?: number;
  /**
   * Milliseconds between span batch exports when `OTEL_BSP_SCHEDULE_DELAY` is not set.
   * @default {5000}
   */
  readonly spanExportDelayMs?: number;
}

type Env = Readonly<Record<string, string | undefined>>;

const SIGNAL_PATH = { TRACES: "v1/traces", METRICS: "v1/metrics", LOGS: "v1/logs" } as const;

/**
 * Reads and validates the `OTEL_*` variables of `env`.
 *
 * @throws {ConfigError} when a variable holds a value that cannot be used; `field` names it.
 *
 * @example
 * ```ts
 * import { readTelemetryConfig } from "./config.ts";
 * const config = readTelemetryConfig(
 *   { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" },
 *   { serviceName: "worker" },
 * );
 * console.log(config.mode, config.traces?.url); // sdk http://127.0.0.1:4318/v1/traces
 * ```
 */
export function readTelemetryConfig(
  env: Env,
  options: ReadTelemetryConfigOptions,
): TelemetryConfig {
  const {
    serviceName: codeServiceName,
    metricExportIntervalMs: defaultInterval = 60_000,
    spanExportDelayMs: defaultDelay = 5_000,
  } = options;
  const value = (name: string): string | undefined => {
    const raw = env[name]?.trim();
    return raw === undefined || raw === "" ? undefined : raw;
  };

  const disabled = parseBoolean("OTEL_SDK_DISABLED", value("OTEL_SDK_DISABLED"));
  const deno = parseBoolean("OTEL_DENO", value("OTEL_DENO"));
  const serviceName = value("OTEL_SERVICE_NAME") ?? codeServiceName;
  const resourceAttributes = parseKeyValues(
    "OTEL_RESOURCE_ATTRIBUTES",
    value("OTEL_RESOURCE_ATTRIBUTES"),
  );
  const sampler = parseSampler(value("OTEL_TRACES_SAMPLER"));
  const samplerRatio = parseRatio(value("OTEL_TRACES_SAMPLER_ARG"));
  const metricExportIntervalMs = parsePositiveInt(
    "OTEL_METRIC_EXPORT_INTERVAL",
    value("OTEL_METRIC_EXPORT_INTERVAL"),
  ) ?? defaultInterval;
  const spanExportDelayMs = parsePositiveInt(
    "OTEL_BSP_SCHEDULE_DELAY",
    value("OTEL_BSP_SCHEDULE_DELAY"),
  ) ?? defaultDelay;

  const base = parseUrl("OTEL_EXPORTER_OTLP_ENDPOINT", value("OTEL_EXPORTER_OTLP_ENDPOINT"));
  const baseHeaders = parseKeyValues(
    "OTEL_EXPORTER_OTLP_HEADERS",
    value("OTEL_EXPORTER_OTLP_HEADERS"),
  );
  parseProtocol("OTEL_EXPORTER_OTLP_PROTOCOL", value("OTEL_EXPORTER_OTLP_PROTOCOL"));

  function signal(name: keyof typeof SIGNAL_PATH): SignalExport | undefined {
    const exporterVar = `OTEL_${name}_EXPORTER`;
    const exporter = value(exporterVar) ?? "otlp";
    if (exporter !== "otlp" && exporter !== "none") {
      throw new ConfigError(
        `Cannot use "${exporter}" as ${exporterVar}: expected "otlp" or "none"`,
        { field: exporterVar },
      );
    }
    const protocolVar = `OTEL_EXPORTER_OTLP_${name}_PROTOCOL`;
    // Validated for its error only: http/json is the one protocol there is.
    parseProtocol(protocolVar, value(protocolVar));
    const endpointVar = `OTEL_EXPORTER_OTLP_${name}_ENDPOINT`;
    const own = parseUrl(endpointVar, value(endpointVar));
    const headersVar = `OTEL_EXPORTER_OTLP_${name}_HEADERS`;
    const headers = { ...baseHeaders, ...parseKeyValues(headersVar, value(headersVar)) };
    if (exporter === "none") return undefined;
    if (own !== undefined) return { url: own, headers };
    if (base !== undefined) {
      return { url: `${base.replace(/\/+$/, "")}/${SIGNAL_PATH[name]}`, headers };
    }
    return undefined;
  }
  const traces = signal("TRACES");
  const metrics = signal("METRICS");
  const logs = signal("LOGS");

  const common = {
    serviceName,
    resourceAttributes,
    sampler,
    samplerRatio,
    metricExportIntervalMs,
    spanExportDelayMs,
  };
  if (disabled) return { mode: "off", ...common };
  if (deno) return { mode: "deno", ...common };
  if (traces === undefined && metrics === undefined && logs === undefined) {
    return { mode: "off", ...common };
  }
  return { mode: "sdk", ...common, traces, metrics, logs };
}

function parseBoolean(name: string, raw: string | undefined): boolean {
  if (raw === undefined) return false;
  const lower = raw.toLowerCase();
  if (lower === "true") return true;
  if (lower === "false") return false;
  throw new ConfigError(`Cannot use "${raw}" as ${name}: expected "true" or "false"`, {
    field: name,
  });
}

/** The URL with any `user:password@` masked, for error messages. */
function masked(raw: string): string {
  return raw.replace(/\/\/[^/@]*@/, "//[redacted]@");
}

function parseUrl(name: string, raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch (cause) {
    throw new ConfigError(`Cannot use "${masked(raw)}" as ${name}: not a URL`, {
      field: name,
      cause,
    });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(`Cannot use "${masked(raw)}" as ${name}: expected an http or https URL`, {
      field: name,
    });
  }
  return raw;
}

function parseKeyValues(name: string, raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (raw === undefined) return out;
  // Values are often credentials (`Authorization=Bearer ...`): errors name the pair by its
  // position and key, never echo a value.
  for (const [index, pair] of raw.split(",").entries()) {
    if (pair.trim() === "") continue;
    const eq = pair.indexOf("=");
    const key = eq < 0 ? "" : pair.slice(0, eq).trim();
    if (key === "") {
      throw new ConfigError(
        `Cannot use ${name} as pair ${
          index + 1
        } is not key=value: expected comma-separated key=value pairs`,
        { field: name },
      );
    }
    try {
      out[decodeURIComponent(key)] = decodeURIComponent(pair.slice(eq + 1).trim());
    } catch (cause) {
      throw new ConfigError(
        `Cannot use ${name} as pair ${index + 1} ("${key}") has bad percent-encoding`,
        { field: name, cause },
      );
    }
  }
  return out;
}

function parseProtocol(name: string, raw: string | undefined): "http/json" | undefined {
  if (raw === undefined) return undefined;
  if (raw === "http/json") return raw;
  throw new ConfigError(
    `Cannot use "${raw}" as ${name}: only "http/json" is supported (the Collector accepts it ` +
      `on the same port as http/protobuf)`,
    { field: name },
  );
}

function parseSampler(raw: string | undefined): SamplerName {
  if (raw === undefined) return "parentbased_always_on";
  const found = SAMPLERS.find((name) => name === raw);
  if (found === undefined) {
    throw new ConfigError(
      `Cannot use "${raw}" as OTEL_TRACES_SAMPLER: expected one of ${SAMPLERS.join(", ")}`,
      { field: "OTEL_TRACES_SAMPLER" },
    );
  }
  return found;
}

function parseRatio(raw: string | undefined): number {
  if (raw === undefined) return 1;
  const ratio = Number(raw);
  if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) {
    throw new ConfigError(
      `Cannot use "${raw}" as OTEL_TRACES_SAMPLER_ARG: expected a number from 0 to 1`,
      { field: "OTEL_TRACES_SAMPLER_ARG" },
    );
  }
  return ratio;
}

function parsePositiveInt(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new ConfigError(
      `Cannot use "${raw}" as ${name}: expected a positive whole number of milliseconds`,
      { field: name },
    );
  }
  return n;
}
