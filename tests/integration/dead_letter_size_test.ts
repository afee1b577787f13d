/**
 * A 1000 KiB value of 0x01 bytes written to the orders topic by another client (kcat) is
 * dead-lettered within the DLQ topic's size limit, and does not block its partition: the valid
 * order written after it is paid. Before the dead letter was bounded by its encoded size, its
 * envelope (each 0x01 byte escaped as `\u0001` in JSON) outgrew the broker's 1 MiB limit, the
 * send failed forever and the partition never moved again.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DeadLetterEnvelopeSchema } from "../../pipeline/dead_letter.ts";
import { startPipeline, waitUntilDrained } from "../../pipeline/run.ts";
import { createOrdersPipeline } from "../../stages/orders_pipeline.ts";
import { createPaymentGateway } from "../../stages/payment_gateway.ts";
import {
  integrationTest,
  pipelineNames,
  produceWithKcat,
  readTopic,
  uniqueNames,
} from "./_integration.ts";
import { granted } from "../_permissions.ts";
import { loadKafkaTransport } from "../_broker.ts";

/** The Kafka transport, loaded only where env access is granted (kafkajs reads env on load). */
const kafka = granted("env") ? await loadKafkaTransport() : undefined;

const KIB = 1024;
const MIB = 1024 * KIB;

function order(orderId: string): string {
  return JSON.stringify({
    event_type: "OrderPlaced",
    event_version: 1,
    order_id: orderId,
    user_id: "user-1",
    amount: 12.5,
    currency: "EUR",
    created_at: new Date().toISOString(),
  });
}

await integrationTest(
  "a 1000 KiB value of 0x01 bytes from kcat is dead-lettered within 1 MiB and its partition moves on",
  async (brokers, kcat) => {
    const names = uniqueNames("dlqsize");
    const pipeline = createOrdersPipeline({
      gateway: createPaymentGateway({ failureRate: 0 }),
      ...pipelineNames(names),
      partitions: 1,
    });
    const transport = kafka!.createKafkaTransport(brokers, { clientId: "dead-letter-size-test" });
    const running = await startPipeline(pipeline, { transport });
    try {
      await produceWithKcat(kcat, brokers, names.orders, {
        key: "binary-1000k",
        value: new Uint8Array(1000 * KIB).fill(0x01),
        headers: { "x-origin": "kcat" },
      });
      await produceWithKcat(kcat, brokers, names.orders, {
        key: "after-the-poison",
        value: order("after-the-poison"),
      });
      await waitUntilDrained(pipeline, transport, { timeoutMs: 30_000 });

      const dead = await readTopic(kcat, brokers, names.dlq);
      assert.equal(dead.length, 1, "one dead letter");
      const bytes = new TextEncoder().encode(dead[0].payload!).length;
      assert.ok(bytes <= MIB, `the dead letter fits the topic's 1 MiB: ${bytes} bytes`);
      const envelope = DeadLetterEnvelopeSchema.parse(JSON.parse(dead[0].payload!));
      assert.equal(envelope.error_type, "PoisonRecordError");
      assert.equal(envelope.original_offset, 0);
      assert.equal(envelope.value_size, 1000 * KIB);
      assert.equal(envelope.value_truncated, true);
      assert.equal(dead[0].key, "binary-1000k");
      assert.equal(envelope.headers["x-origin"], "kcat");
      const paid = await readTopic(kcat, brokers, names.payments);
      assert.deepEqual(paid.map((r) => r.key), ["after-the-poison"]);
    } finally {
      await running.stop();
      await transport.close();
    }
  },
);
