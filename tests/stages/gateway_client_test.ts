/**
 * The gateway's HTTP client against the real service on loopback: each answer of the gateway
 * becomes the error class the runtime decides by (retryable, declined, fatal).
 *
 * @module
 */
import assert from "node:assert/strict";
import { FatalError, isRetriable, RejectedError, RetryableError } from "../../pipeline/errors.ts";
import { createGatewayClient } from "../../stages/gateway_client.ts";
import { startGatewayService } from "../../stages/gateway_service.ts";
import type { GatewayServiceOptions } from "../../stages/gateway_service.ts";
import {
  failureDraw,
  GatewayRequestError,
  GatewayTimeoutError,
  GatewayUnavailableError,
  GatewayUnreachableError,
  PaymentDeclinedError,
} from "../../stages/payment_gateway.ts";
import type { ChargeRequest } from "../../stages/payment_gateway.ts";
import { NO_NET } from "./_gateway.ts";

function order(key: string, attempt = 1, amount = 10): ChargeRequest {
  return { idempotencyKey: key, amount, currency: "USD", attempt };
}

function loopbackTest(
  name: string,
  service: GatewayServiceOptions,
  fn: (url: string, service: Awaited<ReturnType<typeof startGatewayService>>) => Promise<void>,
): void {
  Deno.test({
    name,
    ignore: NO_NET,
    async fn() {
      const running = await startGatewayService(service);
      try {
        await fn(running.url, running);
      } finally {
        await running.close();
      }
    },
  });
}

loopbackTest(
  "client gets the first charge again for a repeated key",
  { failureRate: 0 },
  async (url) => {
    const client = createGatewayClient(url);
    const other = createGatewayClient(url);
    const first = await client.charge(order("o-1"));
    const again = await other.charge(order("o-1", 2));
    assert.equal(first.replayed, false);
    assert.equal(again.replayed, true);
    assert.equal(again.paymentId, first.paymentId);
    assert.equal(client.charges, 1);
    assert.equal(other.replays, 1);
  },
);

loopbackTest(
  "client turns a 503 into a retryable GatewayUnavailableError",
  { failureRate: 1 },
  async (url) => {
    const error = await createGatewayClient(url).charge(order("o-1")).catch((e) => e);
    assert.ok(error instanceof GatewayUnavailableError);
    assert.ok(error instanceof RetryableError);
    assert.equal(error.status, 503);
    assert.equal(isRetriable(error), true);
    assert.match(error.message, /answered 503 for "o-1" on attempt 1/);
  },
);

loopbackTest(
  "client abandons an attempt after its timeout as a retryable GatewayTimeoutError",
  { failureRate: 0, timeoutRate: 1, holdMs: 600_000 },
  async (url, service) => {
    const started = performance.now();
    const error = await createGatewayClient(url, { timeoutMs: 200 }).charge(order("o-1")).catch((
      e,
    ) => e);
    const took = performance.now() - started;
    assert.ok(error instanceof GatewayTimeoutError, String(error));
    assert.equal(isRetriable(error), true);
    assert.ok(took >= 190 && took < 5000, `abandoned after about 200 ms: ${took}`);
    // The charge was made; its answer was lost. The ledger knows.
    assert.equal(service.handler.ledger().ledger["o-1"].length, 1);
  },
);

loopbackTest("client retry after a timeout returns the charge the timed-out attempt made", {
  failureRate: 0,
  timeoutRate: 0.5,
  holdMs: 600_000,
  seed: 11,
}, async (url, service) => {
  let key = "";
  for (let i = 0; key === ""; i++) {
    const k = `o-${i}`;
    if (failureDraw(11, `timeout:${k}`, 1) < 0.5 && failureDraw(11, `timeout:${k}`, 2) >= 0.5) {
      key = k;
    }
  }
  const client = createGatewayClient(url, { timeoutMs: 200 });
  await assert.rejects(client.charge(order(key, 1)), GatewayTimeoutError);
  const retried = await client.charge(order(key, 2));
  assert.equal(retried.replayed, true);
  assert.equal(retried.paymentId, service.handler.ledger().ledger[key][0].payment_id);
  assert.equal(service.handler.ledger().ledger[key].length, 1);
});

loopbackTest("client turns a 402 into a PaymentDeclinedError, a rejection", {
  failureRate: 0,
  declineAbove: 100,
}, async (url) => {
  const error = await createGatewayClient(url).charge(order("o-1", 1, 500)).catch((e) => e);
  assert.ok(error instanceof PaymentDeclinedError);
  assert.ok(error instanceof RejectedError);
  assert.equal(isRetriable(error), false);
  assert.equal(error.status, 402);
  assert.match(error.message, /above the limit 100/);
});

loopbackTest(
  "client turns another 4xx into a fatal GatewayRequestError",
  { failureRate: 0 },
  async (url) => {
    const client = createGatewayClient(url);
    await client.charge(order("o-1", 1, 10));
    const reused = await client.charge(order("o-1", 2, 11)).catch((e) => e);
    assert.ok(reused instanceof GatewayRequestError);
    assert.ok(reused instanceof FatalError);
    assert.equal(isRetriable(reused), false);
    assert.equal(reused.status, 422);
    const malformed = await client.charge({ ...order("o-2"), currency: "dollars" }).catch((e) => e);
    assert.ok(malformed instanceof GatewayRequestError);
    assert.equal(malformed.status, 400);
  },
);

Deno.test({
  name: "client turns a refused connection into a retryable GatewayUnreachableError",
  ignore: NO_NET,
  async fn() {
    const gone = await startGatewayService({ failureRate: 0 });
    await gone.close();
    const error = await createGatewayClient(gone.url).charge(order("o-1")).catch((e) => e);
    assert.ok(error instanceof GatewayUnreachableError, String(error));
    assert.equal(isRetriable(error), true);
    assert.match(error.message, /Cannot reach the payment gateway/);
  },
});

loopbackTest("client rethrows its caller's abort, not a gateway error", {
  failureRate: 0,
  latencyMs: 10_000,
}, async (url, service) => {
  const caller = new AbortController();
  const charging = createGatewayClient(url, { timeoutMs: 60_000 }).charge(
    order("o-1"),
    caller.signal,
  );
  const reason = new Error("draining");
  caller.abort(reason);
  await assert.rejects(charging, (error) => error === reason);
  service.handler.releaseHeld();
});

Deno.test("client refuses a timeout that is not a positive integer", () => {
  assert.throws(
    () => createGatewayClient("http://127.0.0.1:1", { timeoutMs: 0 }),
    /'timeoutMs' must be a positive integer: current value is 0/,
  );
});
