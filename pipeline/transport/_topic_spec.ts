/**
 * The {@linkcode TopicSpec} checks shared by the Kafka transports (kafkajs and
 * @platformatic/kafka) before they create a topic, the warnings about an existing topic that has
 * less than its spec declares, and the wait until a topic is visible. No client library is
 * imported here.
 *
 * @module
 */
import { DefinitionError, PipelineError } from "../errors.ts";
import { getLogger, isLoggingConfigured } from "../log.ts";
import type { TopicSpec } from "./transport.ts";

/** An existing topic that has less than its spec declares; the pipeline uses it as it is. */
export interface TopicWarning {
  /** The topic. */
  readonly topic: string;
  /** What it has less of. */
  readonly field: "partitions" | "replicationFactor";
  /** What the spec declares. */
  readonly declared: number;
  /** What the broker has (the replication factor: the fewest replicas of any partition). */
  readonly actual: number;
  /** The warning, for humans. */
  readonly message: string;
}

/** A partition as both clients' metadata describe it: its replicas' broker ids. */
export interface PartitionReplicas {
  readonly replicas: readonly number[];
}

/**
 * Reports, through `onWarning`, each existing topic that has less than its spec declares: fewer
 * partitions, or fewer replicas (of its least replicated partition) than declared or
 * `replicationFactor` when it declares none. `partitionsOf` gives a topic's partitions from the
 * client's metadata; a topic it does not know (or knows without partitions) is skipped.
 */
export function warnAboutShortfalls(
  specs: readonly TopicSpec[],
  partitionsOf: (topic: string) => readonly PartitionReplicas[] | undefined,
  replicationFactor: number,
  onWarning: (warning: TopicWarning) => void,
): void {
  for (const spec of specs) {
    const found = partitionsOf(spec.name);
    if (found === undefined || found.length === 0) continue;
    const replicas = Math.min(...found.map((partition) => partition.replicas.length));
    for (const warning of topicShortfalls(spec, found.length, replicas, replicationFactor)) {
      onWarning(warning);
    }
  }
}

function topicShortfalls(
  spec: TopicSpec,
  partitions: number,
  replicas: number,
  replicationFactor: number,
): TopicWarning[] {
  const warnings: TopicWarning[] = [];
  if (partitions < spec.partitions) {
    warnings.push({
      topic: spec.name,
      field: "partitions",
      declared: spec.partitions,
      actual: partitions,
      message: `Topic "${spec.name}" exists with ${partitions} partition(s), fewer than the ` +
        `${spec.partitions} declared: the pipeline uses it as it is, with at most ` +
        `${partitions} worker(s) busy per stage reading it`,
    });
  }
  const declared = spec.replicationFactor ?? replicationFactor;
  if (replicas < declared) {
    warnings.push({
      topic: spec.name,
      field: "replicationFactor",
      declared,
      actual: replicas,
      message: `Topic "${spec.name}" exists with replication factor ${replicas}, below the ` +
        `${declared} declared: a broker failure can lose or stall its records until its ` +
        `partitions are reassigned`,
    });
  }
  return warnings;
}

const topicLog = getLogger(["pipeline", "transport"]);

/**
 * The transports' default for topic warnings: a warning log line, or stderr before logging is
 * set up.
 */
export function logTopicWarning(warning: TopicWarning): void {
  if (isLoggingConfigured()) {
    topicLog.warn("{message}", { ...warning });
  } else {
    console.error(`warning: ${warning.message}`);
  }
}

/**
 * Checks a topic's spec before it is created.
 *
 * @throws {DefinitionError} naming the topic and the field when `partitions` or a given
 *   `replicationFactor` is not a positive integer.
 */
export function validateTopicSpec(spec: TopicSpec): void {
  if (!Number.isInteger(spec.partitions) || spec.partitions < 1) {
    throw new DefinitionError(
      `Cannot create topic "${spec.name}" as 'partitions' must be a positive integer: ` +
        `current value is ${spec.partitions}`,
      { topic: spec.name, field: "partitions" },
    );
  }
  const factor = spec.replicationFactor;
  if (factor !== undefined && (!Number.isInteger(factor) || factor < 1)) {
    throw new DefinitionError(
      `Cannot create topic "${spec.name}" as 'replicationFactor' must be a positive integer: ` +
        `current value is ${factor}`,
      { topic: spec.name, field: "replicationFactor" },
    );
  }
}

/**
 * Waits until new topics show up in the broker metadata, polling `ready` with a growing delay
 * (20 ms doubling up to 250 ms).
 *
 * @param specs The topics waited for (at least one).
 * @param readyTimeout How long to wait, in milliseconds.
 * @param ready Whether every topic is in the metadata with a leader for each partition.
 * @throws {PipelineError} naming the first topic when they are not visible in time.
 */
export async function waitForTopics(
  specs: readonly TopicSpec[],
  readyTimeout: number,
  ready: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + readyTimeout;
  let delay = 20;
  while (!(await ready())) {
    if (Date.now() >= deadline) {
      throw new PipelineError(
        `Cannot use topics ${specs.map((spec) => `"${spec.name}"`).join(", ")}: ` +
          `not visible in the broker metadata after ${readyTimeout} ms`,
        { topic: specs[0].name },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 250);
  }
}
