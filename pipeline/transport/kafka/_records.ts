/**
 * kafkajs messages as the transport's {@linkcode ConsumedRecord}s, for the group consumer and
 * the partition reader alike.
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import type { IHeaders, KafkaMessage } from "kafkajs";
import type { ConsumedRecord, RecordHeaders } from "../transport.ts";

/**
 * A view of the bytes kafkajs decoded, not a copy: they are a slice of a fetch response that
 * nothing writes to again. A plain `Uint8Array`, so no Buffer semantics leak out. (A copy per
 * key and value is two small allocations outside the V8 heap per record: a restore of a long
 * changelog left the allocator's heap fragmented, and the member's RSS grew with its history.)
 */
function toBytes(data: Buffer | null): Uint8Array | null {
  return data === null ? null : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function decodeHeaders(headers: IHeaders | undefined): RecordHeaders {
  const out: Record<string, string> = {};
  if (headers === undefined) return out;
  for (const name in headers) {
    const raw = headers[name];
    // Kafka allows a header name more than once; kafkajs then gives an array: the last wins.
    const value = Array.isArray(raw) ? raw[raw.length - 1] : raw;
    if (value === undefined) continue;
    out[name] = typeof value === "string" ? value : value.toString("utf8");
  }
  return out;
}

/** The record a kafkajs message of `topic`'s `partition` stands for. */
export function toRecord(topic: string, partition: number, message: KafkaMessage): ConsumedRecord {
  return {
    topic,
    partition,
    offset: Number(message.offset),
    key: toBytes(message.key ?? null),
    value: toBytes(message.value),
    headers: decodeHeaders(message.headers),
    timestamp: Number(message.timestamp),
  };
}
