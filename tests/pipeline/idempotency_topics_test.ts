import assert from "node:assert/strict";
import { restoringOnAssignment, topicIdempotencyStore } from "../../pipeline/idempotency_topics.ts";
import type { IdempotencyStore, KnownOutcome } from "../../pipeline/idempotency.ts";
import { BrokerUnavailableError } from "../../pipeline/errors.ts";
import { createEmbeddedTransport } from "../../pipeline/transport/embedded/mod.ts";
import type { Assignment, ConsumedRecord, Transport } from "../../pipeline/transport/transport.ts";

const decoder = new TextDecoder();

function recordKey(record: ConsumedRecord): string | undefined {
  return record.key === null ? undefined : decoder.decode(record.key);
}

async function setup() {
  const transport = createEmbeddedTransport();
  await transport.ensureTopics([
    { name: "payments", partitions: 3 },
    { name: "orders.dlq", partitions: 1 },
  ]);
  const producer = await transport.producer();
  return { transport, producer };
}

Deno.test("topicIdempotencyStore() restore() learns outputs and dead letters written so far", async () => {
  const { transport, producer } = await setup();
  await producer.send([
    { topic: "payments", key: "o-1", value: "{}" },
    { topic: "payments", key: "o-2", value: "{}" },
    { topic: "payments", key: null, value: "{}" },
    { topic: "orders.dlq", key: "o-3", value: "{}" },
  ]);
  const store = topicIdempotencyStore(transport, {
    topics: ["payments", "orders.dlq"],
    keyOf: recordKey,
    group: "payment-service",
  });
  assert.match(store.groupId, /^payment-service\.idempotency\.[0-9a-f-]{36}$/);
  await store.restore();
  assert.equal(await store.get("o-1"), "output");
  assert.equal(await store.get("o-2"), "output");
  assert.equal(await store.get("o-3"), "dead-lettered");
  assert.equal(await store.get("o-4"), undefined);
  assert.equal(store.size, 3);
  await store.close();
  await producer.close();
  await transport.close();
});

Deno.test("topicIdempotencyStore() later restore() calls continue with records written since", async () => {
  const { transport, producer } = await setup();
  const store = topicIdempotencyStore(transport, {
    topics: ["payments", "orders.dlq"],
    keyOf: recordKey,
  });
  await store.restore();
  assert.equal(store.size, 0);
  await producer.send([
    { topic: "payments", key: "o-1", value: "{}" },
    { topic: "orders.dlq", key: "o-2", value: "{}" },
  ]);
  await store.restore();
  assert.equal(await store.get("o-1"), "output");
  assert.equal(await store.get("o-2"), "dead-lettered");
  // An output wins over a dead letter of the same key, whatever the order they are read in.
  await producer.send([{ topic: "orders.dlq", key: "o-1", value: "{}" }]);
  await store.restore();
  assert.equal(await store.get("o-1"), "output");
  await store.close();
  await producer.close();
  await transport.close();
});

Deno.test("topicIdempotencyStore() set() is remembered without the topics", async () => {
  const { transport, producer } = await setup();
  const store = topicIdempotencyStore(transport, { topics: ["payments"], keyOf: recordKey });
  await store.set("o-9", "dead-lettered");
  assert.equal(await store.get("o-9"), "dead-lettered");
  await store.set("o-9", "output");
  assert.equal(await store.get("o-9"), "output");
  await store.close();
  await producer.close();
  await transport.close();
});

Deno.test("topicIdempotencyStore() two stores in separate groups both see every record", async () => {
  const { transport, producer } = await setup();
  await producer.send(
    Array.from({ length: 30 }, (_, i) => ({ topic: "payments", key: `o-${i}`, value: "{}" })),
  );
  const a = topicIdempotencyStore(transport, { topics: ["payments"], keyOf: recordKey });
  const b = topicIdempotencyStore(transport, { topics: ["payments"], keyOf: recordKey });
  assert.notEqual(a.groupId, b.groupId);
  await Promise.all([a.restore(), b.restore()]);
  assert.equal(a.size, 30);
  assert.equal(b.size, 30);
  await a.close();
  await b.close();
  await producer.close();
  await transport.close();
});

Deno.test("topicIdempotencyStore() restore() rejects when its signal aborts", async () => {
  const transport = createEmbeddedTransport();
  await transport.ensureTopics([{ name: "payments", partitions: 1 }]);
  const store = topicIdempotencyStore(transport, { topics: ["payments"], keyOf: recordKey });
  const abort = new AbortController();
  abort.abort(new Error("stopping"));
  await assert.rejects(store.restore(abort.signal), /stopping/);
  await store.close();
  await transport.close();
});

