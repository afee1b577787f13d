/**
 * `deno task run <module>` runs a user's pipeline (the echo pipeline of the tests, a module
 * exporting one `definePipeline` result) on a real broker in supervised workers, with the same
 * readiness and graceful stop as the orders services; kcat reads the output back.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  freeLoopbackPorts,
  integrationTest,
  readTopic,
  spawnPipeline,
  waitFor,
} from "./_integration.ts";
import type { PipelineProcess } from "./_integration.ts";
import { loadKafkaTransport } from "../_broker.ts";

const NOTES = 300;

await integrationTest(
  "run tests/pipeline/_echo_module.ts: workers consume the user's pipeline, ready, drain on SIGTERM",
  async (brokers, kcat) => {
    const prefix = `it-run-${Date.now().toString(36)}${Deno.pid.toString(36)}`;
    const [healthPort] = freeLoopbackPorts(1);
    let run: PipelineProcess | undefined;
    const { createKafkaTransport } = await loadKafkaTransport();
    const transport = createKafkaTransport(brokers);
    try {
      run = spawnPipeline(
        ["tests/pipeline/_echo_module.ts", "--workers", "2", "--health-port", String(healthPort)],
        { KAFKA_BROKERS: brokers, ECHO_PREFIX: prefix },
        "pipeline/run_command.ts",
      );
      const service = run;
      await waitFor(
        "/readyz 200",
        async () => {
          try {
            const response = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
            await response.body?.cancel();
            return response.status === 200;
          } catch {
            return false;
          }
        },
        90_000,
        () => `: ${service.stderr().slice(-2000)}`,
      );
      assert.match(
        run.stderr(),
        /pipeline "echo" from file:\/\/.*_echo_module\.ts on kafka .*: 2 Deno worker\(s\)/,
      );

      const producer = await transport.producer();
      await producer.send(Array.from({ length: NOTES }, (_, i) => ({
        topic: `${prefix}.in`,
        key: `n${i}`,
        value: JSON.stringify({ id: `n${i}`, text: `note ${i}` }),
      })));
      await producer.close();

      let out: Awaited<ReturnType<typeof readTopic>> = [];
      await waitFor(
        "every note on the output topic",
        async () => {
          out = await readTopic(kcat, brokers, `${prefix}.out`);
          return out.length >= NOTES;
        },
        60_000,
        () => `: ${out.length} so far; ${service.stderr().slice(-2000)}`,
      );
      const ids = new Set(out.map((r) => (JSON.parse(r.payload!) as { id: string }).id));
      assert.equal(ids.size, NOTES);
      assert.ok(
        out.every((r) => /^NOTE \d+$/.test((JSON.parse(r.payload!) as { text: string }).text)),
      );

      run.kill("SIGTERM");
      const { code } = await run.exited(30_000);
      assert.equal(code, 0, run.stderr().slice(-2000));
      const summary = JSON.parse(run.stdout().trim().split("\n").at(-1)!).summary;
      assert.equal(summary.consumed, NOTES);
      assert.equal(summary.stages.shout.output, NOTES);
    } finally {
      await run?.stop();
      await transport.close();
    }
  },
);
