import assert from "node:assert/strict";
import { batchingProducer } from "../../pipeline/batching_producer.ts";
import { ConfigError, PipelineError } from "../../pipeline/errors.ts";
import { FakeClock } from "../../pipeline/testing/fake_clock.ts";
import type {
  DeliveryReport,
  OutgoingRecord,
  Producer,
} from "../../pipeline/transport/transport.ts";

/** One underlying `send` call, settled by the test. */
interface Call {
  readonly records: readonly OutgoingRecord[];
  resolve(): void;
  reject(error: unknown): void;
}

/** A producer whose sends wait for the test; offsets count up per topic. */
function fakeProducer(): Producer & { readonly calls: Call[]; closed: boolean } {
  const calls: Call[] = [];
  const offsets = new Map<string, number>();
  const fake = {
    calls,
    closed: false,
    send(records: readonly OutgoingRecord[]): Promise<DeliveryReport[]> {
      return new Promise((resolve, reject) => {
        calls.push({
          records,
          resolve() {
            resolve(records.map((r) => {
              const offset = offsets.get(r.topic) ?? 0;
              offsets.set(r.topic, offset + 1);
              return { topic: r.topic, partition: 0, offset };
            }));
          },
          reject,
        });
      });
    },
    close(): Promise<void> {
      fake.closed = true;
      return Promise.resolve();
    },
  };
  return fake;
}

function record(i: number): OutgoingRecord {
  return { topic: "out", key: `k${i}`, value: `v${i}` };
}

function values(records: readonly OutgoingRecord[]): unknown[] {
  return records.map((r) => r.value);
}

