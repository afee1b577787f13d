/**
 * A pipeline module whose factory works in the parent (so the supervisor can create topics)
 * and throws in every worker: a worker that crashes at startup, every time.
 *
 * @module
 */
import type { Pipeline } from "../../../pipeline/definition.ts";
import { createWorkerPipeline } from "../../../stages/worker_pipeline.ts";
import type { WorkerPipelineOptions } from "../../../stages/worker_pipeline.ts";

/** Builds the orders pipeline in the parent; throws inside a Web Worker. */
export function createCrashingPipeline(options: WorkerPipelineOptions): Pipeline {
  if ("WorkerGlobalScope" in globalThis) {
    throw new Error("Cannot build the crashing fixture pipeline in a worker: it always fails");
  }
  return createWorkerPipeline(options);
}
