/**
 * A consumer group member joins and leaves while the pipeline command runs: the command's one
 * payment worker shares the orders topic's 4 partitions with a second member (a supervised
 * worker started by this test, same group, same stage), which takes its share, then drains and
 * leaves. Every order is still paid or dead-lettered exactly once, counted from the topics, and
 * the outcomes both members report add up to the orders published.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startSupervisor } from "../../pipeline/supervisor/mod.ts";
import type { Supervisor, WorkerOutcome } from "../../pipeline/supervisor/mod.ts";
import { retryPreset } from "../../stages/config.ts";
import { PROCESS_PAYMENT } from "../../stages/process_payment.ts";
import type { WorkerPipelineOptions } from "../../stages/worker_pipeline.ts";
import {
  accountTopics,
  assertEveryOrderOnce,
  integrationTest,
  pipelineEnv,
  pipelineNames,
  spawnPipeline,
  uniqueNames,
  waitFor,
} from "./_integration.ts";
import type { PipelineProcess } from "./_integration.ts";

const PARTITIONS = 4;
const WORKER_PIPELINE = new URL("../../stages/worker_pipeline.ts", import.meta.url).href;

await integrationTest(
  "a second group member joins and leaves mid-run: no order lost, none paid twice",
  async (brokers, kcat) => {
    const names = uniqueNames("rebalance");
    const run: PipelineProcess = spawnPipeline([
      "--workers",
      "1",
      "--partitions",
      String(PARTITIONS),
      "--rate",
      "100",
      "--duration",
      "30",
      "--failure-rate",
      "0.2",
      "--gateway-latency-ms",
      "0",
    ], pipelineEnv(brokers, names));
    let supervisor: Supervisor | undefined;
    const joined: WorkerOutcome[] = [];
    try {
      await waitFor(
        "some paid orders before the second member joins",
        () => (run.progress()?.paid ?? 0) > 50,
        60_000,
        () => `: ${run.stderr().slice(-2000)}`,
      );
      // The same stage as the command's workers run, on the same topics and group.
      const options: WorkerPipelineOptions = {
        ...pipelineNames(names),
        partitions: PARTITIONS,
        failureRate: 0.2,
        latencyMs: 0,
        seed: 1,
        retry: retryPreset("backoff"),
      };
      supervisor = await startSupervisor({
        pipeline: { module: WORKER_PIPELINE, export: "createWorkerPipeline", options },
        transport: { kind: "kafka", brokers },
        stages: { [PROCESS_PAYMENT]: { workers: 1 } },
      }, { onOutcome: (outcome) => joined.push(outcome) });
      const started = supervisor;
      assert.deepEqual(started.workers().map((w) => w.state), ["running"]);
      await waitFor(
        "the joining member to take partitions and handle orders",
        () => joined.length >= 250,
        60_000,
        () => `: it handled ${joined.length}; command stderr: ${run.stderr().slice(-2000)}`,
      );
      assert.ok(run.progress()!.generated < 3000, "the member joined while orders flowed");
      const report = await started.stop(30_000);
      supervisor = undefined;
      assert.deepEqual(report.terminated, [], "the joining member drained and left cleanly");
      const partitions = new Set(joined.map((o) => o.partition));
      const afterLeave = run.progress()!;

      const summary = await run.succeeded(120_000);
      assert.ok(summary.paid > afterLeave.paid, "the command went on paying after the leave");
      const theirs = {
        paid: joined.filter((o) => o.kind === "output").length,
        deadLettered: joined.filter((o) => o.kind === "dead-lettered").length,
      };
      assert.equal(
        summary.paid + summary.dead_lettered + theirs.paid + theirs.deadLettered,
        summary.published,
        `outcomes of both members add up to the published orders: command ` +
          `${JSON.stringify(summary)}, joining member ${JSON.stringify(theirs)}`,
      );
      const counted = assertEveryOrderOnce(
        await accountTopics(kcat, brokers, names),
        summary.published,
      );
      assert.equal(counted.paid, summary.paid + theirs.paid);
      console.error(
        `joining member handled ${joined.length} deliveries on partitions ` +
          `${[...partitions].sort().join(",")}: ${JSON.stringify(theirs)}; command ` +
          JSON.stringify(summary),
      );
    } finally {
      await supervisor?.stop(10_000);
      await run.stop();
    }
  },
);
