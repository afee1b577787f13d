/**
 * The kafkajs transport: the shared contract against a real broker, plus what only a real
 * broker shows (connection failures, delivery offsets, partitioning, topic config, records
 * from an independent client).
 *
 * Broker tests need `KAFKA_BROKERS` (see `tests/_broker.ts`) and are ignored without it. The
 * independent-client test needs `kcat` (Debian package `kcat`) on the PATH; under CI
 * (`CI=true`) a missing kcat fails it. kafkajs reads the environment when it loads, so it and
 * the transport are loaded only when this test process may read it (not under plain
 * `deno test`, where every test here is ignored).
 *
 * @module
 */
import assert from "node:assert/strict";
import { BrokerUnavailableError, ConfigError, FatalError } from "../../../pipeline/errors.ts";
import type {
  KafkaLogRecord,
  KafkaTransport,
  KafkaTransportOptions,
} from "../../../pipeline/transport/kafka/mod.ts";
import { partitionForKey } from "../../../pipeline/transport/murmur2.ts";
import type { ConsumedRecord, OutgoingRecord } from "../../../pipeline/transport/transport.ts";
import { brokerAvailable, loadKafkaTransport } from "../../_broker.ts";
import { granted, requires } from "../../_permissions.ts";
import { IN_CI } from "../../_pipeline_process.ts";
import { transportContract } from "./contract.ts";

const kafkaTransport = granted("env") ? await loadKafkaTransport() : undefined;
const kafkajs = granted("env") ? (await import("kafkajs")).default : undefined;

/** The transport under test; only tests that may load kafkajs call it. */
function createKafkaTransport(brokers: string, options?: KafkaTransportOptions): KafkaTransport {
  return kafkaTransport!.createKafkaTransport(brokers, options);
}

const brokers = brokerAvailable().brokers ?? "";
const noBroker = brokers === "";
const kcatMissing = !hasKcat();
// CI must install kcat (`apt-get install -y kcat`): there a missing kcat fails the test.
const kcatRequired = IN_CI;
const TIMEOUT_MS = 30_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const runId = `${Date.now().toString(36)}${Deno.pid.toString(36)}`;
let counter = 0;

function unique(prefix: string): string {
  return `kafka-${prefix}-${runId}-${++counter}`;
}

