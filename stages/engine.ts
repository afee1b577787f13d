/**
 * Where the payment stage runs: in this process on the embedded transport (its logs cannot be
 * shared with workers), or in supervised Deno workers on Kafka, each a member of the
 * `payment-service` group with its own connections and telemetry.
 *
 * @module
 */
import type { ProcessingGuarantee } from "../pipeline/guarantee.ts";
import type { Clock } from "../pipeline/clock.ts";
import type { Pipeline } from "../pipeline/definition.ts";
import type { Instrumentation } from "../pipeline/instrumentation.ts";
import { startPipeline } from "../pipeline/run.ts";
import type { StageOutcome } from "../pipeline/runner.ts";
import { startSupervisor } from "../pipeline/supervisor/mod.ts";
import type { SupervisorEvent } from "../pipeline/supervisor/mod.ts";
import type { Producer, Transport } from "../pipeline/transport/transport.ts";
import { createGatewayClient } from "./gateway_client.ts";
import { createOrdersPipeline } from "./orders_pipeline.ts";
import type { OrdersPipelineOptions } from "./orders_pipeline.ts";
import { PROCESS_PAYMENT } from "./process_payment.ts";
import { SERVICE, SERVICE_VERSION } from "./telemetry.ts";
import type { WorkerPipelineOptions } from "./worker_pipeline.ts";

/** A running pipeline, wherever its stages run. */
export interface Engine {
  /** The pipeline, for publishing and drain checks. */
  readonly pipeline: Pipeline;
  /** The producer sources publish with. */
  readonly producer: Producer;
  /** Where the stages run, for the first line of output. */
  readonly description: string;
  /** Drains the stages (within `deadlineMs`) and closes the producer. */
  stop(deadlineMs: number): Promise<void>;
}

/** Options for {@linkcode startEngine}. */
export interface EngineOptions {
  /** The transport. */
  readonly transport: Transport;
  /** The `KAFKA_BROKERS` value workers connect to; unset for the embedded transport. */
  readonly brokers?: string;
  /** The pipeline's settings, gateway excepted. */
  readonly pipeline: Omit<OrdersPipelineOptions, "gateway">;
  /** The gateway service the payment stage charges, and the timeout of one attempt. */
  readonly gateway: { readonly url: string; readonly timeoutMs: number };
  /** Payment workers. */
  readonly workers: number;
  /**
   * The processing guarantee of every member (`PROCESSING_GUARANTEE`).
   * @default "at_least_once"
   */
  readonly guarantee?: ProcessingGuarantee;
  /** How the workers' process spans relate to the producer's span. */
  readonly parenting?: "parent" | "link";
  /** The lowest level of the workers' JSON log lines. */
  readonly logLevel?: "trace" | "debug" | "info" | "warning" | "error" | "fatal";
  /** Time, for in-process runs (retries). */
  readonly clock: Clock;
  /** Telemetry, for in-process runs (workers set up their own). */
  readonly instrumentation: Instrumentation;
  /** Called once per record outcome. */
  readonly onOutcome: (outcome: Pick<StageOutcome, "kind" | "retries">) => void;
  /** Called on worker crashes, restarts and give-ups. */
  readonly onEvent: (event: SupervisorEvent) => void;
}

/** Starts the stages: in-process on the embedded transport, in Deno workers on Kafka. */
export async function startEngine(options: EngineOptions): Promise<Engine> {
  const { transport } = options;
  if (options.brokers === undefined) {
    const pipeline = createOrdersPipeline({
      ...options.pipeline,
      gateway: createGatewayClient(options.gateway.url, { timeoutMs: options.gateway.timeoutMs }),
    });
    const running = await startPipeline(pipeline, {
      transport,
      clock: options.clock,
      instrumentation: options.instrumentation,
      onOutcome: options.onOutcome,
      guarantee: options.guarantee,
    });
    return {
      pipeline,
      producer: running.producer,
      description: `${options.workers} in-process member(s)`,
      stop: () => running.stop(),
    };
  }
  const workerOptions: WorkerPipelineOptions = {
    ...options.pipeline,
    gatewayUrl: options.gateway.url,
    gatewayTimeoutMs: options.gateway.timeoutMs,
  };
  const supervisor = await startSupervisor({
    pipeline: {
      module: new URL("./worker_pipeline.ts", import.meta.url).href,
      export: "createWorkerPipeline",
      options: workerOptions,
    },
    transport: { kind: "kafka", brokers: options.brokers },
    stages: { [PROCESS_PAYMENT]: { workers: options.workers } },
    guarantee: options.guarantee,
    telemetry: {
      serviceName: SERVICE.PAYMENT,
      serviceVersion: SERVICE_VERSION,
      logLevel: options.logLevel,
      parenting: options.parenting,
    },
  }, { onOutcome: options.onOutcome, onEvent: options.onEvent });
  let producer: Producer;
  try {
    producer = await transport.producer();
  } catch (error) {
    // Workers already run: stop them rather than leave them behind; the start's own error is
    // the one to report, so a failure of this cleanup is not.
    await supervisor.stop(5000).catch(() => undefined);
    throw error;
  }
  return {
    pipeline: supervisor.pipeline,
    producer,
    description: `${options.workers} Deno worker(s)`,
    async stop(deadlineMs: number): Promise<void> {
      try {
        await supervisor.stop(deadlineMs);
      } finally {
        await producer.close();
      }
    },
  };
}
