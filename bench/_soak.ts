/**
 * The soak (`deno task bench --soak`): is memory bounded? Orders are offered at a fixed rate
 * (`--rate`) from this process to one payment stage member in a process of its own
 * (`_soak_member.ts`: Kafka transport, zero-latency gateway, no failures, telemetry off, state
 * retention {@linkcode SOAK_RETENTION_MS}) for `--soak-minutes`; the member samples its RSS
 * every {@linkcode SAMPLE_EVERY_MS}. After a warm-up the
 * samples must stay within {@linkcode RSS_TOLERANCE} of each other. Then the history check:
 * once the retention has passed (no entry of the soak is live any more), a fresh member (its
 * own process, `_soak_member.ts`) started on the soak's group and changelog, against one
 * started on empty topics: its RSS must not depend on the orders that went before.
 *
 * @module
 */
import { PipelineError } from "../pipeline/errors.ts";
import { createPublisher } from "../pipeline/publisher.ts";
import { createBrokerTransport, type KafkaClientName } from "../pipeline/transport/broker.ts";
import type { OrderPlaced } from "../stages/events.ts";
import { createOrderGenerator } from "../stages/generate_order.ts";
import { createOrdersPipeline, PUBLISH_ORDER } from "../stages/orders_pipeline.ts";
import { writeModeResult } from "./_scaling.ts";
import {
  type FreshMember,
  type RssSample,
  SAMPLE_EVERY_MS,
  SETTLE_MS,
  type SoakMemberLine,
  soakPipelineOptions,
} from "./_soak_member.ts";
import { runBenchChild, spawnBenchChild } from "./_child.ts";

/** The target of issue 10: after the warm-up, RSS stays within this fraction. */
export const RSS_TOLERANCE = 0.1;
/**
 * The state retention of the soak, in ms: shorter than the run, so the live set of the
 * stage's state is bounded (rate x (retention + the 60 s expiry interval)); with the 7-day
 * default every order id of the run stays live and the store grows by design.
 */
export const SOAK_RETENTION_MS = 30_000;

/** The soak's rate in a `--targets` run, in orders/s: a steady load well within the machine. */
export const SOAK_RATE = 200;

/** What the soak found. */
export interface SoakResult {
  readonly offeredRate: number;
  readonly achievedRate: number;
  readonly minutes: number;
  readonly orders: number;
  readonly outcomes: number;
  readonly warmupS: number;
  readonly samples: readonly RssSample[];
  /** RSS after the warm-up, in MiB. */
  readonly rss: {
    readonly first: number;
    readonly last: number;
    readonly min: number;
    readonly max: number;
  };
  /** `(max - min) / min` after the warm-up. */
  readonly spread: number;
  /** Whether `spread` stayed within {@linkcode RSS_TOLERANCE}. */
  readonly flat: boolean;
  /** A fresh member after the soak's history, and one after none. */
  readonly history: { readonly after: FreshMember; readonly none: FreshMember };
  /** `after.rssMiB / none.rssMiB`. */
  readonly historyRatio: number;
  /** Whether the exact ratio (not `historyRatio`, rounded) is within {@linkcode RSS_TOLERANCE} of 1. */
  readonly historyBounded: boolean;
}

/** Settings of `deno task bench --soak`. */
export interface SoakModeOptions {
  readonly brokers: readonly string[];
  /** Offered orders per second. */
  readonly rate: number;
  /** How long orders are offered. */
  readonly minutes: number;
  readonly partitions: number;
  readonly client: KafkaClientName;
  /** Names end in this. */
  readonly suffix: string;
  /** Give up waiting for the last orders (and for a fresh member) after this long, in ms. */
  readonly timeoutMs: number;
  readonly out: string;
  readonly say: (line: string) => void;
  readonly cleanup: (topics: string[]) => Promise<void>;
}

/** Warm-up: 30% of the run, at most 2 minutes. */
export function warmupSeconds(minutes: number): number {
  return Math.min(120, Math.round(minutes * 60 * 0.3));
}

/** First, last, min, max and spread of the samples at or after `warmupS`. */
export function rssSummary(samples: readonly RssSample[], warmupS: number) {
  const after = samples.filter((s) => s.atS >= warmupS).map((s) => s.rssMiB);
  if (after.length === 0) {
    throw new PipelineError(`Cannot judge the soak: no RSS sample after the ${warmupS} s warm-up`);
  }
  const min = Math.min(...after);
  const max = Math.max(...after);
  // Judged before rounding: a rounded figure can land on either side of the line.
  return {
    rss: { first: after[0], last: after[after.length - 1], min, max },
    spread: Math.round(((max - min) / min) * 1000) / 1000,
    flat: max - min <= min * RSS_TOLERANCE,
  };
}

