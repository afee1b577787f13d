/**
 * One run of the scaling bench, in its own process: the burn pipeline's payment stage run by
 * the worker supervisor (as `deno task pipeline` runs it on Kafka) in `--workers` Deno workers,
 * over `--records` orders written beforehand (see {@linkcode runScaling}), until the last
 * order's outcome is durable. Prints one JSON line ({@linkcode ScalingRun}) and exits.
 *
 * It reads its threads' CPU time in `/proc/self/task`, which Deno allows only with `-A`.
 *
 * Usage: `deno run -A bench/_scaling_variant.ts --brokers 127.0.0.1:9092 --suffix <names>
 *   --records <n> --partitions <n> --workers <n> [--burn-us 200]`
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { dropTimeoutNegativeWarnings } from "../infra/kafka/kafkajs_warning.ts";
import { errorMessage, PipelineError } from "../pipeline/errors.ts";
import kafkajs from "kafkajs";
import { Readiness } from "../pipeline/health.ts";
import type { MemberState } from "../pipeline/health.ts";
import { startSupervisor } from "../pipeline/supervisor/mod.ts";
import { createOrderGenerator } from "../stages/generate_order.ts";
import { PROCESS_PAYMENT } from "../stages/process_payment.ts";
import { scalingInput, scalingPipelineOptions } from "./_burn_pipeline.ts";
import { type ThreadCpu, threadCpu, threadCpuDelta } from "./_threads.ts";

/** What one scaling run measured. */
export interface ScalingRun {
  /** Deno workers running the stage. */
  readonly workers: number;
  /** Input records. */
  readonly records: number;
  /** Outcomes the workers reported (more than `records` if some were redelivered). */
  readonly outcomes: number;
  /** From process start to the records written, not yet visible, in ms. */
  readonly writeMs: number;
  /** From the records written to every worker's member consuming in one group, in ms. */
  readonly startMs: number;
  /** From the records made visible to the last one's outcome durable, in ms. */
  readonly processMs: number;
  /** `records` over `processMs`. */
  readonly recordsPerSecond: number;
  /** CPU ms while processing, per thread group: main, each worker, the rest. */
  readonly cpuMs: { readonly main: number; readonly workers: number[]; readonly other: number };
  /** CPU ms of the whole process while processing, per record, in µs. */
  readonly cpuUsPerRecord: number;
  /** Cores the process kept busy while processing: its CPU time over `processMs`. */
  readonly coresUsed: number;
  /** From the records made visible to the first outcome durable, in ms. */
  readonly firstOutcomeMs: number;
  /** Member state changes while processing (a rebalance shows here), with their time. */
  readonly stateChanges: readonly string[];
  /** Distinct outcomes per second of processing, per input partition. */
  readonly timeline: Readonly<Record<string, readonly number[]>>;
}

interface ScalingArgs {
  readonly brokers: string;
  readonly suffix: string;
  readonly records: number;
  readonly partitions: number;
  readonly workers: number;
  readonly burnUs: number;
  readonly timeoutMs: number;
}

function group(delta: readonly ThreadCpu[]): ScalingRun["cpuMs"] {
  const round = (ms: number) => Math.round(ms);
  return {
    main: round(delta.find((t) => t.tid === Deno.pid)?.cpuMs ?? 0),
    workers: delta.filter((t) => t.name.startsWith("worker-")).map((t) => round(t.cpuMs)),
    other: round(
      delta.filter((t) => t.tid !== Deno.pid && !t.name.startsWith("worker-"))
        .reduce((sum, t) => sum + t.cpuMs, 0),
    ),
  };
}

/** Readiness that also keeps each member's last state, to see the group settled. */
class WatchedReadiness extends Readiness {
  readonly states = new Map<string, MemberState>();
  /** Each state change once the clock started, with its time, for the run's timeline. */
  readonly changes: string[] = [];
  go: number | undefined;
  override report(id: string, state: MemberState, detail?: string): void {
    if (this.go !== undefined && this.states.get(id) !== state) {
      this.changes.push(`${Math.round(performance.now() - this.go)} ms: ${id} ${state}`);
    }
    this.states.set(id, state);
    super.report(id, state, detail);
  }
}

/**
 * Writes the orders (seed 3, the same every run) in one open transaction: on the broker, yet
 * invisible to the pipeline's read_committed consumers until `commit()`.
 */
