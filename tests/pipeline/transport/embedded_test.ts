import assert from "node:assert/strict";
import { BrokerUnavailableError, PipelineError } from "../../../pipeline/errors.ts";
import {
  createEmbeddedTransport,
  type EmbeddedTransport,
  type HandlerErrorEvent,
} from "../../../pipeline/transport/embedded/mod.ts";
import type { ConsumedRecord, Consumer } from "../../../pipeline/transport/transport.ts";
import { transportContract } from "./contract.ts";

transportContract("embedded", () => {
  // Handler failures are expected in the contract; the embedded-only tests check reporting.
  const transport = createEmbeddedTransport({ retryBackoffMs: 5, onError: () => {} });
  return Promise.resolve({ transport });
}, { redeliveryBackoffMs: 5 });

const decoder = new TextDecoder();

async function waitUntil(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function waitForAbort(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true })
  );
}

function owned(consumer: Consumer, topic: string): readonly number[] {
  return consumer.assignment().partitions[topic] ?? [];
}

async function withTransport(
  body: (transport: EmbeddedTransport, errors: HandlerErrorEvent[]) => Promise<void>,
): Promise<void> {
  const errors: HandlerErrorEvent[] = [];
  const transport = createEmbeddedTransport({
    retryBackoffMs: 1,
    onError: (event) => errors.push(event),
  });
  try {
    await body(transport, errors);
  } finally {
    await transport.close();
  }
}

Deno.test("createEmbeddedTransport() describes itself as embedded", () => {
  const transport = createEmbeddedTransport();
  assert.equal(transport.kind, "embedded");
  assert.equal(transport.target, "embedded (in-process)");
});

Deno.test("embedded send() to an unknown topic rejects naming the topic", async () => {
  await withTransport(async (transport) => {
    await transport.ensureTopics([{ name: "known", partitions: 1 }]);
    const producer = await transport.producer();
    await assert.rejects(
      producer.send([
        { topic: "known", key: null, value: "a" },
        { topic: "missing", key: null, value: "b" },
      ]),
      (error: unknown) =>
        error instanceof PipelineError && error.topic === "missing" &&
        error.message ===
          'Cannot produce to topic "missing" as it does not exist: create it with ensureTopics() first',
    );
    assert.deepEqual(transport.records("known"), [], "nothing of the batch was written");
    await assert.rejects(transport.endOffsets("missing"), PipelineError);
    await assert.rejects(transport.committedOffsets("g", "missing"), PipelineError);
    await assert.rejects(transport.consumer({ groupId: "g", topics: ["missing"] }), PipelineError);
    await producer.close();
  });
});

Deno.test("embedded failNextSends() fails exactly the next sends and writes nothing", async () => {
  await withTransport(async (transport) => {
    await transport.ensureTopics([{ name: "t", partitions: 2 }]);
    const producer = await transport.producer();
    const custom = new Error("Custom failure");
    transport.failNextSends(1);
    transport.failNextSends(1, custom);
    await assert.rejects(
      producer.send([{ topic: "t", key: "k", value: "1" }]),
      BrokerUnavailableError,
    );
    await assert.rejects(
      producer.send([{ topic: "t", key: "k", value: "2" }]),
      (e) => e === custom,
    );
    assert.equal(transport.records("t").length, 0);
    const [report] = await producer.send([{ topic: "t", key: "k", value: "3" }]);
    assert.equal(report.offset, 0);
    assert.deepEqual(transport.records("t").map((r) => decoder.decode(r.value!)), ["3"]);
    assert.throws(() => transport.failNextSends(-1), PipelineError);
    await producer.close();
  });
});

Deno.test("embedded records are stamped by the injected clock", async () => {
  let clock = 1_700_000_000_000;
  const transport = createEmbeddedTransport({ now: () => clock });
  await transport.ensureTopics([{ name: "t", partitions: 1 }]);
  const producer = await transport.producer();
  await producer.send([{ topic: "t", key: null, value: "a" }]);
  clock += 1_500;
  await producer.send([{ topic: "t", key: null, value: "b" }]);
  assert.deepEqual(transport.records("t").map((r) => r.timestamp), [
    1_700_000_000_000,
    1_700_000_001_500,
  ]);
  await producer.close();
  await transport.close();
});

