/**
 * Real telemetry backends for tests: the OpenTelemetry Collector built by
 * `infra/tools/build_otelcol.sh` (`.local/bin/otelcol`) and Debian's Prometheus, each started
 * on 127.0.0.1 with a generated configuration in a temporary directory, waited for until ready,
 * and stopped cleanly.
 *
 * The generated configurations reuse the stack's own settings, so a test through them checks
 * the compose stack's translation too: the Collector's `prometheus` exporter block comes from
 * `infra/otel-collector/config.yaml` (only its endpoint changes) and Prometheus' scrape job
 * reuses the `metric_relabel_configs` of the `otel-collector` job in
 * `infra/prometheus/prometheus.yml`.
 *
 * @example
 * ```ts ignore
 * await using collector = await startCollector();
 * await using prometheus = await startPrometheus({ scrapeTarget: collector.scrapeTarget });
 * // POST OTLP/JSON to `${collector.url}/v1/metrics`, then:
 * const rows = await pollUntil(async () => {
 *   const result = await queryPrometheus(prometheus.url, "messages_consumed_total");
 *   return result.length > 0 ? result : undefined;
 * }, { timeoutMs: 20_000, description: "messages_consumed_total in Prometheus" });
 * ```
 *
 * @module
 */

import { parse, stringify } from "yaml";
import { ConfigError, PipelineError } from "../pipeline/errors.ts";
import { freeLoopbackPorts } from "./_ports.ts";

const REPO_ROOT = new URL("../", import.meta.url);

/** Where `infra/tools/build_otelcol.sh` puts the Collector. */
export const OTELCOL_BINARY: string = new URL(".local/bin/otelcol", REPO_ROOT).pathname;

/** The stack's Collector configuration, whose exporter settings the test Collector reuses. */
export const COLLECTOR_CONFIG_PATH: string =
  new URL("infra/otel-collector/config.yaml", REPO_ROOT).pathname;

/** The stack's Prometheus configuration, whose relabelling the test Prometheus reuses. */
export const PROMETHEUS_CONFIG_PATH: string =
  new URL("infra/prometheus/prometheus.yml", REPO_ROOT).pathname;

/** A backend process started for a test. */
export interface RunningService extends AsyncDisposable {
  /** The base URL of its main HTTP endpoint, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  /** Stops the process (SIGTERM, then SIGKILL after a deadline) and removes its files. */
  stop(): Promise<void>;
  /** The last lines the process wrote to stdout and stderr, for failure messages. */
  logs(): string;
}

/** A running Collector. */
export interface RunningCollector extends RunningService {
  /** The OTLP/HTTP base URL (`url`): POST to `${url}/v1/metrics`, `/v1/traces`, `/v1/logs`. */
  readonly url: string;
  /** The Prometheus exporter's `/metrics` URL. */
  readonly metricsUrl: string;
  /** `host:port` of the Prometheus exporter, for {@linkcode StartPrometheusOptions.scrapeTarget}. */
  readonly scrapeTarget: string;
}

/** Options of {@linkcode startCollector}. */
export interface StartCollectorOptions {
  /**
   * Port of the OTLP/HTTP receiver on 127.0.0.1.
   * @default a free port
   */
  otlpHttpPort?: number;
  /**
   * Port of the Prometheus exporter on 127.0.0.1.
   * @default a free port
   */
  promPort?: number;
  /**
   * OTLP/HTTP base URL that traces are forwarded to (the `otlp_http` exporter, JSON encoding,
   * so the receiver in `tests/_otlp_receiver.ts` can decode them). Without it traces go to the
   * `debug` exporter.
   * @default undefined
   */
  tracesTo?: string;
  /**
   * The Collector binary.
   * @default {@linkcode OTELCOL_BINARY}
   */
  binary?: string;
  /**
   * How long to wait for the receiver and the exporter to answer.
   * @default 20000
   */
  readyTimeoutMs?: number;
}

/** A running Prometheus. */
export interface RunningPrometheus extends RunningService {
  /** The HTTP API base URL (`url`), for {@linkcode queryPrometheus}. */
  readonly url: string;
}

/** Options of {@linkcode startPrometheus}. */
export interface StartPrometheusOptions {
  /** `host:port` to scrape, e.g. {@linkcode RunningCollector.scrapeTarget}. */
  scrapeTarget: string;
  /**
   * Rule files (alerting or recording) to load, as paths.
   * @default []
   */
  ruleFiles?: readonly string[];
  /**
   * Port of the web API on 127.0.0.1.
   * @default a free port
   */
  port?: number;
  /**
   * Scrape and rule evaluation interval, in seconds.
   * @default 1
   */
  intervalSeconds?: number;
  /**
   * The Prometheus binary.
   * @default "prometheus"
   */
  binary?: string;
  /**
   * How long to wait for `/-/ready`.
   * @default 30000
   */
  readyTimeoutMs?: number;
}

