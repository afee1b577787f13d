import assert from "node:assert/strict";
import {
  buildEnvelope,
  DEAD_LETTER_OVERHEAD_BYTES,
  DeadLetterEnvelopeSchema,
  deadLetterRecord,
  decodeEnvelopeBytes,
  DEFAULT_MAX_MESSAGE_BYTES,
  MAX_ENVELOPE_KEY_BYTES,
  MAX_ENVELOPE_VALUE_BYTES,
  MAX_HEADERS_BYTES,
  parseEnvelope,
} from "../../pipeline/dead_letter.ts";
import type { OutgoingRecord } from "../../pipeline/transport/transport.ts";
import { RetryableError, ValidationError } from "../../pipeline/errors.ts";
import type { ConsumedRecord } from "../../pipeline/transport/transport.ts";

/** A domain-style error class, defined outside the framework as a stage would. */
class GatewayTimeout extends RetryableError {}

const encoder = new TextEncoder();
const TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

function record(overrides: Partial<ConsumedRecord> = {}): ConsumedRecord {
  return {
    topic: "orders",
    partition: 2,
    offset: 41,
    key: encoder.encode("order-1"),
    value: encoder.encode('{"order_id":"order-1"}'),
    headers: { traceparent: TRACEPARENT, "x-custom": "yes" },
    timestamp: 0,
    ...overrides,
  };
}

const FAILED_AT = Date.UTC(2025, 0, 2, 3, 4, 5, 678);

Deno.test("buildEnvelope() keeps the reference's fields plus type, stage, attempts, headers", () => {
  const envelope = buildEnvelope(record(), {
    stage: "process-payment",
    error: new GatewayTimeout("Gateway timed out after 3 attempts"),
    attempts: 3,
    failedAt: FAILED_AT,
  });
  assert.deepEqual(envelope, {
    original_topic: "orders",
    original_partition: 2,
    original_offset: 41,
    key: "order-1",
    value: '{"order_id":"order-1"}',
    key_encoding: "utf8",
    value_encoding: "utf8",
    value_size: 22,
    value_truncated: false,
    error_reason: "Gateway timed out after 3 attempts",
    error_type: "GatewayTimeout",
    failed_at: "2025-01-02T03:04:05.678Z",
    stage: "process-payment",
    attempts: 3,
    headers: { traceparent: TRACEPARENT, "x-custom": "yes" },
  });
  DeadLetterEnvelopeSchema.parse(envelope);
});

Deno.test("buildEnvelope() points original_* at the first topic of a record from a retry tier", () => {
  const envelope = buildEnvelope(record({ topic: "orders.retry.2", partition: 0, offset: 3 }), {
    stage: "process-payment",
    error: new Error("still failing"),
    attempts: 9,
    failedAt: 0,
    original: { topic: "orders", partition: 1, offset: 17 },
  });
  assert.equal(envelope.original_topic, "orders");
  assert.equal(envelope.original_partition, 1);
  assert.equal(envelope.original_offset, 17);
  assert.equal(envelope.error_type, "Error");
});

Deno.test("buildEnvelope() takes the type of framework errors and of thrown non-errors", () => {
  const validation = buildEnvelope(record(), {
    stage: "s",
    error: new ValidationError('Cannot accept record as field "amount" is invalid: too big'),
    attempts: 0,
    failedAt: 0,
  });
  assert.equal(validation.error_type, "ValidationError");
  assert.equal(validation.attempts, 0);
  const thrown = buildEnvelope(record(), {
    stage: "s",
    error: "plain string",
    attempts: 1,
    failedAt: 0,
  });
  assert.equal(thrown.error_type, "Error");
  assert.equal(thrown.error_reason, "plain string");
});

Deno.test("buildEnvelope() writes non-UTF-8 bytes as base64 that decodes to the same bytes", () => {
  const key = new Uint8Array([0xff, 0x00, 0x80, 0x41]);
  const value = new Uint8Array(300).map((_, i) => (i * 37) & 0xff);
  const envelope = buildEnvelope(record({ key, value }), {
    stage: "s",
    error: new Error("x"),
    attempts: 1,
    failedAt: 0,
  });
  assert.equal(envelope.key_encoding, "base64");
  assert.equal(envelope.value_encoding, "base64");
  assert.deepEqual(decodeEnvelopeBytes(envelope.key, envelope.key_encoding), key);
  assert.deepEqual(decodeEnvelopeBytes(envelope.value, envelope.value_encoding), value);
});

Deno.test("buildEnvelope() keeps multi-byte UTF-8 as text that encodes to the same bytes", () => {
  const value = encoder.encode('{"name":"Zoë 🚀"}');
  const envelope = buildEnvelope(record({ value }), {
    stage: "s",
    error: new Error("x"),
    attempts: 1,
    failedAt: 0,
  });
  assert.equal(envelope.value_encoding, "utf8");
  assert.equal(envelope.value, '{"name":"Zoë 🚀"}');
  assert.deepEqual(decodeEnvelopeBytes(envelope.value, envelope.value_encoding), value);
});

