/**
 * `deno task bench`: how much the pipeline costs over raw kafkajs, and its end-to-end latency.
 *
 * Against the broker in `KAFKA_BROKERS` (default `127.0.0.1:9092`), in one run:
 * 1. latency (unless `--skip-latency`), first, on a broker and a process no throughput run has
 *    loaded yet: orders offered at a fixed rate, from `created_at` to the payment's outcome
 *    being durable and to its offset being committed (p50/p95/p99);
 *    then the Kafka clients side by side (unless `--skip-clients`): the payment stage's job over
 *    the same N orders as a raw kafkajs loop, a raw @platformatic/kafka loop, and the pipeline
 *    on each client, each in its own process: records/s, CPU µs per record, peak RSS, and the
 *    ratio to the fastest raw loop (`_clients.ts`; its topics are deleted right after it);
 * 2. raw kafkajs: produce N order records and consume them all in a group (records/s);
 * 3. the orders pipeline (failure rate 0, zero-latency gateway) on the same N records:
 *    publish, pay, emit, commit, until drained (records/s), and the ratio pipeline/raw;
 * 4. the same pipeline on the embedded transport (records/s), unless `--skip-embedded`.
 * Every phase uses fresh topics and groups (names end in the run's timestamp), deleted at the
 * end unless `--keep-topics`. Results go to `bench/results/<date>-<broker>.json` and one line
 * is appended to `bench/results/README.md`.
 *
 * `--scaling` and `--soak` run only their own bench instead (`_scaling.ts`, `_soak.ts`); the
 * latency phase is judged against issue 10's targets (`_latency_targets.ts`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import kafkajs from "kafkajs";
import { dropTimeoutNegativeWarnings } from "../infra/kafka/kafkajs_warning.ts";
import { errorMessage, PipelineError } from "../pipeline/errors.ts";
import { createPublisher } from "../pipeline/publisher.ts";
import { startPipeline, waitUntilDrained } from "../pipeline/run.ts";
import type { RunningPipeline } from "../pipeline/run.ts";
import type { StageOutcome } from "../pipeline/runner.ts";
import type { TopicSpec, Transport } from "../pipeline/transport/transport.ts";
import { createEmbeddedTransport } from "../pipeline/transport/embedded/mod.ts";
import {
  createBrokerTransport,
  type KafkaClientName,
  parseKafkaClient,
} from "../pipeline/transport/broker.ts";
import type { OrderPlaced } from "../stages/events.ts";
import { createOrderGenerator } from "../stages/generate_order.ts";
import { createOrdersPipeline, PUBLISH_ORDER } from "../stages/orders_pipeline.ts";
import { createPaymentGateway } from "../stages/payment_gateway.ts";
import { type ClientRow, compareClients, describeClients } from "./_clients.ts";
import {
  describeTargets,
  judgeLatency,
  TARGET_RATE,
  type TargetVerdict,
} from "./_latency_targets.ts";
import { reportTargets } from "./_targets.ts";
import { type VariantName, VARIANTS } from "./_client_variant.ts";
import { profileTransport } from "./_profiled_transport.ts";
import { scalingMode } from "./_scaling.ts";
import { SOAK_RATE, soakMode } from "./_soak.ts";
import type { TransportProfile } from "./_profiled_transport.ts";
import { rawKafkaSecurity, runRawBaseline, runRawTransform } from "./_raw_kafkajs.ts";
import type { RawBaselineResult } from "./_raw_kafkajs.ts";
import { describePercentiles, percentiles, round } from "./_stats.ts";
import type { Percentiles } from "./_stats.ts";

const USAGE = `Usage: deno task bench [options]

Benchmarks the orders pipeline against raw kafkajs on the broker in KAFKA_BROKERS
(default 127.0.0.1:9092; start one with 'deno task broker'). The pipeline phases 1 to 4 run
on the client KAFKA_CLIENT names (kafkajs by default); phase 0 runs both. Not a test: prints a table and
writes bench/results/<date>-<broker>.json plus a line in bench/results/README.md.

Options:
  --records <n>          records for the throughput phases            [default: 20000]
  --rate <r>             offered orders/s in the latency phase        [default: 500]
  --latency-records <n>  orders measured in the latency phase         [default: 10 s worth]
  --latency-warmup <n>   orders offered first, not measured           [default: 5 s worth]
  --partitions <n>       partitions of every topic                    [default: 3]
  --members <n>          payment stage members (in this process)      [default: min(partitions, cores)]
  --batch <n>            records per publish in the throughput phases [default: 500]
  --phase-timeout <s>    give up on a phase after this long           [default: 300]
  --commit-poll-ms <n>   how often the latency phase reads committed offsets [default: 20]
  --coalesce             experiment: merge concurrent producer sends into one request
  --transform            also time raw kafkajs consume->produce->commit, outputs awaited
                         per record (the runner's shape) and per fetched batch
  --skip-clients         leave out the client comparison (raw loop and pipeline on kafkajs
                         and on @platformatic/kafka, one process each)
  --burn-rounds <n>      client comparison: burn this many CPU rounds per record in every
                         variant (about 6 µs per 1000 here), to see workers scale [default: 0]
  --variants <list>      only these client-comparison variants, comma-separated
                         [default: all: ${VARIANTS.join(", ")}]
  --skip-embedded        leave out the embedded transport line
  --skip-latency         leave out the latency phase
  --keep-topics          do not delete the run's topics at the end
  --out <dir>            where results go                             [default: bench/results]
  --scaling              only the worker scaling bench: the payment stage burning --burn-us
                         of CPU per order in 1 and in 2 Deno workers, --rounds each,
                         interleaved (--records orders; --partitions default 4)
  --burn-us <n>          CPU time the scaling bench burns per order   [default: 200]
  --rounds <n>           runs of each worker count in --scaling       [default: 3]
  --soak                 only the soak: orders at --rate to one member (its own process) for
                         --soak-minutes, its RSS sampled every 10 s, then RSS of a fresh member
                         after that history against one after none
  --soak-minutes <n>     how long the soak offers orders              [default: 10]
  --targets              issue 10's targets in one run: this bench (--rate 1000 unless
                         given), then --scaling, then --soak, each with its own JSON, and
                         every target judged into targets-<date>.json (about 25 minutes)
  -h, --help             show this help`;

/** The settings of one run. */
interface BenchConfig {
  readonly brokers: string;
  /** The client of phases 1 to 4 (`KAFKA_CLIENT`); phase 0 runs both. */
  readonly client: KafkaClientName;
  readonly records: number;
  readonly rate: number;
  readonly latencyRecords: number;
  /** Orders offered before the measured ones in the latency phase, not measured. */
  readonly latencyWarmup: number;
  readonly partitions: number;
  readonly members: number;
  readonly batch: number;
  readonly phaseTimeoutMs: number;
  readonly commitPollMs: number;
  readonly coalesce: boolean;
  readonly transform: boolean;
  readonly skipClients: boolean;
  /** The client-comparison variants to run. */
  readonly variants: readonly VariantName[];
  /** CPU-burning rounds per record in the client comparison. */
  readonly burnRounds: number;
  readonly skipEmbedded: boolean;
  readonly skipLatency: boolean;
  readonly keepTopics: boolean;
  readonly out: string;
  /** `--scaling`: run only the worker scaling bench. */
  readonly scaling: boolean;
  readonly burnUs: number;
  readonly rounds: number;
  /** Partitions of the scaling bench: `--partitions`, else 4 (even, for 2 workers). */
  readonly scalingPartitions: number;
  /** `--soak`: run only the soak. */
  readonly soak: boolean;
  readonly soakMinutes: number;
  /** `--targets`: the normal bench, then `--scaling`, then `--soak`, judged together. */
  readonly targets: boolean;
}

