/**
 * The exactly-once mode on the orders pipeline: a member fenced in the middle of a transaction
 * (its task's transactional id opened by someone else, as a new owner does) leaves no trace a
 * `read_committed` reader sees, and the next member pays every order exactly once.
 */
import assert from "node:assert/strict";
import { createPublisher } from "../../pipeline/publisher.ts";
import { startPipeline, waitUntilDrained } from "../../pipeline/run.ts";
import { taskTransactionalId } from "../../pipeline/_task_transactions.ts";
import { createEmbeddedTransport } from "../../pipeline/transport/embedded/mod.ts";
import type { ConsumedRecord } from "../../pipeline/transport/transport.ts";
import { createOrderGenerator } from "../../stages/generate_order.ts";
import { createOrdersPipeline, PUBLISH_ORDER } from "../../stages/orders_pipeline.ts";
import { createPaymentGateway } from "../../stages/payment_gateway.ts";
import { retryPolicy } from "../../pipeline/retry.ts";

const decoder = new TextDecoder();
const text = (bytes: Uint8Array | null) => bytes === null ? null : decoder.decode(bytes);

async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The latest entry per key of a changelog, tombstones removing keys. */
function latestEntries(records: readonly ConsumedRecord[]): Map<string, { outcome: string }> {
  const entries = new Map<string, { outcome: string }>();
  for (const record of records) {
    const key = text(record.key)!;
    if (record.value === null) entries.delete(key);
    else entries.set(key, JSON.parse(text(record.value)!));
  }
  return entries;
}

Deno.test("exactly_once: a member fenced mid-transaction leaves nothing read_committed; every paid order has one PaymentProcessed", async () => {
  const transport = createEmbeddedTransport({ retryBackoffMs: 5 });
  const gateway = createPaymentGateway({ failureRate: 0.2, seed: 7 });
  const pipeline = createOrdersPipeline({
    gateway,
    partitions: 3,
    retry: retryPolicy({ initialDelayMs: 1, maxDelayMs: 5, attempts: 5, tiers: [] }),
  });
  const group = pipeline.stages[0].group;
  const changelog = pipeline.stages[0].changelog!;
  const orders = createOrderGenerator({ seed: 11 });
  const total = 90;
  // The first member: transactions held open (a long linger, a large count bound).
  const zombie = await startPipeline(pipeline, {
    transport,
    guarantee: "exactly_once",
    transactionLingerMs: 600_000,
    transactionMaxRecords: 100_000,
  });
  const publisher = createPublisher(pipeline, PUBLISH_ORDER, { producer: zombie.producer });
  const batch = Array.from({ length: total }, () => orders());
  await publisher.publish(batch.slice(0, total / 2));
  await until(
    "the first member's outputs written in its open transactions",
    () => transport.records("payments", "read_uncommitted").length >= 10,
  );
  assert.equal(transport.records("payments").length, 0, "nothing committed yet");
  // A new owner opens each task's transactional id: the first member is fenced.
  for (let p = 0; p < 3; p++) {
    const owner = await transport.transactionalProducer({
      transactionalId: taskTransactionalId(group, "orders", p),
    });
    await owner.close();
  }
  // Its in-flight outcomes fail with the fencing; it commits nothing on the way out.
  await zombie.stop().catch(() => undefined);
  const aborted = transport.records("payments", "read_uncommitted").length;
  assert.ok(aborted >= 10);

  const next = await startPipeline(pipeline, { transport, guarantee: "exactly_once" });
  try {
    const publisher2 = createPublisher(pipeline, PUBLISH_ORDER, { producer: next.producer });
    await publisher2.publish(batch.slice(total / 2));
    await waitUntilDrained(pipeline, transport, { timeoutMs: 60_000 });
  } finally {
    await next.stop();
  }
  const payments = transport.records("payments");
  const dead = transport.records("orders.dlq");
  const paidKeys = payments.map((r) => text(r.key)!);
  assert.equal(new Set(paidKeys).size, paidKeys.length, "one PaymentProcessed per paid order");
  const ids = new Set(batch.map((o) => o.order_id));
  const settled = new Set([...paidKeys, ...dead.map((r) => text(r.key)!)]);
  assert.deepEqual([...settled].sort(), [...ids].sort(), "every order has one outcome");
  const entries = latestEntries(transport.records(changelog));
  const outputKeys = [...entries].filter(([, e]) => e.outcome === "output").map(([k]) => k);
  assert.deepEqual(outputKeys.sort(), [...paidKeys].sort(), "the changelog agrees");
});

Deno.test("exactly_once with retry tiers: the pipeline drains to lag 0 and each order has one outcome read_committed", async () => {
  const transport = createEmbeddedTransport({ retryBackoffMs: 5 });
  // Half the attempts fail: many orders go through one tier or both, some on to the DLQ.
  const gateway = createPaymentGateway({ failureRate: 0.5, seed: 3 });
  const pipeline = createOrdersPipeline({
    gateway,
    partitions: 3,
    retry: retryPolicy({
      initialDelayMs: 1,
      maxDelayMs: 2,
      attempts: 1,
      tiers: [{ delayMs: 5 }, { delayMs: 10 }],
    }),
  });
  const node = pipeline.stages[0];
  assert.equal(node.retryTopics.length, 2);
  const orders = createOrderGenerator({ seed: 19 });
  const batch = Array.from({ length: 120 }, () => orders());
  const running = await startPipeline(pipeline, { transport, guarantee: "exactly_once" });
  try {
    const publisher = createPublisher(pipeline, PUBLISH_ORDER, { producer: running.producer });
    await publisher.publish(batch);
    // Drained compares committed with end offsets: each tier partition ends in a control record.
    await waitUntilDrained(pipeline, transport, { timeoutMs: 30_000 });
  } finally {
    await running.stop();
  }
  for (const topic of node.retryTopics) {
    const tiered = transport.records(topic);
    assert.ok(tiered.length > 0, `records went through ${topic}`);
    const end = (await transport.endOffsets(topic)).end;
    const committed = new Map(
      (await transport.committedOffsets(node.group, topic)).map((c) => [c.partition, c.offset]),
    );
    for (const { partition, offset } of end) {
      assert.equal(
        committed.get(partition) ?? 0,
        offset,
        `${topic}[${partition}] committed to its end`,
      );
    }
  }
  const paid = transport.records("payments").map((r) => text(r.key)!);
  const dead = transport.records("orders.dlq").map((r) => text(r.key)!);
  assert.equal(new Set(paid).size, paid.length, "one PaymentProcessed per paid order");
  assert.equal(new Set(dead).size, dead.length, "one dead letter per failed order");
  assert.equal(paid.length + dead.length, batch.length, "each order one outcome");
  assert.deepEqual([...paid, ...dead].sort(), batch.map((o) => o.order_id).sort());
  assert.ok(dead.length > 0, "some orders ran out of tiers");
});
