/**
 * The @platformatic/kafka transport: the shared contract against a real broker (the same
 * suite the kafkajs transport passes), plus what only a real broker shows (connection failures,
 * delivery offsets, partitioning shared with kafkajs and kcat, redelivery, rebalances).
 *
 * Broker tests need `KAFKA_BROKERS` (see `tests/_broker.ts`) and are ignored without it. The
 * kcat test needs `kcat` on the PATH; under CI (`CI=true`) a missing kcat fails it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { BrokerUnavailableError, ConfigError } from "../../../pipeline/errors.ts";
import type { KafkaLogRecord } from "../../../pipeline/transport/kafka/mod.ts";
import { partitionForKey } from "../../../pipeline/transport/murmur2.ts";
import type { PlatformaticTransport } from "../../../pipeline/transport/platformatic/mod.ts";
import type {
  ConsumedRecord,
  Consumer,
  ConsumerStatus,
  OutgoingRecord,
} from "../../../pipeline/transport/transport.ts";
import { brokerAvailable } from "../../_broker.ts";
import { requires } from "../../_permissions.ts";
import { transportContract } from "./contract.ts";

/**
 * kafkajs reads the environment and @platformatic/kafka a WebAssembly file when they load, so
 * both are imported only with those permissions; without them (plain `deno test`) every test
 * of this file is ignored and nothing below is called.
 */
const { ignore: cannotLoad } = requires("env", "read", "net");
const clients = cannotLoad ? undefined : await loadClients();
// Only read by tests that are ignored when the clients could not be loaded.
const { kafkajs, createKafkaTransport, createPlatformaticTransport } = clients ??
  ({} as Awaited<ReturnType<typeof loadClients>>);

async function loadClients() {
  const { default: kafkajs } = await import("kafkajs");
  const kafka = await import("../../../pipeline/transport/kafka/mod.ts");
  const platformatic = await import("../../../pipeline/transport/platformatic/mod.ts");
  // The kafkajs admin below would warn about its negative timeouts otherwise.
  kafka.dropTimeoutNegativeWarnings();
  return {
    kafkajs,
    createKafkaTransport: kafka.createKafkaTransport,
    createPlatformaticTransport: platformatic.createPlatformaticTransport,
  };
}

const brokers = cannotLoad ? "" : brokerAvailable().brokers ?? "";
const noBroker = brokers === "";
const kcatMissing = !hasKcat();
const kcatRequired = !cannotLoad && Deno.env.get("CI") === "true";
const TIMEOUT_MS = 30_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const runId = `${Date.now().toString(36)}${Deno.pid.toString(36)}`;
let counter = 0;

function unique(prefix: string): string {
  return `plat-${prefix}-${runId}-${++counter}`;
}