/** Lets promise callbacks run; the batching producer reacts to settled sends in callbacks. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

Deno.test("batchingProducer() merges calls into one send after lingerMs, in call order", async () => {
  const inner = fakeProducer();
  const clock = new FakeClock();
  const producer = batchingProducer(inner, { lingerMs: 2, clock });
  const a = producer.send([record(1)]);
  const b = producer.send([record(2), record(3)]);
  await settle();
  assert.equal(inner.calls.length, 0, "nothing sent before the linger passed");
  clock.advance(2);
  await settle();
  assert.equal(inner.calls.length, 1);
  assert.deepEqual(values(inner.calls[0].records), ["v1", "v2", "v3"]);
  inner.calls[0].resolve();
  assert.deepEqual(await a, [{ topic: "out", partition: 0, offset: 0 }]);
  assert.deepEqual((await b).map((r) => r.offset), [1, 2]);
  await producer.close();
});

Deno.test("batchingProducer() sends at once when maxBatchRecords are queued", async () => {
  const inner = fakeProducer();
  const clock = new FakeClock();
  const producer = batchingProducer(inner, { maxBatchRecords: 3, lingerMs: 1000, clock });
  const sends = [1, 2, 3, 4].map((i) => producer.send([record(i)]));
  await settle();
  assert.equal(inner.calls.length, 1, "a full batch does not wait for the linger");
  assert.deepEqual(values(inner.calls[0].records), ["v1", "v2", "v3"]);
  inner.calls[0].resolve();
  await settle();
  assert.equal(inner.calls.length, 1, "the fourth record waits for its linger");
  clock.advance(1000);
  await settle();
  assert.equal(inner.calls.length, 2);
  assert.deepEqual(values(inner.calls[1].records), ["v4"]);
  inner.calls[1].resolve();
  assert.deepEqual((await Promise.all(sends)).map((r) => r[0].offset), [0, 1, 2, 3]);
  await producer.close();
});

Deno.test("batchingProducer() keeps one flush in flight and sends the next when it settles", async () => {
  const inner = fakeProducer();
  const clock = new FakeClock();
  const producer = batchingProducer(inner, { maxBatchRecords: 2, lingerMs: 5, clock });
  const first = [producer.send([record(1)]), producer.send([record(2)])];
  await settle();
  assert.equal(inner.calls.length, 1);
  const second = [producer.send([record(3)]), producer.send([record(4)])];
  const third = producer.send([record(5)]);
  clock.advance(5);
  await settle();
  assert.equal(inner.calls.length, 1, "no second flush while the first is in flight");
  inner.calls[0].resolve();
  await settle();
  assert.equal(inner.calls.length, 2);
  assert.deepEqual(values(inner.calls[1].records), ["v3", "v4"]);
  inner.calls[1].resolve();
  await settle();
  assert.equal(inner.calls.length, 3, "the rest was due already: sent without a new linger");
  assert.deepEqual(values(inner.calls[2].records), ["v5"]);
  inner.calls[2].resolve();
  await Promise.all([...first, ...second, third]);
  await producer.close();
});

Deno.test("batchingProducer() sends a call larger than maxBatchRecords whole", async () => {
  const inner = fakeProducer();
  const producer = batchingProducer(inner, { maxBatchRecords: 2, clock: new FakeClock() });
  const big = producer.send([record(1), record(2), record(3)]);
  await settle();
  assert.equal(inner.calls.length, 1);
  assert.equal(inner.calls[0].records.length, 3);
  inner.calls[0].resolve();
  assert.equal((await big).length, 3);
  await producer.close();
});

Deno.test("batchingProducer() rejects every call of a failed flush, and later calls go on", async () => {
  const inner = fakeProducer();
  const clock = new FakeClock();
  const producer = batchingProducer(inner, { lingerMs: 1, clock });
  const a = producer.send([record(1)]);
  const b = producer.send([record(2)]);
  clock.advance(1);
  await settle();
  const failure = new Error("Injected failure: broker gone");
  inner.calls[0].reject(failure);
  await assert.rejects(a, (error) => error === failure);
  await assert.rejects(b, (error) => error === failure);
  const c = producer.send([record(3)]);
  clock.advance(1);
  await settle();
  assert.equal(inner.calls.length, 2);
  inner.calls[1].resolve();
  assert.equal((await c).length, 1);
  await producer.close();
});

Deno.test("batchingProducer() close() flushes without waiting for the linger, then closes", async () => {
  const inner = fakeProducer();
  const producer = batchingProducer(inner, { lingerMs: 60_000, clock: new FakeClock() });
  const a = producer.send([record(1)]);
  const closed = producer.close();
  await settle();
  assert.equal(inner.calls.length, 1, "queued records are sent at once on close");
  assert.equal(inner.closed, false, "the wrapped producer stays open until the flush settled");
  inner.calls[0].resolve();
  await closed;
  assert.equal((await a).length, 1);
  assert.equal(inner.closed, true);
  await assert.rejects(producer.send([record(2)]), PipelineError);
});

Deno.test("batchingProducer() with closeProducer false leaves the wrapped producer open", async () => {
  const inner = fakeProducer();
  const producer = batchingProducer(inner, { closeProducer: false, clock: new FakeClock() });
  const a = producer.send([record(1)]);
  const flushed = producer.flush();
  await settle();
  inner.calls[0].resolve();
  await flushed;
  await a;
  await producer.close();
  assert.equal(inner.closed, false);
  assert.deepEqual(await producer.send([]).catch((error) => error instanceof PipelineError), true);
});

Deno.test("batchingProducer() with the real clock flushes after its linger", async () => {
  const inner = fakeProducer();
  const producer = batchingProducer(inner, { lingerMs: 1 });
  const a = producer.send([record(1)]);
  const deadline = Date.now() + 5_000;
  while (inner.calls.length === 0) {
    if (Date.now() > deadline) throw new Error("Timed out: no flush after the linger");
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  inner.calls[0].resolve();
  assert.equal((await a).length, 1);
  await producer.close();
});

Deno.test("batchingProducer() validates its options before any work", () => {
  const inner = fakeProducer();
  for (const maxBatchRecords of [0, -1, 1.5, Number.NaN]) {
    assert.throws(
      () => batchingProducer(inner, { maxBatchRecords }),
      (error) => error instanceof ConfigError && error.field === "maxBatchRecords",
    );
  }
  for (const lingerMs of [-1, Number.POSITIVE_INFINITY, Number.NaN]) {
    assert.throws(
      () => batchingProducer(inner, { lingerMs }),
      (error) => error instanceof ConfigError && error.field === "lingerMs",
    );
  }
  assert.equal(inner.calls.length, 0);
});

Deno.test("batchingProducer() after a flush failed for good, sends its calls one by one so only the call at fault fails", async () => {
  const inner = fakeProducer();
  const clock = new FakeClock();
  const producer = batchingProducer(inner, { lingerMs: 1, clock });
  const tooLarge: OutgoingRecord = { topic: "orders.dlq", key: "k", value: "x".repeat(100) };
  const a = producer.send([tooLarge]);
  const b = producer.send([record(2)]);
  const c = producer.send([record(3)]);
  clock.advance(1);
  await settle();
  assert.equal(inner.calls.length, 1);
  const refused = new PipelineError("The request included a message larger than the max");
  inner.calls[0].reject(refused);
  // Each call again, alone and in order: the one at fault fails, the others are written.
  for (let i = 1; i <= 3; i++) {
    for (let n = 0; n < 20 && inner.calls.length <= i; n++) await settle();
    assert.equal(inner.calls.length, i + 1, `call ${i} sent alone`);
    if (i === 1) {
      assert.deepEqual(inner.calls[i].records, [tooLarge]);
      inner.calls[i].reject(refused);
    } else {
      assert.equal(inner.calls[i].records.length, 1);
      inner.calls[i].resolve();
    }
  }
  await assert.rejects(a, (error) => error === refused);
  assert.equal((await b).length, 1);
  assert.equal((await c).length, 1);
  await producer.close();
});
