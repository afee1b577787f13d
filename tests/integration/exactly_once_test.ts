/**
 * The exactly-once mode on Apache Kafka: a payment member fenced in the middle of its open
 * transactions (its tasks' transactional ids opened by another producer, as a new owner does)
 * and then stopped; a new member takes over. kcat, reading `read_committed`, is the witness:
 * one PaymentProcessed per paid order, every order settled once, and the state changelog agrees.
 */
import assert from "node:assert/strict";
import { pipelineLag, startPipeline, waitUntilDrained } from "../../pipeline/run.ts";
import { createPublisher } from "../../pipeline/publisher.ts";
import { taskTransactionalId } from "../../pipeline/_task_transactions.ts";
import { createOrderGenerator } from "../../stages/generate_order.ts";
import { createOrdersPipeline, PUBLISH_ORDER } from "../../stages/orders_pipeline.ts";
import { createPaymentGateway } from "../../stages/payment_gateway.ts";
import { retryPolicy } from "../../pipeline/retry.ts";
import { integrationTest, pipelineNames, readTopic, uniqueNames, waitFor } from "./_integration.ts";
import { granted } from "../_permissions.ts";
import { loadKafkaTransport } from "../_broker.ts";
import type { Transport } from "../../pipeline/transport/transport.ts";

/** The Kafka transport, loaded only where env access is granted (kafkajs reads env on load). */
const kafka = granted("env") ? await loadKafkaTransport() : undefined;

await integrationTest(
  "exactly_once on Kafka: a member fenced mid-transaction leaves nothing read_committed; one PaymentProcessed per paid order",
  async (brokers, kcat) => {
    const names = uniqueNames("eos");
    const pipeline = createOrdersPipeline({
      gateway: createPaymentGateway({ failureRate: 0.2, seed: 5 }),
      ...pipelineNames(names),
      partitions: 3,
      retry: retryPolicy({ initialDelayMs: 5, maxDelayMs: 20, attempts: 4, tiers: [] }),
    });
    const changelog = pipeline.stages[0].changelog!;
    const orders = createOrderGenerator({ seed: 23 });
    const batch = Array.from({ length: 60 }, () => orders());
    const transport = kafka!.createKafkaTransport(brokers, { clientId: "exactly-once-test" });
    try {
      // The first member holds its transactions open (a long linger, a large count bound).
      const zombie = await startPipeline(pipeline, {
        transport,
        guarantee: "exactly_once",
        transactionLingerMs: 600_000,
        transactionMaxRecords: 100_000,
      });
      const publisher = createPublisher(pipeline, PUBLISH_ORDER, { producer: zombie.producer });
      await publisher.publish(batch.slice(0, 30));
      await waitFor(
        "the first member's outputs written in its open transactions",
        async () =>
          (await readTopic(kcat, brokers, names.payments, { isolation: "read_uncommitted" }))
            .length >= 5,
        60_000,
      );
      assert.equal(
        (await readTopic(kcat, brokers, names.payments, { isolation: "read_committed" })).length,
        0,
        "nothing committed while its transactions are open",
      );
      // A new owner opens each task's transactional id: the first member is fenced.
      for (let p = 0; p < 3; p++) {
        const owner = await transport.transactionalProducer({
          transactionalId: taskTransactionalId(names.group, names.orders, p),
        });
        await owner.close();
      }
      // Its outcomes in flight fail with the fencing; it commits nothing on the way out.
      await zombie.stop().catch(() => undefined);

      const next = await startPipeline(pipeline, { transport, guarantee: "exactly_once" });
      try {
        const publisher2 = createPublisher(pipeline, PUBLISH_ORDER, { producer: next.producer });
        await publisher2.publish(batch.slice(30));
        await waitUntilDrained(pipeline, transport, { timeoutMs: 120_000 });
      } finally {
        await next.stop();
      }
      const committed = { isolation: "read_committed" } as const;
      const paid = (await readTopic(kcat, brokers, names.payments, committed)).map((r) => r.key!);
      const dead = (await readTopic(kcat, brokers, names.dlq, committed)).map((r) => r.key!);
      const uncommitted = await readTopic(kcat, brokers, names.payments, {
        isolation: "read_uncommitted",
      });
      assert.ok(uncommitted.length > paid.length, "the fenced member's outputs were aborted");
      assert.equal(new Set(paid).size, paid.length, "one PaymentProcessed per paid order");
      assert.deepEqual(
        [...new Set([...paid, ...dead])].sort(),
        batch.map((o) => o.order_id).sort(),
        "every order settled, once",
      );
      assert.equal(paid.length + dead.length, batch.length);
      const entries = new Map<string, string>();
      for (const record of await readTopic(kcat, brokers, changelog, committed)) {
        if (record.payload === null) entries.delete(record.key!);
        else entries.set(record.key!, (JSON.parse(record.payload) as { outcome: string }).outcome);
      }
      const outputs = [...entries].filter(([, outcome]) => outcome === "output").map(([k]) => k);
      assert.deepEqual(outputs.sort(), [...paid].sort(), "the changelog agrees");
    } finally {
      await transport.close();
    }
  },
);