/** One series of an instant query's result. */
export interface PromSample {
  /** The series' labels, `__name__` included. */
  readonly metric: Record<string, string>;
  /** The sample value. */
  readonly value: number;
  /** The evaluation time, in seconds since the epoch. */
  readonly timestamp: number;
}

/** Options of {@linkcode pollUntil}. */
export interface PollOptions {
  /**
   * Give up after this long.
   * @default 10000
   */
  timeoutMs?: number;
  /**
   * Wait between attempts.
   * @default 200
   */
  intervalMs?: number;
  /**
   * What is awaited, for the timeout message.
   * @default "condition"
   */
  description?: string;
}

/**
 * Calls `attempt` until it returns something other than `undefined`, and returns that. An
 * attempt that throws counts as not yet; the last error is the timeout error's cause.
 *
 * @example
 * ```ts ignore
 * const ready = await pollUntil(() => fetch(url).then((r) => r.ok || undefined), {
 *   timeoutMs: 5000,
 *   description: "server ready",
 * });
 * ```
 */
export async function pollUntil<T>(
  attempt: () => Promise<T | undefined> | T | undefined,
  options: PollOptions = {},
): Promise<T> {
  const { timeoutMs = 10_000, intervalMs = 200, description = "condition" } = options;
  if (!(timeoutMs > 0) || !(intervalMs > 0)) {
    throw new ConfigError(
      `Cannot poll for "${description}" as 'timeoutMs' and 'intervalMs' must be positive: ` +
        `current values are ${timeoutMs} and ${intervalMs}`,
      { field: "timeoutMs" },
    );
  }
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (let tries = 1;; tries++) {
    try {
      const value = await attempt();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      throw new PipelineError(
        `Gave up waiting for "${description}": not true after ${timeoutMs} ms and ${tries} tries`,
        { cause: lastError },
      );
    }
    await new Promise((resolve) =>
      setTimeout(resolve, Math.min(intervalMs, deadline - Date.now()))
    );
  }
}

/**
 * Runs an instant PromQL query against a Prometheus HTTP API and returns its vector result.
 *
 * @example
 * ```ts ignore
 * const rows = await queryPrometheus(prometheus.url, 'sum(messages_consumed_total)');
 * console.log(rows[0]?.value);
 * ```
 */
export async function queryPrometheus(url: string, promql: string): Promise<PromSample[]> {
  const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = await response.json() as {
    status: string;
    error?: string;
    data?: { resultType: string; result: unknown };
  };
  if (!response.ok || body.status !== "success" || body.data === undefined) {
    throw new PipelineError(
      `Cannot run query "${promql}": Prometheus answered ${response.status}: ` +
        `${body.error ?? JSON.stringify(body)}`,
    );
  }
  const { resultType, result } = body.data;
  if (resultType === "scalar") {
    const [timestamp, value] = result as [number, string];
    return [{ metric: {}, value: Number(value), timestamp }];
  }
  if (resultType !== "vector") {
    throw new PipelineError(`Cannot read query "${promql}": result type is "${resultType}"`);
  }
  return (result as Array<{ metric: Record<string, string>; value: [number, string] }>).map(
    (row) => ({ metric: row.metric, value: Number(row.value[1]), timestamp: row.value[0] }),
  );
}

/**
 * Starts the locally built Collector on 127.0.0.1: OTLP/HTTP receiver in, the stack's
 * `prometheus` exporter out (same translation settings as `infra/otel-collector/config.yaml`),
 * traces forwarded to `tracesTo` when given. Resolves once both ports answer.
 *
 * @example
 * ```ts ignore
 * await using collector = await startCollector({ tracesTo: receiver.endpoint });
 * await fetch(`${collector.url}/v1/traces`, { method: "POST", body, headers });
 * ```
 */
