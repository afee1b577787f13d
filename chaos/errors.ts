/**
 * The fault suite's own error: the suite could not do what it set out to do (a tool failed,
 * a process or the broker did not start in time). A guarantee the pipeline breaks is not an
 * error but a failed check in the report.
 *
 * @module
 */
import { PipelineError } from "../pipeline/errors.ts";
import type { PipelineErrorOptions } from "../pipeline/errors.ts";

/**
 * The fault suite could not run a step (not a finding about the pipeline).
 *
 * @example
 * ```ts
 * import { ChaosError } from "./errors.ts";
 * const error = new ChaosError("Cannot start the gateway within 30000 ms", { field: "gateway" });
 * console.log(error.retriable); // false
 * ```
 */
export class ChaosError extends PipelineError {
  /** Creates the error with its message and context. */
  constructor(message: string, options: PipelineErrorOptions = {}) {
    super(message, options);
  }
}
