/**
 * The local Kafka broker (infra/kafka): its `server.properties`, option checks, and the broker
 * the test runner started (`KAFKA_BROKERS`): cluster metadata, topic creation, an idempotent
 * producer (acks=all) and a consumer group that reads and commits one record.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ConfigError } from "../../pipeline/errors.ts";
import {
  BrokerPortInUseError,
  findTool,
  installBroker,
  isListening,
  MissingToolError,
  pinnedKafkaVersion,
  probeBroker,
  serverProperties,
  startLocalBroker,
} from "../../infra/kafka/mod.ts";
import { brokerTest } from "../_broker.ts";
import { granted, requires } from "../_permissions.ts";
import { IN_CI } from "../_pipeline_process.ts";
import { freeLoopbackPorts } from "../_ports.ts";

/** Why tests that launch their own broker process cannot run here, if they cannot. */
const launchIgnoreReason = !granted("env", "read") ? undefined : await (async () => {
  const searchPath = Deno.env.get("PATH") ?? "";
  const missing = [];
  for (const tool of ["java", "mvn"]) {
    if (!(await findTool(tool, searchPath))) missing.push(tool);
  }
  return missing.length === 0 ? undefined : `${missing.join(" and ")} not on the PATH`;
})();

const TIMEOUT_MS = 30_000;
const runId = `${Date.now().toString(36)}${Deno.pid.toString(36)}`;

function parseProperties(text: string): Map<string, string> {
  const entries = text.split("\n")
    .filter((line) => line.trim() !== "" && !line.startsWith("#"))
    .map((line) => {
      const at = line.indexOf("=");
      return [line.slice(0, at), line.slice(at + 1)] as const;
    });
  return new Map(entries);
}

/** Whether process `pid` exists (`kill -0`). */
async function processExists(pid: number): Promise<boolean> {
  const { success } = await new Deno.Command("kill", {
    args: ["-0", String(pid)],
    stdout: "null",
    stderr: "null",
  }).output();
  return success;
}

/**
 * Registers a test that launches its own broker process: ignored without java/mvn, failing
 * under CI (`CI=true`) instead.
 */
function launchTest(name: string, fn: () => Promise<void>): void {
  if (requires("env", "read", "write", "run", "net").ignore) {
    Deno.test({ name, ignore: true, fn });
  } else if (launchIgnoreReason === undefined) {
    Deno.test(name, fn);
  } else if (IN_CI) {
    Deno.test(name, () => {
      throw new Error(`Cannot launch a Kafka broker under CI: ${launchIgnoreReason}`);
    });
  } else {
    Deno.test({ name: `${name} [ignored: ${launchIgnoreReason}]`, ignore: true, fn: () => {} });
  }
}

/** Rejects after `ms` unless `promise` settles first; the timer is always cleared. */
async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let id: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    id = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(id);
  }
}

Deno.test("serverProperties() describes a single-node KRaft broker on loopback", () => {
  const properties = parseProperties(
    serverProperties({ port: 19092, controllerPort: 19093, logDir: "/tmp/kafka data/kraft" }),
  );
  assert.equal(properties.get("process.roles"), "broker,controller");
  assert.equal(properties.get("node.id"), "1");
  assert.equal(properties.get("controller.quorum.voters"), "1@127.0.0.1:19093");
  assert.equal(
    properties.get("listeners"),
    "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
  );
  assert.equal(properties.get("advertised.listeners"), "PLAINTEXT://127.0.0.1:19092");
  assert.equal(properties.get("controller.listener.names"), "CONTROLLER");
  assert.equal(properties.get("log.dirs"), "/tmp/kafka data/kraft");
  assert.equal(properties.get("auto.create.topics.enable"), "false");
  assert.equal(properties.get("group.initial.rebalance.delay.ms"), "0");
  for (
    const key of [
      "offsets.topic.replication.factor",
      "transaction.state.log.replication.factor",
      "transaction.state.log.min.isr",
      "share.coordinator.state.topic.replication.factor",
    ]
  ) {
    assert.equal(properties.get(key), "1", key);
  }
  // Static voters and the standalone bootstrap list must not be mixed (ENVIRONMENT.md).
  assert.equal(properties.has("controller.quorum.bootstrap.servers"), false);
});

Deno.test("serverProperties() escapes backslashes in the log folder", () => {
  const text = serverProperties({ port: 1, controllerPort: 2, logDir: "C:\\kafka" });
  assert.match(text, /^log\.dirs=C:\\\\kafka$/m);
});

Deno.test(
  "pinnedKafkaVersion() reads the pinned 4.x version from infra/kafka/pom.xml",
  requires("read"),
  async () => {
    const pom = await Deno.readTextFile(new URL("../../infra/kafka/pom.xml", import.meta.url));
    assert.match(pinnedKafkaVersion(pom), /^4\.\d+\.\d+$/);
  },
);

Deno.test("startLocalBroker() refuses bad ports before any work", async () => {
  await assert.rejects(startLocalBroker({ port: 0 }), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.field, "port");
    assert.match(error.message, /'port' must be an integer from 1 to 65535: current value is 0/);
    return true;
  });
  await assert.rejects(
    startLocalBroker({ port: 19092, controllerPort: 19092 }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.field, "controllerPort");
      return true;
    },
  );
});

Deno.test("installBroker() names java when it is not on the search path", async () => {
  await assert.rejects(installBroker({ searchPath: "" }), (error: unknown) => {
    assert.ok(error instanceof MissingToolError);
    assert.equal(error.tool, "java");
    assert.match(error.message, /^Cannot run the local Kafka broker as "java" is not on the PATH/);
    return true;
  });
});