export async function startCollector(
  options: StartCollectorOptions = {},
): Promise<RunningCollector> {
  const {
    otlpHttpPort = freePort(),
    promPort = freePort(),
    tracesTo,
    binary = OTELCOL_BINARY,
    readyTimeoutMs = 20_000,
  } = options;
  checkPort("otlpHttpPort", otlpHttpPort);
  checkPort("promPort", promPort);
  if (tracesTo !== undefined && !URL.canParse(tracesTo)) {
    throw new ConfigError(`Cannot start the Collector as 'tracesTo' is not a URL: "${tracesTo}"`, {
      field: "tracesTo",
    });
  }
  await requireExecutable(binary, "infra/tools/build_otelcol.sh builds it");

  const stackConfig = parse(await Deno.readTextFile(COLLECTOR_CONFIG_PATH)) as CollectorConfig;
  const prometheusExporter = {
    ...stackConfig.exporters.prometheus,
    endpoint: `127.0.0.1:${promPort}`,
  };
  const traceExporter = tracesTo === undefined ? "debug" : "otlp_http/tests";
  const config = {
    receivers: {
      otlp: { protocols: { http: { endpoint: `127.0.0.1:${otlpHttpPort}` } } },
    },
    exporters: {
      prometheus: prometheusExporter,
      debug: { verbosity: "basic" },
      ...(tracesTo === undefined ? {} : {
        "otlp_http/tests": {
          endpoint: tracesTo,
          encoding: "json",
          // Plain bodies: the test receiver does not inflate gzip.
          compression: "none",
          retry_on_failure: {
            enabled: true,
            initial_interval: "200ms",
            max_interval: "1s",
            max_elapsed_time: "10s",
          },
        },
      }),
    },
    service: {
      pipelines: {
        traces: { receivers: ["otlp"], exporters: [traceExporter] },
        metrics: { receivers: ["otlp"], exporters: ["prometheus"] },
        logs: { receivers: ["otlp"], exporters: ["debug"] },
      },
      // No internal telemetry server: its default port would clash between parallel tests.
      telemetry: { metrics: { level: "none" }, logs: { level: "warn" } },
    },
  };
  const dir = await Deno.makeTempDir({ prefix: "otelcol_test_" });
  const configPath = `${dir}/config.yaml`;
  await Deno.writeTextFile(configPath, stringify(config));

  const url = `http://127.0.0.1:${otlpHttpPort}`;
  const metricsUrl = `http://127.0.0.1:${promPort}/metrics`;
  const process = spawnLogged(binary, [`--config=${configPath}`], dir);
  const service = {
    url,
    metricsUrl,
    scrapeTarget: `127.0.0.1:${promPort}`,
    stop: process.stop,
    logs: process.logs,
    [Symbol.asyncDispose]: process.stop,
  };
  await waitReady(process, readyTimeoutMs, "the Collector", async () => {
    const otlp = await fetch(`${url}/v1/metrics`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    await otlp.body?.cancel();
    const metrics = await fetch(metricsUrl);
    await metrics.body?.cancel();
    return otlp.ok && metrics.ok ? true : undefined;
  });
  return service;
}

/**
 * Starts Debian's Prometheus on 127.0.0.1 with a temporary storage directory, scraping
 * `scrapeTarget` every `intervalSeconds` with the stack's `otel-collector` job settings
 * (`honor_labels`, the unit-suffix relabelling) and loading `ruleFiles`. Resolves once
 * `/-/ready` answers.
 *
 * @example
 * ```ts ignore
 * await using prometheus = await startPrometheus({
 *   scrapeTarget: collector.scrapeTarget,
 *   ruleFiles: ["infra/prometheus/rules/pipeline_alerts.yml"],
 * });
 * ```
 */
export async function startPrometheus(options: StartPrometheusOptions): Promise<RunningPrometheus> {
  const {
    scrapeTarget,
    ruleFiles = [],
    port = freePort(),
    intervalSeconds = 1,
    binary = "prometheus",
    readyTimeoutMs = 30_000,
  } = options;
  if (!/^[\w.-]+:\d+$/.test(scrapeTarget)) {
    throw new ConfigError(
      `Cannot start Prometheus as 'scrapeTarget' must be host:port: current value is "${scrapeTarget}"`,
      { field: "scrapeTarget" },
    );
  }
  checkPort("port", port);
  if (!(Number.isInteger(intervalSeconds) && intervalSeconds > 0)) {
    throw new ConfigError(
      `Cannot start Prometheus as 'intervalSeconds' must be a positive integer: current value is ${intervalSeconds}`,
      { field: "intervalSeconds" },
    );
  }
  await requireExecutable(binary, "apt-get install prometheus (infra/tools/install_tools.sh)");

  const stackConfig = parse(await Deno.readTextFile(PROMETHEUS_CONFIG_PATH)) as PrometheusConfig;
  const stackJob = stackConfig.scrape_configs.find((job) => job.job_name === "otel-collector");
  const config = {
    global: { scrape_interval: `${intervalSeconds}s`, evaluation_interval: `${intervalSeconds}s` },
    rule_files: ruleFiles.map((file) => file.startsWith("/") ? file : `${Deno.cwd()}/${file}`),
    scrape_configs: [{
      job_name: "otel-collector",
      honor_labels: stackJob?.honor_labels ?? true,
      static_configs: [{ targets: [scrapeTarget] }],
      metric_relabel_configs: stackJob?.metric_relabel_configs ?? [],
    }],
  };
  const dir = await Deno.makeTempDir({ prefix: "prometheus_test_" });
  const configPath = `${dir}/prometheus.yml`;
  await Deno.writeTextFile(configPath, stringify(config));

  const url = `http://127.0.0.1:${port}`;
  const process = spawnLogged(binary, [
    `--config.file=${configPath}`,
    `--storage.tsdb.path=${dir}/data`,
    `--web.listen-address=127.0.0.1:${port}`,
    "--web.enable-remote-write-receiver",
    "--enable-feature=exemplar-storage",
    "--log.level=warn",
  ], dir);
  const service = {
    url,
    stop: process.stop,
    logs: process.logs,
    [Symbol.asyncDispose]: process.stop,
  };
  await waitReady(process, readyTimeoutMs, "Prometheus", async () => {
    const response = await fetch(`${url}/-/ready`);
    await response.body?.cancel();
    return response.ok ? true : undefined;
  });
  return service;
}

/** The part of the stack's Collector configuration that the test Collector reuses. */
interface CollectorConfig {
  exporters: { prometheus: Record<string, unknown> };
}

/** The part of the stack's Prometheus configuration that the test Prometheus reuses. */
interface PrometheusConfig {
  scrape_configs: Array<{
    job_name: string;
    honor_labels?: boolean;
    metric_relabel_configs?: unknown[];
  }>;
}

/** A child process whose output is kept (the last lines) and which stops once. */
interface LoggedProcess {
  readonly status: Promise<Deno.CommandStatus>;
  exited(): boolean;
  logs(): string;
  stop(): Promise<void>;
}

const LOG_LIMIT = 16_384;
const STOP_TIMEOUT_MS = 10_000;

function spawnLogged(binary: string, args: string[], dir: string): LoggedProcess {
  const child = new Deno.Command(binary, {
    args,
    cwd: dir,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  let exited = false;
  const keep = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      output = (output + text).slice(-LOG_LIMIT);
    }
  };
  const drained = Promise.all([keep(child.stdout), keep(child.stderr)]);
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  let stopping: Promise<void> | undefined;
  async function stop(): Promise<void> {
    stopping ??= (async () => {
      if (!exited) {
        child.kill("SIGTERM");
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<"late">((resolve) => {
          timer = setTimeout(() => resolve("late"), STOP_TIMEOUT_MS);
        });
        const first = await Promise.race([status, late]);
        clearTimeout(timer);
        if (first === "late" && !exited) child.kill("SIGKILL");
      }
      await status;
      await drained;
      await Deno.remove(dir, { recursive: true });
    })();
    return await stopping;
  }
  return { status, exited: () => exited, logs: () => output, stop };
}

async function waitReady(
  process: LoggedProcess,
  timeoutMs: number,
  name: string,
  ready: () => Promise<true | undefined>,
): Promise<void> {
  let outcome: "ready" | "exited" | Error;
  try {
    outcome = await pollUntil(
      async () => process.exited() ? "exited" as const : await ready() && "ready" as const,
      { timeoutMs, intervalMs: 100, description: `${name} ready` },
    );
  } catch (error) {
    outcome = error instanceof Error ? error : new Error(String(error));
  }
  if (outcome === "ready") return;
  const logs = process.logs();
  const code = process.exited() ? (await process.status).code : undefined;
  await process.stop();
  const why = code === undefined ? "not ready in time" : `exited with code ${code}`;
  throw new PipelineError(`Cannot start ${name}: ${why}: last output:\n${logs}`, {
    cause: outcome === "exited" ? undefined : outcome,
  });
}

function freePort(): number {
  return freeLoopbackPorts(1)[0];
}

function checkPort(field: string, port: number): void {
  if (!(Number.isInteger(port) && port > 0 && port < 65536)) {
    throw new ConfigError(`Cannot use '${field}': must be a TCP port: current value is ${port}`, {
      field,
    });
  }
}

async function requireExecutable(binary: string, hint: string): Promise<void> {
  if (await findExecutable(binary) === undefined) {
    throw new ConfigError(`Cannot find the executable "${binary}": ${hint}`, { field: "binary" });
  }
}

/**
 * The absolute path of an executable given as a path or a name on `PATH`, or `undefined`.
 * Tests use it to skip (or, under CI, fail) when a tool is missing.
 */
export async function findExecutable(binary: string): Promise<string | undefined> {
  const candidates = binary.includes("/")
    ? [binary]
    : (Deno.env.get("PATH") ?? "").split(":").filter((dir) => dir !== "").map((dir) =>
      `${dir}/${binary}`
    );
  for (const candidate of candidates) {
    try {
      const info = await Deno.stat(candidate);
      if (info.isFile && info.mode !== null && (info.mode & 0o111) !== 0) return candidate;
    } catch {
      // Not there: try the next directory.
    }
  }
  return undefined;
}