Deno.test("embedded records keep their own copy of the bytes", async () => {
  await withTransport(async (transport) => {
    await transport.ensureTopics([{ name: "t", partitions: 1 }]);
    const producer = await transport.producer();
    const value = new Uint8Array([1, 2, 3]);
    const headers = { h: "1" };
    await producer.send([{ topic: "t", key: value, value, headers }]);
    value[0] = 99;
    headers.h = "changed";
    const [read] = transport.records("t");
    assert.deepEqual(Array.from(read.value!), [1, 2, 3]);
    assert.deepEqual(read.headers, { h: "1" });
    read.value![1] = 42;
    assert.deepEqual(Array.from(transport.records("t")[0].value!), [1, 2, 3]);
    await producer.close();
  });
});

Deno.test("embedded records() lists a topic partition by partition in offset order", async () => {
  await withTransport(async (transport) => {
    await transport.ensureTopics([{ name: "t", partitions: 3 }]);
    const producer = await transport.producer();
    await producer.send(
      ["a", "b", "c", "d", "e"].map((value) => ({ topic: "t", key: null, value })),
    );
    const records = transport.records("t");
    assert.deepEqual(records.map((r) => [r.partition, r.offset, decoder.decode(r.value!)]), [
      [0, 0, "a"],
      [0, 1, "d"],
      [1, 0, "b"],
      [1, 1, "e"],
      [2, 0, "c"],
    ]);
    await producer.close();
  });
});

Deno.test("embedded handler rejections are reported with their record and attempt", async () => {
  await withTransport(async (transport, errors) => {
    await transport.ensureTopics([{ name: "t", partitions: 1 }]);
    const producer = await transport.producer();
    await producer.send([{ topic: "t", key: null, value: "x" }]);
    const failure = new Error("Handler failed");
    let calls = 0;
    const consumer = await transport.consumer({ groupId: "g", topics: ["t"] });
    await consumer.run(() => {
      calls++;
      return calls <= 2 ? Promise.reject(failure) : Promise.resolve();
    });
    await waitUntil("third delivery", () => calls >= 3);
    await consumer.close();
    assert.deepEqual(
      errors.map((e) => ({ ...e })),
      [1, 2].map((attempt) => ({
        error: failure,
        groupId: "g",
        topic: "t",
        partition: 0,
        offset: 0,
        attempt,
        retryInMs: 1,
      })),
    );
    assert.deepEqual(await transport.committedOffsets("g", "t"), [{ partition: 0, offset: 1 }]);
    await producer.close();
  });
});

Deno.test("embedded groups assign ranges of partitions in join order", async () => {
  await withTransport(async (transport) => {
    await transport.ensureTopics([{ name: "t", partitions: 5 }, { name: "u", partitions: 1 }]);
    const a = await transport.consumer({ groupId: "g", topics: ["t", "u"] });
    const b = await transport.consumer({ groupId: "g", topics: ["t"] });
    await a.run(() => Promise.resolve());
    assert.deepEqual(a.assignment().partitions, { t: [0, 1, 2, 3, 4], u: [0] });
    assert.deepEqual(b.assignment().partitions, { t: [] }, "not running yet");
    await b.run(() => Promise.resolve());
    assert.deepEqual(a.assignment().partitions, { t: [0, 1, 2], u: [0] });
    assert.deepEqual(b.assignment().partitions, { t: [3, 4] });
    await a.close();
    assert.deepEqual(b.assignment().partitions, { t: [0, 1, 2, 3, 4] });
    assert.deepEqual(a.assignment().partitions, { t: [], u: [] });
    await b.close();
  });
});

Deno.test("embedded rebalance aborts revoked in-flight records and hands them over", async () => {
  await withTransport(async (transport, errors) => {
    await transport.ensureTopics([{ name: "t", partitions: 2 }]);
    const producer = await transport.producer();
    await producer.send([0, 1].map((i) => ({ topic: "t", key: null, value: `${i}` })));
    const seenByA: ConsumedRecord[] = [];
    let abortedInA = false;
    const a = await transport.consumer({ groupId: "g", topics: ["t"], partitionConcurrency: 2 });
    await a.run(async (record, context) => {
      seenByA.push(record);
      if (record.partition === 1) {
        await waitForAbort(context.signal);
        abortedInA = true;
        throw new Error("Gave up as the partition was revoked");
      }
    });
    await waitUntil("partition 1 in flight in A", () => seenByA.some((r) => r.partition === 1));
    const seenByB: ConsumedRecord[] = [];
    const b = await transport.consumer({ groupId: "g", topics: ["t"] });
    await b.run((record) => {
      seenByB.push(record);
      return Promise.resolve();
    });
    assert.ok(abortedInA, "the join waited for the revoked record to stop");
    assert.deepEqual(owned(a, "t"), [0]);
    assert.deepEqual(owned(b, "t"), [1]);
    await waitUntil("B reads partition 1", () => seenByB.length >= 1);
    assert.deepEqual(seenByB.map((r) => [r.partition, r.offset]), [[1, 0]]);
    assert.deepEqual(errors, [], "an abandoned record is not a handler error");
    await a.close();
    await b.close();
    await producer.close();
  });
});

