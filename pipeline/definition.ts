/**
 * `definePipeline`: a pipeline is data. It declares topics, the sources that write into them
 * from outside, and the stages that read one topic and write another, with their consumer
 * group, retry policy, dead-letter queue and concurrency. Wiring that cannot run is refused
 * here, when the pipeline is defined, with a message naming the stage and the field.
 *
 * @module
 */
import type { Schema } from "./codec.ts";
import { jsonSchemaOf } from "./codec.ts";
import { DefinitionError } from "./errors.ts";
import { REFERENCE_RETRY, retryTopicName, validateRetryPolicy } from "./retry.ts";
import type { RetryPolicy } from "./retry.ts";
import { NAME_PATTERN } from "./stage.ts";
import type { Stage } from "./stage.ts";
import { DeadLetterEnvelopeSchema, DEFAULT_MAX_MESSAGE_BYTES } from "./dead_letter.ts";
import { DEFAULT_STATE_RETENTION_MS, StateEntrySchema } from "./state_store.ts";
import type { TopicSpec } from "./transport/transport.ts";
import { TOPIC_NAME_PATTERN } from "./transport/transport.ts";

/** A topic as a pipeline declares it. */
export interface TopicDefinition extends TopicSpec {
  /**
   * The schema of the topic's values. Stages reading or writing the topic must use the same
   * schema. Omit it for topics holding dead-letter envelopes.
   */
  readonly schema?: Schema<unknown>;
  /**
   * Whether the topic is a dead-letter queue (its values are dead-letter envelopes).
   * @default false
   */
  readonly deadLetter?: boolean;
  /**
   * Whether the topic is a keyed stage's state changelog (derived by `definePipeline`, never
   * declared: compacted, co-partitioned with the stage's input).
   * @default false
   */
  readonly changelog?: boolean;
}

/** Something outside the stages that writes a topic (a service, a generator, a connector). */
export interface SourceDefinition {
  /** A stable name, lowercase words joined by dashes. */
  readonly name: string;
  /** The topic it writes. */
  readonly output: string;
  /** The schema of what it writes; must match the topic's. */
  readonly schema: Schema<unknown>;
  /**
   * The key of a record it writes; records with one key keep their order.
   * @default unkeyed
   */
  // deno-lint-ignore no-explicit-any -- sources of many value types share this list; the schema guards the value at runtime.
  key?(value: any): string;
}

/** A stage placed in the pipeline: what it reads, writes, and how it runs. */
export interface StageNode {
  /** The stage. Its name names the node. */
  // deno-lint-ignore no-explicit-any -- a pipeline holds stages of many In/Out types; each is checked against its topics' schemas at definition time instead.
  readonly stage: Stage<any, any>;
  /** The topic it reads. */
  readonly input: string;
  /** The topic it writes; required when the stage has an output schema. */
  readonly output?: string;
  /** The consumer group its workers join. */
  readonly group: string;
  /** The dead-letter topic for records that fail for good. */
  readonly deadLetter: string;
  /**
   * How failures are retried.
   * @default REFERENCE_RETRY (3 attempts, 1 s apart, then the DLQ)
   */
  readonly retry?: RetryPolicy;
  /**
   * Workers (consumer group members) running the stage; at most the input's partitions.
   * @default 1
   */
  readonly concurrency?: number;
  /**
   * For a keyed stage: how long a key's state entry is kept after its outcome, in ms. A record
   * of the key delivered again within it is a duplicate; memory holds the keys of this window.
   * @default 604800000 (7 days)
   */
  readonly stateRetentionMs?: number;
  /**
   * For a keyed stage with retry tiers: while a key has a record in a tier, later records of the
   * key follow it into the tiers instead of overtaking it (per-key order through retries).
   * Without it, a record in a tier is overtaken by later records of its key.
   * @default true
   */
  readonly orderedRetries?: boolean;
}

/** The input to {@linkcode definePipeline}. */
export interface PipelineSpec {
  /** The pipeline's name. */
  readonly name: string;
  /** Every topic the pipeline uses, retry tiers excepted (they are derived). */
  readonly topics: readonly TopicDefinition[];
  /** Writers from outside the stages. */
  readonly sources?: readonly SourceDefinition[];
  /** The stages, in any order. */
  readonly stages: readonly StageNode[];
}

