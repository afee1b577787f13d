/**
 * Transactions of the kafkajs transport on a real broker, beyond the shared contract: an
 * independent reader (kcat, librdkafka) sees what each isolation level promises, a failed
 * transaction is aborted and the producer recovers, closing does not leave readers held at an
 * open transaction, and a transaction that outlives its timeout is reported as fenced.
 *
 * Needs `KAFKA_BROKERS` (see `tests/_broker.ts`); the kcat test needs `kcat` on the PATH (a
 * missing kcat fails it under CI).
 *
 * @module
 */
import assert from "node:assert/strict";
import { PipelineError, ProducerFencedError } from "../../../pipeline/errors.ts";
import type {
  KafkaTransport,
  KafkaTransportOptions,
} from "../../../pipeline/transport/kafka/mod.ts";
import { partitionForKey } from "../../../pipeline/transport/murmur2.ts";
import type { ConsumedRecord, IsolationLevel } from "../../../pipeline/transport/transport.ts";
import { brokerTest } from "../../_broker.ts";

// kafkajs reads NODE_ENV when it is loaded, and brokerTest reads KAFKA_BROKERS: without env
// access (a plain `deno test`) these tests are registered as ignored instead.
const envGranted = (await Deno.permissions.query({ name: "env" })).state === "granted";
const kafka = envGranted ? await import("../../../pipeline/transport/kafka/mod.ts") : undefined;

function transactionTest(name: string, fn: (brokers: string) => Promise<void>): void {
  if (envGranted) {
    brokerTest(name, fn);
  } else {
    Deno.test({ name: `${name} [ignored: needs --allow-env]`, ignore: true, fn: () => {} });
  }
}

const TIMEOUT_MS = 30_000;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const runId = `${Date.now().toString(36)}${Deno.pid.toString(36)}`;
let counter = 0;

function unique(prefix: string): string {
  return `kafka-txn-${prefix}-${runId}-${++counter}`;
}

function values(records: readonly ConsumedRecord[]): (string | null)[] {
  return records.map((record) => record.value === null ? null : decoder.decode(record.value));
}

function keyFor(partition: number, partitions: number, prefix: string): string {
  for (let i = 0; i < 10_000; i++) {
    const key = `${prefix}-${i}`;
    if (partitionForKey(encoder.encode(key), partitions) === partition) return key;
  }
  throw new Error(`No key of prefix "${prefix}" lands on partition ${partition}`);
}