function hasKcat(): boolean {
  try {
    return new Deno.Command("kcat", { args: ["-V"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

function quietTransport(logs: KafkaLogRecord[] = []): PlatformaticTransport {
  return createPlatformaticTransport(brokers, { logger: (record) => logs.push(record) });
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

async function withTransport(
  body: (
    transport: PlatformaticTransport,
    defer: (close: () => Promise<void>) => void,
  ) => Promise<void>,
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

async function readAll(
  transport: PlatformaticTransport,
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
  "platformatic",
  () => Promise.resolve({ transport: quietTransport() }),
  { ignore: noBroker, timeoutMs: TIMEOUT_MS },
);

Deno.test({
  name: "createPlatformaticTransport() refuses a malformed KAFKA_BROKERS naming it",
  ignore: cannotLoad,
}, () => {
  for (const value of ["", " , ", "localhost", "127.0.0.1:99999", "a:1,b"]) {
    assert.throws(
      () => createPlatformaticTransport(value),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError, `${JSON.stringify(value)}: ${error}`);
        assert.equal(error.field, "KAFKA_BROKERS");
        return true;
      },
    );
  }
  const transport = createPlatformaticTransport(" 127.0.0.1:9092 , [::1]:9093 ");
  assert.equal(transport.kind, "kafka");
  assert.deepEqual(transport.brokers, ["127.0.0.1:9092", "[::1]:9093"]);
});

Deno.test({
  name: "platformatic transport: an unreachable broker fails within 5 s naming KAFKA_BROKERS",
  ignore: cannotLoad,
  // The client's sockets to a closed port are released on close, after the test's check.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const broker = `127.0.0.1:${closedPort()}`;
    const transport = createPlatformaticTransport(broker);
    try {
      for (const call of [() => transport.producer(), () => transport.endOffsets("orders")]) {
        const started = Date.now();
        await assert.rejects(call, (error: unknown) => {
          assert.ok(error instanceof BrokerUnavailableError, String(error));
          assert.equal(error.retriable, true);
          assert.equal(error.field, "KAFKA_BROKERS");
          assert.match(
            error.message,
            new RegExp(
              `^Cannot reach Kafka broker at "${broker}" given by KAFKA_BROKERS: .*; ` +
                "start one with 'deno task broker'",
            ),
          );
          return true;
        });
        const elapsed = Date.now() - started;
        assert.ok(elapsed < 5_000, `failed after ${elapsed} ms`);
      }
    } finally {
      await transport.close();
    }
  },
});

Deno.test({
  name: "platformatic transport: delivery reports give each record's own offset",
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
        records.push({
          topic: i % 3 === 2 ? second : first,
          key: i % 5 === 0 ? null : `key-${i % 7}`,
          value: `record-${i}`,
        });
      }
      const reports = [...await producer.send(records.slice(0, 12))];
      reports.push(...await producer.send(records.slice(12)));
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
  name: "platformatic transport: keyed records land where kafkajs puts them",
  ignore: noBroker,
  fn: () =>
    withTransport(async (transport, defer) => {
      const topic = unique("keys");
      await transport.ensureTopics([{ name: topic, partitions: 6 }]);
      const producer = await transport.producer();
      defer(() => producer.close());
      const kafkajs = createKafkaTransport(brokers, { logger: () => {} });
      const other = await kafkajs.producer();
      try {
        const keys = Array.from({ length: 100 }, (_, i) => `order-${i}`);
        keys.push("", "ключ-🔑");
        const ours = await producer.send(keys.map((key) => ({ topic, key, value: "v" })));
        const theirs = await other.send(keys.map((key) => ({ topic, key, value: "v" })));
        ours.forEach((report, i) => {
          assert.equal(report.partition, theirs[i].partition, `key ${JSON.stringify(keys[i])}`);
          assert.equal(report.partition, partitionForKey(encoder.encode(keys[i]), 6));
        });
      } finally {
        await other.close();
        await kafkajs.close();
      }
    }),
});

Deno.test({
  name: "platformatic transport: a record whose handler keeps failing is never committed past",
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
  name: "platformatic transport: a record written by kcat is consumed with its key and headers",
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
    }),
});

Deno.test({
  name: "platformatic transport: a slow handler keeps its membership and its partitions",
  ignore: noBroker,
  fn: async () => {
    // Session 6 s, a handler busy 9 s: the client heartbeats on its own timer meanwhile.
    const transport = createPlatformaticTransport(brokers, {
      sessionTimeout: 6000,
      heartbeatInterval: 1000,
      logger: () => {},
    });
    const topic = unique("slow");
    const groupId = unique("group");
    const members: Array<{ close(): Promise<void> }> = [];
    try {
      await transport.ensureTopics([{ name: topic, partitions: 2 }]);
      const producer = await transport.producer();
      members.push(producer);
      await producer.send([{ topic, key: "a", value: "slow" }, { topic, key: "b", value: "x" }]);
      const seen: string[] = [];
      const consumer = await transport.consumer({ groupId, topics: [topic] });
      members.push(consumer);
      await consumer.run(async (record) => {
        seen.push(decoder.decode(record.value!));
        if (decoder.decode(record.value!) === "slow") {
          await new Promise((resolve) => setTimeout(resolve, 9000));
        }
      });
      await waitUntil("both records handled and committed", async () => {
        const committed = await transport.committedOffsets(groupId, topic);
        return committed.reduce((sum, p) => sum + p.offset, 0) === 2;
      });
      assert.deepEqual(seen.sort(), ["slow", "x"], "each record once: no rebalance redelivered");
      assert.deepEqual(Object.values(consumer.assignment().partitions).flat().sort(), [0, 1]);
    } finally {
      for (const member of members.reverse()) await member.close();
      await transport.close();
    }
  },
});

Deno.test({
  name: "platformatic transport: a member that cannot read its topic again stops, reporting why",
  ignore: noBroker,
  fn: async () => {
    const transport = createPlatformaticTransport(brokers, {
      consumerRetry: { initialRetryTime: 10, maxRetryTime: 200 },
      logger: () => {},
    });
    const topic = unique("vanishing");
    const statuses: ConsumerStatus[] = [];
    let consumer: Consumer | undefined;
    try {
      await transport.ensureTopics([{ name: topic, partitions: 2 }]);
      consumer = await transport.consumer({
        groupId: unique("group"),
        topics: [topic],
        onStatus: (status) => statuses.push(status),
      });
      await consumer.run(() => Promise.resolve());
      await waitUntil(
        "the member owns both partitions",
        () =>
          statuses.some((status) => status.type === "assigned") &&
          (consumer!.assignment().partitions[topic]?.length ?? 0) === 2,
      );
      // Another client deletes the topic under the member: its stream fails, and every
      // attempt to read it again fails too.
      const admin = new kafkajs.Kafka({ brokers: [brokers], logLevel: kafkajs.logLevel.NOTHING })
        .admin();
      await admin.connect();
      try {
        await admin.deleteTopics({ topics: [topic] });
      } finally {
        await admin.disconnect();
      }
      await waitUntil(
        "the member reports a crash",
        () => statuses.some((status) => status.type === "crashed"),
      );
      const crash = statuses.find((status) => status.type === "crashed")!;
      assert.equal(crash.type === "crashed" && crash.restart, false);
      assert.match(crash.type === "crashed" ? String(crash.error) : "", /Cannot read records/);
    } finally {
      await consumer?.close().catch(() => undefined);
      await transport.close();
    }
  },
});

Deno.test({
  name: "platformatic transport: a rebalance commits what the member completed before it",
  ignore: noBroker,
  fn: async () => {
    // Commits neither by time nor by count: only the rebalance (and close) commit.
    const transport = createPlatformaticTransport(brokers, {
      commitInterval: 600_000,
      commitThreshold: 1_000_000,
      heartbeatInterval: 500,
      logger: () => {},
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
      let again = 0;
      await second.run(() => {
        again++;
        return Promise.resolve();
      });
      await waitUntil(
        "the rebalance committed the first member's offsets",
        async () => JSON.stringify(await committed()) === JSON.stringify(end),
      );
      assert.equal(again, 0, "the second member was given nothing already done");
    } finally {
      for (const member of members.reverse()) await member.close();
      await transport.close();
    }
  },
});

Deno.test({
  name: "platformatic transport: ensureTopics provisions partitions and topic config",
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
      // Checked with another client.
      const admin = new kafkajs.Kafka({
        brokers: transport.brokers.slice(),
        logCreator: () => () => {},
      }).admin();
      await admin.connect();
      try {
        const { resources } = await admin.describeConfigs({
          includeSynonyms: false,
          resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic }],
        });
        const entry = resources[0].configEntries.find((e) => e.configName === "retention.ms");
        assert.equal(entry?.configValue, "3600000");
      } finally {
        await admin.disconnect();
      }
    }),
});

