/**
 * Maps @platformatic/kafka errors onto the framework's error classes, by class and by the
 * properties the client sets on them (`canRetry`, `apiId`), never by message strings.
 *
 * @module
 */
import { GenericError, MultipleErrors, NetworkError, TimeoutError } from "@platformatic/kafka";
import {
  BrokerUnavailableError,
  type ErrorContext,
  PipelineError,
  ProducerFencedError,
  RetryableError,
} from "../../errors.ts";
import { brokerUnavailableError } from "../_brokers.ts";

/** Every error of a chain: `cause`s and the members of aggregated errors, depth first. */
function chain(error: unknown, depth = 0): unknown[] {
  if (depth > 8 || !(error instanceof Error)) return [error];
  const nested = error instanceof AggregateError ? error.errors : [];
  const cause = error.cause !== undefined && error.cause !== error ? [error.cause] : [];
  return [error, ...[...nested, ...cause].flatMap((inner) => chain(inner, depth + 1))];
}

/** The Kafka protocol error ids (`apiId`, e.g. `"INVALID_PRODUCER_EPOCH"`) in an error chain. */
export function protocolIds(error: unknown): string[] {
  return chain(error).flatMap((entry) => {
    const apiId = entry instanceof GenericError ? (entry as { apiId?: unknown }).apiId : undefined;
    return typeof apiId === "string" ? [apiId] : [];
  });
}

/** Whether an error (or what it wraps) means no broker answered. */
export function isConnectionFailure(error: unknown): boolean {
  const all = chain(error);
  const errors = all.filter((entry) => entry instanceof Error);
  return errors.some((entry) => entry instanceof NetworkError || entry instanceof TimeoutError) &&
    // A protocol answer means a broker did answer.
    protocolIds(error).length === 0;
}

/** Whether the broker refused a producer as fenced (a newer one holds its transactional id). */
export function isFencing(error: unknown): boolean {
  return protocolIds(error).some((id) =>
    id === "INVALID_PRODUCER_EPOCH" || id === "PRODUCER_FENCED"
  );
}

function detail(error: unknown): string {
  const messages = chain(error)
    .filter((entry): entry is Error => entry instanceof Error && !(entry instanceof MultipleErrors))
    .map((entry) => entry.message);
  const text = messages.length > 0 ? messages[messages.length - 1] : String(error);
  return text.charAt(0).toLowerCase() + text.slice(1);
}

/** The error for brokers that cannot be reached, naming `KAFKA_BROKERS` and what to do. */
export function brokerUnavailable(
  brokers: readonly string[],
  cause: unknown,
): BrokerUnavailableError {
  return brokerUnavailableError(brokers, detail(cause), cause);
}

/**
 * Wraps any error raised by @platformatic/kafka in the framework's classes: unreachable brokers
 * become {@linkcode BrokerUnavailableError}, a fenced producer a
 * {@linkcode ProducerFencedError} (when `transactionalId` is given), errors the client marks
 * `canRetry` a {@linkcode RetryableError}, everything else a plain {@linkcode PipelineError}.
 * Framework errors pass through.
 */
export function toPipelineError(
  what: string,
  brokers: readonly string[],
  error: unknown,
  context: ErrorContext & { readonly transactionalId?: string } = {},
): PipelineError {
  if (error instanceof PipelineError) return error;
  const { transactionalId, ...rest } = context;
  if (transactionalId !== undefined && isFencing(error)) {
    return new ProducerFencedError(
      `${what} as a newer producer with transactional id "${transactionalId}" fenced this one ` +
        "(or its transaction outlived 'transactionTimeout' and the broker aborted it)",
      { transactionalId, cause: error },
    );
  }
  if (isConnectionFailure(error)) return brokerUnavailable(brokers, error);
  const retriable = chain(error).some((entry) =>
    entry instanceof GenericError && (entry as { canRetry?: unknown }).canRetry === true
  );
  const options = { ...rest, cause: error };
  return retriable
    ? new RetryableError(`${what}: ${detail(error)}`, options)
    : new PipelineError(`${what}: ${detail(error)}`, options);
}