async function writeHeldBack(args: ScalingArgs): Promise<{ commit(): Promise<void> }> {
  const kafka = new kafkajs.Kafka({
    brokers: args.brokers.split(","),
    clientId: "bench-scaling-input",
    logLevel: kafkajs.logLevel.NOTHING,
  });
  const topic = scalingInput(args.suffix);
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [{ topic, numPartitions: args.partitions, replicationFactor: 1 }],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
  const producer = kafka.producer({
    transactionalId: `bench-scaling-input-${args.suffix}`,
    idempotent: true,
    maxInFlightRequests: 1,
    transactionTimeout: 300_000,
  });
  await producer.connect();
  const next = createOrderGenerator({ seed: 3, now: Date.now });
  const transaction = await producer.transaction();
  for (let at = 0; at < args.records; at += 500) {
    const orders = Array.from({ length: Math.min(500, args.records - at) }, next);
    await transaction.send({
      topic,
      messages: orders.map((order) => ({ key: order.order_id, value: JSON.stringify(order) })),
    });
  }
  return {
    async commit() {
      try {
        await transaction.commit();
      } finally {
        await producer.disconnect();
      }
    },
  };
}

async function until(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) {
      throw new PipelineError(`Cannot finish the scaling run: ${what} within ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Runs the stage in `args.workers` workers: the orders are written first, held back in an
 * open transaction; once every worker's member consumes in one settled group, the transaction
 * commits and the clock starts; it stops at the last order's outcome.
 */
export async function runScaling(args: ScalingArgs): Promise<ScalingRun> {
  const input = await writeHeldBack(args);
  const written = performance.now();
  const seen = new Set<string>();
  const timeline: Record<string, number[]> = {};
  let firstOutcome: number | undefined;
  let outcomes = 0;
  const readiness = new WatchedReadiness();
  const supervisor = await startSupervisor({
    pipeline: {
      module: new URL("./_burn_pipeline.ts", import.meta.url).href,
      export: "createBurnPipeline",
      options: { ...scalingPipelineOptions(args) },
    },
    transport: { kind: "kafka", brokers: args.brokers, options: { clientId: "bench-scaling" } },
    stages: { [PROCESS_PAYMENT]: { workers: args.workers } },
  }, {
    restart: { maxRestarts: 0 },
    readiness,
    onOutcome(outcome) {
      outcomes++;
      const id = `${outcome.topic}:${outcome.partition}:${outcome.offset}`;
      if (seen.has(id) || readiness.go === undefined) return;
      seen.add(id);
      firstOutcome ??= performance.now();
      const second = Math.floor((performance.now() - readiness.go) / 1000);
      const counts = timeline[outcome.partition] ??= [];
      while (counts.length <= second) counts.push(0);
      counts[second]++;
    },
    onEvent(event) {
      if (event.type === "crash") console.error(`scaling: ${event.worker}: ${event.error.message}`);
    },
  });
  try {
    const settled = () =>
      readiness.states.size === args.workers &&
      [...readiness.states.values()].every((state) => state === "consuming");
    // One generation with every member in it: each has reported consuming since the last join.
    await until("every member consuming", settled, args.timeoutMs);
    const ready = performance.now();
    const before = threadCpu();
    const cpuBefore = process.cpuUsage();
    readiness.go = performance.now();
    await input.commit();
    const go = readiness.go;
    await until(`${args.records} outcomes`, () => seen.size >= args.records, args.timeoutMs);
    const done = performance.now();
    const cpu = group(threadCpuDelta(before, threadCpu()));
    const used = process.cpuUsage(cpuBefore);
    return {
      workers: args.workers,
      records: args.records,
      outcomes,
      writeMs: Math.round(written),
      startMs: Math.round(ready - written),
      processMs: Math.round(done - go),
      recordsPerSecond: Math.round(args.records / ((done - go) / 1000)),
      cpuMs: cpu,
      cpuUsPerRecord: Math.round(((used.user + used.system) / args.records) * 10) / 10,
      coresUsed: Math.round(((used.user + used.system) / 1000 / (done - go)) * 100) / 100,
      firstOutcomeMs: Math.round((firstOutcome ?? done) - go),
      stateChanges: readiness.changes,
      timeline,
    };
  } finally {
    await supervisor.stop(30_000);
  }
}

function parseScalingArgs(argv: string[]): ScalingArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      brokers: { type: "string" },
      suffix: { type: "string" },
      records: { type: "string" },
      partitions: { type: "string" },
      workers: { type: "string" },
      "burn-us": { type: "string", default: "200" },
      "timeout-ms": { type: "string", default: "300000" },
    },
    strict: true,
  });
  for (const name of ["brokers", "suffix", "records", "partitions", "workers"] as const) {
    if (!values[name]) {
      throw new PipelineError(`Cannot run the scaling variant as '--${name}' is missing`);
    }
  }
  return {
    brokers: values.brokers!,
    suffix: values.suffix!,
    records: Number(values.records),
    partitions: Number(values.partitions),
    workers: Number(values.workers),
    burnUs: Number(values["burn-us"]),
    timeoutMs: Number(values["timeout-ms"]),
  };
}

if (import.meta.main) {
  dropTimeoutNegativeWarnings();
  try {
    const result = await runScaling(parseScalingArgs(Deno.args));
    console.log(JSON.stringify(result));
    Deno.exit(0);
  } catch (error) {
    console.error(`error: ${errorMessage(error)}`);
    Deno.exit(1);
  }
}
