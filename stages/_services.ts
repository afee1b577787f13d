/**
 * What the orders commands share: where the orders pipeline's module is for workers, the
 * pipeline and gateway settings of a parsed config, and how worker events are reported.
 *
 * @module
 */
import type { CommandIo } from "../pipeline/command.ts";
import { configureLogging } from "../pipeline/log.ts";
import type { LogLevel } from "../pipeline/log.ts";
import type { PipelineModuleSpec, SupervisorEvent } from "../pipeline/supervisor/mod.ts";
import { retryPreset } from "./config.ts";
import type { OrdersPipelineOptions } from "./orders_pipeline.ts";
import type { WorkerPipelineOptions } from "./worker_pipeline.ts";

/** The settings the orders pipeline is built from (a subset of each command's config). */
export interface OrdersPipelineSettings {
  readonly ordersTopic: string;
  readonly paymentsTopic: string;
  readonly dlqTopic: string;
  readonly groupId: string;
  readonly partitions: number;
  readonly retry: string;
}

/** The gateway's settings. */
export interface GatewaySettings {
  readonly failureRate: number;
  readonly latencyMs: number;
  readonly seed: number;
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
    concurrency,
    retry: retryPreset(settings.retry),
  };
}

/** Options for {@linkcode workerPipelineSpec}. */
export interface WorkerPipelineSpecOptions {
  /** Members of the payment stage (the pipeline's `concurrency`). */
  readonly concurrency: number;
  /** The gateway each worker builds. */
  readonly gateway: GatewaySettings;
}

/** Where workers find the orders pipeline: `worker_pipeline.ts` and its clone-able options. */
export function workerPipelineSpec(
  settings: OrdersPipelineSettings,
  options: WorkerPipelineSpecOptions,
): PipelineModuleSpec {
  const workerOptions: WorkerPipelineOptions = {
    ...pipelineOptions(settings, options.concurrency),
    ...options.gateway,
  };
  return {
    module: new URL("./worker_pipeline.ts", import.meta.url).href,
    export: "createWorkerPipeline",
    options: workerOptions,
  };
}

/** Payment workers: the flag, or one per core, never more than the partitions. */
export function paymentWorkers(settings: { workers?: number; partitions: number }): number {
  const cores = navigator.hardwareConcurrency ?? 2;
  return Math.min(settings.workers ?? Math.min(settings.partitions, cores), settings.partitions);
}

/** Sets up this process's log lines at `level`, exported as OTLP logs when configured. */
export async function setupLogging(
  level: string,
  env: Record<string, string | undefined>,
): Promise<void> {
  await configureLogging({
    level: level as LogLevel,
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
