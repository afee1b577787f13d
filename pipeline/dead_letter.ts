/**
 * The dead-letter envelope: the value of every record on a DLQ topic. It keeps the reference's
 * fields and adds the error type, the stage, the attempt count and the original headers (trace
 * context included), so a record can be understood, and replayed, on its own.
 *
 * @module
 */
import { z } from "zod";
import type { ConsumedRecord, OutgoingRecord, RecordHeaders } from "./transport/transport.ts";
import { errorMessage, errorType } from "./errors.ts";

/**
 * The largest original value kept whole in an envelope; larger ones are cut, flagged with
 * `value_truncated` and their full size. The original record stays on its topic at
 * `original_offset`, so nothing is lost, and the envelope stays below broker size limits.
 */
export const MAX_ENVELOPE_VALUE_BYTES = 256 * 1024;

/** The largest original key kept whole in an envelope; longer ones are cut and flagged. */
export const MAX_ENVELOPE_KEY_BYTES = 16 * 1024;

/** The largest header value kept whole; longer ones are cut and `headers_truncated` is set. */
export const MAX_HEADER_VALUE_BYTES = 4 * 1024;

/** The most header bytes (names and values) kept; later headers are dropped and flagged. */
export const MAX_HEADERS_BYTES = 32 * 1024;

/** The longest `error_reason` kept, in characters. */
export const MAX_ERROR_REASON_CHARS = 8 * 1024;

/**
 * Kafka's default `max.message.bytes` of a topic (the broker's `message.max.bytes`, about
 * 1 MiB): a dead letter is bounded by it unless the DLQ topic declares its own.
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;

/**
 * Room left below `max.message.bytes` for what the broker counts beyond key, value and headers
 * (the record batch header, each record's framing) and for headers added when the record is
 * sent (the producer span's `traceparent`).
 */
export const DEAD_LETTER_OVERHEAD_BYTES = 1024;

/** How `key` and `value` are written in the envelope. */
export const BytesEncodingSchema = z.enum(["utf8", "base64"]);

/** The envelope's schema, validated when a DLQ record is read back (replay, tests). */
export const DeadLetterEnvelopeSchema = z.object({
  original_topic: z.string(),
  original_partition: z.number().int().nonnegative(),
  original_offset: z.number().int().nonnegative(),
  key: z.string().nullable(),
  value: z.string().nullable(),
  key_encoding: BytesEncodingSchema,
  value_encoding: BytesEncodingSchema,
  value_size: z.number().int().nonnegative(),
  value_truncated: z.boolean(),
  /** Present (`true`) only when the key was cut; then `key_size` is its full size. */
  key_truncated: z.boolean().optional(),
  key_size: z.number().int().nonnegative().optional(),
  /** Present (`true`) only when header values were cut or headers dropped to fit. */
  headers_truncated: z.boolean().optional(),
  error_reason: z.string(),
  error_type: z.string(),
  failed_at: z.string(),
  stage: z.string(),
  attempts: z.number().int().nonnegative(),
  headers: z.record(z.string(), z.string()),
});

/** A dead-letter envelope. */
export type DeadLetterEnvelope = z.infer<typeof DeadLetterEnvelopeSchema>;

