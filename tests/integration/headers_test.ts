/**
 * Trace context survives every hop on a real broker: an order written by kcat with a
 * `traceparent` (and `tracestate`) header, paid by a gateway that always fails, under the
 * tiered retry policy, keeps both headers through `orders.retry.1`, `orders.retry.2` and into
 * the DLQ record's own headers and its envelope's `headers`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DeadLetterEnvelopeSchema } from "../../pipeline/dead_letter.ts";
import { HEADER } from "../../pipeline/headers.ts";
import { retryTopicName } from "../../pipeline/retry.ts";
import { loadKafkaTransport } from "../_broker.ts";
import { retryPreset } from "../../stages/config.ts";
import { createWorkerPipeline } from "../../stages/worker_pipeline.ts";
import {
  integrationTest,
  pipelineEnv,
  pipelineNames,
  produceWithKcat,
  readTopic,
  spawnPipeline,
  uniqueNames,
} from "./_integration.ts";

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACESTATE = "vendor=integration";
/** Attempts in place per tier of the tiered preset (the main topic and two retry topics). */
const ATTEMPTS_PER_TIER = 3;

await integrationTest(
  "traceparent travels through the retry topics into the DLQ record and its envelope",
  async (brokers, kcat) => {
    const names = uniqueNames("headers");
    const retry = retryPreset("tiered");
    const pipeline = createWorkerPipeline({
      ...pipelineNames(names),
      retry,
    });
    const { createKafkaTransport } = await loadKafkaTransport();
    const admin = createKafkaTransport(brokers, { logger: () => {} });
    try {
      await admin.ensureTopics(pipeline.topics);
    } finally {
      await admin.close();
    }
    const orderId = crypto.randomUUID();
    await produceWithKcat(kcat, brokers, names.orders, {
      key: orderId,
      value: JSON.stringify({
        event_type: "OrderPlaced",
        event_version: 1,
        order_id: orderId,
        user_id: "user-7",
        amount: 42,
        currency: "USD",
        created_at: new Date().toISOString(),
      }),
      headers: { traceparent: TRACEPARENT, tracestate: TRACESTATE },
    });

    // Generates nothing itself; drains the order written above through every tier.
    const run = spawnPipeline([
      "--max-orders",
      "0",
      "--retry",
      "tiered",
      "--failure-rate",
      "1",
      "--gateway-latency-ms",
      "0",
    ], pipelineEnv(brokers, names));
    try {
      const summary = await run.succeeded(90_000);
      assert.equal(summary.paid, 0);
      assert.equal(summary.dead_lettered, 1, JSON.stringify(summary));
    } finally {
      await run.stop();
    }

    assert.equal(retry.tiers.length, 2, "the tiered preset has two retry topics");
    for (let tier = 1; tier <= retry.tiers.length; tier++) {
      const topic = retryTopicName(names.orders, tier);
      const records = await readTopic(kcat, brokers, topic);
      assert.equal(records.length, 1, `one record in ${topic}`);
      const [record] = records;
      assert.equal(record.key, orderId, `${topic}: key`);
      assert.equal(record.headers.traceparent, TRACEPARENT, `${topic}: traceparent`);
      assert.equal(record.headers.tracestate, TRACESTATE, `${topic}: tracestate`);
      assert.equal(record.headers[HEADER.RETRY_TIER], String(tier), `${topic}: tier header`);
      assert.equal(record.headers[HEADER.ORIGINAL_TOPIC], names.orders, `${topic}: origin`);
      assert.equal(
        record.headers[HEADER.ATTEMPTS],
        String(tier * ATTEMPTS_PER_TIER),
        `${topic}: attempts so far`,
      );
    }

    const dlq = await readTopic(kcat, brokers, names.dlq);
    assert.equal(dlq.length, 1, "one dead letter");
    const [letter] = dlq;
    assert.equal(letter.key, orderId);
    assert.equal(letter.headers.traceparent, TRACEPARENT, "DLQ record header traceparent");
    assert.equal(letter.headers.tracestate, TRACESTATE, "DLQ record header tracestate");
    assert.equal(letter.headers[HEADER.ERROR_TYPE], "GatewayUnavailableError");
    const envelope = DeadLetterEnvelopeSchema.parse(JSON.parse(letter.payload ?? "null"));
    assert.equal(envelope.headers.traceparent, TRACEPARENT, "envelope headers.traceparent");
    assert.equal(envelope.headers.tracestate, TRACESTATE, "envelope headers.tracestate");
    assert.equal(envelope.original_topic, names.orders, "envelope points at the orders topic");
    assert.equal(envelope.error_type, "GatewayUnavailableError");
    assert.equal(envelope.attempts, (retry.tiers.length + 1) * ATTEMPTS_PER_TIER);
    assert.equal(envelope.key, orderId);
    assert.equal((await readTopic(kcat, brokers, names.payments)).length, 0, "nothing paid");
  },
);
