/**
 * `deno task bench:transactions`: what exactly-once writes cost on a real broker.
 *
 * For each transaction size (1, 100 and 1000 records by default) it writes records of about
 * 200 bytes through the kafkajs transport in transactions shaped like the runner's: one `send`
 * of the records, one `sendOffsets` of an input position, one `commit`, awaited one after the
 * other by a single producer. The same records are then written by the plain idempotent
 * producer, one awaited `send` per batch of the same size, as the baseline. Each phase stops
 * at `--records` records or `--seconds` seconds, whichever comes first, and reports records/s,
 * transactions/s and the commit latency. Topics get the run's timestamp in their names and are
 * deleted at the end.
 *
 * Not a test: it prints a table (and, with `--json`, one JSON document).
 *
 * @module
 */
import { parseArgs } from "node:util";
import kafkajs from "kafkajs";
import { dropTimeoutNegativeWarnings } from "../infra/kafka/kafkajs_warning.ts";
import { errorMessage } from "../pipeline/errors.ts";
import { createBrokerTransport, parseKafkaClient } from "../pipeline/transport/broker.ts";
import type { OutgoingRecord } from "../pipeline/transport/transport.ts";
import { describePercentiles, percentiles, round } from "./_stats.ts";
import type { Percentiles } from "./_stats.ts";

const USAGE = `Usage: deno task bench:transactions [options]

Measures transactional throughput on the broker in KAFKA_BROKERS (default 127.0.0.1:9092;
start one with 'deno task broker'): transactions of each size, then the plain idempotent
producer with batches of the same size. Not a test: prints a table.

Options:
  --sizes <list>    records per transaction, comma-separated      [default: 1,100,1000]
  --records <n>     most records per phase                        [default: 20000]
  --seconds <s>     most seconds per phase                        [default: 10]
  --partitions <n>  partitions of the output topic                [default: 3]
  --json            also print the results as one JSON document
  -h, --help        show this help`;

/** One phase's outcome. */
interface PhaseResult {
  /** `transactional` or `plain`. */
  readonly mode: "transactional" | "plain";
  /** Records per transaction (or per plain send). */
  readonly size: number;
  /** Records written. */
  readonly records: number;
  /** Wall time, in seconds. */
  readonly seconds: number;
  /** Records written per second. */
  readonly recordsPerSecond: number;
  /** Transactions (or plain sends) per second. */
  readonly batchesPerSecond: number;
  /** Time of one whole transaction (begin to commit) or one send, in milliseconds. */
  readonly batchMs: Percentiles;
  /** Time of the commit alone, in milliseconds (transactional only). */
  readonly commitMs?: Percentiles;
}

function positiveInteger(name: string, value: string): number {
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number < 1) {
    throw new Error(`Cannot run the benchmark as '--${name}' must be a positive integer: ${value}`);
  }
  return number;
}

