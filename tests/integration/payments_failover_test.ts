/**
 * The reference's deployment: `deno task orders` publishes while two `deno task payments`
 * processes, two workers each, share the `payment-service` group. One payments process is
 * SIGKILLed mid-stream; the other takes its partitions over and every order still ends up paid
 * or dead-lettered exactly once, as kcat (an independent client) reads the topics back.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  accountTopics,
  assertEveryOrderOnce,
  freeLoopbackPorts,
  integrationTest,
  pipelineEnv,
  spawnPipeline,
  uniqueNames,
  waitFor,
} from "./_integration.ts";
import type { PipelineProcess } from "./_integration.ts";

const ORDERS = 1500;
const PAYMENTS = "stages/payment_service.ts";
const ORDER_SERVICE = "stages/order_service.ts";

/** The last `consumed N` a payments process printed. */
function consumed(run: PipelineProcess): number {
  const last = [...run.stderr().matchAll(/consumed (\d+) \|/g)].at(-1);
  return last === undefined ? 0 : Number(last[1]);
}

async function ready(port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/readyz`);
    await response.body?.cancel();
    return response.status === 200;
  } catch {
    return false;
  }
}

await integrationTest(
  "two payments processes share the group; one SIGKILLed mid-stream, the other takes over, nothing lost",
  async (brokers, kcat) => {
    const names = uniqueNames("failover");
    const env = { ...pipelineEnv(brokers, names), ORDERS_PARTITIONS: "4", PAYMENT_LATENCY_MS: "2" };
    const [portA, portB] = freeLoopbackPorts(2);
    const runs: PipelineProcess[] = [];
    try {
      const a = spawnPipeline(["--workers", "2", "--health-port", String(portA)], env, PAYMENTS);
      runs.push(a);
      const b = spawnPipeline(["--workers", "2", "--health-port", String(portB)], env, PAYMENTS);
      runs.push(b);
      await waitFor(
        "both payments processes ready",
        async () => await ready(portA) && await ready(portB),
        90_000,
        () => `: A ${a.stderr().slice(-1500)}\nB ${b.stderr().slice(-1500)}`,
      );

      const orders = spawnPipeline(
        ["--max-orders", String(ORDERS), "--rate", "200"],
        env,
        ORDER_SERVICE,
      );
      runs.push(orders);
      await waitFor(
        "process A to pay some orders",
        () => consumed(a) > 100,
        60_000,
        () => `: ${a.stderr().slice(-2000)}`,
      );
      Deno.kill(a.pid, "SIGKILL");
      const killedAfter = consumed(a);
      const published = await orders.succeeded(60_000);
      assert.equal(published.published, ORDERS);
      assert.ok(killedAfter < ORDERS, "A was killed mid-stream");

      // B alone finishes: the group hands it A's partitions after the session timeout.
      await waitFor(
        "every order to have an outcome on the broker",
        async () => {
          const account = await accountTopics(kcat, brokers, names);
          return new Set([...account.paid, ...account.deadLettered]).size >= ORDERS;
        },
        120_000,
        () => `: B ${b.stderr().slice(-2000)}`,
      );
      b.kill("SIGTERM");
      const summary = await b.succeeded(30_000);
      // At least once: an order whose outcome A wrote just before its SIGKILL, and whose state
      // entry it had not written yet, is handled again by B (counted and reported): the same
      // outcome written twice, or, rarely, a dead letter and a payment (README, "Processing
      // guarantees"). None is lost.
      const counted = assertEveryOrderOnce(await accountTopics(kcat, brokers, names), ORDERS, {
        redelivered: true,
      });
      assert.equal(
        counted.paid + counted.deadLettered - counted.redelivered - counted.paidAndDeadLettered,
        ORDERS,
      );
      // B's summary counts what B consumed: its own share plus what A left behind. A may have
      // paid up to a progress interval (1 s, at most 200 published orders) past its last line.
      assert.ok(summary.consumed >= ORDERS - killedAfter - 200, JSON.stringify(summary));
      assert.ok(
        summary.consumed <= ORDERS - killedAfter + counted.redelivered,
        JSON.stringify(summary),
      );
      console.error(
        `A killed after ${killedAfter} orders; B consumed ${summary.consumed}; ` +
          `topics: ${counted.paid} paid, ${counted.deadLettered} dead-lettered, ` +
          `${counted.redelivered} written twice, ${counted.paidAndDeadLettered} both paid and ` +
          `dead-lettered`,
      );
    } finally {
      await Promise.all(runs.map((run) => run.stop()));
    }
  },
);
