/**
 * The pipeline command on a real broker, its payment workers charging a gateway service the
 * test runs (`GATEWAY_URL`) with 503s and held requests: the gateway's ledger, a witness
 * outside the pipeline, shows every PaymentProcessed on the payments topic (read by kcat)
 * backed by exactly one charge, with the same payment id.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startGatewayService } from "../../stages/gateway_service.ts";
import {
  integrationTest,
  pipelineEnv,
  readTopic,
  spawnPipeline,
  uniqueNames,
} from "./_integration.ts";

const ORDERS = 300;

await integrationTest(
  "workers charging the gateway over HTTP: the ledger shows each paid order charged once",
  async (brokers, kcat) => {
    const names = uniqueNames("gateway");
    const gateway = await startGatewayService({
      failureRate: 0.2,
      timeoutRate: 0.03,
      holdMs: 5000,
      seed: 9,
    });
    const run = spawnPipeline([
      "--max-orders",
      String(ORDERS),
      "--rate",
      "0",
      "--workers",
      "2",
      "--gateway-timeout-ms",
      "400",
    ], { ...pipelineEnv(brokers, names), GATEWAY_URL: gateway.url });
    try {
      const summary = await run.succeeded(150_000);
      assert.equal(summary.paid + summary.dead_lettered, ORDERS, JSON.stringify(summary));
      const ledger = gateway.handler.ledger();
      assert.ok(ledger.unavailable > 0, "the gateway answered 503s");
      assert.ok(ledger.timeouts > 0, "the gateway held requests past the workers' timeout");
      const payments = await readTopic(kcat, brokers, names.payments);
      assert.equal(payments.length, summary.paid);
      for (const record of payments) {
        const payment = JSON.parse(record.payload!) as { order_id: string; payment_id: string };
        const charges = ledger.ledger[payment.order_id] ?? [];
        assert.equal(charges.length, 1, `order ${payment.order_id}: ${charges.length} charges`);
        assert.equal(charges[0].payment_id, payment.payment_id);
      }
      for (const charges of Object.values(ledger.ledger)) assert.equal(charges.length, 1);
    } finally {
      await run.stop();
      await gateway.close();
    }
  },
);