async function waitUntil(what: string, condition: () => boolean | Promise<boolean>) {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${TIMEOUT_MS} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Runs `body` with a transport, closing what it deferred, then the transport. */
async function withTransport(
  brokers: string,
  options: KafkaTransportOptions,
  body: (transport: KafkaTransport, defer: (close: () => Promise<void>) => void) => Promise<void>,
): Promise<void> {
  // Fresh brokers log transient "coordinator loading" warnings: keep them out of the output.
  const transport = kafka!.createKafkaTransport(brokers, { logger: () => {}, ...options });
  const closers: Array<() => Promise<void>> = [];
  try {
    await body(transport, (close) => closers.push(close));
  } finally {
    for (const close of closers.reverse()) await close();
    await transport.close();
  }
}

/** Starts a member of a new group that records what it reads. */
async function reader(
  transport: KafkaTransport,
  topic: string,
  defer: (close: () => Promise<void>) => void,
  isolation?: IsolationLevel,
): Promise<ConsumedRecord[]> {
  const consumer = await transport.consumer({
    groupId: unique("group"),
    topics: [topic],
    isolation,
  });
  defer(() => consumer.close());
  const seen: ConsumedRecord[] = [];
  await consumer.run((record) => Promise.resolve(void seen.push(record)));
  return seen;
}

/** What kcat reads of a topic's partition 0 with an isolation level, to its end, one per line. */
async function kcatValues(brokers: string, topic: string, isolation: IsolationLevel) {
  const { success, stdout, stderr } = await new Deno.Command("kcat", {
    args: [
      "-b",
      brokers,
      "-C",
      "-t",
      topic,
      "-p",
      "0",
      "-o",
      "beginning",
      "-e",
      "-q",
      "-f",
      "%s\\n",
      "-X",
      `isolation.level=${isolation}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(success, `kcat failed: ${decoder.decode(stderr)}`);
  return decoder.decode(stdout).split("\n").filter((line) => line !== "");
}

function hasKcat(): boolean {
  try {
    return new Deno.Command("kcat", { args: ["-V"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

transactionTest(
  "kafka transaction: kcat reads committed records only with read_committed, all without",
  async (brokers) => {
    if (!hasKcat()) {
      if (Deno.env.get("CI") === "true") {
        throw new Error("Cannot run kcat: install it with 'apt-get install -y kcat'");
      }
      console.error("kcat is not installed: the independent witness is skipped");
      return;
    }
    await withTransport(brokers, {}, async (transport, defer) => {
      const topic = unique("kcat");
      await transport.ensureTopics([{ name: topic, partitions: 1 }]);
      const producer = await transport.transactionalProducer({ transactionalId: unique("id") });
      defer(() => producer.close());
      const aborted = await producer.begin();
      await aborted.send([{ topic, key: "k", value: "aborted" }]);
      await aborted.abort();
      const committed = await producer.begin();
      await committed.send([{ topic, key: "k", value: "committed" }]);
      await committed.commit();
      const open = await producer.begin();
      await open.send([{ topic, key: "k", value: "open" }]);
      assert.deepEqual(await kcatValues(brokers, topic, "read_committed"), ["committed"]);
      assert.deepEqual(
        await kcatValues(brokers, topic, "read_uncommitted"),
        ["aborted", "committed", "open"],
      );
      await open.abort();
    });
  },
);

transactionTest(
  "kafka transaction: a failed send aborts the transaction and the producer begins again",
  async (brokers) => {
    await withTransport(brokers, {}, async (transport, defer) => {
      const topic = unique("failed");
      const input = unique("input");
      await transport.ensureTopics([
        { name: topic, partitions: 2 },
        { name: input, partitions: 1 },
      ]);
      const group = unique("group");
      const [small, large] = [keyFor(0, 2, "small"), keyFor(1, 2, "large")];
      const producer = await transport.transactionalProducer({ transactionalId: unique("id") });
      defer(() => producer.close());
      const failing = await producer.begin();
      await failing.sendOffsets(group, [{ topic: input, partition: 0, offset: 4 }]);
      // One request: partition 0's record is written, partition 1's refused as too large
      // (the broker's default message.max.bytes is about 1 MiB).
      await assert.rejects(
        failing.send([
          { topic, key: small, value: "written-then-aborted" },
          { topic, key: large, value: new Uint8Array(2 * 1024 * 1024) },
        ]),
        (error: unknown) =>
          error instanceof PipelineError && !(error instanceof ProducerFencedError),
      );
      await assert.rejects(failing.commit(), PipelineError);
      const next = await producer.begin();
      await next.send([{ topic, key: small, value: "next" }]);
      await next.sendOffsets(group, [{ topic: input, partition: 0, offset: 5 }]);
      await next.commit();
      const seen = await reader(transport, topic, defer);
      await waitUntil("the next transaction read", () => values(seen).includes("next"));
      assert.deepEqual(values(seen), ["next"]);
      assert.deepEqual(
        (await transport.committedOffsets(group, input)).map((p) => p.offset),
        [5],
      );
      const uncommitted = await reader(transport, topic, defer, "read_uncommitted");
      await waitUntil(
        "the next transaction read uncommitted",
        () => values(uncommitted).includes("next"),
      );
      assert.deepEqual(
        values(uncommitted),
        ["written-then-aborted", "next"],
        "the failed request did write partition 0: the abort is what hides it",
      );
    });
  },
);

transactionTest(
  "kafka transaction: closing a producer aborts its open transaction at once",
  async (brokers) => {
    await withTransport(brokers, {}, async (transport, defer) => {
      const topic = unique("close");
      await transport.ensureTopics([{ name: topic, partitions: 1 }]);
      const producer = await transport.transactionalProducer({ transactionalId: unique("id") });
      const open = await producer.begin();
      await open.send([{ topic, key: "k", value: "left-open" }]);
      await producer.close();
      const plain = await transport.producer();
      defer(() => plain.close());
      await plain.send([{ topic, key: "k", value: "after" }]);
      const seen = await reader(transport, topic, defer);
      // Well before the 60 s transaction timeout would have aborted it.
      const started = Date.now();
      await waitUntil("the record after the closed transaction read", () => seen.length >= 1);
      assert.ok(Date.now() - started < 20_000);
      assert.deepEqual(values(seen), ["after"]);
    });
  },
);

transactionTest(
  "kafka transaction: one that outlives transactionTimeout is aborted and reported as fenced",
  async (brokers) => {
    await withTransport(brokers, { transactionTimeout: 1000 }, async (transport, defer) => {
      const topic = unique("timeout");
      await transport.ensureTopics([{ name: topic, partitions: 1 }]);
      const transactionalId = unique("id");
      const producer = await transport.transactionalProducer({ transactionalId });
      defer(() => producer.close());
      const slow = await producer.begin();
      await slow.send([{ topic, key: "k", value: "too-slow" }]);
      // The coordinator looks for expired transactions every 10 s by default
      // (transaction.abort.timed.out.transaction.cleanup.interval.ms).
      let failure: unknown;
      const deadline = Date.now() + TIMEOUT_MS;
      for (let i = 0; failure === undefined && Date.now() < deadline; i++) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        await slow.send([{ topic, key: "k", value: `probe-${i}` }]).catch((error) => {
          failure = error;
        });
      }
      assert.ok(
        failure instanceof ProducerFencedError && failure.transactionalId === transactionalId,
        `expected a ProducerFencedError, got ${failure}`,
      );
      await assert.rejects(slow.commit(), ProducerFencedError);
      await assert.rejects(producer.begin(), ProducerFencedError);
      const seen = await reader(transport, topic, defer);
      const plain = await transport.producer();
      defer(() => plain.close());
      await plain.send([{ topic, key: "k", value: "after" }]);
      await waitUntil("the record after the expired transaction read", () => seen.length >= 1);
      assert.deepEqual(values(seen), ["after"]);
    });
  },
);
