/**
 * The scenario on a real broker: 1000 orders already wait on `orders`, published by
 * another service (here `deno task orders`); `deno task pipeline --max-orders 10` pays all 1010
 * and says so: `consumed 1010`, in flight never negative, 0 at the end.
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
import type { PipelineProcess } from "./_integration.ts";

await integrationTest(
  "pipeline --max-orders 10 with 1000 foreign orders waiting counts 1010 consumed, none in flight",
  async (brokers, kcat) => {
    const names = uniqueNames("foreign");
    const env = pipelineEnv(brokers, names);
    const runs: PipelineProcess[] = [];
    try {
      const orders = spawnPipeline(
        ["--max-orders", "1000", "--rate", "0"],
        env,
        "stages/order_service.ts",
      );
      runs.push(orders);
      assert.equal((await orders.succeeded(60_000)).published, 1000);

      const pipeline = spawnPipeline(
        ["--max-orders", "10", "--rate", "0", "--gateway-latency-ms", "0"],
        env,
      );
      runs.push(pipeline);
      const summary = await pipeline.succeeded(120_000);
      assert.equal(summary.generated, 10);
      assert.equal(summary.consumed, 1010, JSON.stringify(summary));
      assert.equal(summary.paid + summary.dead_lettered, 1010);
      const inFlight = [...pipeline.stderr().matchAll(/in flight (-?\d+) \|/g)].map((m) =>
        Number(m[1])
      );
      assert.ok(inFlight.every((n) => n >= 0), `in flight went negative: ${inFlight}`);
      assert.equal(inFlight.at(-1), 0);
      assertEveryOrderOnce(await accountTopics(kcat, brokers, names), 1010);
    } finally {
      await Promise.all(runs.map((run) => run.stop()));
    }
  },
);
