/**
 * The {@linkcode TopicSpec} checks shared by the Kafka transports (kafkajs and
 * @platformatic/kafka) before they create a topic, and the wait until it is visible. No client library is imported here.
 *
 * @module
 */
import { DefinitionError, PipelineError } from "../errors.ts";
import type { TopicSpec } from "./transport.ts";

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