Deno.test("buildEnvelope() keeps a null key and a null value as null", () => {
  const envelope = buildEnvelope(record({ key: null, value: null }), {
    stage: "s",
    error: new Error("x"),
    attempts: 0,
    failedAt: 0,
  });
  assert.equal(envelope.key, null);
  assert.equal(envelope.value, null);
  assert.equal(envelope.value_size, 0);
  assert.equal(decodeEnvelopeBytes(envelope.key, envelope.key_encoding), null);
});

Deno.test("buildEnvelope() cuts a huge value to the limit and records its full size", () => {
  const size = MAX_ENVELOPE_VALUE_BYTES + 1000;
  const value = encoder.encode("a".repeat(size));
  const envelope = buildEnvelope(record({ value }), {
    stage: "s",
    error: new Error("too big"),
    attempts: 0,
    failedAt: 0,
  });
  assert.equal(envelope.value_truncated, true);
  assert.equal(envelope.value_size, size);
  assert.equal(envelope.value!.length, MAX_ENVELOPE_VALUE_BYTES);
  assert.equal(envelope.value_encoding, "utf8");
  // The envelope stays small enough for a broker's default 1 MiB message limit.
  assert.ok(JSON.stringify(envelope).length < 1024 * 1024);
});

Deno.test("buildEnvelope() keeps a value of exactly the limit whole", () => {
  const value = encoder.encode("b".repeat(MAX_ENVELOPE_VALUE_BYTES));
  const envelope = buildEnvelope(record({ value }), {
    stage: "s",
    error: new Error("x"),
    attempts: 0,
    failedAt: 0,
  });
  assert.equal(envelope.value_truncated, false);
  assert.equal(envelope.value!.length, MAX_ENVELOPE_VALUE_BYTES);
});

Deno.test("buildEnvelope() cutting inside a UTF-8 character falls back to exact base64 bytes", () => {
  // "é" is two bytes; an odd limit cuts the last one in half.
  const value = encoder.encode("é".repeat(MAX_ENVELOPE_VALUE_BYTES));
  const envelope = buildEnvelope(record({ value }), {
    stage: "s",
    error: new Error("x"),
    attempts: 0,
    failedAt: 0,
  });
  assert.equal(envelope.value_truncated, true);
  assert.equal(envelope.value_size, 2 * MAX_ENVELOPE_VALUE_BYTES);
  const kept = decodeEnvelopeBytes(envelope.value, envelope.value_encoding)!;
  assert.equal(kept.length, MAX_ENVELOPE_VALUE_BYTES);
  assert.deepEqual(kept, value.subarray(0, MAX_ENVELOPE_VALUE_BYTES));
});

Deno.test("buildEnvelope() copies the headers rather than sharing them", () => {
  const headers = { traceparent: TRACEPARENT };
  const envelope = buildEnvelope(record({ headers }), {
    stage: "s",
    error: new Error("x"),
    attempts: 0,
    failedAt: 0,
  });
  headers.traceparent = "changed";
  assert.equal(envelope.headers.traceparent, TRACEPARENT);
});

Deno.test("parseEnvelope() reads back an envelope written as JSON bytes", () => {
  const envelope = buildEnvelope(record(), {
    stage: "s",
    error: new Error("x"),
    attempts: 2,
    failedAt: FAILED_AT,
  });
  assert.deepEqual(parseEnvelope(encoder.encode(JSON.stringify(envelope))), envelope);
});

Deno.test("parseEnvelope() refuses an envelope missing a field, naming it", () => {
  const envelope: Record<string, unknown> = buildEnvelope(record(), {
    stage: "s",
    error: new Error("x"),
    attempts: 2,
    failedAt: 0,
  });
  delete envelope.original_offset;
  assert.throws(
    () => parseEnvelope(encoder.encode(JSON.stringify(envelope))),
    (error: unknown) => {
      assert.match(String(error), /original_offset/);
      return true;
    },
  );
  assert.throws(() => parseEnvelope(encoder.encode("{not json")), SyntaxError);
});

/** What the broker counts of a record: key, value and header names and values. */
function encodedSize(record: OutgoingRecord): number {
  const bytes = (v: Uint8Array | string | null | undefined) =>
    v === null || v === undefined ? 0 : typeof v === "string" ? encoder.encode(v).length : v.length;
  let size = bytes(record.key) + bytes(record.value);
  for (const [name, value] of Object.entries(record.headers ?? {})) {
    size += bytes(name) + bytes(value);
  }
  return size;
}

const FAILURE = { stage: "process-payment", error: new Error("too big"), attempts: 0, failedAt: 0 };

