import assert from "node:assert/strict";
import { main } from "../../stages/app.ts";
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

Deno.test(
  "main() runs 200 orders on the embedded transport and prints one JSON summary",
  requires("net"),
  async () => {
    const { out, err, io } = capture();
    const code = await main(
      ["--max-orders", "200", "--rate", "0", "--gateway-latency-ms", "0"],
      {},
      io,
    );
    assert.equal(code, 0, err.join("\n"));
    assert.equal(out.length, 1);
    const { summary } = JSON.parse(out[0]);
    assert.equal(summary.generated, 200);
    assert.equal(summary.published, 200);
    assert.equal(summary.paid + summary.dead_lettered, 200);
    assert.ok(summary.retries > 0);
    assert.equal(summary.duplicates_skipped, 0);
  },
);

Deno.test("main() prints the options for --help and returns 0", async () => {
  const { out, io } = capture();
  assert.equal(await main(["--help"], {}, io), 0);
  const help = out.join("\n");
  for (
    const option of ["--max-orders", "--failure-rate", "PAYMENT_FAILURE_RATE", "KAFKA_BROKERS"]
  ) {
    assert.ok(help.includes(option), option);
  }
  assert.match(help, /^Usage: deno task pipeline/);
});

Deno.test("main() returns 2 naming the variable for PAYMENT_FAILURE_RATE=2", async () => {
  const { out, err, io } = capture();
  assert.equal(await main([], { PAYMENT_FAILURE_RATE: "2" }, io), 2);
  assert.deepEqual(out, []);
  assert.deepEqual(err, [
    `error: Cannot use PAYMENT_FAILURE_RATE as it must be at most 1: current value is "2"`,
  ]);
});

Deno.test("main() returns 2 naming an unknown flag", async () => {
  const { err, io } = capture();
  assert.equal(await main(["--max-order", "5"], {}, io), 2);
  assert.deepEqual(err, [
    `error: Cannot use argument "--max-order" as it is not a known flag: see --help`,
  ]);
});

Deno.test("main() refuses PROCESSING_GUARANTEE=exactly_once with retry tiers before it starts anything", async () => {
  for (
    const [args, env] of [
      [["--guarantee", "exactly_once", "--retry", "tiered", "--max-orders", "1"], {}],
      [["--max-orders", "1"], { PROCESSING_GUARANTEE: "exactly_once", RETRY_POLICY: "tiered" }],
    ] as const
  ) {
    const { out, err, io } = capture();
    assert.equal(await main([...args], { ...env }, io), 2);
    assert.deepEqual(out, []);
    assert.equal(err.length, 1, err.join("\n"));
    assert.match(
      err[0],
      /^error: Cannot run stage "process-payment" with 'PROCESSING_GUARANTEE' "exactly_once" as it has retry tiers \(orders\.retry\.1, orders\.retry\.2\)/,
    );
  }
});

Deno.test("main() names the choices of an unknown PROCESSING_GUARANTEE", async () => {
  const { err, io } = capture();
  assert.equal(await main([], { PROCESSING_GUARANTEE: "at_most_once" }, io), 2);
  assert.deepEqual(err, [
    `error: Cannot use PROCESSING_GUARANTEE as it must be one of "at_least_once", "exactly_once": current value is "at_most_once"`,
  ]);
});
