/**
 * Maps kafkajs errors onto the framework's error classes, by class and `retriable`, never by
 * name or message strings.
 *
 * @module
 */
import kafkajs from "kafkajs";
import {
  BrokerUnavailableError,
  type ErrorContext,
  PipelineError,
  RetryableError,
} from "../../errors.ts";
import { brokerUnavailableError } from "../_brokers.ts";

const {
  KafkaJSConnectionError,
  KafkaJSError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSRequestTimeoutError,
  KafkaJSBrokerNotFound,
} = kafkajs;

/** The innermost `cause` of an error chain (kafkajs wraps retried errors). */
export function rootCause(error: unknown): unknown {
  let current = error;
  for (let depth = 0; depth < 10; depth++) {
    if (!(current instanceof Error) || current.cause === undefined || current.cause === current) {
      return current;
    }
    current = current.cause;
  }
  return current;
}

/** Whether an error (or what it wraps) means no broker answered. */
export function isConnectionFailure(error: unknown): boolean {
  const root = rootCause(error);
  return root instanceof KafkaJSConnectionError ||
    root instanceof KafkaJSRequestTimeoutError ||
    root instanceof KafkaJSBrokerNotFound;
}

/** A short description of why the connection failed, e.g. `connect ECONNREFUSED`. */
function connectionDetail(error: unknown): string {
  const root = rootCause(error);
  if (root instanceof KafkaJSConnectionError) {
    // kafkajs sets `code` (the socket error code) at runtime; its typings leave it out.
    const code = (root as { code?: unknown }).code;
    if (typeof code === "string" && code) return `connect ${code}`;
  }
  if (root instanceof KafkaJSRequestTimeoutError) return "request timed out";
  const message = root instanceof Error ? root.message : String(root);
  return message.charAt(0).toLowerCase() + message.slice(1);
}

/**
 * The error for brokers that cannot be reached, naming `KAFKA_BROKERS` and what to do.
 */
export function brokerUnavailable(
  brokers: readonly string[],
  cause: unknown,
): BrokerUnavailableError {
  return brokerUnavailableError(brokers, connectionDetail(cause), cause);
}

/**
 * Wraps any error raised by kafkajs in the framework's classes: unreachable brokers become
 * {@linkcode BrokerUnavailableError}, retriable kafkajs errors {@linkcode RetryableError},
 * everything else a plain {@linkcode PipelineError}. Framework errors pass through.
 */
export function toPipelineError(
  what: string,
  brokers: readonly string[],
  error: unknown,
  context: ErrorContext = {},
): PipelineError {
  if (error instanceof PipelineError) return error;
  if (isConnectionFailure(error)) return brokerUnavailable(brokers, error);
  const root = rootCause(error);
  const detail = root instanceof Error ? root.message : String(root);
  const retriable = error instanceof KafkaJSNumberOfRetriesExceeded ||
    (error instanceof KafkaJSError && error.retriable) ||
    (root instanceof KafkaJSError && root.retriable);
  const options = { ...context, cause: error };
  return retriable
    ? new RetryableError(`${what}: ${detail}`, options)
    : new PipelineError(`${what}: ${detail}`, options);
}