/**
 * Whether a member's RSS after a history (`afterMiB`) is within {@linkcode RSS_TOLERANCE} of
 * one's after none (`noneMiB`), and their ratio rounded for display. Judged on the exact ratio
 * (92 / 84 = 1.095 is within; 1.1 rounded is not, in floating point).
 */
export function historyVerdict(afterMiB: number, noneMiB: number) {
  return {
    historyRatio: Math.round((afterMiB / noneMiB) * 100) / 100,
    historyBounded: Math.abs(afterMiB - noneMiB) <= noneMiB * RSS_TOLERANCE,
  };
}

/** The arguments of `_soak_member.ts` for the member on the topics named by `suffix`. */
function memberArgs(options: SoakModeOptions, suffix: string): string[] {
  return [
    "--brokers",
    options.brokers.join(","),
    "--suffix",
    suffix,
    "--partitions",
    String(options.partitions),
    "--retention-ms",
    String(SOAK_RETENTION_MS),
    "--client",
    options.client,
  ];
}

// Its peak RSS is in /proc/self/status, which Deno reads only with every permission.
const MEMBER_PERMISSIONS = ["--allow-all"];
const MEMBER_SCRIPT = new URL("./_soak_member.ts", import.meta.url);

async function freshMember(options: SoakModeOptions, suffix: string): Promise<FreshMember> {
  return await runBenchChild<FreshMember>(
    MEMBER_SCRIPT,
    MEMBER_PERMISSIONS,
    memberArgs(options, suffix),
    `the soak's fresh member on "${suffix}"`,
  );
}

/**
 * Offers orders at the rate for the minutes to a member in its own process, which samples its
 * RSS; returns the samples once the member has seen every order's outcome.
 */
async function soak(options: SoakModeOptions, topicsUsed: string[]) {
  const pipeline = createOrdersPipeline(
    soakPipelineOptions(options.suffix, options.partitions, SOAK_RETENTION_MS),
  );
  topicsUsed.push(...pipeline.topics.map((topic) => topic.name));
  const total = options.rate * options.minutes * 60;
  const member = spawnBenchChild(
    MEMBER_SCRIPT,
    MEMBER_PERMISSIONS,
    [
      ...memberArgs(options, options.suffix),
      "--until",
      String(total),
      "--timeout-ms",
      String(options.minutes * 60_000 + options.timeoutMs),
    ],
    "the soak's member",
  );
  const lines = member.lines[Symbol.asyncIterator]();
  const samples: RssSample[] = [];
  let outcomes = 0;
  // Reads the member's lines until it is consuming (first call) or done (second call).
  const readUntil = async (wanted: "consuming" | "done") => {
    while (true) {
      const next = await lines.next();
      if (next.done) {
        await member.finished;
        throw new PipelineError(`Cannot see the soak's member ${wanted}: it ended early`);
      }
      const line = JSON.parse(next.value) as SoakMemberLine;
      if ("sample" in line) {
        samples.push(line.sample);
        options.say(
          `soak: ${line.sample.atS} s, member RSS ${line.sample.rssMiB} MiB, heap ` +
            `${line.sample.heapMiB} of ${line.sample.heapTotalMiB} MiB, external ` +
            `${line.sample.externalMiB} MiB, ${line.sample.outcomes} outcomes`,
        );
      } else if ("done" in line) {
        outcomes = line.done.outcomes;
      }
      if (wanted in line) return;
    }
  };
  const transport = await createBrokerTransport(options.brokers.join(","), {
    client: options.client,
    clientId: "bench-soak-publisher",
    logger: () => {},
  });
  try {
    await readUntil("consuming");
    const publisher = createPublisher<OrderPlaced>(pipeline, PUBLISH_ORDER, {
      producer: await transport.producer(),
    });
    const next = createOrderGenerator({ seed: 11, now: Date.now });
    const startedAt = performance.now();
    let offered = 0;
    // The member's samples are read while orders are offered, or its pipe would fill up.
    let failure: unknown;
    const reading = readUntil("done");
    reading.catch((error) => failure = error);
    // Paced like `deno task pipeline --rate`: publish what is due, then wait for more.
    while (offered < total) {
      if (failure) throw failure;
      const due = Math.floor(((performance.now() - startedAt) / 1000) * options.rate) + 1;
      const batch = Math.min(500, total - offered, due - offered);
      if (batch <= 0) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(10, 1000 / options.rate)));
        continue;
      }
      await publisher.publish(Array.from({ length: batch }, next));
      offered += batch;
    }
    const achievedRate = Math.round((offered / ((performance.now() - startedAt) / 1000)) * 10) /
      10;
    await reading;
    await member.finished;
    return { samples, offered, achievedRate, outcomes };
  } finally {
    member.kill();
    await transport.close();
  }
}

