/**
 * The broker goes away mid-run (a clean stop, or a crash: SIGKILL) and comes back on the same
 * ports and data: the pipeline command waits, resumes, and every order still ends up paid or
 * dead-lettered exactly once. The test runs its own broker (free
 * loopback ports, a temporary data folder) so it can stop and restart it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startLocalBroker } from "../../infra/kafka/mod.ts";
import type { LocalBroker } from "../../infra/kafka/mod.ts";
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
/**
 * How long the broker stays down: longer than the consumers' session timeout (10 s) and
 * kafkajs's consumer retry budget (about 9 s).
 */
const DOWN_MS = 12_000;

/** How the broker goes away: a clean shutdown (SIGTERM) or a crash (SIGKILL). */
type Outage = "stopped" | "killed";

for (const outage of ["stopped", "killed"] as const) {
  await integrationTest(
    `broker ${outage} mid-run and restarted: the pipeline resumes, no order lost, each settled one way`,
    (_sharedBrokers, kcat) => brokerOutage(outage, kcat),
  );
}

async function brokerOutage(outage: Outage, kcat: string): Promise<void> {
  const [port, controllerPort] = freeLoopbackPorts(2);
  const dataDir = await Deno.makeTempDir({ prefix: "it-broker-restart-" });
  const log: string[] = [];
  const start = (fresh: boolean) =>
    startLocalBroker({
      port,
      controllerPort,
      dataDir,
      fresh,
      readyTimeoutMs: 90_000,
      log: (line) => log.push(line),
    });
  let broker: LocalBroker | undefined;
  let run: PipelineProcess | undefined;
  try {
    broker = await start(true);
    const brokers = broker.brokers;
    const names = uniqueNames(`broker${outage}`);
    run = spawnPipeline([
      "--max-orders",
      String(ORDERS),
      // Slow enough that generation is still going when the first orders are paid, even when
      // each charge is an HTTP round trip on a loaded machine.
      "--rate",
      "100",
      "--failure-rate",
      "0.2",
      "--gateway-latency-ms",
      "0",
    ], pipelineEnv(brokers, names));
    const pipeline = run;
    await waitFor(
      "some paid orders before stopping the broker",
      () => (pipeline.progress()?.paid ?? 0) > 30,
      60_000,
      () => `: ${pipeline.stderr().slice(-2000)}`,
    );
    const before = pipeline.progress()!;
    assert.ok(before.generated < ORDERS, "the broker stops while orders are still generated");
    if (outage === "killed") Deno.kill(broker.pid!, "SIGKILL");
    await broker.stop();
    const downSince = Date.now();
    await new Promise((resolve) => setTimeout(resolve, DOWN_MS));
    broker = await start(false);
    const downMs = Date.now() - downSince;

    const summary = await pipeline.succeeded(180_000);
    const stderr = pipeline.stderr();
    assert.equal(summary.generated, ORDERS);
    assert.equal(summary.published, ORDERS);

    // The topics are the witness (read by kcat): every order once in effect, one outcome each.
    // At least once: an outcome acknowledged just before the broker died may be written again,
    // rarely as the other kind (counted and reported below); none lost.
    const counted = assertEveryOrderOnce(await accountTopics(kcat, brokers, names), ORDERS, {
      republished: true,
      redelivered: true,
    });
    const lines = (pattern: RegExp) => stderr.split("\n").filter((l) => pattern.test(l)).length;
    console.error(
      `broker ${outage}, down ${downMs} ms (stopped after ${before.paid} paid); ` +
        `${lines(/^publish of \d+ orders failed/)} publish retries, ` +
        `${lines(/^worker .* crashed/)} worker crashes, ${counted.republished} orders ` +
        `republished, ${counted.redelivered} outcomes written twice, ` +
        `${counted.paidAndDeadLettered} both paid and dead-lettered; summary ` +
        JSON.stringify(summary),
    );
  } finally {
    await run?.stop();
    await broker?.stop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => undefined);
  }
}