Deno.test({
  name:
    "createPlatformaticTransport() takes the parsed security settings, refusing incomplete ones",
  ignore: cannotLoad,
}, () => {
  assert.throws(
    () => createPlatformaticTransport("127.0.0.1:9092", { security: { protocol: "SASL_SSL" } }),
    (error: unknown) =>
      error instanceof ConfigError && error.field === "KAFKA_SASL_MECHANISM" &&
      /^Cannot use KAFKA_SECURITY_PROTOCOL "SASL_SSL" without SASL settings/.test(error.message),
  );
  const transport = createPlatformaticTransport("127.0.0.1:9092", {
    security: {
      protocol: "SASL_PLAINTEXT",
      sasl: { mechanism: "SCRAM-SHA-512", username: "pipeline", password: "secret" },
    },
  });
  assert.equal(transport.kind, "kafka");
  assert.equal(
    transport.target,
    'kafka 127.0.0.1:9092 (platformatic, SASL_PLAINTEXT, SCRAM-SHA-512 as "pipeline")',
  );
});

Deno.test({
  name: "platformatic transport: a copartitioned group keeps partition p of every topic on one " +
    "member where round-robin would not (3 partitions, 2 members)",
  ignore: noBroker,
  fn: () =>
    withTransport(async (transport, defer) => {
      const [input, tier] = [unique("cop-in"), unique("cop-tier")];
      await transport.ensureTopics([
        { name: input, partitions: 3, replicationFactor: 1 },
        { name: tier, partitions: 3, replicationFactor: 1 },
      ]);
      const groupId = unique("cop-group");
      const members: Consumer[] = [];
      for (let i = 0; i < 2; i++) {
        const consumer = await transport.consumer({
          groupId,
          topics: [input, tier],
          copartitioned: true,
        });
        defer(() => consumer.close());
        await consumer.run(() => Promise.resolve());
        members.push(consumer);
      }
      const owned = (consumer: Consumer, topic: string) =>
        [...(consumer.assignment().partitions[topic] ?? [])].sort((a, b) => a - b);
      await waitUntil(
        "every partition of both topics owned, by both members",
        () =>
          members.every((m) => owned(m, input).length > 0) &&
          members.reduce((n, m) => n + owned(m, input).length + owned(m, tier).length, 0) === 6,
      );
      for (const member of members) assert.deepEqual(owned(member, tier), owned(member, input));
      assert.deepEqual(members.map((m) => owned(m, input)).sort(), [[0, 1], [2]]);
    }),
});

