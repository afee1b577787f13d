/**
 * Helpers shared by the pipeline and stage tests: a small numbers pipeline, polling with a
 * deadline, and readers for what landed on a topic.
 *
 * @module
 */
import { z } from "zod";
import type { PipelineSpec, StageNode } from "../pipeline/definition.ts";
import { parseEnvelope } from "../pipeline/dead_letter.ts";
import type { DeadLetterEnvelope } from "../pipeline/dead_letter.ts";
import { defineStage } from "../pipeline/stage.ts";
import type { Stage, StageContext, StageResult } from "../pipeline/stage.ts";
import type { EmbeddedTransport } from "../pipeline/transport/embedded/mod.ts";
import type { ConsumedRecord } from "../pipeline/transport/transport.ts";

/** The value of every topic of the numbers pipeline. */
export const Num = z.object({ n: z.number() });

/** A number record. */
export type NumValue = z.infer<typeof Num>;

/** A schema that differs from {@linkcode Num}. */
export const Text = z.object({ text: z.string() });

/** A handler for the numbers stage. */
export type NumHandler = (
  input: NumValue,
  context: StageContext,
) => Promise<StageResult<NumValue>>;

/** The `double` stage: doubles `n`, or runs `handle` when given. */
export function doubleStage(
  handle: NumHandler = ({ n }) => Promise.resolve({ n: 2 * n }),
  extra: { key?: (input: NumValue) => string; requireKey?: boolean } = {},
): Stage<NumValue, NumValue> {
  return defineStage({ name: "double", input: Num, output: Num, handle, ...extra });
}

/** A valid spec: source `feed` -> `in` -> stage `double` -> `out`, dead letters in `in.dlq`. */
export function numbersSpec(node: Partial<StageNode> = {}): PipelineSpec {
  return {
    name: "numbers",
    topics: [
      { name: "in", partitions: 2, schema: Num },
      { name: "out", partitions: 2, schema: Num },
      { name: "in.dlq", partitions: 1, deadLetter: true },
    ],
    sources: [{ name: "feed", output: "in", schema: Num, key: (v: NumValue) => `k${v.n}` }],
    stages: [{
      stage: doubleStage(),
      input: "in",
      output: "out",
      group: "doublers",
      deadLetter: "in.dlq",
      ...node,
    }],
  };
}

/** Polls `condition` until it holds, failing with `what` after `timeoutMs`. */
export async function waitUntil(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

const decoder = new TextDecoder();

/** A record's value parsed as JSON. */
export function json<T = Record<string, unknown>>(record: ConsumedRecord): T {
  return JSON.parse(decoder.decode(record.value!)) as T;
}

/** A record's key as text, or `null`. */
export function keyText(record: ConsumedRecord): string | null {
  return record.key === null ? null : decoder.decode(record.key);
}

/** Every dead-letter envelope on `topic`, parsed and validated. */
export function envelopes(transport: EmbeddedTransport, topic: string): DeadLetterEnvelope[] {
  return transport.records(topic).map((record) => parseEnvelope(record.value!));
}
