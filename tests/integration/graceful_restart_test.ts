/**
 * SIGTERM mid-run drains gracefully (every published order has its outcome, offsets are
 * committed), and a second run on the same topics and group touches none of the first run's
 * orders again.
 *
 * @module
 */
import assert from "node:assert/strict";
import { loadKafkaTransport } from "../_broker.ts";
import {
  accountTopics,
  assertEveryOrderOnce,
  integrationTest,
  pipelineEnv,
  spawnPipeline,
  uniqueNames,
  waitFor,
} from "./_integration.ts";
import type { Names } from "./_integration.ts";

const SECOND_RUN_ORDERS = 50;

await integrationTest(
  "SIGTERM drains and commits; a second run on the same group re-processes nothing",
  async (brokers, kcat) => {
    const names = uniqueNames("graceful");
    const env = pipelineEnv(brokers, names);
    const common = ["--failure-rate", "0.2", "--gateway-latency-ms", "0"];
    const first = spawnPipeline(
      ["--rate", "100", "--duration", "30", "--seed", "1", ...common],
      env,
    );
    let published: number;
    try {
      await waitFor(
        "some paid orders before SIGTERM",
        () => (first.progress()?.paid ?? 0) > 300,
        60_000,
        () => `: ${first.stderr().slice(-2000)}`,
      );
      first.kill("SIGTERM");
      const summary = await first.succeeded(60_000);
      assert.match(first.stderr(), /SIGTERM received: stopping generation and draining/);
      assert.ok(summary.generated < 3000, `stopped before the 30 s were up: ${summary.generated}`);
      assert.equal(
        summary.paid + summary.dead_lettered,
        summary.published,
        JSON.stringify(summary),
      );
      published = summary.published;
    } finally {
      await first.stop();
    }
    assertEveryOrderOnce(await accountTopics(kcat, brokers, names), published);
    await assertCommittedToEnd(brokers, names);

    const second = spawnPipeline(
      ["--max-orders", String(SECOND_RUN_ORDERS), "--rate", "0", "--seed", "2", ...common],
      env,
    );
    try {
      const summary = await second.succeeded(60_000);
      assert.equal(summary.published, SECOND_RUN_ORDERS);
      assert.equal(
        summary.paid + summary.dead_lettered,
        SECOND_RUN_ORDERS,
        `only the second run's own orders have outcomes: ${JSON.stringify(summary)}`,
      );
      assert.equal(summary.duplicates_skipped, 0, "no order of the first run is delivered again");
    } finally {
      await second.stop();
    }
    assertEveryOrderOnce(
      await accountTopics(kcat, brokers, names),
      published + SECOND_RUN_ORDERS,
    );
  },
);

/** The payment group's committed offsets equal the orders topic's end offsets. */
async function assertCommittedToEnd(brokers: string, names: Names): Promise<void> {
  const { createKafkaTransport } = await loadKafkaTransport();
  const admin = createKafkaTransport(brokers, { logger: () => {} });
  try {
    const ends = await admin.endOffsets(names.orders);
    const committed = await admin.committedOffsets(names.group, names.orders);
    const at = (partition: number) =>
      committed.find((c) => c.partition === partition)?.offset ?? -1;
    for (const end of ends.end) {
      assert.equal(
        at(end.partition),
        end.offset,
        `group committed to the end of partition ${end.partition}`,
      );
    }
  } finally {
    await admin.close();
  }
}

await integrationTest(
  "SIGTERM with a short stop grace leaves the backlog on the broker; the next run finishes it",
  async (brokers, kcat) => {
    const names = uniqueNames("grace");
    const env = pipelineEnv(brokers, names);
    // Slow payments (3 partitions x ~25/s) against a fast publisher: a backlog builds up.
    const slow = ["--failure-rate", "0", "--gateway-latency-ms", "40", "--workers", "1"];
    const first = spawnPipeline(
      ["--rate", "400", "--duration", "30", "--stop-grace", "1", "--seed", "3", ...slow],
      env,
    );
    let published: number;
    let settled: number;
    try {
      await waitFor(
        "a backlog before SIGTERM",
        () => {
          const progress = first.progress();
          return progress !== undefined && progress.generated - progress.paid > 200;
        },
        60_000,
        () => `: ${first.stderr().slice(-2000)}`,
      );
      first.kill("SIGTERM");
      const summary = await first.succeeded(60_000);
      assert.match(first.stderr(), /stay on the broker for the next run/);
      published = summary.published;
      settled = summary.paid + summary.dead_lettered;
      assert.ok(settled < published, `a backlog was left: ${JSON.stringify(summary)}`);
    } finally {
      await first.stop();
    }

    const second = spawnPipeline(["--max-orders", "0", "--seed", "4", ...slow], env);
    try {
      const summary = await second.succeeded(120_000);
      // Outcomes the first run reported are never repeated; at most the few whose commit the
      // stop cut short come back, and those are skipped as duplicates.
      assert.ok(
        summary.paid + summary.dead_lettered + summary.duplicates_skipped >= published - settled,
        `the second run finished the backlog: ${JSON.stringify(summary)}`,
      );
    } finally {
      await second.stop();
    }
    assertEveryOrderOnce(await accountTopics(kcat, brokers, names), published);
  },
);
