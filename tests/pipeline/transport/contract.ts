/**
 * The transport contract test: one set of behaviours every {@linkcode Transport} must show,
 * registered as Deno tests for each implementation (`embedded_test.ts`, `kafka_test.ts`).
 *
 * Every test uses its own topics and groups (names unique to this run), so the suite can run
 * against a shared real broker; waits poll with a deadline, never sleep.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ProducerFencedError } from "../../../pipeline/errors.ts";
import { partitionForKey } from "../../../pipeline/transport/murmur2.ts";
import type {
  ConsumedRecord,
  Consumer,
  ConsumerOptions,
  ConsumerStatus,
  Producer,
  RecordAck,
  RecordContext,
  TransactionalProducer,
  Transport,
} from "../../../pipeline/transport/transport.ts";

/** What `open` returns: a transport, and how to release what was started for it. */
export interface OpenedTransport {
  /** The transport under test; the contract closes it at the end of each test. */
  readonly transport: Transport;
  /** Called after the transport is closed. */
  readonly cleanup?: () => Promise<void>;
}

/** Options for {@linkcode transportContract}. */
export interface TransportContractOptions {
  /**
   * Registers every test as ignored (e.g. no broker is available).
   * @default false
   */
  readonly ignore?: boolean;
  /**
   * How long one wait (an assignment, records arriving, a commit) may take, in milliseconds.
   * Real brokers need seconds to rebalance a group.
   * @default 30000
   */
  readonly timeoutMs?: number;
  /**
   * Whether Deno's op and resource sanitizers run; a client that keeps its own timers or
   * sockets past `close()` may need them off.
   * @default true
   */
  readonly sanitize?: boolean;
  /**
   * The backoff the transport under test is configured to wait before delivering a record
   * again whose handler or `durable` rejected, in milliseconds.
   * @default 100
   */
  readonly redeliveryBackoffMs?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// Unique to this process run, so topics and groups never collide on a shared broker.
const runId = `${Date.now().toString(36)}${Deno.pid.toString(36)}`;
let nameCounter = 0;

function uniqueName(prefix: string): string {
  nameCounter++;
  return `contract-${prefix}-${runId}-${nameCounter}`;
}

/** Polls `condition` every 10 ms until it holds, failing after `timeoutMs`. */
async function waitUntil(
  what: string,
  timeoutMs: number,
  condition: () => boolean | Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function waitForAbort(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true })
  );
}

function text(bytes: Uint8Array | null): string | null {
  return bytes === null ? null : decoder.decode(bytes);
}

function bytesOf(bytes: Uint8Array | null): number[] | null {
  return bytes === null ? null : Array.from(bytes);
}

function id(record: ConsumedRecord): string {
  return `${record.partition}:${record.offset}`;
}

function partitionsOf(consumer: Consumer, topic: string): number[] {
  return [...(consumer.assignment().partitions[topic] ?? [])].sort((a, b) => a - b);
}

/** A promise and the functions that settle it. */
interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** One deferred `durable` per delivery, in delivery order; `settleAll` resolves the rest. */
class Acks {
  readonly delivered: Deferred[] = [];

  ack(): Promise<RecordAck> {
    const next = deferred();
    this.delivered.push(next);
    return Promise.resolve({ durable: next.promise });
  }

  settleAll(): void {
    for (const d of this.delivered) d.resolve();
  }
}

function range(count: number): number[] {
  return Array.from({ length: count }, (_, i) => i);
}

/** A consumer that records what it was given. */
interface Reader {
  readonly consumer: Consumer;
  readonly seen: ConsumedRecord[];
}

/** What each test body gets: the transport, and helpers whose products are closed for it. */
interface Scope {
  readonly transport: Transport;
  readonly timeoutMs: number;
  topic(partitions: number): Promise<string>;
  producer(): Promise<Producer>;
  /** Opens a transactional producer with that id (closed at the end of the test). */
  transactionalProducer(transactionalId: string): Promise<TransactionalProducer>;
  consumer(options: ConsumerOptions): Promise<Consumer>;
  /** Opens a member and runs it, recording every record; `handle` runs after recording. */
  reader(
    options: ConsumerOptions,
    handle?: (record: ConsumedRecord, context: RecordContext) => Promise<void | RecordAck>,
  ): Promise<Reader>;
  waitUntil(what: string, condition: () => boolean | Promise<boolean>): Promise<void>;
}

/**
 * Registers the transport contract tests, named `"<name> transport: <behaviour>"`. Each test
 * calls `open` for a fresh transport and closes it (and every producer and consumer it opened)
 * at its end.
 *
 * @example
 * ```ts
 * import { transportContract } from "./contract.ts";
 * import { createEmbeddedTransport } from "../../../pipeline/transport/embedded/mod.ts";
 * transportContract("embedded", () => Promise.resolve({ transport: createEmbeddedTransport() }));
 * ```
 */
