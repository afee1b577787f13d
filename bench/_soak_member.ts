/**
 * The history check of the soak, in its own process: starts one payment stage member on the
 * soak's topics and group (`--suffix`), waits until it is consuming (its state restored from
 * the changelog), lets it idle for {@linkcode SETTLE_MS}, and prints its RSS as one JSON line
 * ({@linkcode FreshMember}). Run after a soak it restores that history; on a fresh suffix, none.
 *
 * Why it idles that long: a restore decodes every changelog record it reads, and V8 grows its
 * heap for that garbage and gives the pages back only when its memory reducer runs, about 30 s
 * after the allocation stopped. The RSS a few seconds after the restore measures that
 * transient (reported as `rssSoonMiB`, and the peak as `peakRssMiB`); the RSS once settled is
 * what the member holds for as long as it runs.
 *
 * Its peak RSS is read in `/proc/self/status`, which Deno allows only with `-A`.
 *
 * Usage: `deno run -A bench/_soak_member.ts --brokers 127.0.0.1:9092 --suffix <names>
 *   --partitions <n> --retention-ms <n> [--client kafkajs]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { dropTimeoutNegativeWarnings } from "../infra/kafka/kafkajs_warning.ts";
import { errorMessage, PipelineError } from "../pipeline/errors.ts";
import { startPipeline } from "../pipeline/run.ts";
import { createBrokerTransport, parseKafkaClient } from "../pipeline/transport/broker.ts";
import type { KafkaClientName } from "../pipeline/transport/broker.ts";
import { createOrdersPipeline } from "../stages/orders_pipeline.ts";
import type { OrdersPipelineOptions } from "../stages/orders_pipeline.ts";
import { createPaymentGateway } from "../stages/payment_gateway.ts";
import { median } from "./_stats.ts";

/** What a fresh member's process measured. */
export interface FreshMember {
  /** State entries restored. */
  readonly keysRestored: number;
  /** From start to consuming, in ms. */
  readonly readyMs: number;
  /**
   * RSS once settled, in MiB: the median of one sample a second over the last half of
   * {@linkcode SETTLE_MS} idle (an idle member's heap still swings by 10 to 30 MiB between
   * collections, from its fetch loop's garbage, so a single sample says little).
   */
  readonly rssMiB: number;
  /** The lowest RSS of that last half, in MiB: what is left right after a collection. */
  readonly rssLowestMiB: number;
  /** RSS 3 s after consuming began, in MiB: the restore's garbage may still be mapped. */
  readonly rssSoonMiB: number;
  /** The process's peak RSS (restore included), in MiB. */
  readonly peakRssMiB: number;
}

/** How long a fresh member idles, consuming, before its RSS is read: see the module doc. */
export const SETTLE_MS = 60_000;
/** When the RSS is read early, to show the restore's transient. */
const SOON_MS = 3_000;

/** The soak's pipeline on the topics and group named by `suffix`. */
export function soakPipelineOptions(
  suffix: string,
  partitions: number,
  retentionMs: number,
): OrdersPipelineOptions {
  return {
    // The simulated gateway lives in the measured process: its keys expire with the state (a
    // real gateway is a service of its own), or they would grow the soak's RSS with its history.
    gateway: createPaymentGateway({ failureRate: 0, latencyMs: 0, keyTtlMs: retentionMs }),
    ordersTopic: `bench-soak-orders-${suffix}`,
    paymentsTopic: `bench-soak-payments-${suffix}`,
    dlqTopic: `bench-soak-dlq-${suffix}`,
    groupId: `bench-soak-${suffix}`,
    partitions,
    concurrency: 1,
    stateRetentionMs: retentionMs,
  };
}

/**
 * This process's peak RSS in MiB (`VmHWM`), or its current RSS where `/proc/self/status`
 * cannot be read (not Linux, or Deno run without every permission).
 */
export function peakRssMiB(): number {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
    if (match) return Math.round(Number(match[1]) / 1024);
  } catch {
    // Not Linux.
  }
  return Math.round(Deno.memoryUsage().rss / 1024 / 1024);
}

async function freshMember(
  brokers: string,
  suffix: string,
  partitions: number,
  retentionMs: number,
  client: KafkaClientName,
): Promise<FreshMember> {
  const transport = await createBrokerTransport(brokers, {
    client,
    clientId: "bench-soak-member",
    logger: () => {},
  });
  const pipeline = createOrdersPipeline(soakPipelineOptions(suffix, partitions, retentionMs));
  let keysRestored = 0;
  const consuming = Promise.withResolvers<void>();
  const running = await startPipeline(pipeline, {
    transport,
    onRestore(event) {
      if (event.kind === "restored") keysRestored += event.keys ?? 0;
    },
    onMemberState(_member, _stage, state) {
      if (state === "consuming") consuming.resolve();
    },
  });
  try {
    const timer = setTimeout(
      () => consuming.reject(new PipelineError("Cannot see the fresh member consuming in 120 s")),
      120_000,
    );
    await consuming.promise.finally(() => clearTimeout(timer));
    const readyMs = Math.round(performance.now());
    const rssMiB = () => Math.round(Deno.memoryUsage().rss / 1024 / 1024);
    const pause = () => new Promise((resolve) => setTimeout(resolve, 1000));
    let rssSoonMiB = 0;
    const settled: number[] = [];
    for (let second = 1; second <= SETTLE_MS / 1000; second++) {
      await pause();
      if (second === SOON_MS / 1000) rssSoonMiB = rssMiB();
      if (second > SETTLE_MS / 2000) settled.push(rssMiB());
    }
    return {
      keysRestored,
      readyMs,
      rssMiB: median(settled),
      rssLowestMiB: Math.min(...settled),
      rssSoonMiB,
      peakRssMiB: peakRssMiB(),
    };
  } finally {
    await running.stop();
    await transport.close();
  }
}

if (import.meta.main) {
  dropTimeoutNegativeWarnings();
  try {
    const { values } = parseArgs({
      args: Deno.args,
      options: {
        brokers: { type: "string" },
        suffix: { type: "string" },
        partitions: { type: "string" },
        "retention-ms": { type: "string" },
        client: { type: "string" },
      },
      strict: true,
    });
    for (const name of ["brokers", "suffix", "partitions", "retention-ms"] as const) {
      if (!values[name]) {
        throw new PipelineError(`Cannot start the soak's fresh member as '--${name}' is missing`);
      }
    }
    const result = await freshMember(
      values.brokers!,
      values.suffix!,
      Number(values.partitions),
      Number(values["retention-ms"]),
      parseKafkaClient(values.client),
    );
    console.log(JSON.stringify(result));
    Deno.exit(0);
  } catch (error) {
    console.error(`error: ${errorMessage(error)}`);
    Deno.exit(1);
  }
}