/** `deno task bench --soak`: runs the soak and the history check, prints, writes its JSON. */
export async function soakMode(options: SoakModeOptions): Promise<SoakResult> {
  const topicsUsed: string[] = [];
  try {
    options.say(
      `soak: ${options.rate} orders/s for ${options.minutes} min to one member in its own ` +
        `process, its RSS every ${SAMPLE_EVERY_MS / 1000} s ...`,
    );
    const run = await soak(options, topicsUsed);
    const warmupS = warmupSeconds(options.minutes);
    // Past the retention every entry of the soak has expired: both fresh members hold no live
    // key, so what differs between them is the history alone.
    options.say(
      `soak: waiting out the ${SOAK_RETENTION_MS / 1000} s state retention, then a fresh ` +
        "member after the soak's history and one after none ...",
    );
    await new Promise((resolve) => setTimeout(resolve, SOAK_RETENTION_MS));
    // One after the other, each alone on the machine: each idles a minute before its RSS is
    // read (`_soak_member.ts` says why).
    const after = await freshMember(options, options.suffix);
    const none = await freshMember(options, `${options.suffix}-none`);
    topicsUsed.push(
      ...createOrdersPipeline(
        soakPipelineOptions(`${options.suffix}-none`, options.partitions, SOAK_RETENTION_MS),
      ).topics.map((topic) => topic.name),
    );
    const result: SoakResult = {
      offeredRate: options.rate,
      achievedRate: run.achievedRate,
      minutes: options.minutes,
      orders: run.offered,
      outcomes: run.outcomes,
      warmupS,
      samples: run.samples,
      ...rssSummary(run.samples, warmupS),
      history: { after, none },
      ...historyVerdict(after.rssMiB, none.rssMiB),
    };
    console.log(["", ...describeSoak(result)].join("\n"));
    const file = await writeModeResult(options.out, "soak", {
      brokers: options.brokers.join(","),
      ...result,
    });
    console.log(`\nresults: ${file}`);
    return result;
  } finally {
    await options.cleanup(topicsUsed);
  }
}

/** The result as text lines. */
export function describeSoak(result: SoakResult): string[] {
  const verdict = (ok: boolean) => ok ? "PASS" : "FAIL";
  const { rss } = result;
  return [
    `soak: ${result.orders} orders at ${result.offeredRate}/s offered (${result.achievedRate}/s ` +
    `achieved) over ${result.minutes} min, ${result.outcomes} outcomes, state retention ` +
    `${SOAK_RETENTION_MS / 1000} s`,
    `  RSS after the ${result.warmupS} s warm-up: first ${rss.first}, last ${rss.last}, min ` +
    `${rss.min}, max ${rss.max} MiB; spread ${(result.spread * 100).toFixed(1)}% (target <= ` +
    `${RSS_TOLERANCE * 100}%): ${verdict(result.flat)}`,
    `  fresh member after the soak's history: ${result.history.after.keysRestored} keys ` +
    `restored, ready in ${result.history.after.readyMs} ms, RSS ${result.history.after.rssMiB} ` +
    `MiB after ${SETTLE_MS / 1000} s idle (lowest ${result.history.after.rssLowestMiB}, ` +
    `${result.history.after.rssSoonMiB} after 3 s, peak ${result.history.after.peakRssMiB})`,
    `  fresh member after no history: RSS ${result.history.none.rssMiB} MiB (lowest ` +
    `${result.history.none.rssLowestMiB}, ${result.history.none.rssSoonMiB} after 3 s, peak ` +
    `${result.history.none.peakRssMiB}); ` +
    `ratio of the settled RSS ${result.historyRatio} (target within ` +
    `${RSS_TOLERANCE * 100}%): ${verdict(result.historyBounded)}`,
  ];
}
