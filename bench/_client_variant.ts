/**
 * One variant of the client comparison, run in its own process so its CPU time and peak RSS
 * are its own: the payment stage's job over `--records` orders already in `--input`, on one
 * Kafka client, either as a raw loop or through the pipeline: in this process (`pipeline-*`,
 * `--members` members, 1 by default) or in 1 or 2 supervised Deno workers (`workers1-*`,
 * `workers2-*`, what `deno task pipeline` runs on Kafka), under `at_least_once`, or
 * `exactly_once` for the names ending in `-eos`. Telemetry is off. Prints one JSON line
 * ({@linkcode VariantResult}) and exits.
 *
 * The raw loop does what the pipeline does per record, with nothing else: consume a batch,
 * decode each order, encode its outcome, produce the batch's outputs (idempotent, acks=all,
 * keyed), await them (outputs durable before their offsets are committed, as the runtime
 * awaits them), commit the batch's offsets. kafkajs: `eachBatch`, one `sendBatch` per 500
 * records, `commitOffsets`. @platformatic/kafka: the records the stream holds, up to 500, one
 * `send`, `commit`.
 *
 * The clock is the process's own: from process start to the last offset committed.
 *
 * Usage: `deno run -A bench/_client_variant.ts --variant raw-kafkajs --brokers 127.0.0.1:9092
 *   --input <topic> --output <topic> --group <group> --records <n> [--profile <file>]`;
 * `--profile` writes a V8 CPU profile (open it in Chrome DevTools).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { Session } from "node:inspector/promises";
import process from "node:process";
import { parseArgs } from "node:util";
import {
  compatibilityPartitioner,
  Consumer as PlatformaticConsumer,
  ProduceAcks,
  Producer as PlatformaticProducer,
} from "@platformatic/kafka";
import kafkajs from "kafkajs";
import { dropTimeoutNegativeWarnings } from "../infra/kafka/kafkajs_warning.ts";
import { errorMessage, PipelineError } from "../pipeline/errors.ts";
import { startPipeline, waitUntilDrained } from "../pipeline/run.ts";
import { createBrokerTransport, type KafkaClientName } from "../pipeline/transport/broker.ts";
import { kafkaSecurityFromEnv } from "../pipeline/transport/kafka/security.ts";
import { platformaticClientSecurity } from "../pipeline/transport/platformatic/mod.ts";
import { rawKafkaSecurity } from "./_raw_kafkajs.ts";
import { createOrdersPipeline } from "../stages/orders_pipeline.ts";
import { createPaymentGateway } from "../stages/payment_gateway.ts";
import { PROCESS_PAYMENT } from "../stages/process_payment.ts";
import { burn, createBurnPipeline } from "./_burn_pipeline.ts";
import { peakRssMiB } from "./_soak_member.ts";
import type { ProcessingGuarantee } from "../pipeline/guarantee.ts";
import { startSupervisor } from "../pipeline/supervisor/mod.ts";

/** How a variant runs the job: a raw client loop, the pipeline in process, or in workers. */
export type VariantMode = "raw" | "pipeline" | "workers1" | "workers2";

/** One variant's name: `<mode>-<client>`, and `-eos` for the pipeline under exactly_once. */
export type VariantName =
  | `raw-${KafkaClientName}`
  | `${Exclude<VariantMode, "raw">}-${KafkaClientName}`
  | `${Exclude<VariantMode, "raw">}-${KafkaClientName}-eos`;

/** The variants, by name, in the order the bench runs them. */
export const VARIANTS: readonly VariantName[] = [
  "raw-kafkajs",
  "raw-platformatic",
  ...(["pipeline", "workers1", "workers2"] as const).flatMap((mode) =>
    (["kafkajs", "platformatic"] as const).flatMap((client) => [
      `${mode}-${client}` as const,
      `${mode}-${client}-eos` as const,
    ])
  ),
];

/** What a variant's name says. */
export function parseVariant(
  name: VariantName,
): { mode: VariantMode; client: KafkaClientName; guarantee: ProcessingGuarantee } {
  const [mode, client, eos] = name.split("-") as [VariantMode, KafkaClientName, string?];
  return { mode, client, guarantee: eos === "eos" ? "exactly_once" : "at_least_once" };
}

/** What a variant process prints. */
export interface VariantResult {
  /** The variant. */
  readonly variant: VariantName;
  /** Input records processed. */
  readonly records: number;
  /** From process start to the last offset committed, in ms. */
  readonly ms: number;
  /** Records per second over `ms`. */
  readonly recordsPerSecond: number;
  /** User + system CPU time of the process per record, in µs. */
  readonly cpuUsPerRecord: number;
  /** The process's peak resident set size, in MiB. */
  readonly peakRssMiB: number;
}

