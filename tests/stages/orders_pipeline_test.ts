import assert from "node:assert/strict";
import type { OrderPlaced, PaymentProcessed } from "../../stages/events.ts";
import { createOrderGenerator } from "../../stages/generate_order.ts";
import { createOrdersPipeline } from "../../stages/orders_pipeline.ts";
import { createPaymentGateway } from "../../stages/payment_gateway.ts";
import { envelopes, json, keyText } from "../_fixtures.ts";
import { withOrders } from "./_orders.ts";
import { DefinitionError } from "../../pipeline/errors.ts";
import { parseConfig } from "../../pipeline/config.ts";
import { ORDERS_CONFIG, retryPreset } from "../../stages/config.ts";

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

function orders(count: number, seed = 1): OrderPlaced[] {
  const next = createOrderGenerator({ seed, now: () => Date.UTC(2025, 0, 1) });
  return Array.from({ length: count }, next);
}

Deno.test("createOrdersPipeline() wires orders -> process-payment -> payments with orders.dlq", () => {
  const pipeline = createOrdersPipeline({ gateway: createPaymentGateway() });
  const node = pipeline.stage("process-payment");
  assert.equal(node.input, "orders");
  assert.equal(node.output, "payments");
  assert.equal(node.group, "payment-service");
  assert.equal(node.deadLetter, "orders.dlq");
  assert.equal(pipeline.source("publish-order").output, "orders");
  assert.equal(pipeline.topic("orders").partitions, 3);
  assert.ok(pipeline.topic("orders.dlq").deadLetter);
});

Deno.test("orders pipeline dead-letters bad input precisely and keeps paying good orders", async () => {
  await withOrders({}, async (run) => {
    const [good1, good2, good3] = orders(3);
    const valid = (changes: Record<string, unknown>) => JSON.stringify({ ...good1, ...changes });
    await run.running.producer.send([
      { topic: "orders", key: "bad-json", value: '{"order_id": "x",', headers: {} },
      { topic: "orders", key: "bad-amount", value: valid({ order_id: "bad-amount", amount: -5 }) },
      { topic: "orders", key: "v2", value: valid({ order_id: "v2", event_version: 2 }) },
      { topic: "orders", key: null, value: valid({ order_id: "no-key" }) },
      {
        topic: "orders",
        key: "huge",
        value: valid({ order_id: "huge", note: "x".repeat(64 * 1024) }),
        headers: { traceparent: TRACEPARENT },
      },
    ]);
    await run.publish([good1, good2, good3]);
    await run.drain();

    const dead = envelopes(run.transport, "orders.dlq");
    assert.equal(dead.length, 5);
    const byKey = new Map(dead.map((e) => [e.key, e]));
    const reason = (key: string | null) => {
      const envelope = byKey.get(key);
      assert.ok(envelope, `no envelope for key ${key}`);
      assert.equal(envelope.stage, "process-payment");
      assert.equal(envelope.attempts, 0, "bad input never reaches the handler");
      assert.equal(envelope.original_topic, "orders");
      return [envelope.error_type, envelope.error_reason];
    };
    const [jsonType, jsonReason] = reason("bad-json");
    assert.equal(jsonType, "ValidationError");
    assert.match(jsonReason, /^Cannot decode record as its value is not UTF-8 JSON: /);
    const [amountType, amountReason] = reason("bad-amount");
    assert.equal(amountType, "ValidationError");
    assert.match(amountReason, /^Cannot accept record as field "amount" is invalid: /);
    const [versionType, versionReason] = reason("v2");
    assert.equal(versionType, "ValidationError");
    assert.equal(
      versionReason,
      `Cannot accept record as field "event_version" is invalid: ` +
        `Unsupported OrderPlaced event_version: this consumer reads version 1`,
    );
    const [keyType, keyReason] = reason(null);
    assert.equal(keyType, "PoisonRecordError");
    assert.equal(keyReason, "Cannot accept record as it has no key");
    const [hugeType, hugeReason] = reason("huge");
    assert.equal(hugeType, "PoisonRecordError");
    const hugeSize = valid({ order_id: "huge", note: "x".repeat(64 * 1024) }).length;
    assert.equal(
      hugeReason,
      `Cannot decode record as its value is too large: ${hugeSize} bytes, limit 65536`,
    );
    assert.equal(byKey.get("huge")!.headers.traceparent, TRACEPARENT);
    assert.equal(byKey.get("huge")!.value_size, hugeSize);

    const paid = run.transport.records("payments").map((r) => json<PaymentProcessed>(r));
    assert.deepEqual(
      paid.map((p) => p.order_id).sort(),
      [good1, good2, good3].map((o) => o.order_id).sort(),
    );
  });
});

Deno.test("orders pipeline publishes orders keyed by order_id and payments keyed likewise", async () => {
  await withOrders({}, async (run) => {
    const batch = orders(10);
    await run.publish(batch);
    await run.drain();
    for (const record of run.transport.records("orders")) {
      assert.equal(keyText(record), json<OrderPlaced>(record).order_id);
    }
    const payments = run.transport.records("payments");
    assert.equal(payments.length, 10);
    for (const record of payments) {
      const payment = json<PaymentProcessed>(record);
      assert.equal(keyText(record), payment.order_id);
      // Same key, same partition count: a payment lands on its order's partition.
      const order = run.transport.records("orders").find((r) => keyText(r) === payment.order_id)!;
      assert.equal(record.partition, order.partition);
    }
  });
});

