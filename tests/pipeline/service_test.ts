import assert from "node:assert/strict";
import { createPublisher } from "../../pipeline/publisher.ts";
import type { ServiceOutcome } from "../../pipeline/service.ts";
import { waitUntilDrained } from "../../pipeline/run.ts";
import { createEmbeddedTransport } from "../../pipeline/transport/embedded/mod.ts";
import { createEchoPipeline } from "./_echo_pipeline.ts";

import { startService } from "../../pipeline/service.ts";
import { requires } from "../_permissions.ts";

Deno.test({
  name: "startService() on the embedded transport serves /livez, /readyz and /metrics, and drains",
  // The health endpoints listen on loopback.
  ...requires("net"),
  async fn() {
    const transport = createEmbeddedTransport();
    const outcomes: ServiceOutcome[] = [];
    const service = await startService({
      pipeline: { module: new URL("./_echo_pipeline.ts", import.meta.url).href, export: "x" },
      build: () => createEchoPipeline(),
      transport,
      workers: 2,
      serviceName: "echo",
      env: {},
      health: { port: 0 },
      pollMs: 50,
      onOutcome: (outcome) => outcomes.push(outcome),
    });
    try {
      const url = service.health!.url;
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const live = await fetch(`${url}/livez`);
      assert.equal(await live.text(), "ok\n");
      const ready = await fetch(`${url}/readyz`);
      const report = await ready.json();
      assert.equal(ready.status, 200, JSON.stringify(report));
      assert.deepEqual(
        report.members.map((m: { id: string; state: string }) => [m.id, m.state]),
        [["shout#0", "consuming"], ["shout#1", "consuming"]],
      );

      const notes = createPublisher<{ id: string; text: string }>(service.pipeline, "notes", {
        producer: service.producer,
      });
      await notes.publish(Array.from({ length: 20 }, (_, i) => ({ id: `n${i}`, text: "hi" })));
      await waitUntilDrained(service.pipeline, transport, { timeoutMs: 10_000 });
      assert.equal(outcomes.filter((o) => o.kind === "output").length, 20);

      // The lag gauge is read every 50 ms: wait for a reading after the drain.
      const deadline = Date.now() + 5000;
      let metrics = "";
      while (!/pipeline_consumer_lag\{[^}]*topic="echo\.in"[^}]*\} 0/.test(metrics)) {
        assert.ok(Date.now() < deadline, `no zero lag in:\n${metrics}`);
        metrics = await (await fetch(`${url}/metrics`)).text();
      }
      assert.match(metrics, /^# TYPE messages_consumed_total counter$/m);
      assert.match(metrics, /^pipeline_worker_restarts_total\{[^}]*stage="shout"[^}]*\} 0$/m);
      assert.equal((await fetch(`${url}/nothing`)).status, 404);
    } finally {
      await service.stop();
    }
    assert.equal(service.readiness.check().ready, false, "not ready once stopped");
    await assert.rejects(fetch(`${service.health!.url}/livez`));
    await transport.close();
  },
});