interface VariantArgs {
  readonly variant: VariantName;
  readonly brokers: string;
  readonly input: string;
  readonly output: string;
  readonly group: string;
  readonly records: number;
  readonly partitions: number;
  readonly timeoutMs: number;
  /** Members of the payment stage in the pipeline variants (in this process). */
  readonly members: number;
  /** CPU-burning rounds per record (`_burn_pipeline.ts`), in every variant; 0: none. */
  readonly burnRounds: number;
  /** Where to write a V8 CPU profile of the run (`.cpuprofile`), if anywhere. */
  readonly profile?: string;
}

const BATCH = 500;
/** Where the raw loops' burnt rounds go, so the work cannot be optimised out. */
let burnSink = 0;

/** The outcome the payment stage writes for an order, as the raw loops encode it. */
function transform(value: Buffer | null | undefined, burnRounds: number): string {
  if (burnRounds > 0) burnSink ^= burn(burnRounds);
  const order = JSON.parse(value?.toString("utf8") ?? "null");
  return JSON.stringify({
    event_type: "PaymentProcessed",
    order_id: order.order_id,
    amount: order.amount,
    status: "succeeded",
  });
}

function deadline(args: VariantArgs): Promise<never> {
  return new Promise((_, reject) => {
    const timer = setTimeout(
      () => reject(new PipelineError(`Cannot finish ${args.variant} within ${args.timeoutMs} ms`)),
      args.timeoutMs,
    );
    Deno.unrefTimer(timer);
  });
}

async function rawKafkajs(args: VariantArgs): Promise<void> {
  const kafka = new kafkajs.Kafka({
    brokers: args.brokers.split(","),
    clientId: "bench-raw-kafkajs",
    ...rawKafkaSecurity(),
    logLevel: kafkajs.logLevel.NOTHING,
  });
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: kafkajs.Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  const consumer = kafka.consumer({ groupId: args.group, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topics: [args.input], fromBeginning: true });
  const done = Promise.withResolvers<void>();
  let consumed = 0;
  try {
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: args.partitions,
      async eachBatch({ batch }) {
        if (batch.messages.length === 0) return;
        for (let at = 0; at < batch.messages.length; at += BATCH) {
          await producer.send({
            topic: args.output,
            acks: -1,
            messages: batch.messages.slice(at, at + BATCH).map((message) => ({
              key: message.key,
              value: transform(message.value, args.burnRounds),
            })),
          });
        }
        const last = batch.messages[batch.messages.length - 1];
        await consumer.commitOffsets([{
          topic: args.input,
          partition: batch.partition,
          offset: String(Number(last.offset) + 1),
        }]);
        consumed += batch.messages.length;
        if (consumed >= args.records) done.resolve();
      },
    });
    await Promise.race([done.promise, deadline(args)]);
  } finally {
    await consumer.disconnect();
    await producer.disconnect();
  }
}

async function rawPlatformatic(args: VariantArgs): Promise<void> {
  const bootstrapBrokers = args.brokers.split(",");
  // The same KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* and KAFKA_SSL_* settings as the pipeline.
  const { tls, sasl } = platformaticClientSecurity(kafkaSecurityFromEnv());
  const base = {
    clientId: "bench-raw-platformatic",
    bootstrapBrokers,
    ...(tls === undefined ? {} : { tls }),
    ...(sasl === undefined ? {} : { sasl }),
  };
  const producer = new PlatformaticProducer<Buffer, Buffer, Buffer, Buffer>({
    ...base,
    idempotent: true,
    acks: ProduceAcks.ALL,
    // Java's and kafkajs's murmur2 placement, as the kafkajs loop's producer.
    partitioner: compatibilityPartitioner,
  });
  const consumer = new PlatformaticConsumer<Buffer, Buffer, Buffer, Buffer>({
    ...base,
    groupId: args.group,
    autocommit: false,
    maxWaitTime: 100,
  });
  let consumed = 0;
  const run = async () => {
    const stream = await consumer.consume({
      topics: [args.input],
      mode: "committed",
      fallbackMode: "earliest",
      autocommit: false,
    });
    let batch: { key: Buffer; value: string; partition: number; offset: bigint }[] = [];
    const flush = async () => {
      const messages = batch;
      batch = [];
      await producer.send({
        messages: messages.map((m) => ({
          topic: args.output,
          key: m.key,
          value: Buffer.from(m.value),
        })),
        acks: ProduceAcks.ALL,
      });
      const next = new Map<number, bigint>();
      for (const m of messages) next.set(m.partition, m.offset + 1n);
      await consumer.commit({
        offsets: [...next].map(([partition, offset]) => ({
          topic: args.input,
          partition,
          offset,
          leaderEpoch: -1,
        })),
      });
      consumed += messages.length;
    };
    for await (const message of stream) {
      batch.push({
        key: message.key,
        value: transform(message.value, args.burnRounds),
        partition: message.partition,
        offset: message.offset,
      });
      if (batch.length >= BATCH || stream.readableLength === 0) await flush();
      if (consumed >= args.records) break;
    }
    await stream.close().catch(() => undefined);
  };
  try {
    await Promise.race([run(), deadline(args)]);
  } finally {
    await consumer.close(true).catch(() => undefined);
    await producer.close().catch(() => undefined);
  }
}

