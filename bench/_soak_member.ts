/**
 * The soak's payment stage member, in a process of its own so that the RSS it reports is the
 * member's alone (not the publisher's, nor what earlier bench phases left in the bench's heap).
 * It starts on the soak's topics and group (`--suffix`) and waits until it is consuming (its
 * state restored from the changelog). Then, one of two jobs:
 *
 * - `--until <n>` (the soak): samples its memory every {@linkcode SAMPLE_EVERY_MS} until it has
 *   seen n outcomes, printing one JSON line ({@linkcode SoakMemberLine}) when consuming, per
 *   sample, and at the end.
 * - otherwise (the history check): idles for {@linkcode SETTLE_MS} and prints its RSS as one
 *   JSON line ({@linkcode FreshMember}). Run after a soak it restores that history; on a fresh
 *   suffix, none.
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
 *   --partitions <n> --retention-ms <n> [--client kafkajs] [--until <n> --timeout-ms <n>]`
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

/** How often the soak's member samples its RSS, in ms. */
export const SAMPLE_EVERY_MS = 10_000;
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

/** A member started in this process and consuming. */
interface OpenMember {
  readonly keysRestored: number;
  readonly readyMs: number;
  /** Outcomes so far. */
  outcomes(): number;
  /** Resolves once at least `count` outcomes were seen. */
  outcomesReach(count: number): Promise<void>;
  stop(): Promise<void>;
}

async function openMember(options: MemberOptions): Promise<OpenMember> {
  const transport = await createBrokerTransport(options.brokers, {
    client: options.client,
    clientId: "bench-soak-member",
    logger: () => {},
  });
  const pipeline = createOrdersPipeline(
    soakPipelineOptions(options.suffix, options.partitions, options.retentionMs),
  );
  let keysRestored = 0;
  let outcomes = 0;
  let waiting: { count: number; reached: () => void } | undefined;
  const consuming = Promise.withResolvers<void>();
  const running = await startPipeline(pipeline, {
    transport,
    onRestore(event) {
      if (event.kind === "restored") keysRestored += event.keys ?? 0;
    },
    onMemberState(_member, _stage, state) {
      if (state === "consuming") consuming.resolve();
    },
    onOutcome() {
      outcomes++;
      if (waiting && outcomes >= waiting.count) waiting.reached();
    },
  });
  const stop = async () => {
    await running.stop();
    await transport.close();
  };
  try {
    const timer = setTimeout(
      () => consuming.reject(new PipelineError("Cannot see the member consuming in 120 s")),
      120_000,
    );
    await consuming.promise.finally(() => clearTimeout(timer));
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    keysRestored,
    readyMs: Math.round(performance.now()),
    outcomes: () => outcomes,
    outcomesReach(count) {
      if (outcomes >= count) return Promise.resolve();
      const reached = Promise.withResolvers<void>();
      waiting = { count, reached: reached.resolve };
      return reached.promise;
    },
    stop,
  };
}

function rssMiB(): number {
  return Math.round(Deno.memoryUsage().rss / 1024 / 1024);
}

/** The history check: a member that idles {@linkcode SETTLE_MS}, then its RSS. */
async function freshMember(options: MemberOptions): Promise<FreshMember> {
  const member = await openMember(options);
  try {
    const pause = () => new Promise((resolve) => setTimeout(resolve, 1000));
    let rssSoonMiB = 0;
    const settled: number[] = [];
    for (let second = 1; second <= SETTLE_MS / 1000; second++) {
      await pause();
      if (second === SOON_MS / 1000) rssSoonMiB = rssMiB();
      if (second > SETTLE_MS / 2000) settled.push(rssMiB());
    }
    return {
      keysRestored: member.keysRestored,
      readyMs: member.readyMs,
      rssMiB: median(settled),
      rssLowestMiB: Math.min(...settled),
      rssSoonMiB,
      peakRssMiB: peakRssMiB(),
    };
  } finally {
    await member.stop();
  }
}

/** One RSS sample of the soak's member. */
export interface RssSample {
  /** Seconds since the member was consuming (orders are offered from then on). */
  readonly atS: number;
  /** Resident set size, in MiB. */
  readonly rssMiB: number;
  /** V8 heap in use, in MiB. */
  readonly heapMiB: number;
  /** V8 heap reserved (in use and free), in MiB. */
  readonly heapTotalMiB: number;
  /** Memory of JavaScript objects held outside the V8 heap (buffers), in MiB. */
  readonly externalMiB: number;
  /** Outcomes so far. */
  readonly outcomes: number;
}

/** A line the soak's member prints: it is consuming, a sample, or done. */
export type SoakMemberLine =
  | { readonly consuming: true }
  | { readonly sample: RssSample }
  | { readonly done: { readonly outcomes: number; readonly peakRssMiB: number } };

/**
 * The soak's member: consumes until `until` outcomes were seen (or `timeoutMs` passed),
 * printing a {@linkcode SoakMemberLine} when consuming, every {@linkcode SAMPLE_EVERY_MS}
 * and at the end.
 */
async function soakMember(options: MemberOptions, until: number, timeoutMs: number) {
  const print = (line: SoakMemberLine) => console.log(JSON.stringify(line));
  const member = await openMember(options);
  const startedAt = performance.now();
  print({ consuming: true });
  const sampler = setInterval(() => {
    const memory = Deno.memoryUsage();
    const mib = (bytes: number) => Math.round(bytes / 1024 / 1024);
    print({
      sample: {
        atS: Math.round((performance.now() - startedAt) / 1000),
        rssMiB: mib(memory.rss),
        heapMiB: mib(memory.heapUsed),
        heapTotalMiB: mib(memory.heapTotal),
        externalMiB: mib(memory.external),
        outcomes: member.outcomes(),
      },
    });
  }, SAMPLE_EVERY_MS);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      member.outcomesReach(until),
      new Promise((_, reject) => {
        timer = setTimeout(() =>
          reject(
            new PipelineError(
              `Cannot see ${until} outcomes in ${timeoutMs} ms: ${member.outcomes()} seen`,
            ),
          ), timeoutMs);
      }),
    ]);
    print({ done: { outcomes: member.outcomes(), peakRssMiB: peakRssMiB() } });
  } finally {
    clearTimeout(timer);
    clearInterval(sampler);
    await member.stop();
  }
}

/** Where the member runs. */
interface MemberOptions {
  readonly brokers: string;
  readonly suffix: string;
  readonly partitions: number;
  readonly retentionMs: number;
  readonly client: KafkaClientName;
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
        until: { type: "string" },
        "timeout-ms": { type: "string" },
      },
      strict: true,
    });
    for (const name of ["brokers", "suffix", "partitions", "retention-ms"] as const) {
      if (!values[name]) {
        throw new PipelineError(`Cannot start the soak's fresh member as '--${name}' is missing`);
      }
    }
    const options: MemberOptions = {
      brokers: values.brokers!,
      suffix: values.suffix!,
      partitions: Number(values.partitions),
      retentionMs: Number(values["retention-ms"]),
      client: parseKafkaClient(values.client),
    };
    if (values.until) {
      await soakMember(options, Number(values.until), Number(values["timeout-ms"] ?? 900_000));
    } else {
      console.log(JSON.stringify(await freshMember(options)));
    }
    Deno.exit(0);
  } catch (error) {
    console.error(`error: ${errorMessage(error)}`);
    Deno.exit(1);
  }
}
