/**
 * The checks and error builders of a transactional producer that do not depend on the Kafka
 * client, shared by the kafkajs and @platformatic/kafka transports so both refuse the same
 * calls with the same errors. No client library is imported here.
 *
 * @module
 */
import { errorMessage, PipelineError, ProducerFencedError } from "../errors.ts";
import type { TransactionOffset } from "./transport.ts";

/**
 * The error for a call on a producer that a newer one with its transactional id fenced.
 *
 * @param transactionalId The fenced producer's transactional id.
 * @param what What was refused, e.g. `commit the transaction`.
 * @param cause The error that showed the producer was fenced.
 */
export function fencedProducerError(
  transactionalId: string,
  what: string,
  cause: unknown,
): ProducerFencedError {
  return new ProducerFencedError(
    `Cannot ${what} of "${transactionalId}" as a newer producer with that transactional id ` +
      "fenced this one",
    { transactionalId, cause },
  );
}

/** The error of `begin` on a closed producer. */
export function producerClosedError(transactionalId: string): PipelineError {
  return new PipelineError(
    `Cannot begin a transaction of "${transactionalId}" as the producer is closed`,
  );
}

/** The error of `begin` while a transaction is still open (or beginning). */
export function stillOpenError(transactionalId: string): PipelineError {
  return new PipelineError(
    `Cannot begin a transaction of "${transactionalId}" as one is still open: ` +
      "commit or abort it first",
  );
}

/**
 * Checks the consumer group and offsets a transaction is asked to commit.
 *
 * @throws {PipelineError} with field `groupId` when the group id is empty, or `offset` (and
 *   the topic and partition) when an offset is not a non-negative integer.
 */
export function checkTransactionOffsets(
  groupId: string,
  offsets: readonly TransactionOffset[],
): void {
  if (groupId.length === 0) {
    throw new PipelineError("Cannot send offsets as 'groupId' must not be empty", {
      field: "groupId",
    });
  }
  for (const { topic, partition, offset } of offsets) {
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new PipelineError(
        `Cannot send offsets of topic "${topic}" partition ${partition} as 'offset' must ` +
          `be a non-negative integer: current value is ${offset}`,
        { topic, partition, field: "offset" },
      );
    }
  }
}

/** The error of `commit` on a transaction a part of which failed (it was aborted). */
export function failedPartError(transactionalId: string, failure: unknown): PipelineError {
  return new PipelineError(
    `Cannot commit the transaction of "${transactionalId}" as a part of it failed: ` +
      `${errorMessage(failure)}; it was aborted`,
    { cause: failure },
  );
}

/** The error of `abort` on a transaction that is committed already. */
export function committedAlreadyError(transactionalId: string): PipelineError {
  return new PipelineError(
    `Cannot abort the transaction of "${transactionalId}" as it is committed already`,
  );
}

/** The error of a step on a transaction that is no longer open. */
export function notOpenError(
  transactionalId: string,
  action: string,
  status: string,
): PipelineError {
  return new PipelineError(
    `Cannot ${action} of "${transactionalId}" as the transaction is ${status}`,
  );
}
