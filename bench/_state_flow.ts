/**
 * The `--flow` mode of the state bench: one payment stage member (Kafka transport, in-process
 * zero-latency gateway that never fails, no telemetry) over orders pre-written to the input,
 * with the process RSS sampled every `sampleEvery` outcomes, then a second member started on the
 * same group and changelog to measure the restore. Run once over a short history and once over a
 * long one, the two restores show whether restore time and memory grow with history.
 *
 * @module
 */
import v8 from "node:v8";
import { expiryIntervalMs, startPipeline } from "../pipeline/run.ts";
import type { RestoreEvent } from "../pipeline/state_store.ts";
import { createPublisher } from "../pipeline/publisher.ts";
import type { Transport } from "../pipeline/transport/transport.ts";
import type { OrderPlaced } from "../stages/events.ts";
import { createOrderGenerator } from "../stages/generate_order.ts";
import { createOrdersPipeline, PUBLISH_ORDER } from "../stages/orders_pipeline.ts";
import { createPaymentGateway } from "../stages/payment_gateway.ts";

/** What the flow bench is told. */
export interface StateFlowOptions {
  /** Orders pre-written to the input, then handled by one member. */
  readonly orders: number;
  /** The stage's `stateRetentionMs`. */
  readonly retentionMs: number;
  /** Outcomes between two RSS samples. */
  readonly sampleEvery: number;
  /** Deadline of each phase (writing, flowing, restoring), in ms. */
  readonly phaseTimeoutMs: number;
  /**
   * When set, the changelog is created beforehand with this `segment.ms`, with
   * `min.cleanable.dirty.ratio` 0.01 and `delete.retention.ms` 1000, so that the broker compacts
   * it during the run (with the broker's defaults every record stays in the 1 GiB active
   * segment, which is never compacted).
   */
  readonly changelogSegmentMs?: number;
  /** When set, V8 heap snapshots are written there at 20 % and 100 % of the orders. */
  readonly heapSnapshotDir?: string;
}

/** One RSS sample, after a forced full collection when `gc` is exposed. */
export interface FlowSample {
  readonly records: number;
  readonly seconds: number;
  readonly rssMiB: number;
  readonly heapUsedMiB: number;
  readonly stateKeys: number;
}

/** A restore of the stage's state by a member started after the flow. */
export interface FlowRestore {
  readonly keys: number;
  readonly ms: number;
  readonly rssMiB: number;
  readonly heapUsedMiB: number;
}

/** What one flow run measured. */
export interface StateFlowResult {
  readonly orders: number;
  readonly retentionMs: number;
  readonly changelogSegmentMs: number | null;
  readonly writeMs: number;
  readonly flowMs: number;
  readonly recordsPerSecond: number;
  readonly samples: FlowSample[];
  /** RSS at (the first sample at or after) 10 %, 50 % and 100 % of the orders. */
  readonly rssAt: { readonly p10: number; readonly p50: number; readonly p100: number };
  /** (max - min) / min of the RSS samples after the first 10 % (warm-up), in %. */
  readonly rssSpreadAfterWarmupPercent: number;
  /**
   * The same spread over the samples taken once the live set is at its bound: after the
   * retention plus one expiry interval (60 s) of flow, in % (`null` when no sample is that late).
   */
  readonly rssSpreadAfterWindowPercent: number | null;
  readonly restore: FlowRestore;
}

const MIB = 1024 * 1024;

function memory(): { rssMiB: number; heapUsedMiB: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const usage = Deno.memoryUsage();
  return {
    rssMiB: Math.round(usage.rss / MIB * 10) / 10,
    heapUsedMiB: Math.round(usage.heapUsed / MIB * 10) / 10,
  };
}