/** A stage node with every default applied and its retry topics resolved. */
export interface ResolvedStageNode extends StageNode {
  /** The retry policy in force. */
  readonly retry: RetryPolicy;
  /** The number of workers. */
  readonly concurrency: number;
  /** The state retention in force, in ms. */
  readonly stateRetentionMs: number;
  /** Whether later records of a key follow a record of it parked in a tier (keyed, tiered). */
  readonly orderedRetries: boolean;
  /** The retry tier topics, in tier order (empty without tiers). */
  readonly retryTopics: readonly string[];
  /**
   * The state changelog topic of a keyed stage (`<group>-<stage>-changelog`), `undefined` for
   * an unkeyed one.
   */
  readonly changelog?: string;
  /**
   * The most bytes one dead letter may take: the DLQ topic's declared `max.message.bytes`, or
   * Kafka's default (1 MiB).
   */
  readonly deadLetterMaxBytes: number;
}

/** A validated pipeline. */
export interface Pipeline {
  /** The pipeline's name. */
  readonly name: string;
  /** Every topic, retry tiers included, in declaration order. */
  readonly topics: readonly TopicDefinition[];
  /** The sources. */
  readonly sources: readonly SourceDefinition[];
  /** The stages, defaults applied. */
  readonly stages: readonly ResolvedStageNode[];
  /** Looks a topic up by name. */
  topic(name: string): TopicDefinition;
  /** Looks a stage up by name. */
  stage(name: string): ResolvedStageNode;
  /** Looks a source up by name. */
  source(name: string): SourceDefinition;
}

function refuse(message: string, stage: string | undefined, field: string): never {
  throw new DefinitionError(message, { stage, field });
}

function sameSchema(a: Schema<unknown>, b: Schema<unknown>): boolean {
  if (a === b) return true;
  return JSON.stringify(jsonSchemaOf(a)) === JSON.stringify(jsonSchemaOf(b));
}

function checkUnique(
  kind: "topic" | "stage or source",
  names: readonly string[],
): void {
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) {
      // A duplicate stage or source names itself; a duplicate topic names its field.
      const stage = kind === "topic" ? undefined : name;
      const field = kind === "topic" ? `topics.${name}.name` : "name";
      refuse(`Cannot define pipeline as ${kind} name "${name}" is used twice`, stage, field);
    }
    seen.add(name);
  }
}

function checkTopic(topic: TopicDefinition): void {
  if (!TOPIC_NAME_PATTERN.test(topic.name)) {
    refuse(
      `Cannot define topic "${topic.name}" as its name must be 1 to 249 of [a-zA-Z0-9._-]`,
      undefined,
      `topics.${topic.name}.name`,
    );
  }
  if (!Number.isInteger(topic.partitions) || topic.partitions < 1) {
    refuse(
      `Cannot define topic "${topic.name}" as 'partitions' must be a positive integer: current value is ${topic.partitions}`,
      undefined,
      `topics.${topic.name}.partitions`,
    );
  }
  const factor = topic.replicationFactor;
  if (factor !== undefined && (!Number.isInteger(factor) || factor < 1)) {
    refuse(
      `Cannot define topic "${topic.name}" as 'replicationFactor' must be a positive integer: current value is ${factor}`,
      undefined,
      `topics.${topic.name}.replicationFactor`,
    );
  }
  const minInsync = topic.config?.["min.insync.replicas"];
  if (minInsync !== undefined) {
    const value = Number(minInsync);
    if (!Number.isInteger(value) || value < 1) {
      refuse(
        `Cannot define topic "${topic.name}" as 'min.insync.replicas' must be a positive integer: current value is "${minInsync}"`,
        undefined,
        `topics.${topic.name}.config.min.insync.replicas`,
      );
    }
    if (factor !== undefined && value > factor) {
      refuse(
        `Cannot define topic "${topic.name}" as 'min.insync.replicas' must be at most its ` +
          `replication factor ${factor}: current value is "${minInsync}"`,
        undefined,
        `topics.${topic.name}.config.min.insync.replicas`,
      );
    }
  }
  if (!topic.deadLetter && topic.schema === undefined) {
    refuse(
      `Cannot define topic "${topic.name}" as it has no 'schema' and is not a dead-letter topic`,
      undefined,
      `topics.${topic.name}.schema`,
    );
  }
}

