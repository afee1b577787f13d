/**
 * The pipeline command on a real broker whose orders topic already exists with fewer
 * partitions than declared: it says so, in a warning naming the topic and both counts, and
 * runs on the topic as it is.
 *
 * @module
 */
import assert from "node:assert/strict";
import { integrationTest, pipelineEnv, spawnPipeline, uniqueNames } from "./_integration.ts";
import { granted } from "../_permissions.ts";
import { loadKafkaTransport } from "../_broker.ts";

/** The Kafka transport, loaded only where env access is granted (kafkajs reads env on load). */
const kafka = granted("env") ? await loadKafkaTransport() : undefined;

await integrationTest(
  "pipeline warns that an existing orders topic has fewer partitions than declared, and runs",
  async (brokers) => {
    const names = uniqueNames("fewer");
    const transport = kafka!.createKafkaTransport(brokers, { onTopicWarning: () => {} });
    try {
      await transport.ensureTopics([{ name: names.orders, partitions: 1 }]);
    } finally {
      await transport.close();
    }
    const run = spawnPipeline(
      ["--max-orders", "20", "--rate", "0", "--partitions", "3", "--failure-rate", "0"],
      { ...pipelineEnv(brokers, names), REPLICATION_FACTOR: "1" },
    );
    try {
      const summary = await run.succeeded(90_000);
      assert.equal(summary.paid, 20);
      const warning = run.stderr().split("\n").find((line) =>
        line.includes("exists with 1 partition(s), fewer than the 3 declared")
      );
      assert.ok(warning, "the warning is on stderr");
      assert.ok(warning.includes(names.orders), warning);
    } finally {
      await run.stop();
    }
  },
);
