/**
 * The soak (`deno task bench --soak`): is memory bounded? Orders are offered at a fixed rate
 * (`--rate`) to one payment stage member in this process (Kafka transport, zero-latency
 * gateway, no failures, telemetry off, state retention {@linkcode SOAK_RETENTION_MS}) for
 * `--soak-minutes`; RSS is sampled every {@linkcode SAMPLE_EVERY_MS}. After a warm-up the
 * samples must stay within {@linkcode RSS_TOLERANCE} of each other. Then the history check:
 * once the retention has passed (no entry of the soak is live any more), a fresh member (its
 * own process, `_soak_member.ts`) started on the soak's group and changelog, against one
 * started on empty topics: its RSS must not depend on the orders that went before.
 *
 * @module
 */
import { errorMessage, PipelineError } from "../pipeline/errors.ts";
import { createPublisher } from "../pipeline/publisher.ts";
import { startPipeline, waitUntilDrained } from "../pipeline/run.ts";
import { createBrokerTransport, type KafkaClientName } from "../pipeline/transport/broker.ts";
import type { OrderPlaced } from "../stages/events.ts";
import { createOrderGenerator } from "../stages/generate_order.ts";
import { createOrdersPipeline, PUBLISH_ORDER } from "../stages/orders_pipeline.ts";
import { writeModeResult } from "./_scaling.ts";
import { type FreshMember, SETTLE_MS, soakPipelineOptions } from "./_soak_member.ts";
import { runBenchChild } from "./_child.ts";

/** How often RSS is sampled, in ms. */
export const SAMPLE_EVERY_MS = 10_000;
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

/** One RSS sample. */
export interface RssSample {
  /** Seconds since the first order was offered. */
  readonly atS: number;
  /** Resident set size, in MiB. */
  readonly rssMiB: number;
  /** V8 heap in use, in MiB. */
  readonly heapMiB: number;
  /** Outcomes so far. */
  readonly outcomes: number;
}

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
  /** Whether `historyRatio` is within {@linkcode RSS_TOLERANCE} of 1. */
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
  const spread = Math.round(((max - min) / min) * 1000) / 1000;
  return {
    rss: { first: after[0], last: after[after.length - 1], min, max },
    spread,
    flat: spread <= RSS_TOLERANCE,
  };
}

function rssNow(outcomes: number, startedAt: number): RssSample {
  const memory = Deno.memoryUsage();
  return {
    atS: Math.round((performance.now() - startedAt) / 1000),
    rssMiB: Math.round(memory.rss / 1024 / 1024),
    heapMiB: Math.round(memory.heapUsed / 1024 / 1024),
    outcomes,
  };
}

async function freshMember(options: SoakModeOptions, suffix: string): Promise<FreshMember> {
  const script = new URL("./_soak_member.ts", import.meta.url);
  return await runBenchChild<FreshMember>(
    script,
    [
      // Its peak RSS is in /proc/self/status, which Deno reads only with every permission.
      "--allow-all",
    ],
    [
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
    ],
    `the soak's fresh member on "${suffix}"`,
  );
}

/**
 * Waits until the soak's last orders have their outcomes, looking again after a failed look
 * (a broker briefly without a group coordinator must not lose a 10-minute run's samples).
 */
async function drained(options: SoakModeOptions, wait: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  while (true) {
    try {
      return await wait();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      options.say(`soak: still waiting for the last outcomes: ${errorMessage(error)}`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

/** Offers orders at the rate for the minutes, sampling RSS; returns the samples. */
async function soak(options: SoakModeOptions, topicsUsed: string[]) {
  const transport = await createBrokerTransport(options.brokers.join(","), {
    client: options.client,
    clientId: "bench-soak",
    logger: () => {},
  });
  const pipeline = createOrdersPipeline(
    soakPipelineOptions(options.suffix, options.partitions, SOAK_RETENTION_MS),
  );
  topicsUsed.push(...pipeline.topics.map((topic) => topic.name));
  let outcomes = 0;
  const running = await startPipeline(pipeline, { transport, onOutcome: () => outcomes++ });
  try {
    const publisher = createPublisher<OrderPlaced>(pipeline, PUBLISH_ORDER, {
      producer: running.producer,
    });
    const next = createOrderGenerator({ seed: 11, now: Date.now });
    const total = options.rate * options.minutes * 60;
    const samples: RssSample[] = [];
    const startedAt = performance.now();
    const sampler = setInterval(() => {
      const sample = rssNow(outcomes, startedAt);
      samples.push(sample);
      options.say(
        `soak: ${sample.atS} s, RSS ${sample.rssMiB} MiB, heap ${sample.heapMiB} MiB, ` +
          `${sample.outcomes} outcomes`,
      );
    }, SAMPLE_EVERY_MS);
    let offered = 0;
    try {
      // Paced like `deno task pipeline --rate`: publish what is due, then wait for more.
      while (offered < total) {
        const due = Math.floor(((performance.now() - startedAt) / 1000) * options.rate) + 1;
        const batch = Math.min(500, total - offered, due - offered);
        if (batch <= 0) {
          await new Promise((resolve) => setTimeout(resolve, Math.min(10, 1000 / options.rate)));
          continue;
        }
        await publisher.publish(Array.from({ length: batch }, next));
        offered += batch;
      }
    } finally {
      clearInterval(sampler);
    }
    const achievedRate = Math.round((offered / ((performance.now() - startedAt) / 1000)) * 10) /
      10;
    await drained(options, () => waitUntilDrained(pipeline, transport, { timeoutMs: 30_000 }));
    return { samples, offered, achievedRate, outcomes };
  } finally {
    await running.stop();
    await transport.close();
  }
}

/** `deno task bench --soak`: runs the soak and the history check, prints, writes its JSON. */
export async function soakMode(options: SoakModeOptions): Promise<SoakResult> {
  const topicsUsed: string[] = [];
  try {
    options.say(
      `soak: ${options.rate} orders/s for ${options.minutes} min to one member in this ` +
        `process, RSS every ${SAMPLE_EVERY_MS / 1000} s ...`,
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
    const historyRatio = Math.round((after.rssMiB / none.rssMiB) * 100) / 100;
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
      historyRatio,
      historyBounded: Math.abs(historyRatio - 1) <= RSS_TOLERANCE,
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
