/**
 * The framework's errors. Retriability is data on the error (`retriable`), and the record
 * context (stage, topic, partition, offset, field) travels with it, so the runner decides by
 * `instanceof` and `retriable`, never by message or name strings.
 *
 * @module
 */

/** Where in the pipeline an error happened. Every field is optional. */
export interface ErrorContext {
  /** The stage that failed. */
  readonly stage?: string;
  /** The topic of the record at fault. */
  readonly topic?: string;
  /** The partition of the record at fault. */
  readonly partition?: number;
  /** The offset of the record at fault. */
  readonly offset?: number;
  /** The field at fault (a definition field, a schema path, an environment variable). */
  readonly field?: string;
}

/** Options common to every {@linkcode PipelineError}. */
export interface PipelineErrorOptions extends ErrorContext {
  /** The underlying error. */
  readonly cause?: unknown;
}

/**
 * The base of every error the framework raises.
 *
 * @example
 * ```ts
 * import { PipelineError } from "./errors.ts";
 * const error = new PipelineError("Cannot read record", { stage: "pay", offset: 4 });
 * console.log(error.retriable, error.stage); // false pay
 * ```
 */
export class PipelineError extends Error {
  /** Whether trying again later may succeed. */
  readonly retriable: boolean = false;
  /** The stage that failed. */
  readonly stage?: string;
  /** The topic of the record at fault. */
  readonly topic?: string;
  /** The partition of the record at fault. */
  readonly partition?: number;
  /** The offset of the record at fault. */
  readonly offset?: number;
  /** The field at fault. */
  readonly field?: string;

  /** Creates the error with its message and context. */
  constructor(message: string, options: PipelineErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.stage = options.stage;
    this.topic = options.topic;
    this.partition = options.partition;
    this.offset = options.offset;
    this.field = options.field;
  }

  /**
   * The kind of failure, for `error.type` attributes and the DLQ envelope's `error_type`:
   * the class name, which is stable because it is part of the public API.
   */
  get type(): string {
    return this.name;
  }
}

/** A pipeline definition that cannot run: wrong wiring, bad names, missing DLQ. */
export class DefinitionError extends PipelineError {}

/** A configuration value that cannot be used; `field` names the variable or flag. */
export class ConfigError extends PipelineError {}

/**
 * A transient failure (a timeout, a gateway 5xx, an injected fault): trying again may work.
 * Handlers throw it, or a subclass, to ask for a retry.
 */
export class RetryableError extends PipelineError {
  /** Always `true`. */
  override readonly retriable: boolean = true;
}

/** A failure that no retry can fix: the record goes straight to the dead-letter queue. */
export class FatalError extends PipelineError {}

/** A record whose bytes do not parse or do not match the stage's input schema. */
export class ValidationError extends FatalError {}

/** A record that cannot be handled at all: no key where one is required, an oversized value. */
export class PoisonRecordError extends FatalError {}

/** Options of a {@linkcode KeyMismatchError}. */
export interface KeyMismatchErrorOptions extends PipelineErrorOptions {
  /** The key the record carries, or `null` for an unkeyed record. */
  readonly recordKey: string | null;
  /** The key the stage derives from the record's value. */
  readonly derivedKey: string;
}

/**
 * A record whose key is not the key its value stands for (e.g. an order under another order's
 * key). A keyed stage's record key is its idempotency key and decides which member owns it, so
 * such a record could be handled twice by two owners: it is dead-lettered instead.
 *
 * @example
 * ```ts
 * import { KeyMismatchError } from "./errors.ts";
 * const error = new KeyMismatchError({ recordKey: "o-2", derivedKey: "o-1", stage: "pay" });
 * console.log(error.message);
 * // Cannot accept record as its key "o-2" is not the key of its value: "o-1"
 * ```
 */
export class KeyMismatchError extends FatalError {
  /** The key the record carries, or `null` for an unkeyed record. */
  readonly recordKey: string | null;
  /** The key the stage derives from the record's value. */
  readonly derivedKey: string;

  /** Creates the error naming both keys. */
  constructor(options: KeyMismatchErrorOptions) {
    const carried = options.recordKey === null ? "(none)" : `"${options.recordKey}"`;
    super(
      `Cannot accept record as its key ${carried} is not the key of its value: "${options.derivedKey}"`,
      options,
    );
    this.recordKey = options.recordKey;
    this.derivedKey = options.derivedKey;
  }
}

/** A business rule refused the record (e.g. a payment declined for good). */
export class RejectedError extends FatalError {}

/** Options of {@linkcode ProducerFencedError}. */
export interface ProducerFencedErrorOptions extends PipelineErrorOptions {
  /** The transactional id that a newer producer took over. */
  readonly transactionalId: string;
}

/**
 * A transactional producer was fenced: a newer producer opened with the same transactional id
 * (the partition's new owner after a rebalance, or a restarted member), so this one is a
 * zombie and can never write or commit again. Its open transaction is aborted; none of its
 * records reaches a `read_committed` reader. Fatal: close the producer and give up the work
 * it stood for (another member owns it now).
 *
 * @example
 * ```ts
 * import { ProducerFencedError } from "./errors.ts";
 * const error = new ProducerFencedError(
 *   'Cannot commit transaction of "payments-orders-0" as a newer producer with that transactional id fenced it',
 *   { transactionalId: "payments-orders-0" },
 * );
 * console.log(error.retriable, error.transactionalId); // false payments-orders-0
 * ```
 */
export class ProducerFencedError extends FatalError {
  /** The transactional id that a newer producer took over. */
  readonly transactionalId: string;

  /** Creates the error with its message, the transactional id and context. */
  constructor(message: string, options: ProducerFencedErrorOptions) {
    super(message, options);
    this.transactionalId = options.transactionalId;
  }
}

/**
 * The broker cannot be reached. Retriable: the runtime waits and tries again, and reports it
 * clearly when it gives up.
 */
export class BrokerUnavailableError extends PipelineError {
  /** Always `true`. */
  override readonly retriable: boolean = true;
}

/**
 * Whether an error is worth retrying. Errors the framework does not know are treated as
 * retriable: a handler that crashed on a bug gets its attempts, then the DLQ, with its message.
 */
export function isRetriable(error: unknown): boolean {
  if (error instanceof PipelineError) return error.retriable;
  return true;
}

/** The `error.type` of any thrown value: the class name of errors, `"Error"` otherwise. */
export function errorType(error: unknown): string {
  if (error instanceof PipelineError) return error.type;
  if (error instanceof Error) return error.constructor.name || "Error";
  return "Error";
}

/** The message of any thrown value. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
