/**
 * Typed stages: `Stage<In, Out>` pairs an input schema, an output schema and a handler. The
 * schemas are checked by TypeScript and again at runtime, where bytes that do not match go to
 * the dead-letter queue with the validation error.
 *
 * @module
 */
import type { Schema } from "./codec.ts";
import type { Clock } from "./clock.ts";
import { DefinitionError } from "./errors.ts";
import type { ConsumedRecord } from "./transport/transport.ts";
import type { MetricName } from "./telemetry/names.ts";

/** What a handler receives besides its typed input. */
export interface StageContext {
  /** The record being handled (topic, partition, offset, key, headers). */
  readonly record: ConsumedRecord;
  /** This attempt's number, 1 for the first try, counted across retry tiers. */
  readonly attempt: number;
  /** Aborted when the worker drains or loses the record's partition. */
  readonly signal: AbortSignal;
  /** The runtime's clock; use it instead of `Date.now()` so tests can drive time. */
  readonly clock: Clock;
  /** Adds attributes (business ids, amounts) to the record's `process` span. */
  setAttributes(attributes: Record<string, string | number | boolean>): void;
}

/** What a handler may return: one output, several, or none. */
export type StageResult<Out> = Out | readonly Out[] | null | undefined;

/** The description of a stage, for {@linkcode defineStage}. */
export interface StageSpec<In, Out> {
  /** A stable, explicit name: lowercase letters, digits and dashes (`process-payment`). */
  readonly name: string;
  /** The schema every input record must match. */
  readonly input: Schema<In>;
  /** The schema of the records the stage emits, or `null` for a sink. */
  readonly output: Schema<Out> | null;
  /**
   * Handles one input. Throw a `RetryableError` for transient failures, a `FatalError`
   * (`RejectedError`, ...) for failures no retry can fix. Other errors count as retryable.
   */
  handle(input: In, context: StageContext): Promise<StageResult<Out>>;
  /**
   * The key of an output record.
   * @default the input record's key
   */
  outputKey?(output: Out): string;
  /**
   * The key an input record must carry, derived from its value (`(order) => order.order_id`).
   * When given, the stage is keyed and idempotent: the record key is the unit of ownership
   * (one key, one partition, one owner at a time) and the idempotency key, so an input whose
   * key already has an outcome (output produced or dead-lettered) is skipped. A record whose
   * key differs from the one derived from its value, or that has no key, is dead-lettered
   * with a `KeyMismatchError` naming both.
   * @default unkeyed: no idempotency, any record key accepted
   */
  key?(input: In): string;
  /**
   * Whether an input record without a key is a poison record (always so for a keyed stage).
   * @default false
   */
  readonly requireKey?: boolean;
  /**
   * The largest input value accepted, in bytes.
   * @default 1048576
   */
  readonly maxValueBytes?: number;
  /** An extra histogram (in ms) recording each input's processing time, retries included. */
  readonly processingLatency?: MetricName;
}

/** A stage: a validated, frozen {@linkcode StageSpec}. */
export type Stage<In, Out> = Readonly<StageSpec<In, Out>> & { readonly kind: "stage" };

/** Names of stages, sources and groups: lowercase words joined by dashes. */
export const NAME_PATTERN: RegExp = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;

/**
 * Defines a stage.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { defineStage } from "./stage.ts";
 * const double = defineStage({
 *   name: "double",
 *   input: z.object({ n: z.number() }),
 *   output: z.object({ n: z.number() }),
 *   handle: async ({ n }) => ({ n: n * 2 }),
 * });
 * console.log(double.name); // double
 * ```
 */
export function defineStage<In, Out>(spec: StageSpec<In, Out>): Stage<In, Out> {
  if (!NAME_PATTERN.test(spec.name)) {
    throw new DefinitionError(
      `Cannot define stage "${spec.name}" as 'name' must be lowercase words joined by dashes`,
      { stage: spec.name, field: "name" },
    );
  }
  const maxValueBytes = spec.maxValueBytes ?? 1024 * 1024;
  if (!Number.isInteger(maxValueBytes) || maxValueBytes < 1) {
    throw new DefinitionError(
      `Cannot define stage "${spec.name}" as 'maxValueBytes' must be a positive integer: current value is ${maxValueBytes}`,
      { stage: spec.name, field: "maxValueBytes" },
    );
  }
  return Object.freeze({ ...spec, maxValueBytes, kind: "stage" as const });
}