/** What happened to the record, for {@linkcode buildEnvelope}. */
export interface FailureDetails {
  /** The stage that gave up. */
  readonly stage: string;
  /** The error that sent it here. */
  readonly error: unknown;
  /** Attempts made (0 when the record never reached the handler, e.g. it did not parse). */
  readonly attempts: number;
  /** When it failed, ms since the epoch. */
  readonly failedAt: number;
  /**
   * Where the record was first read, when it arrives from a retry tier (its own topic is then
   * the tier's).
   */
  readonly original?: { topic: string; partition: number; offset: number };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** Options for {@linkcode buildEnvelope}. */
export interface EnvelopeOptions {
  /**
   * The most bytes the envelope's JSON may take; the value is cut (and flagged) to fit, then
   * the headers are dropped (and flagged).
   * @default Infinity
   */
  readonly maxBytes?: number;
  /**
   * The longest key kept whole, in bytes.
   * @default MAX_ENVELOPE_KEY_BYTES
   */
  readonly maxKeyBytes?: number;
  /**
   * The most header bytes (names and values) kept.
   * @default MAX_HEADERS_BYTES
   */
  readonly maxHeadersBytes?: number;
}

interface EncodedBytes {
  readonly text: string | null;
  readonly encoding: "utf8" | "base64";
  readonly truncated: boolean;
}

function encodeBytes(bytes: Uint8Array | null, limit: number): EncodedBytes {
  if (bytes === null) return { text: null, encoding: "utf8", truncated: false };
  const truncated = bytes.length > limit;
  const kept = truncated ? bytes.subarray(0, limit) : bytes;
  try {
    return { text: utf8.decode(kept), encoding: "utf8", truncated };
  } catch {
    // Not UTF-8 (or cut inside a character): keep the exact bytes.
    return { text: toBase64(kept), encoding: "base64", truncated };
  }
}

/** The bytes a string takes inside JSON, quotes and escapes included. */
function jsonBytes(value: unknown): number {
  return encoder.encode(JSON.stringify(value)).length;
}

/**
 * Encodes as much of `bytes` as fits in `budget` bytes of JSON string (quotes included). JSON
 * escapes a control byte as six characters, so text that is mostly control bytes is cut
 * further, or written as base64 (four characters per three bytes, never escaped).
 */
function fitBytes(bytes: Uint8Array, limit: number, budget: number): EncodedBytes {
  let length = Math.min(bytes.length, limit, Math.max(0, budget - 2));
  for (let round = 0; round < 4 && length > 0; round++) {
    const encoded = encodeBytes(bytes.subarray(0, length), Number.POSITIVE_INFINITY);
    if (encoded.encoding !== "utf8") break;
    const size = jsonBytes(encoded.text);
    if (size <= budget) return { ...encoded, truncated: length < bytes.length };
    length = Math.floor(length * (budget - 2) / (size - 2));
  }
  const base64Length = Math.min(bytes.length, limit, Math.floor(Math.max(0, budget - 2) / 4) * 3);
  return {
    text: toBase64(bytes.subarray(0, base64Length)),
    encoding: "base64",
    truncated: base64Length < bytes.length,
  };
}

/** Cuts a string to at most `maxBytes` UTF-8 bytes, on a character boundary. */
function cutText(text: string, maxBytes: number): string {
  const bytes = encoder.encode(text);
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  // Step back over continuation bytes (10xxxxxx) to a character's first byte.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return new TextDecoder().decode(bytes.subarray(0, end));
}

/**
 * The headers kept for a dead letter: each value at most {@linkcode MAX_HEADER_VALUE_BYTES},
 * all of them at most {@linkcode MAX_HEADERS_BYTES}; `truncated` when anything was cut.
 */
export function boundHeaders(
  headers: RecordHeaders,
  maxBytes: number = MAX_HEADERS_BYTES,
): { headers: RecordHeaders; truncated: boolean } {
  const kept: Record<string, string> = {};
  let total = 0;
  let truncated = false;
  for (const [name, value] of Object.entries(headers)) {
    const cut = cutText(value, Math.min(MAX_HEADER_VALUE_BYTES, maxBytes));
    if (cut !== value) truncated = true;
    const size = encoder.encode(name).length + encoder.encode(cut).length;
    if (total + size > maxBytes) {
      truncated = true;
      continue;
    }
    total += size;
    kept[name] = cut;
  }
  return { headers: kept, truncated };
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  // Chunks keep the argument list of fromCharCode well below engine limits.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/**
 * Builds the envelope for a record that failed for good. The key, the headers and the error
 * reason are bounded ({@linkcode MAX_ENVELOPE_KEY_BYTES}, {@linkcode MAX_HEADER_VALUE_BYTES},
 * {@linkcode MAX_HEADERS_BYTES}, {@linkcode MAX_ERROR_REASON_CHARS}), the value at most
 * {@linkcode MAX_ENVELOPE_VALUE_BYTES} and, with `maxBytes`, as much as fits; whatever was cut
 * is flagged.
 *
 * @example
 * ```ts
 * import { buildEnvelope } from "./dead_letter.ts";
 * const envelope = buildEnvelope(
 *   { topic: "orders", partition: 0, offset: 7, key: null, value: new TextEncoder().encode("{"),
 *     headers: {}, timestamp: 0 },
 *   { stage: "pay", error: new Error("bad json"), attempts: 0, failedAt: 0 },
 * );
 * console.log(envelope.error_reason); // bad json
 * ```
 */
export function buildEnvelope(
  record: ConsumedRecord,
  failure: FailureDetails,
  options: EnvelopeOptions = {},
): DeadLetterEnvelope {
  const {
    maxBytes = Number.POSITIVE_INFINITY,
    maxKeyBytes = MAX_ENVELOPE_KEY_BYTES,
    maxHeadersBytes = MAX_HEADERS_BYTES,
  } = options;
  const key = encodeBytes(record.key, maxKeyBytes);
  const value = encodeBytes(record.value, MAX_ENVELOPE_VALUE_BYTES);
  const headers = boundHeaders(record.headers, maxHeadersBytes);
  const original = failure.original ??
    { topic: record.topic, partition: record.partition, offset: record.offset };
  const envelope: DeadLetterEnvelope = {
    original_topic: original.topic,
    original_partition: original.partition,
    original_offset: original.offset,
    key: key.text,
    value: value.text,
    key_encoding: key.encoding,
    value_encoding: value.encoding,
    value_size: record.value?.length ?? 0,
    value_truncated: value.truncated,
    error_reason: errorMessage(failure.error).slice(0, MAX_ERROR_REASON_CHARS),
    error_type: errorType(failure.error),
    failed_at: new Date(failure.failedAt).toISOString(),
    stage: failure.stage,
    attempts: failure.attempts,
    headers: headers.headers,
  };
  if (key.truncated) {
    envelope.key_truncated = true;
    envelope.key_size = record.key!.length;
  }
  if (headers.truncated) envelope.headers_truncated = true;
  if (maxBytes === Number.POSITIVE_INFINITY || jsonBytes(envelope) <= maxBytes) return envelope;
  // Too big: give the value what the rest leaves; if that is not enough, drop the headers
  // (the dead letter's own record still carries them), then cut the key too.
  for (const step of ["value", "headers", "key"] as const) {
    if (step === "headers" && Object.keys(envelope.headers).length > 0) {
      envelope.headers = {};
      envelope.headers_truncated = true;
    }
    if (step === "key" && record.key !== null) {
      const rest = jsonBytes({ ...envelope, key: "", value: "", key_encoding: "base64" }) - 4;
      const fitted = fitBytes(record.key, maxKeyBytes, Math.floor((maxBytes - rest) / 2));
      envelope.key = fitted.text;
      envelope.key_encoding = fitted.encoding;
      if (fitted.truncated) {
        envelope.key_truncated = true;
        envelope.key_size = record.key.length;
      }
    }
    if (record.value !== null) {
      const rest = jsonBytes({ ...envelope, value: "", value_encoding: "base64" }) - 2;
      const fitted = fitBytes(record.value, MAX_ENVELOPE_VALUE_BYTES, maxBytes - rest);
      envelope.value = fitted.text;
      envelope.value_encoding = fitted.encoding;
      envelope.value_truncated = fitted.truncated;
    }
    if (jsonBytes(envelope) <= maxBytes) return envelope;
  }
  return envelope;
}

/** Options for {@linkcode deadLetterRecord}. */
export interface DeadLetterRecordOptions {
  /** The dead-letter topic. */
  readonly topic: string;
  /**
   * The DLQ topic's `max.message.bytes`: the dead letter (key, value and headers) fits in it.
   * @default DEFAULT_MAX_MESSAGE_BYTES
   */
  readonly maxMessageBytes?: number;
  /**
   * Headers the dead letter carries besides the original ones (e.g. stage and error type).
   * @default {}
   */
  readonly headers?: RecordHeaders;
}

/** A dead letter: its envelope and the record that carries it. */
export interface DeadLetter {
  /** The envelope (the record's value, parsed). */
  readonly envelope: DeadLetterEnvelope;
  /** The record to send to the DLQ topic. */
  readonly record: OutgoingRecord;
}

/**
 * The record that dead-letters `record`, bounded by its encoded size so that the broker always
 * takes it: its key, value (the envelope) and headers together stay
 * {@linkcode DEAD_LETTER_OVERHEAD_BYTES} below `maxMessageBytes`. The record's key is the
 * original key, or `null` when that key had to be cut (a cut key would name another key);
 * its headers are the original ones, bounded, plus `options.headers`.
 *
 * @example
 * ```ts
 * import { deadLetterRecord } from "./dead_letter.ts";
 * const { record } = deadLetterRecord(
 *   { topic: "orders", partition: 0, offset: 7, key: null,
 *     value: new Uint8Array(1000 * 1024).fill(1), headers: {}, timestamp: 0 },
 *   { stage: "pay", error: new Error("too big"), attempts: 0, failedAt: 0 },
 *   { topic: "orders.dlq" },
 * );
 * console.log(new TextEncoder().encode(record.value as string).length < 1024 * 1024); // true
 * ```
 */
export function deadLetterRecord(
  record: ConsumedRecord,
  failure: FailureDetails,
  options: DeadLetterRecordOptions,
): DeadLetter {
  const { topic, maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES, headers: extra = {} } = options;
  if (
    !(Number.isSafeInteger(maxMessageBytes) && maxMessageBytes > 4 * DEAD_LETTER_OVERHEAD_BYTES)
  ) {
    throw new RangeError(
      `Cannot dead-letter to "${topic}" as 'maxMessageBytes' must be an integer above ` +
        `${4 * DEAD_LETTER_OVERHEAD_BYTES}: current value is ${maxMessageBytes}`,
    );
  }
  // Small limits shrink the key and headers too, so the value keeps most of the room.
  const maxKeyBytes = Math.min(MAX_ENVELOPE_KEY_BYTES, Math.floor(maxMessageBytes / 16));
  const maxHeadersBytes = Math.min(MAX_HEADERS_BYTES, Math.floor(maxMessageBytes / 16));
  const bounded = boundHeaders(record.headers, maxHeadersBytes);
  const headers: Record<string, string> = { ...bounded.headers, ...extra };
  const key = record.key !== null && record.key.length > maxKeyBytes ? null : record.key;
  let headerBytes = 0;
  for (const [name, value] of Object.entries(headers)) {
    headerBytes += encoder.encode(name).length + encoder.encode(value).length;
  }
  const budget = maxMessageBytes - DEAD_LETTER_OVERHEAD_BYTES - (key?.length ?? 0) - headerBytes;
  const envelope = buildEnvelope(record, failure, {
    maxBytes: budget,
    maxKeyBytes,
    maxHeadersBytes,
  });
  return { envelope, record: { topic, key, value: JSON.stringify(envelope), headers } };
}

/** Parses an envelope read from a DLQ topic; throws a zod error naming the field at fault. */
export function parseEnvelope(bytes: Uint8Array): DeadLetterEnvelope {
  return DeadLetterEnvelopeSchema.parse(JSON.parse(new TextDecoder().decode(bytes)));
}

/** The original key or value bytes of an envelope field. */
export function decodeEnvelopeBytes(
  text: string | null,
  encoding: "utf8" | "base64",
): Uint8Array | null {
  if (text === null) return null;
  if (encoding === "utf8") return new TextEncoder().encode(text);
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}
