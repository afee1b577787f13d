/**
 * The orders pipeline as a worker builds it. A supervisor's workers cannot receive handler
 * functions, so each imports this module and calls {@linkcode createWorkerPipeline} with
 * clone-able options; the payment gateway's client is built here, in the worker.
 *
 * @example
 * ```ts ignore
 * import { startSupervisor } from "../pipeline/supervisor/mod.ts";
 * await startSupervisor({
 *   pipeline: {
 *     module: new URL("./worker_pipeline.ts", import.meta.url).href,
 *     export: "createWorkerPipeline",
 *     options: { failureRate: 0.2, partitions: 3 },
 *   },
 *   transport: { kind: "kafka", brokers: "127.0.0.1:9092" },
 * });
 * ```
 *
 * @module
 */
import type { Pipeline } from "../pipeline/definition.ts";
import { createOrdersPipeline } from "./orders_pipeline.ts";
import type { OrdersPipelineOptions } from "./orders_pipeline.ts";
import { createPaymentGateway } from "./payment_gateway.ts";
import { createGatewayClient } from "./gateway_client.ts";

/** Options for {@linkcode createWorkerPipeline}: clone-able, so they can be posted. */
export interface WorkerPipelineOptions extends Omit<OrdersPipelineOptions, "gateway"> {
  /**
   * The gateway service's base URL; unset, each worker simulates a gateway of its own in
   * memory with the settings below (keys are then per worker).
   */
  readonly gatewayUrl?: string;
  /**
   * Timeout of one charge attempt against `gatewayUrl`, in milliseconds.
   * @default 2000
   */
  readonly gatewayTimeoutMs?: number;
  /**
   * The probability that one gateway attempt fails with a 503, in [0, 1].
   * @default 0.2
   */
  readonly failureRate?: number;
  /**
   * The time one charge takes, in milliseconds.
   * @default 0
   */
  readonly latencyMs?: number;
  /**
   * The seed of the gateway's failure draw.
   * @default 1
   */
  readonly seed?: number;
}

/** Builds the orders pipeline charging the gateway service, or a simulated gateway of its own. */
export function createWorkerPipeline(options: WorkerPipelineOptions = {}): Pipeline {
  const { gatewayUrl, gatewayTimeoutMs, failureRate, latencyMs, seed, ...pipelineOptions } =
    options;
  const gateway = gatewayUrl === undefined
    ? createPaymentGateway({ failureRate, latencyMs, seed })
    : createGatewayClient(gatewayUrl, { timeoutMs: gatewayTimeoutMs });
  return createOrdersPipeline({ ...pipelineOptions, gateway });
}