brokerTest("the broker describes its cluster, creates a topic and round-trips a record", async (
  brokers,
) => {
  // Imported here: kafkajs reads the environment when it loads (tests/_permissions.ts).
  const { default: kafkajs } = await import("kafkajs");
  const { Kafka, logLevel } = kafkajs;
  // kafkajs logs the coordinator's first-use "loading" answers at ERROR level and retries them;
  // failures that matter reach the test as rejections.
  const kafka = new Kafka({
    clientId: "kafka-broker-test",
    brokers: brokers.split(","),
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  const topic = `broker-test-${runId}`;
  const groupId = `broker-test-group-${runId}`;
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: 1_000 });
  try {
    await withDeadline(admin.connect(), TIMEOUT_MS, "admin connect");
    const cluster = await withDeadline(admin.describeCluster(), TIMEOUT_MS, "describeCluster");
    assert.ok(cluster.brokers.length >= 1);
    assert.ok(cluster.clusterId.length > 0);

    const created = await withDeadline(
      admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true }),
      TIMEOUT_MS,
      "createTopics",
    );
    assert.equal(created, true);
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    assert.equal(metadata.topics[0].partitions.length, 2);

    await withDeadline(producer.connect(), TIMEOUT_MS, "producer connect");
    const [delivery] = await withDeadline(
      producer.send({
        topic,
        acks: -1,
        messages: [{ key: "order-1", value: "hello", headers: { trace: "abc" } }],
      }),
      TIMEOUT_MS,
      "send",
    );
    assert.equal(delivery.errorCode, 0);

    await withDeadline(consumer.connect(), TIMEOUT_MS, "consumer connect");
    await consumer.subscribe({ topic, fromBeginning: true });
    const received = Promise.withResolvers<{ key: string; value: string; trace: string }>();
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        await consumer.commitOffsets([
          { topic, partition, offset: (BigInt(message.offset) + 1n).toString() },
        ]);
        received.resolve({
          key: message.key?.toString() ?? "",
          value: message.value?.toString() ?? "",
          trace: message.headers?.trace?.toString() ?? "",
        });
      },
    });
    const record = await withDeadline(received.promise, TIMEOUT_MS, "consume one record");
    assert.deepEqual(record, { key: "order-1", value: "hello", trace: "abc" });
    await consumer.stop();

    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
    const committed = offsets.partitions.find((p) => p.partition === delivery.partition);
    assert.equal(committed?.offset, (BigInt(delivery.baseOffset ?? "0") + 1n).toString());
  } finally {
    await consumer.disconnect();
    await producer.disconnect();
    await admin.deleteTopics({ topics: [topic] }).catch((error: unknown) => {
      // The topic may not exist when an earlier step failed; that step's error is the one
      // the test reports.
      if (!(error instanceof kafkajs.KafkaJSError)) throw error;
    });
    await admin.disconnect();
  }
});

brokerTest("startLocalBroker() reports or reuses a broker already on its port", async (brokers) => {
  const match = brokers.split(",")[0].match(/^(127\.0\.0\.1|localhost):(\d+)$/);
  // Only a broker on this machine's loopback can collide with a local start.
  if (!match) return;
  const port = Number(match[2]);
  await assert.rejects(startLocalBroker({ port }), (error: unknown) => {
    assert.ok(error instanceof BrokerPortInUseError);
    assert.equal(error.runningBroker, true);
    assert.equal(error.port, port);
    return true;
  });
  const reused = await startLocalBroker({ port, reuseRunning: true });
  assert.equal(reused.reused, true);
  assert.equal(reused.brokers, `127.0.0.1:${port}`);
  await reused.stop();
  assert.equal(await probeBroker(`127.0.0.1:${port}`), true);
});

Deno.test("startLocalBroker() rejects an already aborted signal before any work", async () => {
  const controller = new AbortController();
  const reason = new Error("Stop before starting");
  controller.abort(reason);
  await assert.rejects(
    startLocalBroker({ port: 19092, signal: controller.signal }),
    (error: unknown) => error === reason,
  );
});

launchTest("startLocalBroker() stops the JVM it spawned when aborted mid-start", async () => {
  // The jars first, outside the deadline: on a fresh clone Maven gathers them (the test
  // runner's broker has done so already under `deno task test`, but not under `deno test -P`).
  await installBroker();
  const [port, controllerPort] = freeLoopbackPorts(2);
  const dataDir = await Deno.makeTempDir({ prefix: "kafka-abort-test-" });
  const controller = new AbortController();
  let pid: number | undefined;
  try {
    const start = startLocalBroker({
      port,
      controllerPort,
      dataDir,
      fresh: true,
      stopTimeoutMs: 10_000,
      signal: controller.signal,
      log: (line) => {
        // Logged right after the JVM is spawned and its pid file written.
        if (line.startsWith("Starting Kafka")) {
          pid = Number(Deno.readTextFileSync(`${dataDir}/broker.pid`).split(" ")[0]);
          controller.abort();
        }
      },
    });
    await withDeadline(
      assert.rejects(start, (error: unknown) => {
        assert.ok(error instanceof DOMException);
        assert.equal(error.name, "AbortError");
        return true;
      }),
      TIMEOUT_MS,
      "aborted start",
    );
    assert.ok(pid !== undefined && Number.isInteger(pid) && pid > 0, "the JVM was spawned");
    assert.equal(await processExists(pid), false, `JVM process ${pid} still exists`);
    assert.equal(await isListening(port), false, `port ${port} is still taken`);
    assert.equal(await isListening(controllerPort), false, `port ${controllerPort} is still taken`);
    await assert.rejects(Deno.stat(`${dataDir}/broker.pid`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
