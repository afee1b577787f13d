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
/** Replaces bad sequences with U+FFFD instead of throwing: about 3x faster than `decoder`. */
const lenientDecoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * Decodes UTF-8 as the fatal decoder does, throwing on invalid bytes. The lenient decoder goes
 * first: every invalid sequence becomes U+FFFD, so text without one was valid; text with one
 * (invalid, or a real U+FFFD) is decoded again by the fatal decoder, which decides.
 */
function decodeUtf8(bytes: Uint8Array): string {
  const text = lenientDecoder.decode(bytes);
  return text.includes("\uFFFD") ? decoder.decode(bytes) : text;
}

/** The size of the slabs encoded values are written into. */
const SLAB_BYTES = 64 * 1024;
let slab = new Uint8Array(SLAB_BYTES);
let slabUsed = 0;

/**
 * UTF-8 bytes of `text`, written into a shared slab as Node's `Buffer` pool does: one
 * `encodeInto` and a view instead of a fresh buffer per value (`TextEncoder.encode` costs about
 * 1.3 µs for a 300-character value here, this about 0.15 µs). A view's bytes are never written
 * again (a full slab is replaced, not reused), so a slab lives as long as a value in it does.
 * Values that may not fit a slab get their own buffer.
 */
function encodeUtf8(text: string): Uint8Array {
  // A UTF-16 code unit takes at most 3 bytes in UTF-8.
  const most = text.length * 3;
  if (most > SLAB_BYTES / 4) return encoder.encode(text);
  if (SLAB_BYTES - slabUsed < most) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const start = slabUsed;
  const { written } = encoder.encodeInto(text, slab.subarray(start));
  slabUsed = start + written;
  return slab.subarray(start, slabUsed);
}

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
    json = JSON.parse(decodeUtf8(bytes));
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
  return encodeUtf8(JSON.stringify(result.data));
}

/** The JSON Schema of a schema, for describing and comparing pipelines. */
export function jsonSchemaOf(schema: Schema<unknown>): Record<string, unknown> {
  return z.toJSONSchema(schema, { unrepresentable: "any" }) as Record<string, unknown>;
}