await integrationTest(
  "exactly_once on Kafka: the previous owner's last transaction, committed after the new owner read its position, is not processed again",
  async (brokers, kcat) => {
    const names = uniqueNames("eoslate");
    const pipeline = createOrdersPipeline({
      gateway: createPaymentGateway({ failureRate: 0, seed: 5 }),
      ...pipelineNames(names),
      partitions: 1,
      retry: retryPolicy({ initialDelayMs: 5, maxDelayMs: 20, attempts: 4, tiers: [] }),
    });
    const orders = createOrderGenerator({ seed: 29 });
    const batch = Array.from({ length: 20 }, () => orders());
    const transport = kafka!.createKafkaTransport(brokers, { clientId: "exactly-once-late" });
    try {
      await transport.ensureTopics(pipeline.topics);
      const producer = await transport.producer();
      await createPublisher(pipeline, PUBLISH_ORDER, { producer }).publish(batch);
      await producer.close();
      // The previous owner of the task handled the first 10 orders: its last transaction holds
      // their offsets and is still on its way when the new owner joins the group.
      const taskId = taskTransactionalId(names.group, names.orders, 0);
      const previous = await transport.transactionalProducer({ transactionalId: taskId });
      const last = await previous.begin();
      await last.sendOffsets(names.group, [{ topic: names.orders, partition: 0, offset: 10 }]);
      let lateCommit: Promise<void> | undefined;
      // It commits while the new owner opens the task (after its consumer read its position),
      // just before the new owner's producer fences it.
      const racing: Transport = {
        kind: transport.kind,
        target: transport.target,
        ensureTopics: (topics) => transport.ensureTopics(topics),
        producer: () => transport.producer(),
        async transactionalProducer(options) {
          if (options.transactionalId === taskId) await (lateCommit ??= last.commit());
          return await transport.transactionalProducer(options);
        },
        consumer: (options) => transport.consumer(options),
        endOffsets: (topic) => transport.endOffsets(topic),
        committedOffsets: (group, topic) => transport.committedOffsets(group, topic),
        readPartitions: (topic, partitions, each, signal) =>
          transport.readPartitions(topic, partitions, each, signal),
        close: () => transport.close(),
      };
      const next = await startPipeline(pipeline, { transport: racing, guarantee: "exactly_once" });
      try {
        await waitUntilDrained(pipeline, transport, { timeoutMs: 60_000 });
      } finally {
        await next.stop();
      }
      await previous.close();
      assert.ok(lateCommit !== undefined, "the previous owner's transaction committed late");
      const committed = { isolation: "read_committed" } as const;
      const settled = [
        ...await readTopic(kcat, brokers, names.payments, committed),
        ...await readTopic(kcat, brokers, names.dlq, committed),
      ].map((r) => r.key!);
      assert.deepEqual(
        settled.sort(),
        batch.slice(10).map((o) => o.order_id).sort(),
        "only the orders after the previous owner's committed offset, each once",
      );
    } finally {
      await transport.close();
    }
  },
);

/** The @platformatic/kafka transport, loaded where env access is granted like kafkajs. */
const platformatic = granted("env")
  ? await import("../../pipeline/transport/platformatic/mod.ts")
  : undefined;

for (const client of ["kafkajs", "platformatic"] as const) {
  await integrationTest(
    `exactly_once on Kafka with retry tiers (${client}): the pipeline drains to lag 0 and each order has one outcome read_committed`,
    async (brokers, kcat) => {
      const names = uniqueNames(`eos-tiers-${client}`);
      const pipeline = createOrdersPipeline({
        // Half the attempts fail: many orders go through one tier or both, some to the DLQ.
        gateway: createPaymentGateway({ failureRate: 0.5, seed: 9 }),
        ...pipelineNames(names),
        partitions: 3,
        retry: retryPolicy({
          initialDelayMs: 5,
          maxDelayMs: 10,
          attempts: 1,
          tiers: [{ delayMs: 100 }, { delayMs: 200 }],
        }),
      });
      const node = pipeline.stages[0];
      const orders = createOrderGenerator({ seed: 31 });
      const batch = Array.from({ length: 60 }, () => orders());
      const transport = client === "kafkajs"
        ? kafka!.createKafkaTransport(brokers, { clientId: "exactly-once-tiers-test" })
        : platformatic!.createPlatformaticTransport(brokers, {
          clientId: "exactly-once-tiers-test",
        });
      try {
        const running = await startPipeline(pipeline, { transport, guarantee: "exactly_once" });
        try {
          const publisher = createPublisher(pipeline, PUBLISH_ORDER, {
            producer: running.producer,
          });
          await publisher.publish(batch);
          // Drained compares the group's committed offsets with the end offsets, and every tier
          // partition written in transactions ends in a control record.
          await waitUntilDrained(pipeline, transport, { timeoutMs: 120_000 });
        } finally {
          await running.stop();
        }
        for (const lag of await pipelineLag(pipeline, transport)) {
          assert.equal(lag.lag, 0, `lag of ${lag.group} on ${lag.topic}`);
        }
        const committed = { isolation: "read_committed" } as const;
        for (const topic of node.retryTopics) {
          const tiered = await readTopic(kcat, brokers, topic, committed);
          assert.ok(tiered.length > 0, `records went through ${topic}`);
        }
        const paid = (await readTopic(kcat, brokers, names.payments, committed)).map((r) => r.key!);
        const dead = (await readTopic(kcat, brokers, names.dlq, committed)).map((r) => r.key!);
        assert.equal(new Set(paid).size, paid.length, "one PaymentProcessed per paid order");
        assert.equal(new Set(dead).size, dead.length, "one dead letter per failed order");
        assert.deepEqual(
          [...paid, ...dead].sort(),
          batch.map((o) => o.order_id).sort(),
          "every order settled, once",
        );
        assert.ok(dead.length > 0, "some orders ran out of tiers");
      } finally {
        await transport.close();
      }
    },
  );
}