function resolveNode(
  node: StageNode,
  topics: Map<string, TopicDefinition>,
): ResolvedStageNode {
  const name = node.stage?.name;
  if (node.stage?.kind !== "stage") {
    refuse(`Cannot define pipeline as a stage was not made by defineStage()`, name, "stage");
  }
  const where = `Cannot run stage "${name}"`;
  const input = topics.get(node.input);
  if (input === undefined) {
    refuse(`${where} as 'input' names unknown topic "${node.input}"`, name, "input");
  }
  if (input.deadLetter) {
    refuse(`${where} as 'input' topic "${node.input}" is a dead-letter topic`, name, "input");
  }
  if (input.schema && !sameSchema(input.schema, node.stage.input)) {
    refuse(
      `${where} as its input schema does not match the schema of topic "${node.input}"`,
      name,
      "input",
    );
  }
  if (node.stage.output !== null) {
    if (node.output === undefined) {
      refuse(`${where} as it has an output schema but no 'output' topic`, name, "output");
    }
    const output = topics.get(node.output);
    if (output === undefined) {
      refuse(`${where} as 'output' names unknown topic "${node.output}"`, name, "output");
    }
    if (output.schema && !sameSchema(output.schema, node.stage.output)) {
      refuse(
        `${where} as its output schema does not match the schema of topic "${node.output}"`,
        name,
        "output",
      );
    }
  } else if (node.output !== undefined) {
    refuse(`${where} as it writes topic "${node.output}" but has no output schema`, name, "output");
  }
  if (!node.deadLetter) {
    refuse(
      `${where} as it consumes "${node.input}" but has no 'deadLetter' topic`,
      name,
      "deadLetter",
    );
  }
  const dlq = topics.get(node.deadLetter);
  if (dlq === undefined) {
    refuse(`${where} as 'deadLetter' names unknown topic "${node.deadLetter}"`, name, "deadLetter");
  }
  if (!dlq.deadLetter) {
    refuse(
      `${where} as 'deadLetter' topic "${node.deadLetter}" is not declared with deadLetter: true`,
      name,
      "deadLetter",
    );
  }
  const declaredMaxBytes = dlq.config?.["max.message.bytes"];
  const deadLetterMaxBytes = declaredMaxBytes === undefined
    ? DEFAULT_MAX_MESSAGE_BYTES
    : Number(declaredMaxBytes);
  if (!Number.isSafeInteger(deadLetterMaxBytes) || deadLetterMaxBytes < 16 * 1024) {
    refuse(
      `${where} as 'max.message.bytes' of dead-letter topic "${node.deadLetter}" must be an ` +
        `integer of at least 16384: current value is "${declaredMaxBytes}"`,
      name,
      "deadLetter",
    );
  }
  if (!NAME_PATTERN.test(node.group ?? "")) {
    refuse(`${where} as 'group' must be lowercase words joined by dashes`, name, "group");
  }
  const concurrency = node.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    refuse(
      `${where} as 'concurrency' must be a positive integer: current value is ${concurrency}`,
      name,
      "concurrency",
    );
  }
  if (concurrency > input.partitions) {
    refuse(
      `${where} as 'concurrency' ${concurrency} exceeds the ${input.partitions} partitions of "${input.name}": extra workers would idle`,
      name,
      "concurrency",
    );
  }
  const retry = node.retry ?? REFERENCE_RETRY;
  validateRetryPolicy(retry, name);
  const retryTopics = retry.tiers.map((_, i) => retryTopicName(node.input, i + 1));
  const changelog = node.stage.key ? changelogTopicName(node.group, name) : undefined;
  const stateRetentionMs = node.stateRetentionMs ?? DEFAULT_STATE_RETENTION_MS;
  if (!Number.isSafeInteger(stateRetentionMs) || stateRetentionMs < 1) {
    refuse(
      `${where} as 'stateRetentionMs' must be a positive integer: current value is ${stateRetentionMs}`,
      name,
      "stateRetentionMs",
    );
  }
  const orderedRetries = (node.orderedRetries ?? true) && changelog !== undefined &&
    retryTopics.length > 0;
  return {
    ...node,
    retry,
    concurrency,
    retryTopics,
    deadLetterMaxBytes,
    changelog,
    stateRetentionMs,
    orderedRetries,
  };
}

