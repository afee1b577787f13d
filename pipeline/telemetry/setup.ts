/**
 * Starts OpenTelemetry for one process (or one worker): reads the `OTEL_*` environment,
 * registers the SDK globally (tracer, meter and logger providers, the W3C propagator, the
 * AsyncLocalStorage context manager) and hands back the {@linkcode Telemetry} the runner uses.
 *
 * Three outcomes, told by `telemetry.mode`:
 * - `off`: no endpoint configured, or `OTEL_SDK_DISABLED=true`. Nothing is registered; the
 *   instrumentation and metrics are no-ops that cost a function call.
 * - `sdk`: spans go through a batch span processor, metrics through a periodic reader, logs
 *   through a batch log processor, each to its OTLP/HTTP JSON endpoint.
 * - `deno`: `OTEL_DENO=true`, Deno's built-in OpenTelemetry is on. It owns the global
 *   providers and exports itself; nothing is registered here and the API records through it.
 *
 * @module
 */

import {
  context,
  diag,
  type DiagLogger,
  DiagLogLevel,
  type Meter,
  metrics,
  propagation,
  trace,
  type Tracer,
} from "@opentelemetry/api";
import { logs } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  CompositePropagator,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from "@opentelemetry/core";
import { defaultResource, type Resource, resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  type Sampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import { MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { BatchLogRecordProcessor, LoggerProvider } from "@opentelemetry/sdk-logs";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { getLogger } from "@logtape/logtape";
import { PipelineError } from "../errors.ts";
import { readTelemetryConfig, type TelemetryConfig } from "./config.ts";
import {
  type Instrumentation,
  NOOP_PIPELINE_METRICS,
  noopInstrumentation,
  type ParentingMode,
  type PipelineMetrics,
} from "../instrumentation.ts";
import { createInstrumentation } from "./instrumentation.ts";
import { createPipelineMetrics } from "./metrics.ts";

/** The instrumentation scope name of every tracer and meter the framework creates. */
export const INSTRUMENTATION_SCOPE = "pipeline";

/** Options for {@linkcode setupTelemetry}. */
export interface TelemetryOptions {
  /** `service.name`; `OTEL_SERVICE_NAME` overrides it. */
  readonly serviceName: string;
  /**
   * `service.version`.
   * @default {undefined}
   */
  readonly serviceVersion?: string;
  /**
   * `service.instance.id`: one per worker, e.g. `"process-payment-0"`.
   * @default {undefined}
   */
  readonly instanceId?: string;
  /**
   * The environment to read `OTEL_*` from; tests pass their own.
   * @default {Deno.env.toObject()}
   */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /**
   * How consumer spans relate to the producer context in the record headers.
   * @default {"parent"}
   */
  readonly mode?: ParentingMode;
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

/** A started telemetry setup: what the runner holds for the life of a worker. */
export interface Telemetry {
  /** `off`, `sdk` (this process exports) or `deno` (Deno's built-in OpenTelemetry exports). */
  readonly mode: TelemetryConfig["mode"];
  /** The configuration read from the environment. */
  readonly config: TelemetryConfig;
  /**
   * The framework's one instrumentation interface, spans and metrics: what the runner, the
   * publisher and the DLQ replay take.
   */
  readonly instrumentation: Instrumentation;
  /**
   * The runner's metrics and the domain's declared metrics: the same object as
   * `instrumentation.metrics`, here for code that records metrics only.
   */
  readonly metrics: PipelineMetrics;
  /** The tracer, for spans the instrumentation does not cover. */
  readonly tracer: Tracer;
  /** The meter, for instruments the metrics do not cover. */
  readonly meter: Meter;
  /** Exports everything buffered now, and keeps running. */
  forceFlush(): Promise<void>;
  /**
   * Exports everything buffered, stops the exporters and unregisters the globals: what a
   * draining worker calls last. Safe to call twice.
   */
  shutdown(): Promise<void>;
}

let denoNoticeLogged = false;

/**
 * Sets up telemetry from the environment; see the module doc for the three modes.
 *
 * @throws {ConfigError} when an `OTEL_*` variable holds a bad value; `field` names it.
 * @throws {PipelineError} when another SDK already owns the global providers.
 *
 * @example
 * ```ts ignore
 * import { setupTelemetry } from "./setup.ts";
 * const telemetry = await setupTelemetry({ serviceName: "payment-service", instanceId: "w0" });
 * try {
 *   // ... run the stage with telemetry.instrumentation and telemetry.metrics ...
 * } finally {
 *   await telemetry.shutdown();
 * }
 * ```
 */
export function setupTelemetry(options: TelemetryOptions): Promise<Telemetry> {
  const {
    serviceName,
    serviceVersion,
    instanceId,
    env = Deno.env.toObject(),
    mode = "parent",
    metricExportIntervalMs,
    spanExportDelayMs,
  } = options;
  try {
    const config = readTelemetryConfig(env, {
      serviceName,
      metricExportIntervalMs,
      spanExportDelayMs,
    });
    if (config.mode === "off") return Promise.resolve(offTelemetry(config));
    if (config.mode === "deno") return Promise.resolve(denoTelemetry(config, mode));
    return Promise.resolve(sdkTelemetry(config, mode, { serviceVersion, instanceId }));
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * A telemetry that records nothing, for tests and tools that never export.
 */
export function noopTelemetry(): Telemetry {
  return offTelemetry(
    readTelemetryConfig({ OTEL_SDK_DISABLED: "true" }, { serviceName: "noop" }),
  );
}

function offTelemetry(config: TelemetryConfig): Telemetry {
  return {
    mode: "off",
    config,
    instrumentation: noopInstrumentation,
    metrics: NOOP_PIPELINE_METRICS,
    tracer: trace.getTracer(INSTRUMENTATION_SCOPE),
    meter: metrics.getMeter(INSTRUMENTATION_SCOPE),
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
}

function denoTelemetry(config: TelemetryConfig, mode: ParentingMode): Telemetry {
  if (!denoNoticeLogged) {
    denoNoticeLogged = true;
    getLogger(["pipeline", "telemetry"]).info(
      "Deno's built-in OpenTelemetry is on (OTEL_DENO=true): its exporter is used and " +
        "nothing is registered here",
    );
  }
  const tracer = trace.getTracer(INSTRUMENTATION_SCOPE);
  const meter = metrics.getMeter(INSTRUMENTATION_SCOPE);
  const pipelineMetrics = createPipelineMetrics(meter);
  return {
    mode: "deno",
    config,
    instrumentation: createInstrumentation({ tracer, mode, metrics: pipelineMetrics }),
    metrics: pipelineMetrics,
    tracer,
    meter,
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
}

function sampler(config: TelemetryConfig): Sampler {
  const ratio = new TraceIdRatioBasedSampler(config.samplerRatio);
  switch (config.sampler) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return ratio;
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: ratio });
  }
}

function resourceOf(
  config: TelemetryConfig,
  ids: { serviceVersion?: string; instanceId?: string },
): Resource {
  const attributes: Record<string, string> = { ...config.resourceAttributes };
  attributes["service.name"] = config.serviceName;
  if (ids.serviceVersion !== undefined) attributes["service.version"] = ids.serviceVersion;
  if (ids.instanceId !== undefined) attributes["service.instance.id"] = ids.instanceId;
  return defaultResource().merge(resourceFromAttributes(attributes));
}

/** Sends the SDK's own warnings (failed exports, dropped spans) to the structured log. */
function diagLogger(): DiagLogger {
  const log = getLogger(["pipeline", "telemetry", "sdk"]);
  const text = (message: string, args: unknown[]) =>
    args.length === 0 ? message : `${message} ${args.map(String).join(" ")}`;
  return {
    error: (message, ...args) => log.error(text(message, args)),
    warn: (message, ...args) => log.warn(text(message, args)),
    info: (message, ...args) => log.info(text(message, args)),
    debug: (message, ...args) => log.debug(text(message, args)),
    verbose: (message, ...args) => log.trace(text(message, args)),
  };
}

function sdkTelemetry(
  config: TelemetryConfig,
  mode: ParentingMode,
  ids: { serviceVersion?: string; instanceId?: string },
): Telemetry {
  const resource = resourceOf(config, ids);
  const contextManager = new AsyncLocalStorageContextManager().enable();
  const propagator = new CompositePropagator({
    propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
  });
  const registered: Array<() => void> = [];
  function register(what: string, ok: boolean, disable: () => void): void {
    if (!ok) {
      for (const undo of registered) undo();
      throw new PipelineError(
        `Cannot register the OpenTelemetry ${what}: another one is registered already ` +
          `(call shutdown() on the previous telemetry first, or is OTEL_DENO on?)`,
      );
    }
    registered.push(disable);
  }
  register(
    "context manager",
    context.setGlobalContextManager(contextManager),
    () => context.disable(),
  );
  register("propagator", propagation.setGlobalPropagator(propagator), () => propagation.disable());
  diag.setLogger(diagLogger(), { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
  registered.push(() => diag.disable());

  let tracerProvider: TracerProvider | undefined;
  if (config.traces !== undefined) {
    tracerProvider = new TracerProvider({
      resource,
      sampler: sampler(config),
      spanProcessors: [
        new BatchSpanProcessor({
          exporter: new OTLPTraceExporter({
            url: config.traces.url,
            headers: { ...config.traces.headers },
          }),
          scheduledDelayMillis: config.spanExportDelayMs,
        }),
      ],
    });
    register("tracer provider", trace.setGlobalTracerProvider(tracerProvider), () => {
      trace.disable();
    });
  }

  let meterProvider: MeterProvider | undefined;
  if (config.metrics !== undefined) {
    meterProvider = new MeterProvider({
      resource,
      readers: [
        new PeriodicExportingMetricReader({
          exporter: new OTLPMetricExporter({
            url: config.metrics.url,
            headers: { ...config.metrics.headers },
          }),
          exportIntervalMillis: config.metricExportIntervalMs,
          exportTimeoutMillis: Math.min(30_000, config.metricExportIntervalMs),
        }),
      ],
    });
    register("meter provider", metrics.setGlobalMeterProvider(meterProvider), () => {
      metrics.disable();
    });
  }

  let loggerProvider: LoggerProvider | undefined;
  if (config.logs !== undefined) {
    loggerProvider = new LoggerProvider({
      resource,
      processors: [
        new BatchLogRecordProcessor({
          exporter: new OTLPLogExporter({
            url: config.logs.url,
            headers: { ...config.logs.headers },
          }),
        }),
      ],
    });
    register("logger provider", logs.setGlobalLoggerProvider(loggerProvider), () => {
      logs.disable();
    });
  }

  const tracer = tracerProvider?.getTracer(INSTRUMENTATION_SCOPE) ??
    trace.getTracer(INSTRUMENTATION_SCOPE);
  const meter = meterProvider?.getMeter(INSTRUMENTATION_SCOPE) ??
    metrics.getMeter(INSTRUMENTATION_SCOPE);

  async function forceFlush(): Promise<void> {
    await Promise.all([
      tracerProvider?.forceFlush(),
      meterProvider?.forceFlush(),
      loggerProvider?.forceFlush(),
    ]);
  }
  let stopping: Promise<void> | undefined;
  function shutdown(): Promise<void> {
    stopping ??= (async () => {
      try {
        await Promise.all([
          tracerProvider?.shutdown(),
          meterProvider?.shutdown(),
          loggerProvider?.shutdown(),
        ]);
      } finally {
        for (const undo of registered.reverse()) undo();
        contextManager.disable();
      }
    })();
    return stopping;
  }

  const pipelineMetrics = meterProvider === undefined
    ? NOOP_PIPELINE_METRICS
    : createPipelineMetrics(meter);
  return {
    mode: "sdk",
    config,
    // Metrics without traces (only OTEL_EXPORTER_OTLP_METRICS_ENDPOINT set): no spans, metrics.
    instrumentation: tracerProvider === undefined
      ? { ...noopInstrumentation, metrics: pipelineMetrics }
      : createInstrumentation({ tracer, propagator, mode, metrics: pipelineMetrics }),
    metrics: pipelineMetrics,
    tracer,
    meter,
    forceFlush,
    shutdown,
  };
}
