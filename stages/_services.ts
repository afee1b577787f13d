/**
 * What the orders commands share: where the orders pipeline's module is for workers, the
 * pipeline and gateway settings of a parsed config, the gateway service a run starts in-process
 * without `GATEWAY_URL`, and how worker events are reported.
 *
 * @module
 */
import type { CommandIo } from "../pipeline/command.ts";
import { errorMessage, PipelineError } from "../pipeline/errors.ts";
import { configureLogging } from "../pipeline/log.ts";
import type { LogFormat, LogLevel } from "../pipeline/log.ts";
import type { PipelineModuleSpec, SupervisorEvent } from "../pipeline/supervisor/mod.ts";
import { retryPreset } from "./config.ts";
import { createGatewayClient } from "./gateway_client.ts";
import { startGatewayService } from "./gateway_service.ts";
import type { GatewayService } from "./gateway_service.ts";
import type { OrdersPipelineOptions } from "./orders_pipeline.ts";
import type { WorkerPipelineOptions } from "./worker_pipeline.ts";

/** The settings the orders pipeline is built from (a subset of each command's config). */
export interface OrdersPipelineSettings {
  readonly ordersTopic: string;
  readonly paymentsTopic: string;
  readonly dlqTopic: string;
  readonly groupId: string;
  readonly partitions: number;
  readonly replicationFactor: number;
  readonly minInsyncReplicas?: number;
  readonly retry: string;
  /** How long the payment stage keeps an order's state entry, in ms (`STATE_RETENTION_MS`). */
  readonly stateRetentionMs?: number;
}

/** The gateway service the payment stage charges over HTTP. */
export interface GatewaySettings {
  /** Its base URL (`GATEWAY_URL`, or the in-process service's). */
  readonly url: string;
  /** Timeout of one charge attempt, in milliseconds. */
  readonly timeoutMs: number;
}

/** The pipeline options of `settings`, gateway excepted. */
export function pipelineOptions(
  settings: OrdersPipelineSettings,
  concurrency: number,
): Omit<OrdersPipelineOptions, "gateway"> {
  return {
    ordersTopic: settings.ordersTopic,
    paymentsTopic: settings.paymentsTopic,
    dlqTopic: settings.dlqTopic,
    groupId: settings.groupId,
    partitions: settings.partitions,
    replicationFactor: settings.replicationFactor,
    minInsyncReplicas: settings.minInsyncReplicas,
    concurrency,
    retry: retryPreset(settings.retry),
    stateRetentionMs: settings.stateRetentionMs,
  };
}

/** Options for {@linkcode workerPipelineSpec}. */
export interface WorkerPipelineSpecOptions {
  /** Members of the payment stage (the pipeline's `concurrency`). */
  readonly concurrency: number;
  /**
   * The gateway service each worker's client charges; unset, each worker simulates one in
   * memory (for a pipeline that is never consumed here, e.g. the order service's).
   * @default undefined
   */
  readonly gateway?: GatewaySettings;
}

/** Where workers find the orders pipeline: `worker_pipeline.ts` and its clone-able options. */
export function workerPipelineSpec(
  settings: OrdersPipelineSettings,
  options: WorkerPipelineSpecOptions,
): PipelineModuleSpec {
  const workerOptions: WorkerPipelineOptions = {
    ...pipelineOptions(settings, options.concurrency),
    gatewayUrl: options.gateway?.url,
    gatewayTimeoutMs: options.gateway?.timeoutMs,
  };
  return {
    module: new URL("./worker_pipeline.ts", import.meta.url).href,
    export: "createWorkerPipeline",
    options: workerOptions,
  };
}

/** The orders pipeline built in this process, charging the gateway service over HTTP. */
export function inProcessPipelineOptions(
  settings: OrdersPipelineSettings,
  options: { readonly concurrency: number; readonly gateway: GatewaySettings },
): OrdersPipelineOptions {
  return {
    ...pipelineOptions(settings, options.concurrency),
    gateway: createGatewayClient(options.gateway.url, { timeoutMs: options.gateway.timeoutMs }),
  };
}