/** `inner` with some of its methods replaced. */
function wrapTransport(inner: Transport, overrides: Partial<Transport>): Transport {
  return {
    kind: inner.kind,
    target: inner.target,
    ensureTopics: (topics) => inner.ensureTopics(topics),
    producer: () => inner.producer(),
    transactionalProducer: (options) => inner.transactionalProducer(options),
    consumer: (options) => inner.consumer(options),
    endOffsets: (topic) => inner.endOffsets(topic),
    committedOffsets: (groupId, topic) => inner.committedOffsets(groupId, topic),
    close: () => inner.close(),
    ...overrides,
  };
}

Deno.test("topicIdempotencyStore() restore() skips a partition that retention emptied", async () => {
  const { transport, producer } = await setup();
  await producer.send([
    { topic: "payments", key: "o-1", value: "{}" },
    { topic: "payments", key: "o-2", value: "{}" },
  ]);
  // The embedded log never truncates: report the DLQ's only partition as emptied by retention
  // (7 records were written once, all deleted), so there is nothing there to read.
  const truncated = wrapTransport(transport, {
    async endOffsets(topic) {
      const offsets = await transport.endOffsets(topic);
      if (topic !== "orders.dlq") return offsets;
      return {
        topic,
        end: [{ partition: 0, offset: 7 }],
        start: [{ partition: 0, offset: 7 }],
      };
    },
  });
  const store = topicIdempotencyStore(truncated, {
    topics: ["payments", "orders.dlq"],
    keyOf: recordKey,
    restoreTimeoutMs: 5_000,
  });
  await store.restore();
  assert.equal(await store.get("o-1"), "output");
  assert.equal(await store.get("o-2"), "output");
  // Later restores still wait for the partitions that have records.
  await producer.send([{ topic: "payments", key: "o-3", value: "{}" }]);
  await store.restore();
  assert.equal(await store.get("o-3"), "output");
  await store.close();
  await producer.close();
  await transport.close();
});

Deno.test("topicIdempotencyStore() restore() after a failed reader start tries again", async () => {
  const { transport, producer } = await setup();
  await producer.send([{ topic: "payments", key: "o-1", value: "{}" }]);
  let calls = 0;
  const flaky = wrapTransport(transport, {
    consumer(options) {
      calls++;
      if (calls === 1) {
        return Promise.reject(new BrokerUnavailableError("Cannot reach the broker: hiccup"));
      }
      return transport.consumer(options);
    },
  });
  const store = topicIdempotencyStore(flaky, { topics: ["payments"], keyOf: recordKey });
  await assert.rejects(store.restore(), BrokerUnavailableError);
  await store.restore();
  assert.equal(calls, 2);
  assert.equal(await store.get("o-1"), "output");
  await store.close();
  await producer.close();
  await transport.close();
});

/** A store that counts restores. */
function countingStore(): IdempotencyStore & { restores: number } {
  const outcomes = new Map<string, KnownOutcome>();
  const store = {
    restores: 0,
    restore(): Promise<void> {
      store.restores++;
      return Promise.resolve();
    },
    get: (key: string) => Promise.resolve(outcomes.get(key)),
    set(key: string, outcome: KnownOutcome): Promise<void> {
      outcomes.set(key, outcome);
      return Promise.resolve();
    },
  };
  return store;
}

Deno.test("restoringOnAssignment() restores before the first get after each assignment change", async () => {
  const inner = countingStore();
  let assignment: Assignment | undefined = undefined;
  const store = restoringOnAssignment(inner, () => assignment);
  // Unknown assignment: every get restores (cheap once caught up).
  await store.get("a");
  assert.equal(inner.restores, 1);
  assignment = { partitions: { orders: [1, 0] } };
  await store.get("a");
  await store.get("b");
  assert.equal(inner.restores, 2);
  // The same partitions in another order are the same assignment.
  assignment = { partitions: { orders: [0, 1] } };
  await store.get("a");
  assert.equal(inner.restores, 2);
  assignment = { partitions: { orders: [0] } };
  await Promise.all([store.get("a"), store.get("b"), store.get("c")]);
  assert.equal(inner.restores, 3);
  await store.set("a", "output");
  assert.equal(await store.get("a"), "output");
  assert.equal(inner.restores, 3);
});

Deno.test("restoringOnAssignment() with a topic store skips keys another member wrote", async () => {
  const { transport, producer } = await setup();
  const store = topicIdempotencyStore(transport, { topics: ["payments"], keyOf: recordKey });
  let partitions: number[] = [0];
  const wrapped = restoringOnAssignment(store, () => ({ partitions: { orders: partitions } }));
  assert.equal(await wrapped.get("o-1"), undefined);
  // Another member pays o-1, then a rebalance hands its partition over.
  await producer.send([{ topic: "payments", key: "o-1", value: "{}" }]);
  partitions = [0, 1];
  assert.equal(await wrapped.get("o-1"), "output");
  await store.close();
  await producer.close();
  await transport.close();
});