function hasKcat(): boolean {
  try {
    return new Deno.Command("kcat", { args: ["-V"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

function quietTransport(logs: KafkaLogRecord[] = []): KafkaTransport {
  // Fresh brokers log transient "coordinator loading" warnings; keep them for assertions only.
  return createKafkaTransport(brokers, { logger: (record) => logs.push(record) });
}

async function waitUntil(what: string, condition: () => boolean | Promise<boolean>) {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${TIMEOUT_MS} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A loopback port nothing listens on: bound by us a moment ago, then released. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Runs `body` with a transport, closing everything it registered. */
async function withTransport(
  body: (transport: KafkaTransport, defer: (close: () => Promise<void>) => void) => Promise<void>,
): Promise<void> {
  const transport = quietTransport();
  const closers: Array<() => Promise<void>> = [];
  try {
    await body(transport, (close) => closers.push(close));
  } finally {
    for (const close of closers.reverse()) await close();
    await transport.close();
  }
}

/** Reads every record of `topic` with a fresh group until `count` arrived. */
async function readAll(
  transport: KafkaTransport,
  topic: string,
  count: number,
): Promise<ConsumedRecord[]> {
  const consumer = await transport.consumer({ groupId: unique("reader"), topics: [topic] });
  const seen: ConsumedRecord[] = [];
  try {
    await consumer.run((record) => {
      seen.push(record);
      return Promise.resolve();
    });
    await waitUntil(`${count} records read from "${topic}"`, () => seen.length >= count);
  } finally {
    await consumer.close();
  }
  return seen;
}

transportContract(
  "kafka",
  () => Promise.resolve({ transport: quietTransport() }),
  // kafkajs's consumer retry starts at 300 ms (`consumerRetry.initialRetryTime`).
  { ignore: noBroker, timeoutMs: TIMEOUT_MS, redeliveryBackoffMs: 300 },
);

Deno.test(
  "createKafkaTransport() refuses a malformed KAFKA_BROKERS naming the variable",
  requires("env"),
  () => {
    for (const value of ["", " , ", "localhost", "127.0.0.1:99999", "a:1,b"]) {
      assert.throws(
        () => createKafkaTransport(value),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, `${JSON.stringify(value)}: ${error}`);
          assert.equal(error.field, "KAFKA_BROKERS");
          assert.match(error.message, /^Cannot use KAFKA_BROKERS as ".*"/);
          return true;
        },
      );
    }
    const transport = createKafkaTransport(" 127.0.0.1:9092 , [::1]:9093 ");
    assert.equal(transport.kind, "kafka");
    assert.equal(transport.target, "kafka 127.0.0.1:9092,[::1]:9093");
    assert.deepEqual(transport.brokers, ["127.0.0.1:9092", "[::1]:9093"]);
  },
);

Deno.test(
  "kafka transport: an unreachable broker fails within 5 s naming KAFKA_BROKERS",
  requires("env", "net"),
  async () => {
    const broker = `127.0.0.1:${closedPort()}`;
    const password = "pa55-w0rd-never-logged";
    const logs: KafkaLogRecord[] = [];
    const transport = createKafkaTransport(broker, {
      security: {
        protocol: "SASL_PLAINTEXT",
        sasl: { mechanism: "PLAIN", username: "pipeline", password },
      },
      logger: (record) => logs.push(record),
    });
    try {
      for (const call of [() => transport.producer(), () => transport.endOffsets("orders")]) {
        const started = Date.now();
        await assert.rejects(call, (error: unknown) => {
          assert.ok(error instanceof BrokerUnavailableError, String(error));
          assert.equal(error.retriable, true);
          assert.equal(error.field, "KAFKA_BROKERS");
          assert.equal(
            error.message,
            `Cannot reach Kafka broker at "${broker}" given by KAFKA_BROKERS: ` +
              "connect ECONNREFUSED; start one with 'deno task broker' or point KAFKA_BROKERS " +
              "at a running broker",
          );
          assert.ok(error.cause instanceof kafkajs!.KafkaJSError, "the kafkajs error is the cause");
          return true;
        });
        const elapsed = Date.now() - started;
        assert.ok(elapsed < 5_000, `failed after ${elapsed} ms`);
      }
      assert.ok(logs.length > 0, "kafkajs reported the failed connections");
      assert.ok(logs.every((record) => record.level === "error" || record.level === "warn"));
      assert.ok(!JSON.stringify(logs).includes(password), "the SASL password is never logged");
    } finally {
      await transport.close();
    }
  },
);

Deno.test({
  name: "kafka transport: delivery reports give each record's own offset across partitions",
  ignore: noBroker,
  fn: () =>
    withTransport(async (transport, defer) => {
      const [first, second] = [unique("offsets"), unique("offsets")];
      await transport.ensureTopics([
        { name: first, partitions: 3 },
        { name: second, partitions: 2 },
      ]);
      const producer = await transport.producer();
      defer(() => producer.close());
      const records: OutgoingRecord[] = [];
      for (let i = 0; i < 30; i++) {
        // Topics, keyed and unkeyed records interleaved in one send.
        records.push({
          topic: i % 3 === 2 ? second : first,
          key: i % 5 === 0 ? null : `key-${i % 7}`,
          value: `record-${i}`,
        });
      }
      const reports = [...await producer.send(records.slice(0, 12))];
      reports.push(...await producer.send(records.slice(12)));
      assert.equal(reports.length, records.length);
      const expected = new Map<string, string>();
      reports.forEach((report, i) => {
        assert.equal(report.topic, records[i].topic);
        expected.set(`${report.topic}/${report.partition}/${report.offset}`, `record-${i}`);
      });
      assert.equal(expected.size, records.length, "no two records share an offset");
      const read = [
        ...await readAll(transport, first, 20),
        ...await readAll(transport, second, 10),
      ];
      const actual = new Map(
        read.map((r) => [`${r.topic}/${r.partition}/${r.offset}`, decoder.decode(r.value!)]),
      );
      assert.deepEqual(actual, expected);
    }),
});

Deno.test({
  name: "kafka transport: keyed records land where the embedded transport's murmur2 puts them",
  ignore: noBroker,
  fn: () =>
    withTransport(async (transport, defer) => {
      const topic = unique("keys");
      await transport.ensureTopics([{ name: topic, partitions: 6 }]);
      const producer = await transport.producer();
      defer(() => producer.close());
      const keys: Array<string | Uint8Array> = Array.from({ length: 100 }, (_, i) => `order-${i}`);
      keys.push("", "ключ-🔑", new Uint8Array([0, 255, 128, 1]));
      const reports = await producer.send(keys.map((key) => ({ topic, key, value: "v" })));
      reports.forEach((report, i) => {
        const key = keys[i];
        const bytes = typeof key === "string" ? encoder.encode(key) : key;
        assert.equal(report.partition, partitionForKey(bytes, 6), `key ${JSON.stringify(key)}`);
      });
    }),
});

Deno.test({
  name: "kafka transport: ensureTopics provisions partitions and topic config",
  ignore: noBroker,
  fn: () =>
    withTransport(async (transport) => {
      const topic = unique("config");
      await transport.ensureTopics([
        { name: topic, partitions: 5, config: { "retention.ms": "3600000" } },
      ]);
      // Already there: left as it is, even with a different spec.
      await transport.ensureTopics([{ name: topic, partitions: 2 }]);
      assert.equal((await transport.endOffsets(topic)).end.length, 5);
      const admin = new kafkajs!.Kafka({
        brokers: transport.brokers.slice(),
        logCreator: () => () => {},
      })
        .admin();
      await admin.connect();
      try {
        const { resources } = await admin.describeConfigs({
          includeSynonyms: false,
          resources: [{ type: kafkajs!.ConfigResourceTypes.TOPIC, name: topic }],
        });
        const entry = resources[0].configEntries.find((e) => e.configName === "retention.ms");
        assert.equal(entry?.configValue, "3600000");
        const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
        assert.equal(metadata.topics[0].partitions.length, 5);
      } finally {
        await admin.disconnect();
      }
    }),
});

Deno.test({
  name: "kafka transport: a record whose handler keeps failing is never committed past",
  ignore: noBroker,
  fn: () =>
    withTransport(async (transport, defer) => {
      const topic = unique("redeliver");
      const groupId = unique("group");
      await transport.ensureTopics([{ name: topic, partitions: 2 }]);
      const producer = await transport.producer();
      defer(() => producer.close());
      const reports = await producer.send(
        Array.from({ length: 20 }, (_, i) => ({ topic, key: "same", value: `${i}` })),
      );
      const partition = reports[0].partition;
      let failures = 0;
      let overtaken = false;
      const seen: number[] = [];
      const consumer = await transport.consumer({ groupId, topics: [topic] });
      defer(() => consumer.close());
      await consumer.run(async (record) => {
        seen.push(record.offset);
        if (record.offset !== 7 || failures >= 2) return;
        failures++;
        // While offset 7 fails, the committed offset must stay at or below it.
        const committed = await transport.committedOffsets(groupId, topic);
        if (committed[partition].offset > 7) overtaken = true;
        throw new Error(`Injected failure ${failures} on offset 7`);
      });
      await waitUntil("all 20 records completed and committed", async () => {
        const committed = (await transport.committedOffsets(groupId, topic))[partition].offset;
        const succeeded = seen.filter((offset) => offset === 7).length >= 3;
        if (committed > 7 && !succeeded) overtaken = true;
        return committed === 20;
      });
      assert.equal(overtaken, false);
      assert.equal(failures, 2);
      assert.deepEqual(seen.filter((offset) => offset === 7), [7, 7, 7]);
      assert.deepEqual(
        [...new Set(seen)].sort((a, b) => a - b),
        Array.from({ length: 20 }, (_, i) => i),
      );
    }),
});

Deno.test({
  name: "kafka transport: a record written by kcat is consumed with its key and headers",
  ignore: noBroker || (kcatMissing && !kcatRequired),
  fn: () =>
    withTransport(async (transport) => {
      if (kcatMissing) {
        throw new Error("Cannot run kcat: install it with 'apt-get install -y kcat'");
      }
      const topic = unique("kcat");
      await transport.ensureTopics([{ name: topic, partitions: 4 }]);
      const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
      const child = new Deno.Command("kcat", {
        args: [
          "-P",
          "-b",
          transport.brokers.join(","),
          "-t",
          topic,
          "-k",
          "order-42",
          "-H",
          `traceparent=${traceparent}`,
          "-H",
          "note=héllo wörld",
          // librdkafka's Java-compatible partitioner, so the key lands where Kafka puts it.
          "-X",
          "partitioner=murmur2_random",
        ],
        stdin: "piped",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(encoder.encode('{"order_id":"order-42"}\n'));
      await writer.close();
      const { success, stderr } = await child.output();
      assert.ok(success, `kcat failed: ${decoder.decode(stderr)}`);
      const [record] = await readAll(transport, topic, 1);
      assert.equal(decoder.decode(record.key!), "order-42");
      assert.equal(decoder.decode(record.value!), '{"order_id":"order-42"}');
      assert.deepEqual({ ...record.headers }, { traceparent, note: "héllo wörld" });
      assert.equal(record.partition, partitionForKey(encoder.encode("order-42"), 4));
      assert.equal(record.offset, 0);
    }),
});

Deno.test({
  name: "kafka transport: a rebalance commits what the member completed before it",
  ignore: noBroker,
  fn: async () => {
    const logs: KafkaLogRecord[] = [];
    // Commits neither by time nor by count: only the rebalance (and close) commit.
    const transport = createKafkaTransport(brokers, {
      commitInterval: 600_000,
      commitThreshold: 1_000_000,
      logger: (record) => logs.push(record),
    });
    const topic = unique("rebalance");
    const groupId = unique("group");
    const members: Array<{ close(): Promise<void> }> = [];
    try {
      await transport.ensureTopics([{ name: topic, partitions: 4 }]);
      const producer = await transport.producer();
      members.push(producer);
      await producer.send(
        Array.from({ length: 40 }, (_, i) => ({ topic, key: `k${i}`, value: `${i}` })),
      );
      const end = (await transport.endOffsets(topic)).end.map((p) => p.offset);
      const first = await transport.consumer({ groupId, topics: [topic] });
      members.push(first);
      let read = 0;
      await first.run(() => {
        read++;
        return Promise.resolve();
      });
      await waitUntil("the first member read all 40 records", () => read >= 40);
      const committed = async () =>
        (await transport.committedOffsets(groupId, topic)).map((p) => p.offset);
      assert.deepEqual(await committed(), [0, 0, 0, 0], "nothing committed before the rebalance");
      const second = await transport.consumer({ groupId, topics: [topic] });
      members.push(second);
      await second.run(() => Promise.resolve());
      await waitUntil(
        "the rebalance committed the first member's offsets",
        async () => JSON.stringify(await committed()) === JSON.stringify(end),
      );
    } finally {
      for (const member of members.reverse()) await member.close();
      await transport.close();
    }
  },
});

Deno.test({
  name: "kafka transport: a handler failing past kafkajs's retries restarts the member",
  ignore: noBroker,
  fn: () =>
    withTransport(async (_quiet, defer) => {
      const transport = createKafkaTransport(brokers, {
        consumerRetry: { retries: 2, initialRetryTime: 50, maxRetryTime: 200 },
        logger: () => {},
      });
      defer(() => transport.close());
      const topic = unique("crash");
      const groupId = unique("group");
      await transport.ensureTopics([{ name: topic, partitions: 1 }]);
      const producer = await transport.producer();
      defer(() => producer.close());
      await producer.send(
        Array.from({ length: 5 }, (_, i) => ({ topic, key: "k", value: `${i}` })),
      );
      const seen: number[] = [];
      const consumer = await transport.consumer({ groupId, topics: [topic] });
      defer(() => consumer.close());
      let failures = 0;
      await consumer.run((record) => {
        seen.push(record.offset);
        // kafkajs retries twice, then crashes and restarts the consumer: fail 5 times.
        if (record.offset === 2 && failures < 5) {
          failures++;
          return Promise.reject(new FatalError(`Injected fatal failure ${failures}`));
        }
        return Promise.resolve();
      });
      await waitUntil(
        "all records completed and committed",
        async () => (await transport.committedOffsets(groupId, topic))[0].offset === 5,
      );
      assert.equal(failures, 5);
      assert.equal(seen.filter((offset) => offset === 2).length, 6);
      assert.deepEqual([...new Set(seen)].sort(), [0, 1, 2, 3, 4]);
    }),
});
