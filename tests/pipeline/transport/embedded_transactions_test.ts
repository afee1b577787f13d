/**
 * Transactions of the embedded transport, beyond the shared contract: recovery after a failed
 * transaction, closing and fencing abort what is open (readers are not held at it), and
 * `records()` under both isolation levels.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  BrokerUnavailableError,
  PipelineError,
  ProducerFencedError,
} from "../../../pipeline/errors.ts";
import {
  createEmbeddedTransport,
  type EmbeddedTransport,
} from "../../../pipeline/transport/embedded/mod.ts";
import type { ConsumedRecord } from "../../../pipeline/transport/transport.ts";

const decoder = new TextDecoder();

function values(records: readonly ConsumedRecord[]): (string | null)[] {
  return records.map((record) => record.value === null ? null : decoder.decode(record.value));
}

async function withTransport(body: (transport: EmbeddedTransport) => Promise<void>) {
  const transport = createEmbeddedTransport({ onError: () => {} });
  try {
    await transport.ensureTopics([
      { name: "out", partitions: 1 },
      { name: "in", partitions: 2 },
    ]);
    await body(transport);
  } finally {
    await transport.close();
  }
}

Deno.test("embedded transaction: a failed send aborts it and the producer begins again", async () => {
  await withTransport(async (transport) => {
    const producer = await transport.transactionalProducer({ transactionalId: "t" });
    const failing = await producer.begin();
    await failing.send([{ topic: "out", key: "k", value: "before-failure" }]);
    await failing.sendOffsets("g", [{ topic: "in", partition: 1, offset: 5 }]);
    transport.failNextSends(1);
    await assert.rejects(
      failing.send([{ topic: "out", key: "k", value: "failed" }]),
      BrokerUnavailableError,
    );
    await assert.rejects(
      failing.send([{ topic: "out", key: "k", value: "after-failure" }]),
      (error: unknown) => error instanceof PipelineError && /is failed/.test(error.message),
      "a failed transaction takes no more records",
    );
    await assert.rejects(
      failing.commit(),
      (error: unknown) =>
        error instanceof PipelineError && !(error instanceof ProducerFencedError) &&
        error.cause instanceof BrokerUnavailableError,
      "commit rejects with the failure as cause",
    );
    assert.deepEqual(values(transport.records("out")), [], "nothing of it is visible");
    assert.deepEqual(
      (await transport.committedOffsets("g", "in")).map((p) => p.offset),
      [0, 0],
    );

    const next = await producer.begin();
    await next.send([{ topic: "out", key: "k", value: "next" }]);
    await next.sendOffsets("g", [{ topic: "in", partition: 1, offset: 6 }]);
    await next.commit();
    assert.deepEqual(values(transport.records("out")), ["next"]);
    assert.deepEqual(
      (await transport.committedOffsets("g", "in")).map((p) => p.offset),
      [0, 6],
    );
    assert.deepEqual(
      values(transport.records("out", "read_uncommitted")),
      ["before-failure", "next"],
      "the aborted record keeps its offset for read_uncommitted readers",
    );
    assert.deepEqual(transport.records("out").map((r) => r.offset), [2]);
    assert.deepEqual((await transport.endOffsets("out")).end.map((p) => p.offset), [4]);
    await producer.close();
  });
});

Deno.test("embedded transaction: closing or fencing a producer aborts its open transaction", async () => {
  await withTransport(async (transport) => {
    const plain = await transport.producer();
    const closing = await transport.transactionalProducer({ transactionalId: "closing" });
    const open = await closing.begin();
    await open.send([{ topic: "out", key: "k", value: "left-open" }]);
    await plain.send([{ topic: "out", key: "k", value: "plain-1" }]);
    assert.deepEqual(values(transport.records("out")), [], "held at the open transaction");
    await closing.close();
    assert.deepEqual(values(transport.records("out")), ["plain-1"]);
    await assert.rejects(closing.begin(), /producer is closed/);

    const zombie = await transport.transactionalProducer({ transactionalId: "fenced" });
    const stale = await zombie.begin();
    await stale.send([{ topic: "out", key: "k", value: "zombie" }]);
    await plain.send([{ topic: "out", key: "k", value: "plain-2" }]);
    assert.deepEqual(values(transport.records("out")), ["plain-1"]);
    const owner = await transport.transactionalProducer({ transactionalId: "fenced" });
    assert.deepEqual(
      values(transport.records("out")),
      ["plain-1", "plain-2"],
      "the new owner's arrival aborted the zombie's transaction",
    );
    await assert.rejects(stale.sendOffsets("g", []), ProducerFencedError);
    await stale.abort();
    await zombie.close();
    await owner.close();
    await plain.close();
  });
});

Deno.test("embedded transaction: a consumer waits at an open transaction, read_uncommitted does not", async () => {
  await withTransport(async (transport) => {
    const producer = await transport.transactionalProducer({ transactionalId: "t" });
    const transaction = await producer.begin();
    await transaction.send([{ topic: "out", key: "k", value: "in-transaction" }]);
    const committed: ConsumedRecord[] = [];
    const uncommitted: ConsumedRecord[] = [];
    const a = await transport.consumer({ groupId: "a", topics: ["out"] });
    const b = await transport.consumer({
      groupId: "b",
      topics: ["out"],
      isolation: "read_uncommitted",
    });
    await a.run((record) => Promise.resolve(void committed.push(record)));
    await b.run((record) => Promise.resolve(void uncommitted.push(record)));
    const deadline = Date.now() + 5_000;
    while (uncommitted.length < 1 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.deepEqual(values(uncommitted), ["in-transaction"]);
    assert.deepEqual(committed, []);
    await transaction.commit();
    while (committed.length < 1 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.deepEqual(values(committed), ["in-transaction"]);
    await a.close();
    await b.close();
    await producer.close();
  });
});

Deno.test("embedded transaction: options are validated", async () => {
  await withTransport(async (transport) => {
    await assert.rejects(
      transport.transactionalProducer({ transactionalId: "" }),
      (error: unknown) => error instanceof PipelineError && error.field === "transactionalId",
    );
    await assert.rejects(
      transport.consumer({
        groupId: "g",
        topics: ["out"],
        // @ts-expect-error: an isolation level that does not exist
        isolation: "read_maybe",
      }),
      (error: unknown) => error instanceof PipelineError && error.field === "isolation",
    );
    const producer = await transport.transactionalProducer({ transactionalId: "t" });
    const transaction = await producer.begin();
    await assert.rejects(
      transaction.sendOffsets("g", [{ topic: "in", partition: 2, offset: 1 }]),
      (error: unknown) => error instanceof PipelineError && error.field === "partition",
    );
    await producer.close();
  });
});
