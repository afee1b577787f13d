/**
 * The client comparison of `deno task bench`: the payment stage's job over the same orders,
 * run many ways, each in its own process (so CPU time and peak RSS are its own): a raw loop on
 * kafkajs and on @platformatic/kafka, and the pipeline on each client, in process (1 member)
 * and in 1 and 2 Deno workers, under at_least_once and exactly_once (see
 * `_client_variant.ts`). Each reads the same input topic with its own group and writes its own
 * output topic.
 *
 * @module
 */
import kafkajs from "kafkajs";
import { type VariantName, type VariantResult, VARIANTS } from "./_client_variant.ts";
import { runBenchChild } from "./_child.ts";
import { changelogTopicName } from "../pipeline/definition.ts";
import { PROCESS_PAYMENT } from "../stages/process_payment.ts";

/** Options for {@linkcode compareClients}. */
export interface CompareClientsOptions {
  /** Bootstrap brokers, `host:port` each. */
  readonly brokers: readonly string[];
  /** The orders, encoded: key and JSON value. */
  readonly records: readonly { key: string; value: string }[];
  /** Partitions of every topic. */
  readonly partitions: number;
  /** Names end in this. */
  readonly suffix: string;
  /** Give up on a variant after this long, in ms. */
  readonly timeoutMs: number;
  /** Receives every topic created, for cleanup. */
  readonly topicsUsed: string[];
  /** Progress lines. */
  readonly say: (line: string) => void;
  /**
   * The variants to run, in this order.
   * @default VARIANTS (every one)
   */
  readonly variants?: readonly VariantName[];
  /**
   * CPU-burning rounds per record in every variant (`_burn_pipeline.ts`).
   * @default 0
   */
  readonly burnRounds?: number;
}

/** One variant's result and its ratio to the fastest raw loop. */
export interface ClientRow extends VariantResult {
  /** records/s over the fastest raw loop's records/s. */
  readonly ratioToFastestRaw: number;
}

/** The output topic (and consumer group) of a variant. */
function outputOf(variant: VariantName, suffix: string): string {
  return `bench-clients-${variant}-${suffix}`;
}

/** Writes the orders to a fresh input topic and creates the outputs (not timed). */
async function writeInput(options: CompareClientsOptions, topic: string): Promise<void> {
  const kafka = new kafkajs.Kafka({
    brokers: [...options.brokers],
    clientId: "bench-clients-input",
    logLevel: kafkajs.logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [topic, ...variantsOf(options).map((variant) => outputOf(variant, options.suffix))]
        .map(
          (name) => ({ topic: name, numPartitions: options.partitions, replicationFactor: 1 }),
        ),
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    for (let at = 0; at < options.records.length; at += 500) {
      await producer.send({ topic, acks: -1, messages: options.records.slice(at, at + 500) });
    }
  } finally {
    await producer.disconnect();
  }
}

async function runChild(
  variant: VariantName,
  options: CompareClientsOptions,
  input: string,
): Promise<VariantResult> {
  const name = outputOf(variant, options.suffix);
  const script = new URL("./_client_variant.ts", import.meta.url);
  return await runBenchChild<VariantResult>(
    script,
    [
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-sys",
    ],
    [
      "--variant",
      variant,
      "--brokers",
      options.brokers.join(","),
      "--input",
      input,
      "--output",
      name,
      "--group",
      name,
      "--records",
      String(options.records.length),
      "--partitions",
      String(options.partitions),
      "--timeout-ms",
      String(options.timeoutMs),
      "--burn-rounds",
      String(options.burnRounds ?? 0),
    ],
    `bench variant "${variant}"`,
  );
}

function variantsOf(options: CompareClientsOptions): readonly VariantName[] {
  return options.variants ?? VARIANTS;
}

/** Runs the variants one after another and ranks them against the fastest raw loop. */
export async function compareClients(options: CompareClientsOptions): Promise<ClientRow[]> {
  const input = `bench-clients-in-${options.suffix}`;
  options.topicsUsed.push(input);
  for (const variant of variantsOf(options)) {
    const output = outputOf(variant, options.suffix);
    // The pipeline variants' group is named after their output, and so is its changelog.
    options.topicsUsed.push(output, `${output}-dlq`, changelogTopicName(output, PROCESS_PAYMENT));
  }
  await writeInput(options, input);
  const results: VariantResult[] = [];
  for (const variant of variantsOf(options)) {
    options.say(`clients: ${variant} over ${options.records.length} orders ...`);
    results.push(await runChild(variant, options, input));
  }
  // Without a raw loop in the run, the fastest variant is the reference.
  const raw = results.filter((r) => r.variant.startsWith("raw-"));
  const fastestRaw = Math.max(...(raw.length > 0 ? raw : results).map((r) => r.recordsPerSecond));
  return results.map((result) => ({
    ...result,
    ratioToFastestRaw: Math.round((result.recordsPerSecond / fastestRaw) * 1000) / 1000,
  }));
}

/** The comparison as aligned text lines. */
export function describeClients(rows: readonly ClientRow[]): string[] {
  const pad = (text: string | number, width: number, right = true) =>
    right ? String(text).padStart(width) : String(text).padEnd(width);
  return [
    `${pad("variant", 24, false)}${pad("records/s", 11)}${pad("CPU µs/rec", 12)}${
      pad("peak RSS MiB", 14)
    }${pad("x fastest raw", 15)}`,
    ...rows.map((row) =>
      `${pad(row.variant, 24, false)}${pad(row.recordsPerSecond, 11)}${
        pad(row.cpuUsPerRecord.toFixed(1), 12)
      }${pad(row.peakRssMiB, 14)}${pad(row.ratioToFastestRaw.toFixed(3), 15)}`
    ),
  ];
}
