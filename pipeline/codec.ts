/**
 * Bytes to typed values and back, through a schema. Anything that does not parse or does not
 * match becomes a {@linkcode ValidationError} naming the field, never a crash.
 *
 * @module
 */
import { z } from "zod";
import { PoisonRecordError, ValidationError } from "./errors.ts";
import type { ErrorContext } from "./errors.ts";

/** A schema for a record value: any zod schema. */
export type Schema<T> = z.ZodType<T>;

const decoder = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** Options for {@linkcode decodeValue}. */
export interface DecodeOptions {
  /**
   * The largest value accepted, in bytes; a larger one is a poison record.
   * @default 1048576
   */
  readonly maxBytes?: number;
  /** Where the value came from, for the error. */
  readonly context?: ErrorContext;
}

/**
 * Decodes a record value as UTF-8 JSON and validates it against `schema`.
 *
 * @throws {PoisonRecordError} when the value is missing or larger than `maxBytes`
 * @throws {ValidationError} when it is not UTF-8 JSON or does not match the schema; `field`
 * names the first path at fault
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { decodeValue } from "./codec.ts";
 * const point = decodeValue(z.object({ x: z.number() }), new TextEncoder().encode('{"x":1}'));
 * console.log(point.x); // 1
 * ```
 */
export function decodeValue<T>(
  schema: Schema<T>,
  bytes: Uint8Array | null,
  options: DecodeOptions = {},
): T {
  const { maxBytes = 1024 * 1024, context = {} } = options;
  if (bytes === null) {
    throw new PoisonRecordError("Cannot decode record as its value is null", context);
  }
  if (bytes.length > maxBytes) {
    throw new PoisonRecordError(
      `Cannot decode record as its value is too large: ${bytes.length} bytes, limit ${maxBytes}`,
      context,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(bytes));
  } catch (cause) {
    throw new ValidationError(
      `Cannot decode record as its value is not UTF-8 JSON: ${(cause as Error).message}`,
      { ...context, cause },
    );
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = issue.path.map(String).join(".") || "(root)";
    throw new ValidationError(
      `Cannot accept record as field "${field}" is invalid: ${issue.message}`,
      { ...context, field, cause: result.error },
    );
  }
  return result.data;
}

/** Encodes a value as UTF-8 JSON after checking it against `schema` (a bug guard for outputs). */
export function encodeValue<T>(
  schema: Schema<T>,
  value: T,
  context: ErrorContext = {},
): Uint8Array {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = issue.path.map(String).join(".") || "(root)";
    throw new ValidationError(
      `Cannot produce record as output field "${field}" is invalid: ${issue.message}`,
      { ...context, field, cause: result.error },
    );
  }
  return encoder.encode(JSON.stringify(result.data));
}

/** The JSON Schema of a schema, for describing and comparing pipelines. */
export function jsonSchemaOf(schema: Schema<unknown>): Record<string, unknown> {
  return z.toJSONSchema(schema, { unrepresentable: "any" }) as Record<string, unknown>;
}