Deno.test("orders pipeline charges a declined order never and dead-letters it at once", async () => {
  await withOrders({ declineAbove: 100 }, async (run) => {
    const batch = orders(30);
    await run.publish(batch);
    await run.drain();
    const expensive = batch.filter((o) => o.amount > 100).map((o) => o.order_id).sort();
    assert.ok(expensive.length > 0);
    const dead = envelopes(run.transport, "orders.dlq");
    assert.deepEqual(dead.map((e) => e.key).sort(), expensive);
    assert.ok(dead.every((e) => e.error_type === "PaymentDeclinedError" && e.attempts === 1));
    assert.equal(run.gateway.charges, batch.length - expensive.length);
  });
});

interface Accounting {
  readonly paid: string[];
  readonly dead: string[];
  readonly retries: number;
}

async function account(seed: number, count: number): Promise<Accounting> {
  let result!: Accounting;
  await withOrders({ seed, failureRate: 0.2, concurrency: 3 }, async (run) => {
    const batch = orders(count, seed);
    await run.publish(batch);
    await run.drain();
    const paid = run.transport.records("payments").map((r) => json<PaymentProcessed>(r).order_id);
    const dead = envelopes(run.transport, "orders.dlq").map((e) => e.key!);
    const ids = new Set(batch.map((o) => o.order_id));
    assert.equal(ids.size, count, "generated order ids are unique");
    assert.equal(new Set(paid).size, paid.length, "no order paid twice");
    assert.equal(new Set(dead).size, dead.length, "no order dead-lettered twice");
    assert.ok(!paid.some((id) => dead.includes(id)), "paid and dead-lettered are disjoint");
    assert.deepEqual(new Set([...paid, ...dead]), ids, "every order is accounted for");
    assert.ok(dead.length > 0, "a 20% failure rate dead-letters some orders after 3 attempts");
    assert.ok(
      envelopes(run.transport, "orders.dlq").every((e) =>
        e.error_type === "GatewayUnavailableError" && e.attempts === 3
      ),
    );
    assert.equal(run.gateway.charges, paid.length);
    const retries = run.outcomes.reduce((sum, o) => sum + o.retries, 0);
    // Retries happened in virtual time: 1 s each, with no real waiting.
    assert.ok(run.clock.sleeps.filter((ms) => ms === 1000).length >= retries);
    result = { paid: paid.sort(), dead: dead.sort(), retries };
  });
  return result;
}

Deno.test("orders pipeline accounts for all 300 orders exactly once at a 20% failure rate", async () => {
  const first = await account(1, 300);
  assert.equal(first.paid.length + first.dead.length, 300);
  assert.ok(first.retries > 30, `retries ${first.retries}`);
});

Deno.test("orders pipeline gives the same paid and dead-lettered sets for the same seed", async () => {
  const [a, b] = [await account(7, 300), await account(7, 300)];
  assert.deepEqual(a, b);
  const c = await account(8, 300);
  assert.notDeepEqual(c.paid, a.paid);
});

Deno.test("createOrdersPipeline() declares every topic with the replication factor and min.insync.replicas given", () => {
  const pipeline = createOrdersPipeline({
    gateway: createPaymentGateway(),
    replicationFactor: 3,
    minInsyncReplicas: 2,
    retry: retryPreset("tiered"),
  });
  assert.ok(pipeline.topics.length >= 5, "orders, payments, the DLQ and two retry tiers");
  for (const topic of pipeline.topics) {
    assert.equal(topic.replicationFactor, 3, topic.name);
    assert.equal(topic.config?.["min.insync.replicas"], "2", topic.name);
  }
  const plain = createOrdersPipeline({ gateway: createPaymentGateway() });
  for (const topic of plain.topics) {
    assert.equal(topic.replicationFactor, 1, topic.name);
    assert.equal(topic.config?.["min.insync.replicas"], undefined, topic.name);
  }
});

Deno.test("createOrdersPipeline() refuses min.insync.replicas above the replication factor", () => {
  assert.throws(
    () =>
      createOrdersPipeline({
        gateway: createPaymentGateway(),
        replicationFactor: 2,
        minInsyncReplicas: 3,
      }),
    (error: unknown) =>
      error instanceof DefinitionError &&
      error.message ===
        `Cannot define topic "orders" as 'min.insync.replicas' must be at most its ` +
          `replication factor 2: current value is "3"`,
  );
});

Deno.test("REPLICATION_FACTOR and MIN_INSYNC_REPLICAS are settings of the pipeline command", () => {
  const { values } = parseConfig(ORDERS_CONFIG, {
    env: { REPLICATION_FACTOR: "3", MIN_INSYNC_REPLICAS: "2" },
    args: [],
  });
  assert.equal(values.replicationFactor, 3);
  assert.equal(values.minInsyncReplicas, 2);
  const flags = parseConfig(ORDERS_CONFIG, {
    env: {},
    args: ["--replication-factor", "2", "--min-insync-replicas", "1"],
  });
  assert.equal(flags.values.replicationFactor, 2);
  assert.equal(flags.values.minInsyncReplicas, 1);
  assert.equal(parseConfig(ORDERS_CONFIG, { env: {}, args: [] }).values.replicationFactor, 1);
});
