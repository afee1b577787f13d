/**
 * `deno task run ./my_pipeline.ts`: runs any user's pipeline as a service. The module exports a
 * `definePipeline` result (or a factory of one); its consuming stages run in supervised Deno
 * workers on Kafka (`KAFKA_BROKERS`), each a member of its stage's group, with the same
 * health endpoints, telemetry, lag and restart metrics and graceful stop as the orders
 * services. SIGINT/SIGTERM drains; the summary counts the outcomes of what was consumed.
 *
 * @module
 */
import { pathToFileURL } from "node:url";
import { isAbsolute, resolve } from "node:path";
import { helpText, parseConfig, setting } from "./config.ts";
import type { ConfigValues } from "./config.ts";
import type { CommandIo } from "./command.ts";
import { runCommand } from "./command.ts";
import { ConfigError, errorMessage, PipelineError } from "./errors.ts";
import { configureLogging } from "./log.ts";
import type { LogLevel } from "./log.ts";
import { loadPipelineModule } from "./pipeline_module.ts";
import type { ServiceOutcome } from "./service.ts";
import { startService } from "./service.ts";
import { HEALTH_CONFIG, healthEndpoint } from "./service_config.ts";
import type { ParentingMode } from "./telemetry/mod.ts";
import { KAFKA_SECURITY_HELP } from "./transport/kafka/security.ts";

/** Every setting of `deno task run`. */
export const RUN_CONFIG = {
  brokers: setting({
    type: "string",
    env: "KAFKA_BROKERS",
    description:
      "Comma-separated Kafka-API brokers (host:port); unset runs on the embedded in-process transport",
  }),
  export: setting({
    type: "string",
    flag: "export",
    description:
      "The module's export holding the pipeline (or a factory of one); default its only definePipeline result",
  }),
  workers: setting({
    type: "integer",
    env: "PIPELINE_WORKERS",
    flag: "workers",
    min: 1,
    description:
      "Workers (consumer group members) per stage in this process; default min(partitions, cores)",
  }),
  serviceName: setting({
    type: "string",
    flag: "service-name",
    description:
      "service.name of the telemetry (OTEL_SERVICE_NAME wins); default the pipeline's name",
  }),
  traceParenting: setting({
    type: "string",
    env: "TRACE_PARENTING",
    flag: "trace-parenting",
    default: "parent",
    choices: ["parent", "link"],
    description: "How a consumer's process span relates to the producer's span: child or link",
  }),
  logLevel: setting({
    type: "string",
    env: "LOG_LEVEL",
    flag: "log-level",
    default: "info",
    choices: ["trace", "debug", "info", "warning", "error", "fatal"],
    description: "Lowest level of the log lines on stderr",
  }),
  stopGrace: setting({
    type: "number",
    env: "STOP_GRACE_SECONDS",
    flag: "stop-grace",
    default: 20,
    min: 0,
    description:
      "After SIGINT/SIGTERM, how long workers may take to finish their records, commit and leave",
  }),
  ...HEALTH_CONFIG,
} as const;

/** The settings of a `deno task run`. */
export type RunConfig = ConfigValues<typeof RUN_CONFIG>;

const USAGE = `Usage: deno task run <module> [options]

Runs the pipeline a module exports (a definePipeline result, or a factory of one) as a service:
each consuming stage in N Deno workers, members of the stage's consumer group, until
SIGINT/SIGTERM; then drains. Without KAFKA_BROKERS the stages run in this process on the
embedded transport. Ends with one JSON line on stdout: {"summary":{...}}.`;

/** What `deno task run` counts: outcomes of the records its members consumed, per stage. */
export interface StageSummary {
  /** Records given an outcome: written or dead-lettered (skipped duplicates are apart). */
  consumed: number;
  /** Records whose outputs were written. */
  output: number;
  /** Records dead-lettered. */
  dead_lettered: number;
  /** Records sent to a retry tier. */
  retry_scheduled: number;
  /** Handler attempts that were retries. */
  retries: number;
  /** Redelivered records skipped as done. */
  duplicates_skipped: number;
}

