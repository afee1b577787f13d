import assert from "node:assert/strict";
import { main as orders } from "../../stages/order_service.ts";
import { main as payments } from "../../stages/payment_service.ts";
import { parseConfig } from "../../pipeline/config.ts";
import { workerPipelineSpec } from "../../stages/_services.ts";
import { PAYMENTS_CONFIG } from "../../stages/config.ts";
import { createWorkerPipeline } from "../../stages/worker_pipeline.ts";
import type { WorkerPipelineOptions } from "../../stages/worker_pipeline.ts";
import { requires } from "../_permissions.ts";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: { stdout: (l: string) => out.push(l), stderr: (l: string) => err.push(l) },
  };
}

Deno.test({
  name: "orders --help lists the Order Service's settings and no payment ones",
}, async () => {
  const { out, io } = capture();
  assert.equal(await orders(["--help"], {}, io), 0);
  const help = out.join("\n");
  assert.match(help, /^Usage: deno task orders/);
  for (const option of ["--rate", "--max-orders", "KAFKA_BROKERS", "HEALTH_PORT", "HEALTH_HOST"]) {
    assert.ok(help.includes(option), option);
  }
  assert.ok(!help.includes("PAYMENT_FAILURE_RATE"));
});

Deno.test({
  name: "payments --help lists the Payment Service's settings and no generation ones",
}, async () => {
  const { out, io } = capture();
  assert.equal(await payments(["--help"], {}, io, new AbortController().signal), 0);
  const help = out.join("\n");
  assert.match(help, /^Usage: deno task payments/);
  for (
    const option of ["--workers", "GROUP_ID", "PAYMENT_FAILURE_RATE", "GATEWAY_URL", "HEALTH_PORT"]
  ) {
    assert.ok(help.includes(option), option);
  }
  assert.ok(!help.includes("--max-orders") && !help.includes("--rate"));
});

Deno.test({
  name: "orders --max-orders 50 publishes 50 on the embedded transport and prints its summary",
}, async () => {
  const { out, err, io } = capture();
  assert.equal(await orders(["--max-orders", "50", "--rate", "0"], {}, io), 0, err.join("\n"));
  const { summary } = JSON.parse(out[0]);
  assert.equal(summary.generated, 50);
  assert.equal(summary.published, 50);
  assert.equal(summary.consumed, 0);
});

Deno.test({
  name: "payments stops at its signal and reports what it consumed (nothing, here)",
  // The health endpoints and the in-process gateway service listen on loopback.
  ...requires("net"),
}, async () => {
  const { out, err, io } = capture();
  const stop = new AbortController();
  const running = payments(["--workers", "1", "--health-port", "0"], {}, io, stop.signal);
  const deadline = Date.now() + 10_000;
  while (!err.some((line) => line.startsWith("payment service on embedded"))) {
    assert.ok(Date.now() < deadline, err.join("\n"));
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  // Without GATEWAY_URL it starts the gateway service in-process and charges it over HTTP.
  assert.match(err.join("\n"), /, gateway http:\/\/127\.0\.0\.1:\d+ \(in-process\)/);
  stop.abort();
  assert.equal(await running, 0, err.join("\n"));
  assert.deepEqual(JSON.parse(out[0]).summary.consumed, 0);
  assert.match(err.at(-1)!, /^gateway ledger: 0 charge\(s\) for 0 request\(s\)/);
});

Deno.test({
  name: "payments with GATEWAY_URL charges that gateway and starts none of its own",
  ...requires("net"),
}, async () => {
  const { out, err, io } = capture();
  const stop = new AbortController();
  const url = "http://127.0.0.1:9";
  const running = payments(["--workers", "1"], { GATEWAY_URL: url }, io, stop.signal);
  const deadline = Date.now() + 10_000;
  while (!err.some((line) => line.startsWith("payment service on embedded"))) {
    assert.ok(Date.now() < deadline, err.join("\n"));
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.match(err.join("\n"), /, gateway http:\/\/127\.0\.0\.1:9(,|$)/m);
  stop.abort();
  assert.equal(await running, 0, err.join("\n"));
  assert.equal(JSON.parse(out[0]).summary.consumed, 0);
  assert.ok(!err.some((line) => line.startsWith("gateway ledger")), err.join("\n"));
});

Deno.test(
  { name: "payments returns 2 naming a bad HEALTH_PORT" },
  async () => {
    const { err, io } = capture();
    const code = await payments([], { HEALTH_PORT: "99999" }, io, new AbortController().signal);
    assert.equal(code, 2);
    assert.deepEqual(err, [
      `error: Cannot use HEALTH_PORT as it must be at most 65535: current value is "99999"`,
    ]);
  },
);

Deno.test({
  name: "payments takes STATE_RETENTION_MS to the payment stage of its workers' pipeline",
}, async () => {
  const { out, io } = capture();
  assert.equal(await payments(["--help"], {}, io, new AbortController().signal), 0);
  assert.ok(out.join("\n").includes("STATE_RETENTION_MS"));
  const { values } = parseConfig(PAYMENTS_CONFIG, {
    args: [],
    env: { STATE_RETENTION_MS: "60000" },
  });
  const spec = workerPipelineSpec(values, { concurrency: 1 });
  const pipeline = createWorkerPipeline(spec.options as WorkerPipelineOptions);
  assert.equal(pipeline.stage("process-payment").stateRetentionMs, 60_000);
});
