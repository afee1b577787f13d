/**
 * The orders pipeline charging the real gateway service over HTTP on loopback, with 503s and
 * held requests: the gateway's ledger, an independent witness, shows every paid order charged
 * once, also when a second pipeline (another caller, with no memory of the first) pays the same
 * orders again.
 *
 * @module
 */
import assert from "node:assert/strict";
import { retryPolicy } from "../../pipeline/retry.ts";
import type { OrderPlaced, PaymentProcessed } from "../../stages/events.ts";
import { createGatewayClient } from "../../stages/gateway_client.ts";
import { startGatewayService } from "../../stages/gateway_service.ts";
import type { Ledger } from "../../stages/gateway_service.ts";
import { GATEWAY_PATH } from "../../stages/gateway_service.ts";
import { createOrderGenerator } from "../../stages/generate_order.ts";
import { envelopes, json } from "../_fixtures.ts";
import { NO_NET } from "./_gateway.ts";
import { withOrders } from "./_orders.ts";

const ORDERS = 300;

function orders(count: number, seed: number): OrderPlaced[] {
  const next = createOrderGenerator({ seed, now: () => Date.UTC(2025, 0, 1) });
  return Array.from({ length: count }, next);
}

Deno.test({
  name: "orders pipeline over the HTTP gateway: the ledger shows each paid order charged once",
  ignore: NO_NET,
  async fn() {
    const service = await startGatewayService({
      failureRate: 0.2,
      timeoutRate: 0.05,
      holdMs: 60_000,
      seed: 5,
    });
    try {
      const batch = orders(ORDERS, 5);
      const retry = retryPolicy({ attempts: 3, initialDelayMs: 10, maxDelayMs: 10 });
      const run = async () => {
        const paid = new Map<string, string>();
        let dead: string[] = [];
        const gateway = createGatewayClient(service.url, { timeoutMs: 300 });
        await withOrders({ gateway, concurrency: 3, retry, seed: 5 }, async (run) => {
          await run.publish(batch);
          await run.drain();
          for (const record of run.transport.records("payments")) {
            const payment = json<PaymentProcessed>(record);
            assert.ok(!paid.has(payment.order_id), `${payment.order_id} paid once per run`);
            paid.set(payment.order_id, payment.payment_id);
          }
          dead = envelopes(run.transport, "orders.dlq").map((e) => e.key!);
        });
        return { paid, dead, gateway };
      };
      const first = await run();
      assert.equal(first.paid.size + first.dead.length, ORDERS, "every order has an outcome");
      assert.ok(first.paid.size > ORDERS * 0.9, `most orders paid: ${first.paid.size}`);

      // A second caller knows nothing of the first run and pays every order again.
      const second = await run();

      const ledger: Ledger = await (await fetch(new URL(GATEWAY_PATH.LEDGER, service.url))).json();
      assert.ok(ledger.unavailable > 0, "the gateway answered 503s");
      assert.ok(ledger.timeouts > 0, "the gateway held requests past the client's timeout");
      for (const [orderId, paymentId] of [...first.paid, ...second.paid]) {
        const charges = ledger.ledger[orderId] ?? [];
        assert.equal(charges.length, 1, `order ${orderId} charged once: ${charges.length}`);
        assert.equal(charges[0].payment_id, paymentId, `${orderId} paid by its one charge`);
      }
      const ordered = new Set(batch.map((o) => o.order_id));
      for (const key of Object.keys(ledger.ledger)) assert.ok(ordered.has(key), key);
      // Charges the pipeline dead-lettered after a lost answer are charges too: the ledger
      // counts each key once however often it was asked.
      assert.equal(ledger.charges, Object.keys(ledger.ledger).length);
      assert.ok(second.gateway.replays > 0, "the second caller got earlier charges back");
      assert.equal(second.gateway.charges + second.gateway.replays, second.paid.size);
    } finally {
      await service.close();
    }
  },
});