export function transportContract(
  name: string,
  open: () => Promise<OpenedTransport>,
  options: TransportContractOptions = {},
): void {
  const { ignore = false, timeoutMs = 30_000, sanitize = true, redeliveryBackoffMs = 100 } =
    options;

  function contractTest(behaviour: string, body: (scope: Scope) => Promise<void>): void {
    Deno.test({
      name: `${name} transport: ${behaviour}`,
      ignore,
      sanitizeOps: sanitize,
      sanitizeResources: sanitize,
      fn: async () => {
        const { transport, cleanup } = await open();
        const closables: Array<{ close(): Promise<void> }> = [];
        const scope: Scope = {
          transport,
          timeoutMs,
          async topic(partitions) {
            const topic = uniqueName("topic");
            await transport.ensureTopics([{ name: topic, partitions, replicationFactor: 1 }]);
            return topic;
          },
          async producer() {
            const producer = await transport.producer();
            closables.push(producer);
            return producer;
          },
          async transactionalProducer(transactionalId) {
            const producer = await transport.transactionalProducer({ transactionalId });
            closables.push(producer);
            return producer;
          },
          async consumer(consumerOptions) {
            const consumer = await transport.consumer(consumerOptions);
            closables.push(consumer);
            return consumer;
          },
          async reader(consumerOptions, handle) {
            const consumer = await scope.consumer(consumerOptions);
            const seen: ConsumedRecord[] = [];
            await consumer.run((record, context) => {
              seen.push(record);
              return handle === undefined ? Promise.resolve() : handle(record, context);
            });
            return { consumer, seen };
          },
          waitUntil: (what, condition) => waitUntil(what, timeoutMs, condition),
        };
        try {
          await body(scope);
        } finally {
          // Closing twice is allowed by the contract, so tests may close members themselves.
          for (const closable of closables.reverse()) await closable.close();
          await transport.close();
          await cleanup?.();
        }
      },
    });
  }

  contractTest(
    "a consumer reports the partitions it was assigned (and at most that it is joining before)",
    async (s) => {
      // A member's readiness (health probes, `onMemberState`) is built on these reports.
      const topic = await s.topic(2);
      const statuses: ConsumerStatus[] = [];
      await s.reader({
        groupId: uniqueName("group"),
        topics: [topic],
        onStatus: (status) => statuses.push(status),
      });
      await s.waitUntil(
        "the member reports its assignment",
        () => statuses.some((status) => status.type === "assigned"),
      );
      const first = statuses.findIndex((status) => status.type === "assigned");
      assert.ok(
        statuses.slice(0, first).every((status) => status.type === "joining"),
        JSON.stringify(statuses),
      );
      const assigned = statuses[first];
      assert.deepEqual(assigned?.type === "assigned" && assigned.assignment.partitions, {
        [topic]: [0, 1],
      });
    },
  );

  contractTest(
    "ensureTopics racing another creation of the same topics resolves (processes start together)",
    async (s) => {
      const specs = Array.from({ length: 6 }, () => ({
        name: uniqueName("topic"),
        partitions: 2,
        replicationFactor: 1,
      }));
      // A second client, as a second process would be.
      const other = await open();
      try {
        await Promise.all([s.transport.ensureTopics(specs), other.transport.ensureTopics(specs)]);
      } finally {
        await other.transport.close();
        await other.cleanup?.();
      }
      for (const spec of specs) {
        assert.equal((await s.transport.endOffsets(spec.name)).end.length, 2, spec.name);
      }
    },
  );

  contractTest("ensureTopics creates missing topics and leaves existing ones", async (s) => {
    const first = uniqueName("topic");
    const second = uniqueName("topic");
    await s.transport.ensureTopics([{ name: first, partitions: 3, replicationFactor: 1 }]);
    await s.transport.ensureTopics([
      { name: first, partitions: 3, replicationFactor: 1 },
      { name: second, partitions: 2, replicationFactor: 1 },
    ]);
    await s.transport.ensureTopics([{ name: first, partitions: 5, replicationFactor: 1 }]);
    const firstOffsets = await s.transport.endOffsets(first);
    assert.equal(firstOffsets.topic, first);
    assert.deepEqual(firstOffsets.end.map((p) => ({ ...p })), [
      { partition: 0, offset: 0 },
      { partition: 1, offset: 0 },
      { partition: 2, offset: 0 },
    ]);
    assert.deepEqual(
      firstOffsets.start.map((p) => ({ ...p })),
      [0, 1, 2].map((partition) => ({ partition, offset: 0 })),
      "a fresh topic's log starts at offset 0",
    );
    assert.equal((await s.transport.endOffsets(second)).end.length, 2);
  });

  contractTest("keyed records land on Kafka's partition", async (s) => {
    const topic = await s.topic(4);
    const producer = await s.producer();
    const keys: Array<string | Uint8Array> = range(40).map((i) => `order-${i}`);
    keys.push("", "ключ", new Uint8Array([0, 255, 1, 254, 2]), new Uint8Array(37).fill(7));
    const reports = await producer.send(keys.map((key) => ({ topic, key, value: "v" })));
    assert.equal(reports.length, keys.length);
    reports.forEach((report, i) => {
      const key = keys[i];
      const bytes = typeof key === "string" ? encoder.encode(key) : key;
      assert.equal(report.topic, topic);
      assert.equal(report.partition, partitionForKey(bytes, 4), `key ${JSON.stringify(key)}`);
    });
    const again = await producer.send([{ topic, key: "order-7", value: "again" }]);
    assert.equal(again[0].partition, reports[7].partition);
  });

  contractTest("offsets start at 0 and grow by one per record in each partition", async (s) => {
    const topic = await s.topic(3);
    const producer = await s.producer();
    const reports = [];
    for (let batch = 0; batch < 3; batch++) {
      const records = range(10).map((i) => ({ topic, key: `key-${i}`, value: `${batch}-${i}` }));
      reports.push(...await producer.send(records));
    }
    const unkeyed = await producer.send(range(6).map((i) => ({ topic, key: null, value: `${i}` })));
    reports.push(...unkeyed);
    assert.equal(new Set(unkeyed.map((r) => r.partition)).size, 3, "unkeyed records rotate");
    const counts = [0, 0, 0];
    for (const report of reports) {
      assert.equal(
        report.offset,
        counts[report.partition],
        `offset in partition ${report.partition}`,
      );
      counts[report.partition]++;
    }
    const end = await s.transport.endOffsets(topic);
    assert.deepEqual(end.end.map((p) => p.offset), counts);
  });

  contractTest("headers, a null key and a null value round-trip", async (s) => {
    const topic = await s.topic(1);
    const producer = await s.producer();
    const binary = new Uint8Array(range(256));
    const before = Date.now();
    await producer.send([
      {
        topic,
        key: null,
        value: "unkeyed",
        headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", x: "é" },
      },
      { topic, key: "tombstone", value: null },
      { topic, key: binary, value: binary, headers: {} },
    ]);
    const reader = await s.reader({ groupId: uniqueName("group"), topics: [topic] });
    await s.waitUntil("three records read", () => reader.seen.length >= 3);
    const [first, second, third] = reader.seen;
    assert.equal(first.topic, topic);
    assert.equal(first.partition, 0);
    assert.deepEqual([first.offset, second.offset, third.offset], [0, 1, 2]);
    assert.equal(first.key, null);
    assert.equal(text(first.value), "unkeyed");
    assert.deepEqual({ ...first.headers }, {
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      x: "é",
    });
    assert.equal(text(second.key), "tombstone");
    assert.equal(second.value, null);
    assert.deepEqual({ ...second.headers }, {});
    assert.deepEqual(bytesOf(third.key), Array.from(binary));
    assert.deepEqual(bytesOf(third.value), Array.from(binary));
    for (const record of reader.seen) {
      assert.ok(Number.isFinite(record.timestamp) && record.timestamp >= before - 60_000);
    }
  });

  contractTest("two members split the partitions and read every record once", async (s) => {
    const topic = await s.topic(4);
    const groupId = uniqueName("group");
    const a = await s.reader({ groupId, topics: [topic] });
    const b = await s.reader({ groupId, topics: [topic] });
    await s.waitUntil("both members own partitions, together all four", () => {
      const owned = [...partitionsOf(a.consumer, topic), ...partitionsOf(b.consumer, topic)];
      return partitionsOf(a.consumer, topic).length > 0 &&
        partitionsOf(b.consumer, topic).length > 0 &&
        owned.length === 4 && new Set(owned).size === 4;
    });
    const producer = await s.producer();
    await producer.send(range(40).map((i) => ({ topic, key: `k${i}`, value: `${i}` })));
    await s.waitUntil("40 records read", () => a.seen.length + b.seen.length >= 40);
    const all = [...a.seen, ...b.seen].map(id);
    assert.equal(all.length, 40, "no record read twice");
    assert.equal(new Set(all).size, 40);
    for (const member of [a, b]) {
      const owned = partitionsOf(member.consumer, topic);
      for (const record of member.seen) assert.ok(owned.includes(record.partition));
      for (const partition of owned) {
        const offsets = member.seen.filter((r) => r.partition === partition).map((r) => r.offset);
        assert.deepEqual(offsets, range(offsets.length), `partition ${partition} in order`);
      }
    }
  });

  contractTest("a new member resumes at the offset the last one committed", async (s) => {
    const topic = await s.topic(1);
    const groupId = uniqueName("group");
    const producer = await s.producer();
    await producer.send(range(10).map((i) => ({ topic, key: "same", value: `${i}` })));
    const first = await s.reader({ groupId, topics: [topic] }, async (record, context) => {
      if (record.offset < 5) return;
      // Record 5 is still in flight when the member closes: it must not be committed.
      await waitForAbort(context.signal);
      throw new Error("Handler gave up on record 5 as its member is closing");
    });
    await s.waitUntil("record 5 in flight", () => first.seen.some((r) => r.offset === 5));
    await first.consumer.close();
    assert.deepEqual(first.seen.map((r) => r.offset), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(
      (await s.transport.committedOffsets(groupId, topic)).map((p) => ({ ...p })),
      [{ partition: 0, offset: 5 }],
    );
    const second = await s.reader({ groupId, topics: [topic] });
    await s.waitUntil("records 5 to 9 read again", () => second.seen.length >= 5);
    assert.deepEqual(second.seen.map((r) => r.offset), [5, 6, 7, 8, 9]);
    await second.consumer.close();
    assert.deepEqual(
      (await s.transport.committedOffsets(groupId, topic)).map((p) => p.offset),
      [10],
    );
  });

  contractTest("a record whose handler rejected is delivered again", async (s) => {
    const topic = await s.topic(1);
    const producer = await s.producer();
    await producer.send(range(3).map((i) => ({ topic, key: "same", value: `${i}` })));
    let failed = false;
    const reader = await s.reader({ groupId: uniqueName("group"), topics: [topic] }, (record) => {
      if (record.offset === 1 && !failed) {
        failed = true;
        return Promise.reject(new Error("Injected handler failure on offset 1"));
      }
      return Promise.resolve();
    });
    await s.waitUntil("record 2 read", () => reader.seen.some((r) => r.offset === 2));
    assert.deepEqual(reader.seen.map((r) => r.offset), [0, 1, 1, 2]);
    assert.equal(text(reader.seen[2].value), "1");
  });

  contractTest("a member leaving hands its partitions over and nothing is lost", async (s) => {
    const topic = await s.topic(4);
    const groupId = uniqueName("group");
    const a = await s.reader({ groupId, topics: [topic] });
    const b = await s.reader({ groupId, topics: [topic] });
    await s.waitUntil("both members own partitions", () => {
      const owned = [...partitionsOf(a.consumer, topic), ...partitionsOf(b.consumer, topic)];
      return partitionsOf(a.consumer, topic).length > 0 &&
        partitionsOf(b.consumer, topic).length > 0 && new Set(owned).size === 4;
    });
    const producer = await s.producer();
    await producer.send(range(20).map((i) => ({ topic, key: `k${i}`, value: `${i}` })));
    const seenIds = () => new Set([...a.seen, ...b.seen].map(id));
    await s.waitUntil("first 20 records read", () => seenIds().size >= 20);
    await b.consumer.close();
    await s.waitUntil(
      "the remaining member owns all four partitions",
      () => partitionsOf(a.consumer, topic).length === 4,
    );
    await producer.send(range(20).map((i) => ({ topic, key: `k${i}`, value: `${20 + i}` })));
    const end = await s.transport.endOffsets(topic);
    const expected = end.end.flatMap((p) => range(p.offset).map((o) => `${p.partition}:${o}`));
    assert.equal(expected.length, 40);
    await s.waitUntil("all 40 records read", () => seenIds().size >= 40);
    assert.deepEqual([...seenIds()].sort(), expected.sort());
  });

  contractTest(
    "committed offsets reach the end offsets once a group read everything",
    async (s) => {
      const topic = await s.topic(3);
      const groupId = uniqueName("group");
      assert.deepEqual(
        (await s.transport.committedOffsets(groupId, topic)).map((p) => ({ ...p })),
        [{ partition: 0, offset: 0 }, { partition: 1, offset: 0 }, { partition: 2, offset: 0 }],
      );
      const producer = await s.producer();
      await producer.send(range(15).map((i) => ({ topic, key: `k${i}`, value: `${i}` })));
      const reader = await s.reader({ groupId, topics: [topic], partitionConcurrency: 3 });
      await s.waitUntil("15 records read", () => reader.seen.length >= 15);
      const end = (await s.transport.endOffsets(topic)).end.map((p) => p.offset);
      assert.equal(end.reduce((sum, n) => sum + n, 0), 15);
      const committed = async () =>
        (await s.transport.committedOffsets(groupId, topic)).map((p) => p.offset);
      await s.waitUntil(
        "committed offsets equal end offsets",
        async () => JSON.stringify(await committed()) === JSON.stringify(end),
      );
      await reader.consumer.close();
      assert.deepEqual(await committed(), end);
    },
  );

  contractTest(
    "a pipelined record's offset is committed only once it and all before are durable",
    async (s) => {
      const topic = await s.topic(1);
      const groupId = uniqueName("group");
      const producer = await s.producer();
      await producer.send(range(4).map((i) => ({ topic, key: "same", value: `${i}` })));
      const acks = new Acks();
      try {
        // Records 0, 1 and 3 hand their outcome over; record 2 completes at once.
        const reader = await s.reader(
          { groupId, topics: [topic] },
          (record) => record.offset === 2 ? Promise.resolve() : acks.ack(),
        );
        await s.waitUntil(
          "all four records delivered while none is durable",
          () => reader.seen.length >= 4,
        );
        assert.deepEqual(
          reader.seen.map((r) => r.offset),
          [0, 1, 2, 3],
        );
        const committed = async () =>
          (await s.transport.committedOffsets(groupId, topic)).map((p) => p.offset)[0];
        assert.equal(await committed(), 0);
        // 0 and 3 durable, 1 not: only record 0 may be committed.
        acks.delivered[0].resolve();
        acks.delivered[2].resolve();
        await s.waitUntil("record 0 committed", async () => await committed() > 0);
        assert.equal(await committed(), 1, "not past record 1, whose outcome is still pending");
        acks.delivered[1].resolve();
        await s.waitUntil("every record committed", async () => await committed() === 4);
        assert.equal(reader.seen.length, 4, "nothing delivered twice");
      } finally {
        acks.settleAll();
      }
    },
  );

  contractTest("a rejected durable delivers the partition again from that record", async (s) => {
    const topic = await s.topic(1);
    const groupId = uniqueName("group");
    const producer = await s.producer();
    await producer.send(range(5).map((i) => ({ topic, key: "same", value: `${i}` })));
    const acks = new Acks();
    let failing: Deferred | undefined;
    try {
      const reader = await s.reader({ groupId, topics: [topic] }, (record) => {
        // The first delivery of record 1 is never made durable; the rest are at once.
        if (record.offset === 1 && failing === undefined) {
          failing = deferred();
          return Promise.resolve({ durable: failing.promise });
        }
        return record.offset % 2 === 0 ? Promise.resolve() : acks.ack().then((ack) => {
          acks.delivered[acks.delivered.length - 1].resolve();
          return ack;
        });
      });
      await s.waitUntil("records 0 to 4 delivered", () => reader.seen.length >= 5);
      const committed = async () =>
        (await s.transport.committedOffsets(groupId, topic)).map((p) => p.offset)[0];
      await s.waitUntil("record 0 committed", async () => await committed() === 1);
      failing!.reject(new Error("Injected failure: the outcome of record 1 was not durable"));
      await s.waitUntil("every record committed", async () => await committed() === 5);
      const offsets = reader.seen.map((r) => r.offset);
      assert.deepEqual(offsets.slice(0, 5), [0, 1, 2, 3, 4]);
      assert.deepEqual(offsets.slice(5), [1, 2, 3, 4], "delivered again from record 1 on");
    } finally {
      failing?.resolve();
      acks.settleAll();
    }
  });

  contractTest(
    "a later record's rejected durable never lets an earlier pending record be skipped",
    async (s) => {
      const topic = await s.topic(1);
      const groupId = uniqueName("group");
      const producer = await s.producer();
      await producer.send(range(4).map((i) => ({ topic, key: "same", value: `${i}` })));
      const hold0 = deferred();
      let first0 = true;
      let first1 = true;
      try {
        const reader = await s.reader({ groupId, topics: [topic] }, (record) => {
          if (record.offset === 0 && first0) {
            first0 = false;
            return Promise.resolve({ durable: hold0.promise });
          }
          if (record.offset === 1 && first1) {
            first1 = false;
            return Promise.resolve({
              durable: Promise.reject(new Error("Injected failure: record 1 not durable")),
            });
          }
          return Promise.resolve();
        });
        const count = (offset: number) => reader.seen.filter((r) => r.offset === offset).length;
        await s.waitUntil("record 1 delivered again", () => count(1) >= 2);
        await s.waitUntil(
          "record 3 delivered after the rejection",
          () =>
            reader.seen.findLastIndex((r) => r.offset === 3) >
              reader.seen.findLastIndex((r) => r.offset === 1),
        );
        const committed = async () =>
          (await s.transport.committedOffsets(groupId, topic)).map((p) => p.offset)[0];
        // Record 0 is not durable yet: nothing may be committed past it unless it was
        // delivered again (and made durable) in the meantime.
        if (await committed() > 0) assert.ok(count(0) >= 2, "record 0 was skipped");
        hold0.resolve();
        await s.waitUntil("every record committed", async () => await committed() === 4);
      } finally {
        hold0.resolve();
      }
    },
  );

  contractTest("a partition has at most maxPendingPerPartition records pending", async (s) => {
    const topic = await s.topic(1);
    const groupId = uniqueName("group");
    const producer = await s.producer();
    await producer.send(range(10).map((i) => ({ topic, key: "same", value: `${i}` })));
    const acks = new Acks();
    try {
      const reader = await s.reader(
        { groupId, topics: [topic], maxPendingPerPartition: 3 },
        () => acks.ack(),
      );
      await s.waitUntil("three records delivered", () => reader.seen.length >= 3);
      assert.equal(reader.seen.length, 3, "no fourth record while three are pending");
      acks.delivered[0].resolve();
      await s.waitUntil("a fourth record delivered", () => reader.seen.length >= 4);
      assert.equal(reader.seen.length, 4, "one more once the oldest is durable");
      const committed = async () =>
        (await s.transport.committedOffsets(groupId, topic)).map((p) => p.offset)[0];
      for (let i = 1; i < 10; i++) {
        await s.waitUntil(`record ${i} delivered`, () => acks.delivered.length > i);
        acks.delivered[i].resolve();
      }
      await s.waitUntil("every record committed", async () => await committed() === 10);
      assert.deepEqual(reader.seen.map((r) => r.offset), range(10));
    } finally {
      acks.settleAll();
    }
  });

  contractTest("close waits for pending durables and commits their prefix", async (s) => {
    const topic = await s.topic(1);
    const groupId = uniqueName("group");
    const producer = await s.producer();
    await producer.send(range(3).map((i) => ({ topic, key: "same", value: `${i}` })));
    const acks = new Acks();
    try {
      const reader = await s.reader({ groupId, topics: [topic] }, () => acks.ack());
      await s.waitUntil("three records delivered", () => reader.seen.length >= 3);
      const closed = reader.consumer.close();
      let closeDone = false;
      void closed.then(() => closeDone = true, () => closeDone = true);
      await Promise.resolve();
      assert.equal(closeDone, false, "close waits for pending outcomes");
      acks.delivered[0].resolve();
      acks.delivered[1].resolve();
      acks.delivered[2].reject(new Error("Injected failure: record 2 not durable"));
      await closed;
      assert.deepEqual(
        (await s.transport.committedOffsets(groupId, topic)).map((p) => p.offset),
        [2],
      );
    } finally {
      acks.settleAll();
    }
  });

  contractTest("a record with a partition goes to that partition, whatever its key", async (s) => {
    const topic = await s.topic(3);
    const producer = await s.producer();
    const key = "same-key";
    const hashed = partitionForKey(encoder.encode(key), 3);
    const chosen = (hashed + 1) % 3;
    const [report] = await producer.send([{ topic, key, value: "v", partition: chosen }]);
    assert.equal(report.partition, chosen);
    const seen: ConsumedRecord[] = [];
    await s.transport.readPartitions(topic, [chosen], (record) => seen.push(record));
    assert.deepEqual(seen.map((r) => [r.partition, text(r.key), text(r.value)]), [
      [chosen, key, "v"],
    ]);
  });

  contractTest(
    "readPartitions reads only the partitions asked for, to their end now",
    async (s) => {
      const topic = await s.topic(3);
      const producer = await s.producer();
      await producer.send(
        range(9).map((i) => ({ topic, key: `k${i}`, value: `${i}`, partition: i % 3 })),
      );
      const seen: ConsumedRecord[] = [];
      await s.transport.readPartitions(topic, [0, 2], (record) => seen.push(record));
      assert.deepEqual(
        seen.map((r) => `${r.partition}:${r.offset}:${text(r.value)}`).sort(),
        ["0:0:0", "0:1:3", "0:2:6", "2:0:2", "2:1:5", "2:2:8"],
      );
      // An empty partition is read at once.
      const empty = await s.topic(1);
      await s.transport.readPartitions(empty, [0], () => assert.fail("no record expected"));
    },
  );

  /** A key of `topic` that lands on `partition` (of `partitions`). */
  function keyFor(partition: number, partitions: number, prefix = "key"): string {
    for (let i = 0; i < 10_000; i++) {
      const key = `${prefix}-${i}`;
      if (partitionForKey(encoder.encode(key), partitions) === partition) return key;
    }
    throw new Error(`No key of prefix "${prefix}" lands on partition ${partition}`);
  }

  function values(records: readonly ConsumedRecord[]): (string | null)[] {
    return records.map((record) => text(record.value));
  }

  contractTest(
    "a transaction's records and offsets are invisible until it commits, then visible together",
    async (s) => {
      const topic = await s.topic(2);
      const input = await s.topic(1);
      const group = uniqueName("group");
      const [inTx, sentinel] = [keyFor(0, 2, "tx"), keyFor(1, 2, "sentinel")];
      const producer = await s.transactionalProducer(uniqueName("txn"));
      const transaction = await producer.begin();
      await transaction.send([{ topic, key: inTx, value: "t1" }]);
      await transaction.send([
        { topic, key: inTx, value: "t2" },
        { topic, key: inTx, value: "t3" },
      ]);
      await transaction.sendOffsets(group, [{ topic: input, partition: 0, offset: 3 }]);
      const plain = await s.producer();
      // Behind the open transaction in its partition: held back with it (the last stable offset).
      await plain.send([{ topic, key: inTx, value: "p1" }]);
      await plain.send([{ topic, key: sentinel, value: "s1" }]);
      const reader = await s.reader({ groupId: uniqueName("group"), topics: [topic] });
      await s.waitUntil("the first sentinel read", () => values(reader.seen).includes("s1"));
      // A second sentinel makes the reader fetch again after the first one.
      await plain.send([{ topic, key: sentinel, value: "s2" }]);
      await s.waitUntil("the second sentinel read", () => values(reader.seen).includes("s2"));
      assert.deepEqual(
        values(reader.seen),
        ["s1", "s2"],
        "nothing of the open transaction, nor what follows it in its partition",
      );
      assert.deepEqual(
        (await s.transport.committedOffsets(group, input)).map((p) => p.offset),
        [0],
        "offsets sent with an open transaction are not committed",
      );
      await transaction.commit();
      await s.waitUntil("the committed records read", () => reader.seen.length >= 6);
      const first = reader.seen.filter((r) => r.partition === 0);
      assert.deepEqual(values(first), ["t1", "t2", "t3", "p1"]);
      assert.deepEqual(first.map((r) => r.offset), [0, 1, 2, 3]);
      assert.deepEqual(
        (await s.transport.committedOffsets(group, input)).map((p) => p.offset),
        [3],
        "the offsets committed with the records",
      );
      const end = await s.transport.endOffsets(topic);
      assert.equal(end.end[0].offset, 5, "four records and the commit's control record");
    },
  );

  contractTest(
    "an aborted transaction is never read committed, its offsets are dropped, and read uncommitted sees it",
    async (s) => {
      const topic = await s.topic(1);
      const input = await s.topic(1);
      const group = uniqueName("group");
      const producer = await s.transactionalProducer(uniqueName("txn"));
      const aborted = await producer.begin();
      await aborted.send(range(3).map((i) => ({ topic, key: "k", value: `aborted-${i}` })));
      await aborted.sendOffsets(group, [{ topic: input, partition: 0, offset: 7 }]);
      await aborted.abort();
      const committed = await producer.begin();
      await committed.send([{ topic, key: "k", value: "committed" }]);
      await committed.sendOffsets(group, [{ topic: input, partition: 0, offset: 2 }]);
      await committed.commit();
      const plain = await s.producer();
      const [after] = await plain.send([{ topic, key: "k", value: "after" }]);
      assert.equal(after.offset, 6, "aborted records and control records keep their offsets");

      const readCommitted = await s.reader({ groupId: uniqueName("group"), topics: [topic] });
      await s.waitUntil(
        "the record after the transactions read",
        () => values(readCommitted.seen).includes("after"),
      );
      assert.deepEqual(values(readCommitted.seen), ["committed", "after"]);
      assert.deepEqual(readCommitted.seen.map((r) => r.offset), [4, 6], "offsets with gaps");

      const readUncommitted = await s.reader({
        groupId: uniqueName("group"),
        topics: [topic],
        isolation: "read_uncommitted",
      });
      await s.waitUntil(
        "every record read uncommitted",
        () => values(readUncommitted.seen).includes("after"),
      );
      assert.deepEqual(values(readUncommitted.seen), [
        "aborted-0",
        "aborted-1",
        "aborted-2",
        "committed",
        "after",
      ]);
      assert.deepEqual(readUncommitted.seen.map((r) => r.offset), [0, 1, 2, 4, 6]);
      assert.deepEqual(
        (await s.transport.committedOffsets(group, input)).map((p) => p.offset),
        [2],
        "only the committed transaction's offsets",
      );
    },
  );

  contractTest(
    "a newer producer with the same transactional id fences the older one",
    async (s) => {
      const topic = await s.topic(1);
      const input = await s.topic(1);
      const group = uniqueName("group");
      const transactionalId = uniqueName("txn");
      const zombie = await s.transactionalProducer(transactionalId);
      const stale = await zombie.begin();
      await stale.send([{ topic, key: "k", value: "zombie-1" }]);
      await stale.sendOffsets(group, [{ topic: input, partition: 0, offset: 9 }]);

      const owner = await s.transactionalProducer(transactionalId);
      const isFenced = (error: unknown) =>
        error instanceof ProducerFencedError && error.transactionalId === transactionalId &&
        !error.retriable;
      await assert.rejects(stale.send([{ topic, key: "k", value: "zombie-2" }]), isFenced);
      await assert.rejects(stale.commit(), isFenced);
      await assert.rejects(zombie.begin(), isFenced);

      const current = await owner.begin();
      await current.send([{ topic, key: "k", value: "owner" }]);
      await current.sendOffsets(group, [{ topic: input, partition: 0, offset: 1 }]);
      await current.commit();

      const reader = await s.reader({ groupId: uniqueName("group"), topics: [topic] });
      await s.waitUntil("the owner's record read", () => values(reader.seen).includes("owner"));
      assert.deepEqual(values(reader.seen), ["owner"], "nothing of the zombie");
      assert.deepEqual(
        (await s.transport.committedOffsets(group, input)).map((p) => p.offset),
        [1],
        "only the owner's offsets",
      );
      const again = await owner.begin();
      await again.send([{ topic, key: "k", value: "owner-2" }]);
      await again.commit();
      await s.waitUntil("the owner's second record read", () => reader.seen.length >= 2);
      assert.deepEqual(values(reader.seen), ["owner", "owner-2"]);
    },
  );

  contractTest("a transactional producer runs one transaction at a time", async (s) => {
    const topic = await s.topic(1);
    const producer = await s.transactionalProducer(uniqueName("txn"));
    const first = await producer.begin();
    await assert.rejects(
      producer.begin(),
      (error: unknown) =>
        error instanceof Error && !(error instanceof ProducerFencedError) &&
        error.message.includes("one is still open"),
    );
    await first.send([{ topic, key: "k", value: "1" }]);
    await first.commit();
    await assert.rejects(first.send([{ topic, key: "k", value: "late" }]));
    await assert.rejects(first.abort(), "a committed transaction cannot be aborted");
    const second = await producer.begin();
    await second.send([{ topic, key: "k", value: "2" }]);
    await second.commit();
    const racing = await Promise.allSettled([producer.begin(), producer.begin()]);
    assert.deepEqual(
      racing.map((result) => result.status).sort(),
      ["fulfilled", "rejected"],
      "of two begins at once, one is refused",
    );
    const third = racing.find((result) => result.status === "fulfilled")!.value;
    await third.send([{ topic, key: "k", value: "3" }]);
    await third.commit();
    const reader = await s.reader({ groupId: uniqueName("group"), topics: [topic] });
    await s.waitUntil("every record read", () => reader.seen.length >= 3);
    assert.deepEqual(values(reader.seen), ["1", "2", "3"]);
  });

  contractTest(
    "a copartitioned group keeps partition p of every topic on one member",
    async (s) => {
      const input = await s.topic(4);
      const tier = await s.topic(4);
      const groupId = uniqueName("group");
      const options = { groupId, topics: [input, tier], copartitioned: true };
      const first = await s.reader(options);
      const second = await s.reader(options);
      await s.waitUntil(
        "both members own partitions of both topics",
        () =>
          [first, second].every((r) =>
            partitionsOf(r.consumer, input).length === 2 &&
            partitionsOf(r.consumer, tier).length === 2
          ),
      );
      for (const reader of [first, second]) {
        assert.deepEqual(partitionsOf(reader.consumer, input), partitionsOf(reader.consumer, tier));
      }
    },
  );

  contractTest("records of an assigned partition wait for the rebalance listener", async (s) => {
    const topic = await s.topic(1);
    const groupId = uniqueName("group");
    const producer = await s.producer();
    await producer.send([{ topic, key: "k", value: "v" }]);
    const restoring = deferred();
    const assigned: number[][] = [];
    const reader = await s.reader({
      groupId,
      topics: [topic],
      rebalanceListener: {
        assigned(partitions) {
          assigned.push(partitions.map((p) => p.partition));
          return restoring.promise;
        },
        revoked() {},
      },
    });
    await s.waitUntil("the listener is told", () => assigned.length > 0);
    // Long enough for a fetch to have delivered the record, were it not held back.
    const until = Date.now() + 500;
    await s.waitUntil("half a second passed", () => Date.now() >= until);
    assert.equal(reader.seen.length, 0, "no record before the partition is restored");
    restoring.resolve();
    await s.waitUntil("the record is delivered once restored", () => reader.seen.length === 1);
    assert.deepEqual(assigned[0], [0]);
  });

  contractTest(
    "a record whose durable keeps rejecting is delivered again after a backoff, not in a hot loop",
    async (s) => {
      const topic = await s.topic(1);
      const groupId = uniqueName("group");
      const producer = await s.producer();
      await producer.send([{ topic, key: "k", value: "refused" }]);
      const deliveredAt: number[] = [];
      const reader = await s.reader({ groupId, topics: [topic] }, () => {
        deliveredAt.push(performance.now());
        return Promise.resolve({
          durable: Promise.reject(new Error("Injected failure: dead letter refused")),
        });
      });
      await s.waitUntil("four deliveries", () => deliveredAt.length >= 4);
      await reader.consumer.close();
      const gaps = deliveredAt.slice(1).map((at, i) => at - deliveredAt[i]);
      // Timers may fire a little early; a hot loop redelivers in a few milliseconds.
      const least = redeliveryBackoffMs * 0.8;
      assert.ok(
        gaps.every((gap) => gap >= least),
        `redelivered faster than the ${redeliveryBackoffMs} ms backoff: gaps ${gaps.join(", ")} ms`,
      );
    },
  );
  contractTest(
    "a partition ending in a control record is committed to its end once its records are",
    async (s) => {
      const topic = await s.topic(1);
      const producer = await s.transactionalProducer(uniqueName("txn"));
      const transaction = await producer.begin();
      await transaction.send(range(3).map((i) => ({ topic, key: "k", value: `${i}` })));
      await transaction.commit();
      const end = async () => (await s.transport.endOffsets(topic)).end[0].offset;
      // The broker writes the commit's control record just after `commit` resolves.
      await s.waitUntil(
        "three records and the commit's control record",
        async () => await end() === 4,
      );

      // At least once: the member commits past the control record, once record 0 is durable.
      const groupId = uniqueName("group");
      const acks = new Acks();
      try {
        const reader = await s.reader({ groupId, topics: [topic] }, () => acks.ack());
        await s.waitUntil("three records delivered", () => reader.seen.length >= 3);
        acks.delivered[1].resolve();
        acks.delivered[2].resolve();
        assert.notDeepEqual(
          (await s.transport.committedOffsets(groupId, topic)).map((p) => p.offset),
          [4],
          "never past a record that is not durable",
        );
        acks.delivered[0].resolve();
        await s.waitUntil("the group's committed offset at the end offset", async () => {
          const committed = await s.transport.committedOffsets(groupId, topic);
          return committed[0]?.offset === 4;
        });
        assert.deepEqual(values(reader.seen), ["0", "1", "2"]);
      } finally {
        acks.settleAll();
      }

      // Offsets committed by someone else: the member tells the position past the control
      // record, and commits nothing itself.
      const other = uniqueName("group");
      const positions: { topic: string; partition: number; offset: number }[] = [];
      const reader = await s.reader({
        groupId: other,
        topics: [topic],
        commitOffsets: false,
        onPosition: (position) => positions.push({ ...position }),
      });
      await s.waitUntil("the position past the control record", () => positions.length > 0);
      assert.deepEqual(values(reader.seen), ["0", "1", "2"]);
      assert.deepEqual(positions, [{ topic, partition: 0, offset: 4 }]);
      await reader.consumer.close();
      assert.deepEqual(
        (await s.transport.committedOffsets(other, topic)).filter((p) => p.offset > 0),
        [],
        "the member committed nothing itself",
      );
    },
  );
  contractTest(
    "an aborted transaction longer than a fetch is neither read committed nor restored",
    async (s) => {
      const topic = await s.topic(1);
      const producer = await s.transactionalProducer(uniqueName("txn"));
      const aborted = await producer.begin();
      // One batch per send, 1 KiB each: three times what a restore fetches of a partition at
      // once (16 KiB), so the abort's control record comes in a later fetch than most of them.
      const filler = "x".repeat(1024);
      for (const i of range(48)) {
        await aborted.send([{ topic, key: `k-${i}`, value: `aborted-${i}.${filler}` }]);
      }
      await aborted.abort();
      const committed = await producer.begin();
      await committed.send([{ topic, key: "k", value: "committed" }]);
      await committed.commit();
      // 48 aborted records, the abort marker, the committed record and the commit marker.
      await s.waitUntil(
        "both control records written",
        async () => (await s.transport.endOffsets(topic)).end[0].offset === 51,
      );
      // The values without their filler, so that a failure prints what was read.
      const names = (records: readonly ConsumedRecord[]) =>
        records.map((r) => `${text(r.value)?.split(".")[0]}@${r.offset}`);
      const restored: ConsumedRecord[] = [];
      await s.transport.readPartitions(topic, [0], (record) => restored.push(record));
      assert.deepEqual(names(restored), ["committed@49"], "a restore reads no aborted record");
      const reader = await s.reader({ groupId: uniqueName("group"), topics: [topic] });
      await s.waitUntil("the committed record read", () => reader.seen.length >= 1);
      assert.deepEqual(names(reader.seen), ["committed@49"], "a consumer reads none either");
    },
  );
  contractTest(
    "a partition ending in an aborted transaction is committed to its end read_committed",
    async (s) => {
      const topic = await s.topic(1);
      const plain = await s.producer();
      await plain.send([{ topic, key: "k", value: "before" }]);
      const producer = await s.transactionalProducer(uniqueName("txn"));
      const aborted = await producer.begin();
      await aborted.send(range(2).map((i) => ({ topic, key: "k", value: `aborted-${i}` })));
      await aborted.abort();
      const end = async () => (await s.transport.endOffsets(topic)).end[0].offset;
      // The broker writes the abort's control record just after `abort` resolves.
      await s.waitUntil(
        "one record, two aborted ones and the control record",
        async () => await end() === 4,
      );
      const groupId = uniqueName("group");
      const reader = await s.reader({ groupId, topics: [topic] });
      await s.waitUntil("the group's committed offset at the end offset", async () => {
        const committed = await s.transport.committedOffsets(groupId, topic);
        return committed[0]?.offset === 4;
      });
      assert.deepEqual(values(reader.seen), ["before"]);
    },
  );
  contractTest(
    "a partition ending in a control record is not committed past a record whose durable rejected",
    async (s) => {
      const topic = await s.topic(1);
      const producer = await s.transactionalProducer(uniqueName("txn"));
      const transaction = await producer.begin();
      await transaction.send(range(3).map((i) => ({ topic, key: "k", value: `${i}` })));
      await transaction.commit();
      const groupId = uniqueName("group");
      let deliveries = 0;
      let redelivered = false;
      const reader = await s.reader({ groupId, topics: [topic] }, (record) => {
        if (record.offset !== 1) return Promise.resolve();
        deliveries++;
        if (deliveries > 1) {
          redelivered = true;
          return Promise.resolve();
        }
        return Promise.resolve({
          durable: Promise.reject(new Error("Injected failure: record 1 not durable")),
        });
      });
      await s.waitUntil("the group's committed offset at the end offset", async () => {
        const committed = (await s.transport.committedOffsets(groupId, topic))[0]?.offset ?? 0;
        // Read before record 1 came round again: never past it.
        if (!redelivered) assert.ok(committed <= 1, `committed ${committed} past record 1`);
        return committed === 4;
      });
      assert.ok(deliveries >= 2, "record 1 delivered again");
      assert.ok(reader.seen.length >= 4);
    },
  );
}
