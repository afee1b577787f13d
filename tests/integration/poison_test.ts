/**
 * Poison records written by another client (kcat) while the pipeline command runs: each lands
 * in the DLQ with its precise reason and error type, and the valid orders around them are
 * still paid or dead-lettered exactly once.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DeadLetterEnvelopeSchema } from "../../pipeline/dead_letter.ts";
import type { DeadLetterEnvelope } from "../../pipeline/dead_letter.ts";
import { HEADER } from "../../pipeline/headers.ts";
import {
  accountTopics,
  assertEveryOrderOnce,
  integrationTest,
  pipelineEnv,
  produceWithKcat,
  readTopic,
  spawnPipeline,
  uniqueNames,
  waitFor,
} from "./_integration.ts";
import type { KcatMessage, KcatRecord } from "./_integration.ts";

const ORDERS = 800;
const PAYMENT_LIMIT = 64 * 1024;
const HUGE = 200 * 1024;

function order(orderId: string, version = 1): string {
  return JSON.stringify({
    event_type: "OrderPlaced",
    event_version: version,
    order_id: orderId,
    user_id: "user-1",
    amount: 12.5,
    currency: "EUR",
    created_at: new Date().toISOString(),
  });
}

/** A JSON object of exactly `bytes` ASCII bytes. */
function hugeValue(bytes: number): string {
  const empty = JSON.stringify({ event_type: "OrderPlaced", padding: "" });
  return JSON.stringify({ event_type: "OrderPlaced", padding: "x".repeat(bytes - empty.length) });
}

/** One poison record, and what its dead letter must say. */
interface Poison {
  readonly name: string;
  readonly message: KcatMessage;
  readonly errorType: string;
  readonly reason: string | RegExp;
}

const POISON: readonly Poison[] = [
  {
    name: "invalid JSON",
    message: { key: "poison-json", value: '{"event_type":"OrderPlaced",' },
    errorType: "ValidationError",
    reason: /^Cannot decode record as its value is not UTF-8 JSON: /,
  },
  {
    name: "valid JSON, wrong schema",
    message: { key: "poison-schema", value: '{"hello":"world"}' },
    errorType: "ValidationError",
    reason: /^Cannot accept record as field "event_type" is invalid: /,
  },
  {
    name: "unknown event_version 2",
    message: { key: "poison-v2", value: order("poison-v2", 2) },
    errorType: "ValidationError",
    reason: 'Cannot accept record as field "event_version" is invalid: ' +
      "Unsupported OrderPlaced event_version: this consumer reads version 1",
  },
  {
    name: "null key",
    message: { value: order("poison-nokey") },
    errorType: "PoisonRecordError",
    reason: "Cannot accept record as it has no key",
  },
  {
    name: "huge value",
    message: {
      key: "poison-huge",
      value: hugeValue(HUGE),
    },
    errorType: "PoisonRecordError",
    reason: `Cannot decode record as its value is too large: ${HUGE} bytes, limit ${PAYMENT_LIMIT}`,
  },
];

function isPoisonKey(key: string | null): boolean {
  return key === null || key.startsWith("poison-");
}

await integrationTest(
  "poison records written mid-run land in the DLQ with precise reasons; the pipeline goes on",
  async (brokers, kcat) => {
    const names = uniqueNames("poison");
    const run = spawnPipeline([
      "--max-orders",
      String(ORDERS),
      // Slow enough that generation still runs when the poison is written, also on a loaded
      // machine where the first payments (each an HTTP call to the gateway) come late.
      "--rate",
      "25",
      "--failure-rate",
      "0.2",
      "--gateway-latency-ms",
      "0",
    ], pipelineEnv(brokers, names));
    try {
      await waitFor(
        "some paid orders before writing poison",
        () => (run.progress()?.paid ?? 0) > 20,
        60_000,
        () => `: ${run.stderr().slice(-2000)}`,
      );
      const before = run.progress()!;
      for (const poison of POISON) {
        await produceWithKcat(kcat, brokers, names.orders, poison.message);
      }
      assert.ok(run.progress()!.generated < ORDERS, "poison arrives while orders are generated");

      const summary = await run.succeeded(120_000);
      assert.equal(summary.published, ORDERS);
      assert.equal(
        summary.paid + summary.dead_lettered,
        ORDERS + POISON.length,
        `every order and every poison record has one outcome: ${JSON.stringify(summary)}`,
      );
      assert.ok(summary.paid > before.paid, "orders after the poison are still paid");

      // The generated orders: each paid or dead-lettered exactly once.
      const counted = assertEveryOrderOnce(
        await accountTopics(kcat, brokers, names, { isOrder: (key) => !isPoisonKey(key) }),
        ORDERS,
      );
      assert.equal(counted.paid, summary.paid);

      // The poison: each dead-lettered once, with its reason, pointing at its original record.
      const orders = await readTopic(kcat, brokers, names.orders);
      const dlq = await readTopic(kcat, brokers, names.dlq);
      const letters = dlq.map((record) => ({
        record,
        envelope: DeadLetterEnvelopeSchema.parse(JSON.parse(record.payload ?? "null")),
      })).filter(({ envelope }) => isPoisonKey(envelope.key));
      assert.equal(letters.length, POISON.length, "one dead letter per poison record");
      for (const poison of POISON) {
        const key = poison.message.key ?? null;
        const original = orders.filter((r) => r.key === key);
        assert.equal(original.length, 1, `${poison.name}: one record on the orders topic`);
        const found = letters.filter(({ envelope }) => envelope.key === key);
        assert.equal(found.length, 1, `${poison.name}: one dead letter`);
        checkLetter(poison, original[0], found[0].record, found[0].envelope, names.orders);
      }
    } finally {
      await run.stop();
    }
  },
);

function checkLetter(
  poison: Poison,
  original: KcatRecord,
  record: KcatRecord,
  envelope: DeadLetterEnvelope,
  ordersTopic: string,
): void {
  const what = poison.name;
  assert.equal(envelope.error_type, poison.errorType, `${what}: error_type`);
  if (typeof poison.reason === "string") {
    assert.equal(envelope.error_reason, poison.reason, `${what}: error_reason`);
  } else {
    assert.match(envelope.error_reason, poison.reason, `${what}: error_reason`);
  }
  assert.equal(envelope.stage, "process-payment", `${what}: stage`);
  assert.equal(envelope.attempts, 0, `${what}: never reached the handler`);
  assert.equal(envelope.original_topic, ordersTopic, `${what}: original_topic`);
  assert.equal(envelope.original_partition, original.partition, `${what}: original_partition`);
  assert.equal(envelope.original_offset, original.offset, `${what}: original_offset`);
  const value = typeof poison.message.value === "string"
    ? poison.message.value
    : new TextDecoder().decode(poison.message.value);
  assert.equal(envelope.value_size, new TextEncoder().encode(value).length, `${what}: value_size`);
  assert.equal(envelope.value_truncated, false, `${what}: kept whole below 256 KiB`);
  assert.equal(envelope.value, value, `${what}: the original value, byte for byte`);
  // The DLQ record itself: keyed like the original, typed in its headers.
  assert.equal(record.key, poison.message.key ?? null, `${what}: DLQ record key`);
  assert.equal(record.headers[HEADER.ERROR_TYPE], poison.errorType, `${what}: error header`);
  assert.equal(record.headers[HEADER.STAGE], "process-payment", `${what}: stage header`);
}
