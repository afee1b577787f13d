/**
 * The health endpoints against a real broker that goes away: `deno task payments` with
 * `HEALTH_PORT` becomes ready once its members consume, serves `/metrics` that Prometheus'
 * own parser accepts, turns not ready while the broker is stopped, ready again once it is back,
 * and drains on SIGTERM well within an orchestrator's 30 s grace. The test runs its own broker
 * (free loopback ports, a temporary data folder) so it can stop it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startLocalBroker } from "../../infra/kafka/mod.ts";
import type { LocalBroker } from "../../infra/kafka/mod.ts";
import { findExecutable } from "../_observability.ts";
import {
  freeLoopbackPorts,
  integrationTest,
  pipelineEnv,
  spawnPipeline,
  uniqueNames,
  waitFor,
} from "./_integration.ts";
import type { PipelineProcess } from "./_integration.ts";

interface Readyz {
  readonly status: number;
  readonly body: { ready: boolean; reasons: string[]; members: { state: string }[] };
}

async function readyz(port: number): Promise<Readyz | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/readyz`);
    return { status: response.status, body: await response.json() };
  } catch {
    return undefined;
  }
}

async function promtoolCheck(text: string): Promise<string[]> {
  const promtool = await findExecutable("promtool");
  if (promtool === undefined) return [];
  const child = new Deno.Command(promtool, {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const said = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  // Exit 1 is a parse error; 3 is lint advice, allowed only for the reference's `_ms` names.
  assert.ok(code === 0 || code === 3, `promtool exited ${code}: ${said}`);
  return said.split("\n").filter((line) =>
    line.trim() !== "" && !line.endsWith("metric names should not contain abbreviated units")
  );
}

await integrationTest(
  "payments /readyz: ready when consuming, not ready while the broker is stopped, /metrics parses",
  async () => {
    const [port, controllerPort, healthPort] = freeLoopbackPorts(3);
    const dataDir = await Deno.makeTempDir({ prefix: "it-health-" });
    const start = (fresh: boolean) =>
      startLocalBroker({
        port,
        controllerPort,
        dataDir,
        fresh,
        readyTimeoutMs: 90_000,
        log: () => {},
      });
    let broker: LocalBroker | undefined;
    let run: PipelineProcess | undefined;
    try {
      broker = await start(true);
      const names = uniqueNames("health");
      run = spawnPipeline(
        ["--workers", "2", "--health-port", String(healthPort)],
        pipelineEnv(broker.brokers, names),
        "stages/payment_service.ts",
      );
      const payments = run;
      const live = await (async () => {
        await waitFor(
          "the health server",
          async () => (await readyz(healthPort)) !== undefined,
          60_000,
        );
        return await fetch(`http://127.0.0.1:${healthPort}/livez`);
      })();
      assert.equal(await live.text(), "ok\n");
      await waitFor(
        "/readyz 200",
        async () => (await readyz(healthPort))?.status === 200,
        60_000,
        () => `: ${payments.stderr().slice(-2000)}`,
      );
      const ready = (await readyz(healthPort))!;
      assert.deepEqual(ready.body.members.map((m) => m.state), ["consuming", "consuming"]);

      // The lag is read every second; the gauge has series once the first reading is in.
      let metrics = "";
      await waitFor(
        "the consumer lag in /metrics",
        async () => {
          metrics = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
          return /^pipeline_consumer_lag\{/m.test(metrics);
        },
        30_000,
        () => `: ${metrics}`,
      );
      assert.match(metrics, /^# TYPE pipeline_consumer_lag gauge$/m);
      assert.match(metrics, /^# TYPE pipeline_worker_restarts_total counter$/m);
      assert.deepEqual(await promtoolCheck(metrics), []);

      await broker.stop();
      await waitFor(
        "/readyz 503 with the broker unreachable",
        async () => {
          const now = await readyz(healthPort);
          return now?.status === 503 &&
            now.body.reasons.some((r) => r.startsWith("broker unreachable"));
        },
        30_000,
        () => `: ${payments.stderr().slice(-2000)}`,
      );
      // Still alive: an orchestrator must not restart a process for its broker's outage.
      assert.equal((await fetch(`http://127.0.0.1:${healthPort}/livez`)).status, 200);

      broker = await start(false);
      await waitFor(
        "/readyz 200 again once the broker is back",
        async () => (await readyz(healthPort))?.status === 200,
        120_000,
        () => `: ${payments.stderr().slice(-2000)}`,
      );

      const stopping = Date.now();
      run.kill("SIGTERM");
      const summary = await run.succeeded(30_000);
      assert.equal(summary.consumed, 0);
      assert.ok(Date.now() - stopping < 30_000, "drained within the default 30 s grace");
    } finally {
      await run?.stop();
      await broker?.stop();
      await Deno.remove(dataDir, { recursive: true }).catch(() => undefined);
    }
  },
);
