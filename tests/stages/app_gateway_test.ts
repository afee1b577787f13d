/**
 * The pipeline command and the payment gateway: without `GATEWAY_URL` it starts the gateway
 * service in-process on a loopback port and charges it over HTTP; with `GATEWAY_URL` it charges
 * the service there. Either way the gateway's own ledger backs every paid order.
 *
 * @module
 */
import assert from "node:assert/strict";
import { main } from "../../stages/app.ts";
import { startGatewayService } from "../../stages/gateway_service.ts";
import { NO_NET } from "./_gateway.ts";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: { stdout: (l: string) => out.push(l), stderr: (l: string) => err.push(l) },
  };
}

const NO_OTEL = { OTEL_SDK_DISABLED: "true" };

Deno.test({
  name:
    "main() without GATEWAY_URL charges an in-process gateway over loopback HTTP and prints its ledger",
  ignore: NO_NET,
  async fn() {
    const { out, err, io } = capture();
    const code = await main(
      [
        "--max-orders",
        "150",
        "--rate",
        "0",
        "--gateway-latency-ms",
        "0",
        "--timeout-rate",
        "0.05",
        "--gateway-timeout-ms",
        "200",
        "--seed",
        "4",
      ],
      NO_OTEL,
      io,
    );
    assert.equal(code, 0, err.join("\n"));
    const { summary } = JSON.parse(out[0]);
    assert.match(err[0], /gateway http:\/\/127\.0\.0\.1:\d+ \(in-process\)/);
    const ledger = err.find((line) => line.startsWith("gateway ledger: "));
    assert.ok(ledger, err.join("\n"));
    const [, charges, held] = /: (\d+) charge\(s\).* (\d+) held past the timeout/.exec(ledger)!;
    assert.ok(Number(held) > 0, ledger);
    // Each paid order was charged once; a dead-lettered one at most once.
    assert.ok(Number(charges) >= summary.paid && Number(charges) <= 150, ledger);
  },
});

Deno.test({
  name: "main() with GATEWAY_URL charges that gateway: one charge per paid order in its ledger",
  ignore: NO_NET,
  async fn() {
    const gateway = await startGatewayService({ failureRate: 0 });
    try {
      const { out, err, io } = capture();
      const code = await main(
        ["--max-orders", "80", "--rate", "0", "--seed", "5"],
        { ...NO_OTEL, GATEWAY_URL: gateway.url },
        io,
      );
      assert.equal(code, 0, err.join("\n"));
      const { summary } = JSON.parse(out[0]);
      assert.equal(summary.paid, 80);
      const ledger = gateway.handler.ledger();
      assert.equal(Object.keys(ledger.ledger).length, 80);
      assert.ok(Object.values(ledger.ledger).every((charges) => charges.length === 1));
      assert.ok(!err.some((line) => line.startsWith("gateway ledger: ")), "not ours to report");
    } finally {
      await gateway.close();
    }
  },
});