async function pipelineVariant(
  args: VariantArgs,
  { mode, client, guarantee }: ReturnType<typeof parseVariant>,
): Promise<void> {
  const transport = await createBrokerTransport(args.brokers, {
    client,
    clientId: `bench-pipeline-${client}`,
    logger: () => {},
  });
  const options = {
    ordersTopic: args.input,
    paymentsTopic: args.output,
    dlqTopic: `${args.output}-dlq`,
    groupId: args.group,
    partitions: args.partitions,
    concurrency: args.members,
  };
  const pipeline = args.burnRounds > 0
    ? createBurnPipeline({ ...options, burnRounds: args.burnRounds })
    : createOrdersPipeline({
      gateway: createPaymentGateway({ failureRate: 0, latencyMs: 0 }),
      ...options,
    });
  await transport.ensureTopics(pipeline.topics);
  const workers = mode === "workers1" ? 1 : mode === "workers2" ? 2 : 0;
  const running = workers > 0 ? undefined : await startPipeline(pipeline, {
    transport,
    guarantee,
  });
  const supervisor = workers === 0 ? undefined : await startSupervisor({
    pipeline: args.burnRounds > 0
      ? {
        module: new URL("./_burn_pipeline.ts", import.meta.url).href,
        export: "createBurnPipeline",
        options: { ...options, burnRounds: args.burnRounds },
      }
      : {
        module: new URL("../stages/worker_pipeline.ts", import.meta.url).href,
        export: "createWorkerPipeline",
        options: { ...options, failureRate: 0, latencyMs: 0 },
      },
    transport: { kind: "kafka", brokers: args.brokers, options: { client } },
    stages: { [PROCESS_PAYMENT]: { workers } },
    guarantee,
  });
  try {
    await waitUntilDrained(pipeline, transport, { timeoutMs: args.timeoutMs, pollMs: 20 });
  } finally {
    await running?.stop();
    await supervisor?.stop();
    await transport.close();
  }
}

/** Runs one variant in this process and measures it. */
export async function runVariant(args: VariantArgs): Promise<VariantResult> {
  const variant = parseVariant(args.variant);
  if (variant.mode !== "raw") await pipelineVariant(args, variant);
  else if (variant.client === "kafkajs") await rawKafkajs(args);
  else await rawPlatformatic(args);
  const ms = performance.now();
  const cpu = process.cpuUsage();
  return {
    variant: args.variant,
    records: args.records,
    ms: Math.round(ms),
    recordsPerSecond: Math.round(args.records / (ms / 1000)),
    cpuUsPerRecord: Math.round(((cpu.user + cpu.system) / args.records) * 10) / 10,
    peakRssMiB: peakRssMiB(),
  };
}

function parseVariantArgs(argv: string[]): VariantArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      variant: { type: "string" },
      brokers: { type: "string" },
      input: { type: "string" },
      output: { type: "string" },
      group: { type: "string" },
      records: { type: "string" },
      partitions: { type: "string" },
      "timeout-ms": { type: "string" },
      members: { type: "string" },
      "burn-rounds": { type: "string" },
      profile: { type: "string" },
    },
    strict: true,
  });
  const variant = values.variant as VariantName;
  if (!VARIANTS.includes(variant)) {
    throw new PipelineError(
      `Cannot run variant as '--variant' must be one of ${VARIANTS.join(", ")}: current value ` +
        `is ${JSON.stringify(values.variant)}`,
    );
  }
  for (const name of ["brokers", "input", "output", "group", "records", "partitions"] as const) {
    if (!values[name]) throw new PipelineError(`Cannot run variant as '--${name}' is missing`);
  }
  return {
    variant,
    brokers: values.brokers!,
    input: values.input!,
    output: values.output!,
    group: values.group!,
    records: Number(values.records),
    partitions: Number(values.partitions),
    timeoutMs: Number(values["timeout-ms"] ?? 300_000),
    members: Number(values.members ?? 1),
    burnRounds: Number(values["burn-rounds"] ?? 0),
    profile: values.profile,
  };
}

if (import.meta.main) {
  dropTimeoutNegativeWarnings();
  try {
    const args = parseVariantArgs(Deno.args);
    const session = args.profile === undefined ? undefined : new Session();
    if (session) {
      session.connect();
      await session.post("Profiler.enable");
      await session.post("Profiler.start");
    }
    const result = await runVariant(args);
    if (session) {
      const { profile } = await session.post("Profiler.stop");
      await Deno.writeTextFile(args.profile!, JSON.stringify(profile));
    }
    console.log(JSON.stringify(result));
    Deno.exit(0);
  } catch (error) {
    console.error(`error: ${errorMessage(error)}`);
    Deno.exit(1);
  }
}
