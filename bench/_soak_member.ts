/**
 * The history check of the soak, in its own process: starts one payment stage member on the
 * soak's topics and group (`--suffix`), waits until it is consuming (its state restored from
 * the changelog), lets it idle a little, and prints its RSS as one JSON line
 * ({@linkcode FreshMember}). Run after a soak it restores that history; on a fresh suffix, none.
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

/** What a fresh member's process measured. */
export interface FreshMember {
  /** State entries restored. */
  readonly keysRestored: number;
  /** From start to consuming, in ms. */
  readonly readyMs: number;
  /** RSS once consuming and idle for `settleMs`, in MiB. */
  readonly rssMiB: number;
  /** The process's peak RSS (restore included), in MiB. */
  readonly peakRssMiB: number;
}

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
    // Idle a moment, as a member between records would be, before reading its RSS.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    return {
      keysRestored,
      readyMs,
      rssMiB: Math.round(Deno.memoryUsage().rss / 1024 / 1024),
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
