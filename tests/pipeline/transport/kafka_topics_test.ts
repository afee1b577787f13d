/**
 * Topic provisioning on the real broker: the replication factor and `min.insync.replicas` the
 * pipeline declares reach the topics it creates, and an existing topic with fewer partitions
 * or replicas than declared is used as it is, with a warning that says so, on both clients.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { TopicWarning } from "../../../pipeline/transport/kafka/mod.ts";
import type { Transport } from "../../../pipeline/transport/transport.ts";
import { brokerTest } from "../../_broker.ts";
import { granted } from "../../_permissions.ts";
import { loadKafkaTransport } from "../../_broker.ts";

/** The Kafka transport, loaded only where env access is granted (kafkajs reads env on load). */
const kafka = granted("env") ? await loadKafkaTransport() : undefined;
/** @platformatic/kafka reads a WebAssembly file when it loads: only with the same grants. */
const platformatic = granted("env")
  ? await import("../../../pipeline/transport/platformatic/mod.ts")
  : undefined;

/** Each client's transport with its topic warnings collected. */
const clients: [
  string,
  (brokers: string, onTopicWarning: (warning: TopicWarning) => void) => Transport,
][] = [
  ["kafka", (brokers, onTopicWarning) => kafka!.createKafkaTransport(brokers, { onTopicWarning })],
  [
    "platformatic",
    (brokers, onTopicWarning) =>
      platformatic!.createPlatformaticTransport(brokers, { onTopicWarning }),
  ],
];
/** kafkajs reads the environment when it loads: only where env access is granted. */
const kafkajs = granted("env") ? (await import("kafkajs")).default : undefined;

const { Kafka, ConfigResourceTypes } = kafkajs ?? ({} as NonNullable<typeof kafkajs>);
const runId = `${Date.now().toString(36)}${Deno.pid.toString(36)}`;

for (const [client, create] of clients) {
  brokerTest(
    `${client} transport warns when an existing topic has fewer partitions or replicas than declared`,
    async (brokers) => {
      const topic = `topics-${runId}-fewer-${client}`;
      const warnings: TopicWarning[] = [];
      const transport = create(brokers, (warning) => warnings.push(warning));
      try {
        await transport.ensureTopics([{ name: topic, partitions: 1 }]);
        assert.equal(warnings.length, 0, "a topic as declared gives no warning");

        await transport.ensureTopics([{ name: topic, partitions: 3, replicationFactor: 3 }]);

        assert.equal((await transport.endOffsets(topic)).end.length, 1, "left as it is");
        assert.deepEqual(warnings.map((w) => [w.topic, w.field, w.declared, w.actual]), [
          [topic, "partitions", 3, 1],
          [topic, "replicationFactor", 3, 1],
        ]);
        assert.equal(
          warnings[0].message,
          `Topic "${topic}" exists with 1 partition(s), fewer than the 3 declared: the pipeline ` +
            `uses it as it is, with at most 1 worker(s) busy per stage reading it`,
        );
        assert.equal(
          warnings[1].message,
          `Topic "${topic}" exists with replication factor 1, below the 3 declared: a broker ` +
            `failure can lose or stall its records until its partitions are reassigned`,
        );
      } finally {
        await transport.close();
      }
    },
  );
}

brokerTest(
  "kafka transport creates topics with the declared min.insync.replicas",
  async (brokers) => {
    const topic = `topics-${runId}-isr`;
    const transport = kafka!.createKafkaTransport(brokers);
    const admin = new Kafka({ brokers: [brokers], logCreator: () => () => {} }).admin();
    try {
      await transport.ensureTopics([{
        name: topic,
        partitions: 2,
        replicationFactor: 1,
        config: { "min.insync.replicas": "1" },
      }]);
      await admin.connect();
      const { resources } = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }],
      });
      const entry = resources[0].configEntries.find((e) => e.configName === "min.insync.replicas");
      assert.equal(entry?.configValue, "1");
      assert.equal(entry?.isDefault, false, "set on the topic, not inherited");
    } finally {
      await admin.disconnect();
      await transport.close();
    }
  },
);