function emptySummary(): StageSummary {
  return {
    consumed: 0,
    output: 0,
    dead_lettered: 0,
    retry_scheduled: 0,
    retries: 0,
    duplicates_skipped: 0,
  };
}

function count(summary: StageSummary, outcome: ServiceOutcome): void {
  summary.retries += outcome.retries;
  if (outcome.kind === "retry-scheduled") {
    summary.retry_scheduled++;
    return;
  }
  if (outcome.kind === "output") summary.output++;
  else if (outcome.kind === "dead-lettered") summary.dead_lettered++;
  else if (outcome.kind === "duplicate") summary.duplicates_skipped++;
  if (outcome.kind === "output" || outcome.kind === "dead-lettered") summary.consumed++;
}

/** The module URL of a path given on the command line, relative to where `deno task` ran. */
export function moduleUrl(path: string, cwd: string): string {
  if (/^[a-z]+:\/\//i.test(path)) return path;
  return pathToFileURL(isAbsolute(path) ? path : resolve(cwd, path)).href;
}

/** The command's entry point; returns the exit code. */
export async function main(
  args: readonly string[],
  env: Record<string, string | undefined>,
  io: CommandIo,
  signal: AbortSignal,
): Promise<number> {
  const [first, ...rest] = args;
  const path = first !== undefined && !first.startsWith("-") ? first : undefined;
  let config: RunConfig;
  try {
    const parsed = parseConfig(RUN_CONFIG, { args: path === undefined ? args : rest, env });
    if (parsed.help) {
      io.stdout(helpText(RUN_CONFIG, USAGE, { sections: [KAFKA_SECURITY_HELP] }));
      return 0;
    }
    if (path === undefined) {
      throw new ConfigError("Cannot run a pipeline as no module was given: see --help", {
        field: "module",
      });
    }
    config = parsed.values;
  } catch (error) {
    io.stderr(`error: ${errorMessage(error)}`);
    return 2;
  }
  try {
    await configureLogging({
      level: config.logLevel as LogLevel,
      otlp: env.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined ||
        env.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT !== undefined,
    });
    // `deno task` runs from the project root; INIT_CWD is where the user typed the command.
    const module = moduleUrl(path, env.INIT_CWD ?? Deno.cwd());
    // A named export may be a factory of a pipeline (the service builds it); otherwise the
    // module's only definePipeline result.
    const name = config.export ?? (await loadPipelineModule(module)).exportName;
    const total = emptySummary();
    const stages: Record<string, StageSummary> = {};
    const service = await startService({
      pipeline: { module, export: name },
      brokers: config.brokers,
      workers: config.workers,
      serviceName: config.serviceName ?? name,
      env,
      health: healthEndpoint(config),
      parenting: config.traceParenting as ParentingMode,
      logLevel: config.logLevel as LogLevel,
      onOutcome(outcome) {
        count(total, outcome);
        count(stages[outcome.stage] ??= emptySummary(), outcome);
      },
      onEvent(event) {
        if (event.type === "crash") {
          io.stderr(`worker ${event.worker} crashed: ${event.error.message}`);
        } else if (event.type === "gave-up") {
          io.stderr(`worker ${event.worker} gave up after ${event.crashes} crashes`);
        }
      },
    });
    io.stderr(
      `pipeline "${service.pipeline.name}" from ${module} on ${service.transport.target}: ` +
        `${service.description}${
          service.health === undefined ? "" : `, health on ${service.health.url}`
        }`,
    );
    try {
      const stop = AbortSignal.any([signal, service.failed]);
      await new Promise<void>((resolve) => {
        if (stop.aborted) resolve();
        stop.addEventListener("abort", () => resolve(), { once: true });
      });
      if (service.failed.aborted) throw service.failed.reason;
    } finally {
      await service.stop(config.stopGrace * 1000);
    }
    io.stdout(JSON.stringify({ summary: { ...total, stages } }));
    return 0;
  } catch (error) {
    io.stderr(`error: ${errorMessage(error)}`);
    if (!(error instanceof PipelineError)) io.stderr(String((error as Error)?.stack ?? ""));
    return 1;
  }
}

if (import.meta.main) {
  await runCommand(main, "draining: finishing records, committing, leaving the groups");
}
