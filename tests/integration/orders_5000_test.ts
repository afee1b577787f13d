/**
 * The pipeline command on a real broker: 5000 orders at 20% gateway failures, then every topic
 * counted by kcat (an independent client): nothing lost, nothing paid twice.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  accountTopics,
  assertEveryOrderOnce,
  integrationTest,
  pipelineEnv,
  spawnPipeline,
  uniqueNames,
} from "./_integration.ts";

const ORDERS = 5000;

await integrationTest(
  "5000 orders at 20% failures: orders, payments and DLQ topics account for each exactly once",
  async (brokers, kcat) => {
    const names = uniqueNames("orders5000");
    const run = spawnPipeline([
      "--max-orders",
      String(ORDERS),
      "--rate",
      "0",
      "--failure-rate",
      "0.2",
      "--gateway-latency-ms",
      "0",
    ], pipelineEnv(brokers, names));
    try {
      const summary = await run.succeeded(150_000);
      assert.equal(summary.generated, ORDERS);
      assert.equal(summary.published, ORDERS);
      assert.equal(summary.paid + summary.dead_lettered, ORDERS, JSON.stringify(summary));
      assert.ok(summary.dead_lettered > 0, "20% failures with 3 attempts dead-letter some orders");
      assert.ok(summary.retries > 0, "20% failures make retries");

      const account = await accountTopics(kcat, brokers, names);
      const counted = assertEveryOrderOnce(account, ORDERS);
      assert.equal(counted.paid, summary.paid, "payments on the topic == summary's paid");
      assert.equal(
        counted.deadLettered,
        summary.dead_lettered,
        "dead letters on the topic == summary's dead_lettered",
      );
    } finally {
      await run.stop();
    }
  },
);