/** The changelog topic of a keyed stage's state: `<group>-<stage>-changelog`. */
export function changelogTopicName(group: string, stage: string): string {
  return `${group}-${stage}-changelog`;
}

function checkEveryInputIsWritten(
  stages: readonly ResolvedStageNode[],
  sources: readonly SourceDefinition[],
): void {
  const written = new Set([...sources.map((s) => s.output), ...stages.map((s) => s.output)]);
  for (const node of stages) {
    if (!written.has(node.input)) {
      refuse(
        `Cannot run stage "${node.stage.name}" as no source or stage writes its 'input' topic "${node.input}": declare a source for it`,
        node.stage.name,
        "input",
      );
    }
  }
}

/**
 * Validates a pipeline specification and returns the pipeline, retry tier topics added.
 *
 * @throws {DefinitionError} naming the stage and field when the wiring cannot run
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { definePipeline, defineStage } from "./mod.ts";
 * const Num = z.object({ n: z.number() });
 * const pipeline = definePipeline({
 *   name: "numbers",
 *   topics: [
 *     { name: "in", partitions: 2, schema: Num },
 *     { name: "out", partitions: 2, schema: Num },
 *     { name: "in.dlq", partitions: 1, deadLetter: true },
 *   ],
 *   sources: [{ name: "feed", output: "in", schema: Num }],
 *   stages: [{
 *     stage: defineStage({ name: "double", input: Num, output: Num, handle: async ({ n }) => ({ n: 2 * n }) }),
 *     input: "in", output: "out", group: "doublers", deadLetter: "in.dlq",
 *   }],
 * });
 * console.log(pipeline.stage("double").concurrency); // 1
 * ```
 */