Deno.test("deadLetterRecord() keeps a 1000 KiB value of 0x01 bytes within 1 MiB, flagged", () => {
  const value = new Uint8Array(1000 * 1024).fill(0x01);
  const { envelope, record: dead } = deadLetterRecord(record({ value }), FAILURE, {
    topic: "orders.dlq",
  });
  // The old envelope escaped every byte as \u0001: 256 KiB kept became 1.5 MiB of JSON.
  const size = encodedSize(dead);
  assert.ok(size <= DEFAULT_MAX_MESSAGE_BYTES - DEAD_LETTER_OVERHEAD_BYTES, `${size} bytes`);
  assert.equal(envelope.value_truncated, true);
  assert.equal(envelope.value_size, 1000 * 1024);
  const kept = decodeEnvelopeBytes(envelope.value, envelope.value_encoding)!;
  assert.ok(kept.length > 100 * 1024, `a useful part is kept: ${kept.length} bytes`);
  assert.deepEqual(kept, value.subarray(0, kept.length));
  assert.deepEqual(parseEnvelope(encoder.encode(dead.value as string)), envelope);
  assert.equal(new TextDecoder().decode(dead.key as Uint8Array), "order-1");
});

Deno.test("deadLetterRecord() bounds key, value and headers together below the topic's limit", () => {
  const cases: [string, Partial<ConsumedRecord>, number][] = [
    ["a huge binary value", { value: new Uint8Array(3 * 1024 * 1024).fill(0xff) }, 1024 * 1024],
    ["a huge key", { key: new Uint8Array(900 * 1024).fill(0x61) }, 1024 * 1024],
    [
      "huge headers",
      {
        headers: Object.fromEntries(
          Array.from({ length: 200 }, (_, i) => [`h-${i}`, "\u0001".repeat(10_000)]),
        ),
      },
      1024 * 1024,
    ],
    [
      "everything at once, under a declared 64 KiB",
      {
        key: new Uint8Array(100 * 1024).fill(0x01),
        value: new Uint8Array(1000 * 1024).fill(0x01),
        headers: Object.fromEntries(
          Array.from({ length: 50 }, (_, i) => [`h-${i}`, "\u0001".repeat(8000)]),
        ),
      },
      64 * 1024,
    ],
  ];
  for (const [what, overrides, maxMessageBytes] of cases) {
    const { envelope, record: dead } = deadLetterRecord(record(overrides), FAILURE, {
      topic: "orders.dlq",
      maxMessageBytes,
      headers: { "x-stage": "process-payment" },
    });
    const size = encodedSize(dead);
    assert.ok(size <= maxMessageBytes - DEAD_LETTER_OVERHEAD_BYTES, `${what}: ${size} bytes`);
    DeadLetterEnvelopeSchema.parse(envelope);
    assert.equal(dead.headers?.["x-stage"], "process-payment", what);
  }
});

Deno.test("deadLetterRecord() cuts a huge key in the envelope, flags it, and writes no key", () => {
  const key = new Uint8Array(MAX_ENVELOPE_KEY_BYTES + 1).fill(0x61);
  const { envelope, record: dead } = deadLetterRecord(record({ key }), FAILURE, {
    topic: "orders.dlq",
  });
  assert.equal(envelope.key_truncated, true);
  assert.equal(envelope.key_size, MAX_ENVELOPE_KEY_BYTES + 1);
  assert.equal(envelope.key!.length, MAX_ENVELOPE_KEY_BYTES);
  // A cut key would name another key: the dead letter carries none.
  assert.equal(dead.key, null);
});

Deno.test("deadLetterRecord() cuts long header values and drops headers past the limit, flagged", () => {
  const headers: Record<string, string> = { traceparent: TRACEPARENT, long: "é".repeat(5000) };
  for (let i = 0; i < 20; i++) headers[`h-${i}`] = "x".repeat(3000);
  const { envelope, record: dead } = deadLetterRecord(record({ headers }), FAILURE, {
    topic: "orders.dlq",
  });
  assert.equal(envelope.headers_truncated, true);
  assert.equal(envelope.headers.traceparent, TRACEPARENT);
  assert.ok(envelope.headers.long.length < 5000 && envelope.headers.long.startsWith("éé"));
  const total = Object.entries(envelope.headers).reduce(
    (sum, [n, v]) => sum + encoder.encode(n).length + encoder.encode(v).length,
    0,
  );
  assert.ok(total <= MAX_HEADERS_BYTES, `${total}`);
  assert.deepEqual(
    Object.keys(dead.headers!).filter((n) => n !== "x-stage"),
    Object.keys(envelope.headers),
  );
});

Deno.test("deadLetterRecord() leaves an ordinary record's envelope as buildEnvelope() makes it", () => {
  const { envelope, record: dead } = deadLetterRecord(record(), FAILURE, { topic: "orders.dlq" });
  assert.deepEqual(envelope, buildEnvelope(record(), FAILURE));
  assert.equal(envelope.key_truncated, undefined);
  assert.equal(envelope.headers_truncated, undefined);
  assert.equal(dead.topic, "orders.dlq");
  assert.deepEqual(dead.headers, record().headers);
});