Deno.test({
  name: "platformatic transport: readPartitions ends at a partition whose last offsets are " +
    "transaction markers or aborted records",
  ignore: noBroker,
  fn: () =>
    withTransport(async (transport, defer) => {
      const topic = unique("read-marker");
      await transport.ensureTopics([{ name: topic, partitions: 1, replicationFactor: 1 }]);
      const producer = await transport.transactionalProducer({ transactionalId: unique("txn") });
      defer(() => producer.close());
      const transaction = await producer.begin();
      await transaction.send([{ topic, key: "k", value: "a" }, { topic, key: "k", value: "b" }]);
      await transaction.commit();
      // Two records and the commit marker: the end offset (3) is past the last record (1).
      // The coordinator writes the marker after the commit resolved.
      await waitUntil(
        "the commit marker written",
        async () => (await transport.endOffsets(topic)).end[0].offset === 3,
      );
      const seen: ConsumedRecord[] = [];
      await transport.readPartitions(topic, [0], (record) => seen.push(record));
      assert.deepEqual(seen.map((r) => decoder.decode(r.value as Uint8Array)), ["a", "b"]);
      // Only an aborted transaction: no record is ever fetched, the fetch position passes the end.
      const aborted = unique("read-aborted");
      await transport.ensureTopics([{ name: aborted, partitions: 1, replicationFactor: 1 }]);
      const abort = await producer.begin();
      await abort.send([{ topic: aborted, key: "k", value: "x" }]);
      await abort.abort();
      await waitUntil(
        "the abort marker written",
        async () => (await transport.endOffsets(aborted)).end[0].offset === 2,
      );
      // Bounded: a reader waiting for a record that never comes fails instead of hanging.
      await transport.readPartitions(
        aborted,
        [0],
        () => assert.fail("no record expected"),
        AbortSignal.timeout(TIMEOUT_MS),
      );
    }),
});
