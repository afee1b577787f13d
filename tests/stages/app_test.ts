import assert from "node:assert/strict";
import { KAFKA_SECURITY_CONFIG } from "../../pipeline/transport/kafka/security.ts";
import { main, parseOrdersConfig, runOrdersApp } from "../../stages/app.ts";
import { createOrderGenerator } from "../../stages/generate_order.ts";
import { createEmbeddedTransport } from "../../pipeline/transport/embedded/mod.ts";
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
  // The Kafka security variables, which every Kafka command reads, are listed too.
  assert.match(help, /\nKafka security \(environment variables[^\n]*:\n/);
  for (const variable of Object.values(KAFKA_SECURITY_CONFIG).map((s) => s.env!)) {
    assert.ok(help.includes(`  ${variable}\n`), variable);
  }
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

Deno.test(
  "runOrdersApp() with 1000 foreign orders waiting counts all it consumed, never a negative in flight",
  // The payment stage charges the in-process gateway over loopback HTTP.
  requires("net"),
  async () => {
    // Orders another service published before this run (e.g. the reference's Python Order
    // Service): the run pays them too, and its counts must say so.
    const transport = createEmbeddedTransport();
    await transport.ensureTopics([{ name: "orders", partitions: 3 }]);
    const producer = await transport.producer();
    const next = createOrderGenerator({ seed: 99 });
    const foreign = Array.from({ length: 1000 }, next);
    await producer.send(
      foreign.map((order) => ({
        topic: "orders",
        key: order.order_id,
        value: JSON.stringify(order),
      })),
    );
    await producer.close();
    const { err, io } = capture();
    const config = parseOrdersConfig(
      ["--max-orders", "10", "--rate", "0", "--gateway-latency-ms", "0", "--failure-rate", "0"],
      {},
      io,
    )!;
    const summary = await runOrdersApp(config, { io, transport, progressEveryMs: 20, env: {} });
    await transport.close();
    assert.equal(summary.generated, 10);
    assert.equal(summary.published, 10);
    assert.equal(summary.consumed, 1010);
    assert.equal(summary.paid, 1010);
    const inFlight = err.flatMap((line) => {
      const match = /in flight (-?\d+|\?)/.exec(line);
      return match === null || match[1] === "?" ? [] : [Number(match[1])];
    });
    assert.ok(inFlight.length > 0, err.join("\n"));
    assert.ok(inFlight.every((n) => n >= 0), `in flight went negative: ${inFlight.join(", ")}`);
    // The last progress line comes just before the gateway's ledger line.
    const last = err.findLast((line) => / generated \d+ \|/.test(line));
    assert.equal(inFlight.at(-1), 0, last);
    assert.match(last!, /generated 10 \| paid 1010 \| .* consumed 1010 \| in flight 0 \|/);
    assert.match(err.at(-1)!, /^gateway ledger: 1010 charge\(s\) for /);
  },
);

Deno.test("main() names the choices of an unknown PROCESSING_GUARANTEE", async () => {
  const { err, io } = capture();
  assert.equal(await main([], { PROCESSING_GUARANTEE: "at_most_once" }, io), 2);
  assert.deepEqual(err, [
    `error: Cannot use PROCESSING_GUARANTEE as it must be one of "at_least_once", "exactly_once": current value is "at_most_once"`,
  ]);
});