export function definePipeline(spec: PipelineSpec): Pipeline {
  if (!NAME_PATTERN.test(spec.name ?? "")) {
    refuse(
      `Cannot define pipeline "${spec.name}" as 'name' must be lowercase words joined by dashes`,
      undefined,
      "name",
    );
  }
  const sources = spec.sources ?? [];
  checkUnique("topic", spec.topics.map((t) => t.name));
  checkUnique("stage or source", [
    ...spec.stages.map((s) => s.stage?.name),
    ...sources.map((s) => s.name),
  ]);
  spec.topics.forEach(checkTopic);
  const topics = new Map(spec.topics.map((t) => [t.name, t]));
  for (const source of sources) {
    if (!NAME_PATTERN.test(source.name)) {
      refuse(
        `Cannot define source "${source.name}" as 'name' must be lowercase words joined by dashes`,
        source.name,
        "name",
      );
    }
    const output = topics.get(source.output);
    if (output === undefined) {
      refuse(
        `Cannot define source "${source.name}" as 'output' names unknown topic "${source.output}"`,
        source.name,
        "output",
      );
    }
    if (output.schema && !sameSchema(output.schema, source.schema)) {
      refuse(
        `Cannot define source "${source.name}" as its schema does not match the schema of topic "${source.output}"`,
        source.name,
        "schema",
      );
    }
  }
  const stages = spec.stages.map((node) => resolveNode(node, topics));
  checkEveryInputIsWritten(stages, sources);
  const allTopics = [...spec.topics];
  for (const node of stages) {
    for (const name of node.retryTopics) {
      if (topics.has(name)) {
        refuse(
          `Cannot run stage "${node.stage.name}" as its retry topic "${name}" is already declared`,
          node.stage.name,
          "retry.tiers",
        );
      }
      const input = topics.get(node.input)!;
      const tier: TopicDefinition = { ...input, name, config: input.config };
      topics.set(name, tier);
      allTopics.push(tier);
    }
    if (node.changelog !== undefined) {
      if (topics.has(node.changelog)) {
        refuse(
          `Cannot run stage "${node.stage.name}" as its changelog topic "${node.changelog}" is already declared`,
          node.stage.name,
          "group",
        );
      }
      const input = topics.get(node.input)!;
      const minInsync = input.config?.["min.insync.replicas"];
      const changelog: TopicDefinition = {
        name: node.changelog,
        // Co-partitioned with the input: the state of input partition p is changelog partition p.
        partitions: input.partitions,
        // As durable as the input it records the outcomes of.
        ...(input.replicationFactor === undefined
          ? {}
          : { replicationFactor: input.replicationFactor }),
        schema: StateEntrySchema,
        changelog: true,
        config: {
          "cleanup.policy": "compact",
          // Compaction never touches the active segment: rolling it about once a retention lets
          // the broker drop expired keys, so a restore reads the live keys, not the history.
          "segment.ms": String(changelogSegmentMs(node.stateRetentionMs)),
          // Tombstones (expired entries) are dropped by compaction after this long, not a day
          // later (the broker's default): a restore reads what is live plus this much history. A
          // restore that misses a dropped tombstone still drops the entry: it is past retention.
          "delete.retention.ms": String(changelogSegmentMs(node.stateRetentionMs)),
          ...(minInsync === undefined ? {} : { "min.insync.replicas": minInsync }),
        },
      };
      topics.set(node.changelog, changelog);
      allTopics.push(changelog);
    }
  }
  const stagesByName = new Map(stages.map((s) => [s.stage.name, s]));
  const sourcesByName = new Map(sources.map((s) => [s.name, s]));
  const lookup = <T>(map: Map<string, T>, kind: string, name: string): T => {
    const found = map.get(name);
    if (found === undefined) {
      throw new DefinitionError(`Cannot find ${kind} "${name}" in pipeline "${spec.name}"`, {
        field: kind,
      });
    }
    return found;
  };
  const pipeline: Pipeline = Object.freeze({
    name: spec.name,
    topics: Object.freeze(allTopics),
    sources: Object.freeze([...sources]),
    stages: Object.freeze(stages),
    topic: (name: string) => lookup(topics, "topic", name),
    stage: (name: string) => lookup(stagesByName, "stage", name),
    source: (name: string) => lookup(sourcesByName, "source", name),
  });
  DEFINED.add(pipeline);
  return pipeline;
}

/** Every pipeline {@linkcode definePipeline} returned: what {@linkcode isPipeline} asks. */
const DEFINED = new WeakSet<Pipeline>();

/**
 * Whether `value` is a pipeline that {@linkcode definePipeline} made (and so validated): how a
 * command finds the pipeline among a module's exports.
 *
 * @example
 * ```ts
 * import { isPipeline } from "./definition.ts";
 * isPipeline({ name: "x", stages: [] }); // false: only definePipeline() makes pipelines
 * ```
 */
export function isPipeline(value: unknown): value is Pipeline {
  return typeof value === "object" && value !== null && DEFINED.has(value as Pipeline);
}

/** @internal Exposed for describe(): the DLQ envelope schema as JSON Schema. */
export function deadLetterJsonSchema(): Record<string, unknown> {
  return jsonSchemaOf(DeadLetterEnvelopeSchema);
}

/** The shortest and longest `segment.ms` of a changelog topic. */
const CHANGELOG_SEGMENT_MS = { min: 10 * 60_000, max: 24 * 3600_000 } as const;

/**
 * The `segment.ms` of a stage's changelog topic: its state retention, kept between ten minutes
 * (fewer, larger segments) and a day (compaction at least daily).
 */
export function changelogSegmentMs(stateRetentionMs: number): number {
  return Math.min(CHANGELOG_SEGMENT_MS.max, Math.max(CHANGELOG_SEGMENT_MS.min, stateRetentionMs));
}