async function until(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) {
      throw new Error(`Cannot finish the state flow bench as ${what} took over ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Runs one flow (write, handle, restart) on fresh topics named after `suffix`. */
export async function runStateFlow(
  transport: Transport,
  suffix: string,
  options: StateFlowOptions,
): Promise<StateFlowResult> {
  const { orders, retentionMs, sampleEvery, phaseTimeoutMs } = options;
  const pipeline = createOrdersPipeline({
    // The simulated gateway lives in this process: its keys expire with the state, so what is
    // measured is the member (a real gateway is a service of its own).
    gateway: createPaymentGateway({ failureRate: 0, latencyMs: 0, keyTtlMs: retentionMs }),
    ordersTopic: `flow-orders-${suffix}`,
    paymentsTopic: `flow-payments-${suffix}`,
    dlqTopic: `flow-orders-dlq-${suffix}`,
    groupId: `flow-payment-${suffix}`,
    partitions: 3,
    concurrency: 1,
    stateRetentionMs: retentionMs,
  });
  if (options.changelogSegmentMs !== undefined) {
    await transport.ensureTopics(
      pipeline.topics.filter((t) => t.changelog).map((t) => ({
        ...t,
        config: {
          ...t.config,
          "segment.ms": String(options.changelogSegmentMs),
          "min.cleanable.dirty.ratio": "0.01",
          "delete.retention.ms": "1000",
        },
      })),
    );
  }
  await transport.ensureTopics(pipeline.topics);
  const log = (line: string) => console.error(`state flow ${suffix}: ${line}`);

  // Pre-write the orders in big batches.
  const writing = performance.now();
  const producer = await transport.producer();
  const publisher = createPublisher<OrderPlaced>(pipeline, PUBLISH_ORDER, { producer });
  const generate = createOrderGenerator({ seed: 11, now: Date.now });
  for (let written = 0; written < orders;) {
    const batch = Array.from({ length: Math.min(10_000, orders - written) }, generate);
    await publisher.publish(batch);
    written += batch.length;
    if (written % 100_000 === 0 || written === orders) log(`written ${written}/${orders}`);
    if (performance.now() - writing > phaseTimeoutMs) {
      throw new Error(`Cannot write ${orders} orders within ${phaseTimeoutMs} ms`);
    }
  }
  await producer.close();
  const writeMs = Math.round(performance.now() - writing);

  // One member handles them; RSS sampled every `sampleEvery` outcomes.
  const samples: FlowSample[] = [];
  let handled = 0;
  let keysHeld = () => 0;
  const flowing = performance.now();
  const members = await startPipeline(pipeline, {
    transport,
    onOutcome() {
      handled++;
      if (handled % sampleEvery !== 0 && handled !== orders) return;
      const sample = {
        records: handled,
        seconds: Math.round((performance.now() - flowing) / 100) / 10,
        ...memory(),
        stateKeys: keysHeld(),
      };
      samples.push(sample);
      const snapshots = options.heapSnapshotDir;
      if (snapshots !== undefined && (handled === orders || handled === orders / 5)) {
        log(
          `heap snapshot ${
            v8.writeHeapSnapshot(`${snapshots}/flow-${suffix}-${handled}.heapsnapshot`)
          }`,
        );
      }
      log(
        `${handled}/${orders} at ${sample.seconds} s: rss ${sample.rssMiB} MiB, heap ` +
          `${sample.heapUsedMiB} MiB, ${sample.stateKeys} keys held`,
      );
    },
  });
  keysHeld = () => members.members[0]?.state?.size ?? 0;
  try {
    await until(`handling ${orders} orders`, () => handled >= orders, phaseTimeoutMs);
  } finally {
    await members.stop();
  }
  const flowMs = Math.round(performance.now() - flowing);

  // A second member on the same group and changelog restores the state.
  let restored: RestoreEvent | undefined;
  const second = await startPipeline(pipeline, {
    transport,
    onRestore(event) {
      if (event.kind === "restored") restored = event;
    },
  });
  let restore: FlowRestore;
  try {
    await until("the restore", () => restored !== undefined, phaseTimeoutMs);
    restore = { keys: restored!.keys ?? 0, ms: restored!.ms ?? 0, ...memory() };
    log(`restored ${restore.keys} keys in ${restore.ms} ms, rss ${restore.rssMiB} MiB`);
  } finally {
    await second.stop();
  }

  const at = (fraction: number) =>
    samples.find((s) => s.records >= orders * fraction)?.rssMiB ?? Number.NaN;
  const spread = (rss: number[]) =>
    rss.length === 0
      ? null
      : Math.round((Math.max(...rss) - Math.min(...rss)) / Math.min(...rss) * 1000) / 10;
  const windowS = (retentionMs + expiryIntervalMs(retentionMs)) / 1000;
  return {
    orders,
    retentionMs,
    changelogSegmentMs: options.changelogSegmentMs ?? null,
    writeMs,
    flowMs,
    recordsPerSecond: Math.round(orders / (flowMs / 1000)),
    samples,
    rssAt: { p10: at(0.1), p50: at(0.5), p100: at(1) },
    rssSpreadAfterWarmupPercent: spread(
      samples.filter((s) => s.records > orders * 0.1).map((s) => s.rssMiB),
    ) ?? 0,
    rssSpreadAfterWindowPercent: spread(
      samples.filter((s) => s.seconds >= windowS).map((s) => s.rssMiB),
    ),
    restore,
  };
}
