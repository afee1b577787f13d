/**
 * The dead-letter envelope: the value of every record on a DLQ topic. It keeps the reference's
 * fields and adds the error type, the stage, the attempt count and the original headers (trace
 * context included), so a record can be understood, and replayed, on its own.
 *
 * @module
 */
import { z } from "zod";
import type { ConsumedRecord } from "./transport/transport.ts";
import { errorMessage, errorType } from "./errors.ts";

/**
 * The largest original value kept whole in an envelope; larger ones are cut, flagged with
 * `value_truncated` and their full size. The original record stays on its topic at
 * `original_offset`, so nothing is lost, and the envelope stays below broker size limits.
 */
export const MAX_ENVELOPE_VALUE_BYTES = 256 * 1024;

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

function encodeBytes(
  bytes: Uint8Array | null,
  limit: number,
): { text: string | null; encoding: "utf8" | "base64"; truncated: boolean } {
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

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  // Chunks keep the argument list of fromCharCode well below engine limits.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/**
 * Builds the envelope for a record that failed for good.
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
export function buildEnvelope(record: ConsumedRecord, failure: FailureDetails): DeadLetterEnvelope {
  const key = encodeBytes(record.key, Number.POSITIVE_INFINITY);
  const value = encodeBytes(record.value, MAX_ENVELOPE_VALUE_BYTES);
  const original = failure.original ??
    { topic: record.topic, partition: record.partition, offset: record.offset };
  return {
    original_topic: original.topic,
    original_partition: original.partition,
    original_offset: original.offset,
    key: key.text,
    value: value.text,
    key_encoding: key.encoding,
    value_encoding: value.encoding,
    value_size: record.value?.length ?? 0,
    value_truncated: value.truncated,
    error_reason: errorMessage(failure.error),
    error_type: errorType(failure.error),
    failed_at: new Date(failure.failedAt).toISOString(),
    stage: failure.stage,
    attempts: failure.attempts,
    headers: { ...record.headers },
  };
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