Deno.test("embedded partitionConcurrency bounds the records in flight per member", async () => {
  await withTransport(async (transport) => {
    await transport.ensureTopics([{ name: "t", partitions: 4 }]);
    const producer = await transport.producer();
    await producer.send(
      Array.from({ length: 40 }, (_, i) => ({ topic: "t", key: null, value: `${i}` })),
    );
    for (const partitionConcurrency of [1, 2, 4]) {
      let inFlight = 0;
      let peak = 0;
      let done = 0;
      const consumer = await transport.consumer({
        groupId: `g${partitionConcurrency}`,
        topics: ["t"],
        partitionConcurrency,
      });
      await consumer.run(async () => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        // Several turns of the event loop, so other partitions get a chance to start.
        for (let i = 0; i < 3; i++) await new Promise((resolve) => setTimeout(resolve, 0));
        inFlight--;
        done++;
      });
      await waitUntil("40 records handled", () => done >= 40);
      await consumer.close();
      assert.equal(peak, partitionConcurrency);
    }
    await producer.close();
  });
});

Deno.test("embedded consumer waits for records produced after it started", async () => {
  await withTransport(async (transport) => {
    await transport.ensureTopics([{ name: "t", partitions: 1 }]);
    const seen: number[] = [];
    const consumer = await transport.consumer({ groupId: "g", topics: ["t"] });
    await consumer.run((record) => {
      seen.push(record.offset);
      return Promise.resolve();
    });
    const producer = await transport.producer();
    for (let i = 0; i < 3; i++) {
      await producer.send([{ topic: "t", key: null, value: `${i}` }]);
      await waitUntil(`record ${i}`, () => seen.length === i + 1);
    }
    assert.deepEqual(seen, [0, 1, 2]);
    await consumer.close();
    await producer.close();
  });
});

Deno.test("embedded close() of the transport closes its consumers and producers", async () => {
  const transport = createEmbeddedTransport();
  await transport.ensureTopics([{ name: "t", partitions: 1 }]);
  const producer = await transport.producer();
  await producer.send([{ topic: "t", key: null, value: "a" }]);
  const consumer = await transport.consumer({ groupId: "g", topics: ["t"] });
  let handled = 0;
  await consumer.run(() => {
    handled++;
    return Promise.resolve();
  });
  await waitUntil("record handled", () => handled === 1);
  await transport.close();
  assert.deepEqual(consumer.assignment().partitions, { t: [] });
  await assert.rejects(producer.send([{ topic: "t", key: null, value: "b" }]), PipelineError);
  await assert.rejects(transport.producer(), /embedded transport is closed/);
  await assert.rejects(transport.ensureTopics([]), PipelineError);
  assert.deepEqual(await transport.committedOffsets("g", "t"), [{ partition: 0, offset: 1 }]);
  await transport.close();
});

Deno.test("embedded options and specs are validated before any work", async () => {
  assert.throws(() => createEmbeddedTransport({ retryBackoffMs: -1 }), /'retryBackoffMs'/);
  await withTransport(async (transport) => {
    await assert.rejects(
      transport.ensureTopics([{ name: "t", partitions: 0 }]),
      (e: unknown) => e instanceof PipelineError && e.field === "partitions",
    );
    await assert.rejects(
      transport.ensureTopics([{ name: "bad name", partitions: 1 }]),
      (e: unknown) => e instanceof PipelineError && e.field === "name",
    );
    await transport.ensureTopics([{ name: "t", partitions: 1 }]);
    for (
      const [options, field] of [
        [{ groupId: "", topics: ["t"] }, "groupId"],
        [{ groupId: "g", topics: [] }, "topics"],
        [{ groupId: "g", topics: ["t"], partitionConcurrency: 0 }, "partitionConcurrency"],
      ] as const
    ) {
      await assert.rejects(
        transport.consumer(options),
        (e: unknown) => e instanceof PipelineError && e.field === field,
      );
    }
    const consumer = await transport.consumer({ groupId: "g", topics: ["t"] });
    await consumer.run(() => Promise.resolve());
    await assert.rejects(consumer.run(() => Promise.resolve()), /a consumer runs once/);
    await consumer.close();
  });
});
