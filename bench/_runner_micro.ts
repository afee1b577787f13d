/**
 * A micro-benchmark of the per-record path without a broker: the payment stage's record handler
 * over `--records` orders, sends acknowledged at once by an in-memory producer behind the
 * batching producer. Prints CPU µs per record (best and median of `--rounds`).
 *
 * Usage: `deno run -A bench/_runner_micro.ts [--records 50000] [--rounds 5]`
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { batchingProducer } from "../pipeline/batching_producer.ts";
import { systemClock } from "../pipeline/clock.ts";
import { createRecordHandler } from "../pipeline/runner.ts";
import { createStageState } from "../pipeline/state_store.ts";
import { createEmbeddedTransport } from "../pipeline/transport/embedded/mod.ts";
import type { ConsumedRecord, Producer, RecordAck } from "../pipeline/transport/transport.ts";
import { createOrdersPipeline } from "../stages/orders_pipeline.ts";
import { createPaymentGateway } from "../stages/payment_gateway.ts";
import { PROCESS_PAYMENT } from "../stages/process_payment.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    records: { type: "string", default: "50000" },
    rounds: { type: "string", default: "5" },
  },
});
const records = Number(values.records);
const rounds = Number(values.rounds);
const pipeline = createOrdersPipeline({ gateway: createPaymentGateway({ failureRate: 0 }) });
const node = pipeline.stage(PROCESS_PAYMENT);
const transport = createEmbeddedTransport();
await transport.ensureTopics(pipeline.topics);
const state = createStageState(transport, { changelog: node.changelog! });
await state.listener.assigned(
  [0, 1, 2].map((partition) => ({ topic: node.input, partition })),
  new AbortController().signal,
);
const acking: Producer = {
  send: (batch) => Promise.resolve(batch.map((r) => ({ topic: r.topic, partition: 0, offset: 0 }))),
  close: () => Promise.resolve(),
};
const producer = batchingProducer(acking, { lingerMs: 2 });
const handler = createRecordHandler(node, {
  producer,
  group: "g",
  clock: systemClock,
  random: Math.random,
  state,
});
const encoder = new TextEncoder();
const context = { signal: new AbortController().signal, heartbeat: () => Promise.resolve() };
let next = 0;
function order(): ConsumedRecord {
  const i = next++;
  const id = `ord_${String(i).padStart(10, "0")}`;
  return {
    topic: node.input,
    partition: i % 3,
    offset: i,
    key: encoder.encode(id),
    value: encoder.encode(JSON.stringify({
      event_type: "OrderPlaced",
      event_version: 1,
      order_id: id,
      user_id: `user_${i % 1000}`,
      amount: 10 + (i % 500),
      currency: "USD",
      created_at: new Date(1_780_000_000_000 + i).toISOString(),
    })),
    headers: {},
    timestamp: Date.now(),
  };
}
const results: number[] = [];
for (let round = 0; round < rounds; round++) {
  const input = Array.from({ length: records }, order);
  const before = process.cpuUsage();
  let pending: Promise<void>[] = [];
  for (const record of input) {
    const ack = (await handler(record, context)) as RecordAck;
    pending.push(ack.durable);
    if (pending.length >= 1000) {
      await Promise.all(pending);
      pending = [];
    }
  }
  await Promise.all(pending);
  const used = process.cpuUsage(before);
  results.push((used.user + used.system) / records);
}
await producer.close();
const sorted = [...results].sort((a, b) => a - b);
console.log(JSON.stringify({
  records,
  rounds: results.map((r) => Number(r.toFixed(2))),
  best: Number(sorted[0].toFixed(2)),
  median: Number(sorted[Math.floor(sorted.length / 2)].toFixed(2)),
}));
Deno.exit(0);
