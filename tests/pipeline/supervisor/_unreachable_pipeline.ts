/**
 * A pipeline module whose factory works in the parent (so the supervisor can create topics)
 * and, in every worker, fails as a worker that cannot reach the broker does: with a retriable
 * {@linkcode BrokerUnavailableError}.
 *
 * @module
 */
import type { Pipeline } from "../../../pipeline/definition.ts";
import { BrokerUnavailableError } from "../../../pipeline/errors.ts";
import { createWorkerPipeline } from "../../../stages/worker_pipeline.ts";
import type { WorkerPipelineOptions } from "../../../stages/worker_pipeline.ts";

/** Builds the orders pipeline in the parent; throws a broker outage inside a Web Worker. */
export function createUnreachablePipeline(options: WorkerPipelineOptions): Pipeline {
  if ("WorkerGlobalScope" in globalThis) {
    throw new BrokerUnavailableError(
      "Cannot reach Kafka broker in the unreachable fixture pipeline: it never can",
    );
  }
  return createWorkerPipeline(options);
}