/** The settings of the gateway a run charges (a subset of the config). */
export interface GatewayConfig {
  readonly gatewayUrl?: string;
  readonly gatewayTimeoutMs: number;
  readonly failureRate: number;
  readonly gatewayTimeoutRate: number;
  readonly gatewayLatencyMs: number;
}

/** The gateway a run charges, and the in-process service when it started one. */
export interface RunGateway {
  /** What the payment stage charges. */
  readonly settings: GatewaySettings;
  /** The gateway service running in this process (no `GATEWAY_URL`), else `undefined`. */
  readonly local?: GatewayService;
  /** How the start line names it. */
  readonly description: string;
}

/**
 * The gateway of a run: `GATEWAY_URL` when set; otherwise the gateway service started here, on
 * a free loopback port, with the config's failure rate, timeout rate and latency (the payment
 * stage charges it over HTTP all the same, and its ledger counts the charges).
 */
export async function openGateway(config: GatewayConfig, seed: number): Promise<RunGateway> {
  if (config.gatewayUrl !== undefined) {
    return {
      settings: { url: config.gatewayUrl, timeoutMs: config.gatewayTimeoutMs },
      description: config.gatewayUrl,
    };
  }
  const local = await startGatewayService({
    failureRate: config.failureRate,
    timeoutRate: config.gatewayTimeoutRate,
    latencyMs: config.gatewayLatencyMs,
    seed,
  });
  return {
    settings: { url: local.url, timeoutMs: config.gatewayTimeoutMs },
    local,
    description: `${local.url} (in-process)`,
  };
}

/**
 * Closes the in-process gateway service, if any, and writes its ledger line: charges for
 * requests, replays, 503s, held requests, declines.
 */
export async function closeGateway(gateway: RunGateway, io: CommandIo): Promise<void> {
  if (gateway.local === undefined) return;
  await gateway.local.close();
  const counts = gateway.local.handler.counts();
  io.stderr(
    `gateway ledger: ${counts.charges} charge(s) for ${counts.requests} request(s): ` +
      `${counts.replays} answered with an earlier charge, ${counts.unavailable} 503, ` +
      `${counts.timeouts} held past the timeout, ${counts.declined} declined`,
  );
}

/** Payment workers: the flag, or one per core, never more than the partitions. */
export function paymentWorkers(settings: { workers?: number; partitions: number }): number {
  const cores = navigator.hardwareConcurrency ?? 2;
  return Math.min(settings.workers ?? Math.min(settings.partitions, cores), settings.partitions);
}

/**
 * Sets up this process's log lines at `level` in `format` (`LOG_FORMAT`; `auto` decides by the
 * terminal), exported as OTLP logs when configured.
 */
export async function setupLogging(
  settings: { readonly logLevel: string; readonly logFormat: string },
  env: Record<string, string | undefined>,
): Promise<void> {
  await configureLogging({
    level: settings.logLevel as LogLevel,
    // Workers read the same LOG_FORMAT and terminal, and so decide the same.
    format: settings.logFormat === "auto" ? undefined : settings.logFormat as LogFormat,
    otlp: env.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined ||
      env.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT !== undefined,
  });
}

/** Writes a line for each worker crash and give-up. */
export function reportWorkerEvent(io: CommandIo, event: SupervisorEvent): void {
  if (event.type === "crash") {
    io.stderr(
      `worker ${event.worker} crashed: ${event.error.message}` +
        (event.restart ? `; restart ${event.restart.attempt} in ${event.restart.delayMs} ms` : ""),
    );
  } else if (event.type === "gave-up") {
    io.stderr(`worker ${event.worker} gave up after ${event.crashes} crashes`);
  }
}

/**
 * Runs a command's work and prints its summary as one JSON line; returns the exit code: 0, or
 * 1 with the error (and, for an unexpected one, its stack) on stderr.
 */
export async function printSummary(io: CommandIo, run: () => Promise<unknown>): Promise<number> {
  try {
    const summary = await run();
    io.stdout(JSON.stringify({ summary }));
    return 0;
  } catch (error) {
    io.stderr(`error: ${errorMessage(error)}`);
    if (!(error instanceof PipelineError)) io.stderr(String((error as Error)?.stack ?? ""));
    return 1;
  }
}