function positiveInt(flag: string, value: string | undefined, fallback: number): number {
  return integerAtLeast(1, "a positive integer", flag, value, fallback);
}

function nonNegativeInt(flag: string, value: string | undefined, fallback: number): number {
  return integerAtLeast(0, "an integer of 0 or more", flag, value, fallback);
}

function integerAtLeast(
  least: number,
  what: string,
  flag: string,
  value: string | undefined,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < least) {
    throw new PipelineError(
      `Cannot run the benchmark as '${flag}' must be ${what}: current value is "${value}"`,
    );
  }
  return parsed;
}

function parseVariants(value: string | undefined): readonly VariantName[] {
  if (value === undefined) return VARIANTS;
  const names = value.split(",").map((name) => name.trim()).filter((name) => name !== "");
  const unknown = names.filter((name) => !VARIANTS.includes(name as VariantName));
  if (names.length === 0 || unknown.length > 0) {
    throw new PipelineError(
      `Cannot run the benchmark as '--variants' must list some of ${VARIANTS.join(", ")}: ` +
        `current value is "${value}"`,
    );
  }
  return names as VariantName[];
}

function parseBenchArgs(args: string[]): BenchConfig | undefined {
  const { values } = parseArgs({
    args,
    options: {
      records: { type: "string" },
      rate: { type: "string" },
      "latency-records": { type: "string" },
      "latency-warmup": { type: "string" },
      partitions: { type: "string" },
      members: { type: "string" },
      batch: { type: "string" },
      "phase-timeout": { type: "string" },
      "commit-poll-ms": { type: "string" },
      coalesce: { type: "boolean", default: false },
      transform: { type: "boolean", default: false },
      "skip-clients": { type: "boolean", default: false },
      variants: { type: "string" },
      "burn-rounds": { type: "string" },
      "skip-embedded": { type: "boolean", default: false },
      "skip-latency": { type: "boolean", default: false },
      "keep-topics": { type: "boolean", default: false },
      out: { type: "string", default: "bench/results" },
      scaling: { type: "boolean", default: false },
      "burn-us": { type: "string" },
      rounds: { type: "string" },
      soak: { type: "boolean", default: false },
      "soak-minutes": { type: "string" },
      targets: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return undefined;
  const partitions = positiveInt("--partitions", values.partitions, 3);
  // The latency targets are stated at 1 000 orders/s.
  const rate = positiveInt("--rate", values.rate, values.targets ? TARGET_RATE : 500);
  const cores = navigator.hardwareConcurrency ?? 2;
  return {
    brokers: Deno.env.get("KAFKA_BROKERS")?.trim() || "127.0.0.1:9092",
    client: parseKafkaClient(Deno.env.get("KAFKA_CLIENT")),
    records: positiveInt("--records", values.records, 20_000),
    rate,
    latencyRecords: positiveInt("--latency-records", values["latency-records"], rate * 10),
    latencyWarmup: nonNegativeInt("--latency-warmup", values["latency-warmup"], rate * 5),
    partitions,
    members: positiveInt("--members", values.members, Math.min(partitions, cores)),
    batch: positiveInt("--batch", values.batch, 500),
    phaseTimeoutMs: positiveInt("--phase-timeout", values["phase-timeout"], 300) * 1000,
    commitPollMs: positiveInt("--commit-poll-ms", values["commit-poll-ms"], 20),
    coalesce: values.coalesce,
    transform: values.transform,
    skipClients: values["skip-clients"],
    variants: parseVariants(values.variants),
    burnRounds: values["burn-rounds"] === undefined
      ? 0
      : positiveInt("--burn-rounds", values["burn-rounds"], 0),
    skipEmbedded: values["skip-embedded"],
    skipLatency: values["skip-latency"],
    keepTopics: values["keep-topics"],
    out: values.out,
    scaling: values.scaling,
    burnUs: positiveInt("--burn-us", values["burn-us"], 200),
    rounds: positiveInt("--rounds", values.rounds, 3),
    scalingPartitions: positiveInt("--partitions", values.partitions, 4),
    soak: values.soak,
    soakMinutes: positiveInt("--soak-minutes", values["soak-minutes"], 10),
    targets: values.targets,
  };
}

/** Fails with a hint when nothing answers at `brokers`. */
async function checkBroker(brokers: string[]): Promise<void> {
  const admin = new kafkajs.Kafka({
    brokers,
    clientId: "bench-check",
    ...rawKafkaSecurity(),
    connectionTimeout: 1000,
    retry: { retries: 1, initialRetryTime: 100 },
    logLevel: kafkajs.logLevel.NOTHING,
  }).admin();
  try {
    await admin.connect();
    await admin.describeCluster();
  } catch (error) {
    throw new PipelineError(
      `Cannot reach the Kafka broker at "${brokers.join(",")}": ${errorMessage(error)}; ` +
        "start one with 'deno task broker' (127.0.0.1:9092) or set KAFKA_BROKERS",
      { field: "KAFKA_BROKERS", cause: error },
    );
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

async function deleteTopics(brokers: string[], topics: string[]): Promise<void> {
  const admin = new kafkajs.Kafka({
    brokers,
    clientId: "bench-cleanup",
    ...rawKafkaSecurity(),
    logLevel: kafkajs.logLevel.NOTHING,
  }).admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const names = topics.filter((topic) => existing.has(topic));
    if (names.length > 0) await admin.deleteTopics({ topics: names });
  } finally {
    await admin.disconnect();
  }
}

/**
 * Waits until the group is settled: the members own every partition of `topic` between them,
 * and each owns one at least (when there are enough partitions). Owning every partition is not
 * enough: the first member to join takes them all, and the next one's join then rebalances the
 * group under the measured load (a stall of a few hundred ms, every order in it late).
 */
async function waitForAssignment(
  running: RunningPipeline,
  topic: string,
  partitions: number,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const everyMember = running.members.length <= partitions;
  while (true) {
    const owned = running.members.map((member) =>
      member.consumer.assignment().partitions[topic]?.length ?? 0
    );
    const total = owned.reduce((sum, count) => sum + count, 0);
    if (total === partitions && (!everyMember || owned.every((count) => count > 0))) return;
    if (Date.now() > deadline) {
      throw new PipelineError(
        `Cannot start the pipeline within ${timeoutMs} ms: its members own ${
          owned.join(" + ")
        } of ${partitions} partitions of "${topic}"`,
        { topic },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Creates the topics and waits until their leaders answer: right after creation a broker may
 * still answer ListOffsets with "not the leader", which `startPipeline` does not retry.
 */
async function topicsReady(
  transport: Transport,
  topics: readonly TopicSpec[],
  timeoutMs: number,
): Promise<void> {
  await transport.ensureTopics(topics);
  const deadline = Date.now() + timeoutMs;
  for (const topic of topics) {
    while (true) {
      try {
        await transport.endOffsets(topic.name);
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }
}

/** A pipeline set up on fresh topics, ready to publish. */
interface BenchPipeline {
  readonly running: RunningPipeline;
  readonly transport: ReturnType<typeof profileTransport>;
  readonly ordersTopic: string;
  readonly groupId: string;
  readonly topics: string[];
  readonly outcomes: StageOutcome[];
  publish(orders: OrderPlaced[]): Promise<void>;
  /** Sets what is called after each outcome, with the time it was reported. */
  onOutcome(callback: (outcome: StageOutcome, at: number) => void): void;
  stop(): Promise<void>;
}

async function openBenchPipeline(
  transport: Transport,
  suffix: string,
  config: BenchConfig,
): Promise<BenchPipeline> {
  const ordersTopic = `bench-orders-${suffix}`;
  const paymentsTopic = `bench-payments-${suffix}`;
  const dlqTopic = `bench-orders-dlq-${suffix}`;
  const groupId = `bench-payment-${suffix}`;
  const pipeline = createOrdersPipeline({
    gateway: createPaymentGateway({ failureRate: 0, latencyMs: 0 }),
    ordersTopic,
    paymentsTopic,
    dlqTopic,
    groupId,
    partitions: config.partitions,
    concurrency: config.members,
  });
  const profiled = profileTransport(transport, { coalesce: config.coalesce });
  await topicsReady(profiled, pipeline.topics, config.phaseTimeoutMs);
  const outcomes: StageOutcome[] = [];
  let hook: ((outcome: StageOutcome, at: number) => void) | undefined;
  const running = await startPipeline(pipeline, {
    transport: profiled,
    onOutcome(outcome) {
      outcomes.push(outcome);
      hook?.(outcome, Date.now());
    },
  });
  await waitForAssignment(running, ordersTopic, config.partitions, config.phaseTimeoutMs);
  const publisher = createPublisher<OrderPlaced>(pipeline, PUBLISH_ORDER, {
    producer: running.producer,
  });
  return {
    running,
    transport: profiled,
    ordersTopic,
    groupId,
    topics: [ordersTopic, paymentsTopic, dlqTopic],
    outcomes,
    async publish(orders) {
      await publisher.publish(orders);
    },
    onOutcome(callback) {
      hook = callback;
    },
    async stop() {
      await running.stop();
      await profiled.close();
    },
  };
}

/** What a throughput phase of the pipeline measured. */
interface PipelineThroughput {
  readonly transport: string;
  readonly records: number;
  readonly produceMs: number;
  /** From the first publish to the last outcome durable, in ms. */
  readonly lastOutcomeMs: number;
  /** From the first publish to every offset committed (drained), in ms. */
  readonly totalMs: number;
  readonly recordsPerSecond: number;
  readonly outcomes: Record<string, number>;
  readonly profile: TransportProfile;
}

async function pipelineThroughput(
  transport: Transport,
  suffix: string,
  orders: readonly OrderPlaced[],
  config: BenchConfig,
  topicsUsed: string[],
): Promise<PipelineThroughput> {
  const bench = await openBenchPipeline(transport, suffix, config);
  topicsUsed.push(...bench.topics);
  let lastOutcomeAt = 0;
  bench.onOutcome(() => lastOutcomeAt = performance.now());
  try {
    const started = performance.now();
    for (let at = 0; at < orders.length; at += config.batch) {
      await bench.publish(orders.slice(at, at + config.batch));
    }
    const produceMs = performance.now() - started;
    await waitUntilDrained(bench.running.pipeline, bench.transport, {
      timeoutMs: config.phaseTimeoutMs,
    });
    const totalMs = performance.now() - started;
    const kinds: Record<string, number> = {};
    for (const outcome of bench.outcomes) kinds[outcome.kind] = (kinds[outcome.kind] ?? 0) + 1;
    return {
      transport: transport.target,
      records: orders.length,
      produceMs: round(produceMs),
      lastOutcomeMs: round(lastOutcomeAt - started),
      totalMs: round(totalMs),
      recordsPerSecond: round(orders.length / (totalMs / 1000), 1),
      outcomes: kinds,
      profile: bench.transport.profile(),
    };
  } finally {
    await bench.stop();
  }
}

/** What the latency phase measured. */
interface LatencyResult {
  readonly offeredRate: number;
  readonly achievedRate: number;
  /** Orders measured. */
  readonly orders: number;
  /** Orders offered before them, not measured. */
  readonly warmupOrders: number;
  /** `created_at` to the outcome reported durable by the runner, in ms. */
  readonly toDurableMs: Percentiles;
  /** `created_at` to the first committed-offset poll that covers the record, in ms. */
  readonly toCommittedMs: Percentiles;
  readonly commitPollMs: number;
  readonly profile: TransportProfile;
}

async function latencyPhase(
  transport: Transport,
  suffix: string,
  config: BenchConfig,
  topicsUsed: string[],
): Promise<LatencyResult> {
  const bench = await openBenchPipeline(transport, suffix, config);
  topicsUsed.push(...bench.topics);
  const total = config.latencyRecords;
  const toDurable: number[] = [];
  const toCommitted: number[] = [];
  // Per partition, outcomes durable but not yet seen committed: [offset, createdAt].
  const pending = new Map<number, [number, number][]>();
  const decoder = new TextDecoder();
  // The first orders warm the broker's and this process's JIT up and are not measured.
  const warmup = config.latencyWarmup;
  const warmupIds = new Set<string>();
  bench.onOutcome((outcome, at) => {
    const order = JSON.parse(decoder.decode(outcome.record.value!)) as OrderPlaced;
    if (warmupIds.has(order.order_id)) return;
    const created = Date.parse(order.created_at);
    toDurable.push(at - created);
    const list = pending.get(outcome.record.partition) ?? [];
    list.push([outcome.record.offset, created]);
    pending.set(outcome.record.partition, list);
  });
  const deadline = Date.now() + config.phaseTimeoutMs;
  let generationDone = false;

  async function pollCommits(): Promise<void> {
    while (toCommitted.length < total) {
      if (Date.now() > deadline) {
        throw new PipelineError(
          `Cannot finish the latency phase within ${config.phaseTimeoutMs} ms: ` +
            `${toCommitted.length} of ${total} orders committed`,
          { topic: bench.ordersTopic },
        );
      }
      const committed = await bench.transport.committedOffsets(bench.groupId, bench.ordersTopic);
      // The commit happened before this answer arrived: an upper bound, within one poll.
      const seenAt = Date.now();
      for (const { partition, offset } of committed) {
        const list = pending.get(partition);
        if (!list) continue;
        const left = list.filter(([recordOffset, created]) => {
          if (recordOffset >= offset) return true;
          toCommitted.push(seenAt - created);
          return false;
        });
        pending.set(partition, left);
      }
      await new Promise((resolve) => setTimeout(resolve, config.commitPollMs));
    }
  }

  try {
    const poller = pollCommits();
    poller.catch(() => undefined);
    const next = createOrderGenerator({ seed: 7, now: Date.now });
    const started = performance.now();
    let generated = 0;
    // Paced like `deno task pipeline --rate`: publish what is due, then wait for more.
    while (generated < warmup + total && Date.now() < deadline) {
      const due = Math.floor(((performance.now() - started) / 1000) * config.rate) + 1;
      // A batch never mixes warm-up orders with measured ones.
      const end = generated < warmup ? warmup : warmup + total;
      const batch = Math.min(500, end - generated, due - generated);
      if (batch <= 0) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(10, 1000 / config.rate)));
        continue;
      }
      const orders = Array.from({ length: batch }, next);
      if (generated < warmup) { for (const order of orders) warmupIds.add(order.order_id); }
      generated += batch;
      await bench.publish(orders);
    }
    const generationMs = performance.now() - started;
    generationDone = true;
    await poller;
    return {
      offeredRate: config.rate,
      achievedRate: round(generated / (generationMs / 1000), 1),
      orders: generated - warmup,
      warmupOrders: warmup,
      toDurableMs: percentiles(toDurable),
      toCommittedMs: percentiles(toCommitted),
      commitPollMs: config.commitPollMs,
      profile: bench.transport.profile(),
    };
  } finally {
    if (!generationDone) console.error("latency phase: stopped before all orders were offered");
    await bench.stop();
  }
}

function pad(text: string | number, width: number, right = false): string {
  const value = String(text);
  return right ? value.padStart(width) : value.padEnd(width);
}

function throughputRow(name: string, records: number, ms: number, perSecond: number): string {
  return `${pad(name, 34)}${pad(records, 9, true)}${pad((ms / 1000).toFixed(2), 10, true)}${
    pad(perSecond.toFixed(0), 12, true)
  }`;
}

function describeProfile(profile: TransportProfile): string[] {
  const lines = Object.entries(profile.sends).map(([topic, send]) =>
    `  sends to ${topic}: ${send.calls} calls, ${send.recordsPerSend.mean} records/call; ` +
    `time to durable ${describePercentiles(send.sendMs)}`
  );
  lines.push(
    `  handler (decode, pay, send output, all awaited): ${describePercentiles(profile.handlerMs)}`,
    `  idle gap between records of a partition: ${describePercentiles(profile.partitionGapMs)}`,
    `  most handlers at once: ${profile.maxConcurrentHandlers}`,
  );
  return lines;
}

const CLIENTS_END = "<!-- clients table end -->";

/** Adds the client comparison's rows to their table (created above the main one if missing). */
function withClientRows(
  text: string,
  rows: readonly ClientRow[] | undefined,
  date: Date,
  config: BenchConfig,
  file: string,
): string {
  if (rows === undefined) return text;
  if (!text.includes(CLIENTS_END)) {
    const header = "## Kafka clients\n\nThe payment stage's job over the same orders, one " +
      "process per variant (`deno task bench`, phase 0): a raw loop per client (consume a " +
      "batch, decode, encode, produce, await, commit) and the pipeline on each client.\n\n" +
      "| date | broker | records | variant | records/s | CPU µs/record | peak RSS MiB | " +
      "x fastest raw | file |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n" +
      `${CLIENTS_END}\n\n## Pipeline runs\n\n`;
    // The main table (`deno fmt` may have padded its header): the clients' goes above it.
    const at = text.search(/^\| date\s+\| broker\s+\| records\s+\| raw/m);
    text = at < 0 ? text + header : text.slice(0, at) + header + text.slice(at);
  }
  const name = file.slice(config.out.length + 1);
  const lines = rows.map((row) =>
    `| ${date.toISOString()} | ${config.brokers} | ${row.records} | ${row.variant}${
      config.burnRounds > 0 ? ` (burn ${config.burnRounds})` : ""
    } | ` +
    `${row.recordsPerSecond} | ${row.cpuUsPerRecord} | ${row.peakRssMiB} | ` +
    `${row.ratioToFastestRaw} | [${name}](${name}) |\n`
  ).join("");
  return text.replace(CLIENTS_END, lines + CLIENTS_END);
}

async function writeResults(config: BenchConfig, results: Record<string, unknown>, date: Date) {
  await Deno.mkdir(config.out, { recursive: true });
  const stamp = date.toISOString().replace(/\.\d+Z$/, "Z").replaceAll(":", "-");
  const broker = config.brokers.replaceAll(/[^0-9A-Za-z.-]+/g, "_");
  const file = `${config.out}/${stamp}-${broker}.json`;
  await Deno.writeTextFile(file, JSON.stringify(results, null, 2) + "\n");
  const readme = `${config.out}/README.md`;
  let text: string;
  try {
    text = await Deno.readTextFile(readme);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    text = "# Benchmark results\n\nOne line per `deno task bench` run (newest last); the JSON " +
      "file holds the details.\n\n| date | broker | records | raw rec/s | pipeline rec/s | " +
      "pipeline/raw | embedded rec/s | offered rate | durable p50/p95/p99 ms | " +
      "committed p50/p95/p99 ms | file |\n| --- | --- | --- | --- | --- | --- | --- | --- | " +
      "--- | --- | --- |\n";
  }
  text = withClientRows(text, results.clients as ClientRow[] | undefined, date, config, file);
  const raw = results.raw as RawBaselineResult;
  const kafka = results.pipeline as PipelineThroughput;
  const embedded = results.embedded as PipelineThroughput | undefined;
  const latency = results.latency as LatencyResult | undefined;
  const triple = (p?: Percentiles) => p ? `${p.p50} / ${p.p95} / ${p.p99}` : "-";
  const name = file.slice(config.out.length + 1);
  text += `| ${date.toISOString()} | ${config.brokers} | ${config.records} | ${
    raw.recordsPerSecond.toFixed(0)
  } | ${kafka.recordsPerSecond.toFixed(0)} | ${results.ratio} | ${
    embedded ? embedded.recordsPerSecond.toFixed(0) : "-"
  } | ${latency ? `${latency.offeredRate}/s` : "-"} | ${triple(latency?.toDurableMs)} | ${
    triple(latency?.toCommittedMs)
  } | [${name}](${name}) |\n`;
  await Deno.writeTextFile(readme, text);
  return file;
}

/** What a normal run found that the `--targets` run judges. */
interface BenchFindings {
  readonly clients?: readonly ClientRow[];
  readonly latency?: readonly TargetVerdict[];
}

/** The bootstrap brokers of `config`, one `host:port` each. */
function brokersOf(config: BenchConfig): string[] {
  return config.brokers.split(",").map((b) => b.trim()).filter((b) => b);
}

/** What `--scaling` and `--soak` take from the run's settings; their names end in `suffix`. */
function modeOptionsOf(config: BenchConfig, suffix: string) {
  const brokers = brokersOf(config);
  return {
    brokers,
    records: config.records,
    out: config.out,
    timeoutMs: config.phaseTimeoutMs,
    suffix,
    say: (line: string) => console.error(line),
    cleanup: (topics: string[]) =>
      config.keepTopics ? Promise.resolve() : deleteTopics(brokers, topics),
  };
}

async function bench(config: BenchConfig): Promise<BenchFindings> {
  const brokers = brokersOf(config);
  await checkBroker(brokers);
  const modeOptions = modeOptionsOf(config, String(Date.now()));
  if (config.scaling || config.soak) {
    if (config.scaling) {
      const { burnUs, rounds, scalingPartitions: partitions } = config;
      await scalingMode({ ...modeOptions, burnUs, rounds, partitions });
    }
    if (config.soak) {
      const { rate, soakMinutes: minutes, partitions, client } = config;
      await soakMode({ ...modeOptions, rate, minutes, partitions, client });
    }
    return {};
  }
  const date = new Date();
  const suffix = String(date.getTime());
  const say = (line: string) => console.error(line);
  const topicsUsed: string[] = [];
  const generate = createOrderGenerator({ seed: 1, now: Date.now });
  const orders = Array.from({ length: config.records }, generate);
  say(
    `bench on kafka ${config.brokers}: ${config.records} records, ${config.partitions} ` +
      `partitions, ${config.members} payment member(s), batches of ${config.batch}` +
      (config.coalesce ? ", coalescing sends (experiment)" : ""),
  );
  try {
    // Latency first: after the throughput phases the broker holds millions of records and both
    // JVM and V8 are collecting what those runs left, and their stalls are not the pipeline's.
    let latency: LatencyResult | undefined;
    if (!config.skipLatency) {
      say(
        `1/4 latency: ${config.latencyRecords} orders at ${config.rate}/s, after ` +
          `${config.latencyWarmup} not measured ...`,
      );
      latency = await latencyPhase(
        await createBrokerTransport(config.brokers, {
          clientId: "bench-latency",
          client: config.client,
        }),
        `${suffix}-lat`,
        config,
        topicsUsed,
      );
    }

    let clients: ClientRow[] | undefined;
    if (!config.skipClients) {
      const clientTopics: string[] = [];
      clients = await compareClients({
        brokers,
        records: orders.map((order) => ({ key: order.order_id, value: JSON.stringify(order) })),
        partitions: config.partitions,
        suffix,
        timeoutMs: config.phaseTimeoutMs,
        topicsUsed: clientTopics,
        say,
        variants: config.variants,
        burnRounds: config.burnRounds,
      });
      // Its fourteen variants' topics go at once, not at the end of the run.
      if (config.keepTopics) topicsUsed.push(...clientTopics);
      else await deleteTopics(brokers, clientTopics);
      console.log(["", "Kafka clients, the payment stage's job:", ...describeClients(clients)]
        .join("\n"));
    }
    say("2/4 raw kafkajs produce + consume ...");
    const raw = await runRawBaseline({
      brokers,
      topic: `bench-raw-${suffix}`,
      groupId: `bench-raw-${suffix}`,
      records: orders.map((order) => ({ key: order.order_id, value: JSON.stringify(order) })),
      partitions: config.partitions,
      batchSize: config.batch,
      timeoutMs: config.phaseTimeoutMs,
    });
    topicsUsed.push(`bench-raw-${suffix}`);

    const transforms: Record<string, RawBaselineResult> = {};
    if (config.transform) {
      for (const mode of ["per-record", "per-batch"] as const) {
        say(`2/4 raw kafkajs consume -> produce -> commit, outputs awaited ${mode} ...`);
        const name = `bench-raw-${mode}-${suffix}`;
        topicsUsed.push(name, `${name}-out`);
        transforms[mode] = await runRawTransform({
          brokers,
          topic: name,
          outputTopic: `${name}-out`,
          groupId: name,
          records: orders.map((order) => ({ key: order.order_id, value: JSON.stringify(order) })),
          partitions: config.partitions,
          batchSize: config.batch,
          timeoutMs: config.phaseTimeoutMs,
          mode,
        });
      }
    }

    say("3/4 pipeline on kafka ...");
    const pipeline = await pipelineThroughput(
      await createBrokerTransport(config.brokers, {
        clientId: "bench-pipeline",
        client: config.client,
      }),
      `${suffix}-tp`,
      orders,
      config,
      topicsUsed,
    );

    let embedded: PipelineThroughput | undefined;
    if (!config.skipEmbedded) {
      say("4/4 pipeline on the embedded transport ...");
      embedded = await pipelineThroughput(
        createEmbeddedTransport(),
        `${suffix}-emb`,
        orders,
        config,
        [],
      );
    }

    const ratio = round(pipeline.recordsPerSecond / raw.recordsPerSecond, 4);
    const lines = [
      "",
      `${pad("phase", 34)}${pad("records", 9, true)}${pad("seconds", 10, true)}${
        pad("records/s", 12, true)
      }`,
      throughputRow("raw kafkajs produce+consume", raw.records, raw.totalMs, raw.recordsPerSecond),
      throughputRow(
        "pipeline (kafka)",
        pipeline.records,
        pipeline.totalMs,
        pipeline.recordsPerSecond,
      ),
      ...(embedded
        ? [throughputRow(
          "pipeline (embedded)",
          embedded.records,
          embedded.totalMs,
          embedded.recordsPerSecond,
        )]
        : []),
      ...Object.entries(transforms).map(([mode, result]) =>
        throughputRow(
          `raw consume->produce, ${mode}`,
          result.records,
          result.totalMs,
          result.recordsPerSecond,
        )
      ),
      `ratio pipeline/raw: ${ratio}  (${(1 / ratio).toFixed(1)}x slower)`,
      `  raw: produce ${(raw.produceMs / 1000).toFixed(2)} s ` +
      `(${raw.produceRecordsPerSecond.toFixed(0)} records/s)`,
      `  pipeline: publish ${(pipeline.produceMs / 1000).toFixed(2)} s, last outcome at ` +
      `${(pipeline.lastOutcomeMs / 1000).toFixed(2)} s, drained at ` +
      `${(pipeline.totalMs / 1000).toFixed(2)} s; outcomes ${JSON.stringify(pipeline.outcomes)}`,
      ...describeProfile(pipeline.profile),
    ];
    if (latency) {
      lines.push(
        "",
        `latency at ${latency.offeredRate} orders/s offered (${latency.orders} orders measured ` +
          `after ${latency.warmupOrders} not measured, ${latency.achievedRate}/s achieved):`,
        `  created -> outcome durable:  ${describePercentiles(latency.toDurableMs)}`,
        `  created -> offset committed: ${describePercentiles(latency.toCommittedMs)}` +
          ` (seen by polling every ${latency.commitPollMs} ms)`,
        ...describeTargets(
          judgeLatency(latency.toDurableMs, latency.toCommittedMs),
          latency.offeredRate,
        ),
        ...describeProfile(latency.profile),
      );
    }
    console.log(lines.join("\n"));
    const file = await writeResults(config, {
      date: date.toISOString(),
      broker: config.brokers,
      host: {
        cores: navigator.hardwareConcurrency,
        deno: Deno.version.deno,
        loadavg: Deno.loadavg(),
      },
      config: { ...config, out: undefined },
      clients,
      raw,
      ...(config.transform ? { rawTransform: transforms } : {}),
      pipeline,
      ratio,
      embedded,
      latency,
      latencyTargets: latency && judgeLatency(latency.toDurableMs, latency.toCommittedMs),
    }, date);
    console.log(`\nresults: ${file}`);
    return {
      clients,
      latency: latency && judgeLatency(latency.toDurableMs, latency.toCommittedMs),
    };
  } finally {
    if (!config.keepTopics && topicsUsed.length > 0) {
      await deleteTopics(brokers, topicsUsed).catch((error) =>
        say(`cleanup: cannot delete topics ${topicsUsed.join(", ")}: ${errorMessage(error)}`)
      );
    }
  }
}

/** The rest of `--targets`: the scaling bench and the soak after the normal run, judged. */
async function targetsRun(config: BenchConfig, findings: BenchFindings): Promise<void> {
  if (findings.clients === undefined || findings.latency === undefined) {
    throw new PipelineError(
      "Cannot judge the targets as '--targets' needs the client comparison and the latency " +
        "phase: leave out '--skip-clients' and '--skip-latency'",
    );
  }
  const scaling = await scalingMode({
    ...modeOptionsOf(config, `${Date.now()}-scaling`),
    burnUs: config.burnUs,
    rounds: config.rounds,
    partitions: config.scalingPartitions,
  });
  const soak = await soakMode({
    ...modeOptionsOf(config, `${Date.now()}-soak`),
    // The soak's own rate: a fixed load far under the machine's limit.
    rate: SOAK_RATE,
    minutes: config.soakMinutes,
    partitions: config.partitions,
    client: config.client,
  });
  const file = await reportTargets(config.out, brokersOf(config), {
    clients: findings.clients,
    latency: findings.latency,
    scaling,
    soak,
  });
  console.log(`\nresults: ${file}`);
}

if (import.meta.main) {
  dropTimeoutNegativeWarnings();
  let config: BenchConfig | undefined;
  try {
    config = parseBenchArgs(Deno.args);
  } catch (error) {
    console.error(`error: ${errorMessage(error)}\n\n${USAGE}`);
    Deno.exit(2);
  }
  if (config === undefined) {
    console.log(USAGE);
    Deno.exit(0);
  }
  try {
    const findings = await bench(config);
    if (config.targets) await targetsRun(config, findings);
    Deno.exit(0);
  } catch (error) {
    console.error(`error: ${errorMessage(error)}`);
    Deno.exit(1);
  }
}