function records(topic: string, size: number, start: number): OutgoingRecord[] {
  return Array.from({ length: size }, (_, i) => {
    const n = start + i;
    return {
      topic,
      key: `order-${n}`,
      value: JSON.stringify({
        order_id: `order-${n}`,
        customer_id: `customer-${n % 997}`,
        amount_cents: 1000 + (n % 5000),
        currency: "EUR",
        created_at: "2026-11-30T12:00:00.000Z",
        padding: "x".repeat(64),
      }),
    };
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      sizes: { type: "string", default: "1,100,1000" },
      records: { type: "string", default: "20000" },
      seconds: { type: "string", default: "10" },
      partitions: { type: "string", default: "3" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const sizes = values.sizes.split(",").map((size) => positiveInteger("sizes", size.trim()));
  const maxRecords = positiveInteger("records", values.records);
  const maxSeconds = positiveInteger("seconds", values.seconds);
  const partitions = positiveInteger("partitions", values.partitions);
  const brokers = Deno.env.get("KAFKA_BROKERS") ?? "127.0.0.1:9092";
  dropTimeoutNegativeWarnings();

  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const output = `bench-txn-out-${stamp}`;
  const input = `bench-txn-in-${stamp}`;
  const group = `bench-txn-${stamp}`;
  // KAFKA_CLIENT chooses the client, as for every command.
  const transport = await createBrokerTransport(brokers, {
    clientId: "transactions-bench",
    client: parseKafkaClient(Deno.env.get("KAFKA_CLIENT")),
  });
  const results: PhaseResult[] = [];
  try {
    await transport.ensureTopics([
      { name: output, partitions },
      { name: input, partitions: 1 },
    ]);
    console.log(
      `Transactional throughput on ${transport.target}: records of ~200 B to ${partitions} ` +
        `partitions, each phase at most ${maxRecords} records or ${maxSeconds} s`,
    );
    for (const size of sizes) {
      results.push(await transactionalPhase(transport, { output, input, group, size }));
      results.push(await plainPhase(transport, { output, size }));
    }
  } finally {
    await transport.close();
    await deleteTopics(brokers, [output, input]);
  }

  console.log("");
  console.log(
    "mode           size   records   records/s   batches/s   batch p50/p99 ms   commit p50/p99 ms",
  );
  for (const r of results) {
    console.log(
      [
        r.mode.padEnd(13),
        String(r.size).padStart(5),
        String(r.records).padStart(9),
        String(Math.round(r.recordsPerSecond)).padStart(11),
        String(round(r.batchesPerSecond, 1)).padStart(11),
        `${r.batchMs.p50} / ${r.batchMs.p99}`.padStart(18),
        (r.commitMs ? `${r.commitMs.p50} / ${r.commitMs.p99}` : "-").padStart(19),
      ].join(" "),
    );
  }
  if (values.json) console.log(JSON.stringify({ brokers, partitions, results }, null, 2));

  async function transactionalPhase(
    t: typeof transport,
    phase: { output: string; input: string; group: string; size: number },
  ): Promise<PhaseResult> {
    const producer = await t.transactionalProducer({
      transactionalId: `bench-txn-${stamp}-${phase.size}`,
    });
    const batchMs: number[] = [];
    const commitMs: number[] = [];
    let written = 0;
    const started = performance.now();
    const deadline = started + maxSeconds * 1000;
    try {
      while (written < maxRecords && performance.now() < deadline) {
        const batchStarted = performance.now();
        const transaction = await producer.begin();
        await transaction.send(records(phase.output, phase.size, written));
        await transaction.sendOffsets(phase.group, [
          { topic: phase.input, partition: 0, offset: written + phase.size },
        ]);
        const commitStarted = performance.now();
        await transaction.commit();
        const ended = performance.now();
        commitMs.push(ended - commitStarted);
        batchMs.push(ended - batchStarted);
        written += phase.size;
      }
    } finally {
      await producer.close();
    }
    const seconds = (performance.now() - started) / 1000;
    const result: PhaseResult = {
      mode: "transactional",
      size: phase.size,
      records: written,
      seconds: round(seconds),
      recordsPerSecond: round(written / seconds),
      batchesPerSecond: round(batchMs.length / seconds),
      batchMs: percentiles(batchMs),
      commitMs: percentiles(commitMs),
    };
    console.log(
      `transactions of ${phase.size}: ${Math.round(result.recordsPerSecond)} records/s, ` +
        `commit ${describePercentiles(result.commitMs!)}`,
    );
    return result;
  }

  async function plainPhase(
    t: typeof transport,
    phase: { output: string; size: number },
  ): Promise<PhaseResult> {
    const producer = await t.producer();
    const batchMs: number[] = [];
    let written = 0;
    const started = performance.now();
    const deadline = started + maxSeconds * 1000;
    try {
      while (written < maxRecords && performance.now() < deadline) {
        const batchStarted = performance.now();
        await producer.send(records(phase.output, phase.size, written));
        batchMs.push(performance.now() - batchStarted);
        written += phase.size;
      }
    } finally {
      await producer.close();
    }
    const seconds = (performance.now() - started) / 1000;
    const result: PhaseResult = {
      mode: "plain",
      size: phase.size,
      records: written,
      seconds: round(seconds),
      recordsPerSecond: round(written / seconds),
      batchesPerSecond: round(batchMs.length / seconds),
      batchMs: percentiles(batchMs),
    };
    console.log(
      `plain sends of ${phase.size}: ${Math.round(result.recordsPerSecond)} records/s, ` +
        `send ${describePercentiles(result.batchMs)}`,
    );
    return result;
  }
}

async function deleteTopics(brokers: string, topics: string[]): Promise<void> {
  const admin = new kafkajs.Kafka({
    brokers: brokers.split(","),
    clientId: "transactions-bench-cleanup",
    logLevel: kafkajs.logLevel.NOTHING,
  }).admin();
  try {
    await admin.connect();
    await admin.deleteTopics({ topics });
  } catch (error) {
    console.error(
      `Cannot delete the benchmark topics ${topics.join(", ")}: ${errorMessage(error)}`,
    );
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(errorMessage(error));
    Deno.exit(1);
  }
}
