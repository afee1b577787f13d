import assert from "node:assert/strict";
import { judgeLatency, LATENCY_TARGETS } from "../../bench/_latency_targets.ts";
import { createBurningGateway, spin } from "../../bench/_burn_pipeline.ts";
import { machineCeiling } from "../../bench/_scaling.ts";
import { historyVerdict, rssSummary, warmupSeconds } from "../../bench/_soak.ts";
import { threadCpuDelta } from "../../bench/_threads.ts";
import { judgeTargets, RAW_RATIO_TARGET } from "../../bench/_targets.ts";
import type { ClientRow } from "../../bench/_clients.ts";
import type { ScalingResult } from "../../bench/_scaling.ts";
import type { SoakResult } from "../../bench/_soak.ts";
import { median, percentiles } from "../../bench/_stats.ts";
import { brokerTest } from "../_broker.ts";
import { requires } from "../_permissions.ts";

Deno.test("latency targets: a p99 at the target passes, one above fails, no sample fails", () => {
  const at = (value: number) => percentiles(Array.from({ length: 100 }, () => value));
  const [durable, committed] = judgeLatency(
    at(LATENCY_TARGETS.durableP99Ms),
    at(LATENCY_TARGETS.committedP99Ms + 1),
  );
  assert.equal(durable.pass, true);
  assert.equal(committed.pass, false);
  assert.equal(committed.p99Ms, LATENCY_TARGETS.committedP99Ms + 1);
  assert.equal(judgeLatency(percentiles([]), percentiles([]))[0].pass, false);
});

Deno.test("scaling: median of odd and even counts", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
});

Deno.test({
  name: "scaling: the machine's ceiling compares two spinning workers with one",
  // A worker's module is read from disk.
  ...requires("read"),
  async fn() {
    // The median of three rounds: one round read 3.09 while other processes loaded the two
    // cores (the single thread's second was starved). Two threads make at most twice the turns
    // of one, plus such noise; a sum over too many workers would read about 4.
    const ceiling = await machineCeiling(3);
    assert.ok(ceiling > 0 && ceiling < 3.5, `ceiling ${ceiling}`);
  },
});

Deno.test("burn: the gateway holds the thread at least the burn time per charge", async () => {
  const gateway = createBurningGateway(2000);
  const started = performance.now();
  const charge = await gateway.charge({
    idempotencyKey: "order-1",
    amount: 10,
    currency: "EUR",
    attempt: 1,
  });
  assert.ok(performance.now() - started >= 2);
  assert.equal(gateway.charges, 1);
  assert.ok(charge.paymentId.length > 0);
  const before = performance.now();
  spin(1000);
  assert.ok(performance.now() - before >= 1);
});

/** Soak samples 10 s apart with these RSS values, the rest fixed. */
function rssSamples(rssMiB: readonly number[]) {
  return rssMiB.map((rss, i) => ({
    atS: i * 10,
    rssMiB: rss,
    heapMiB: 1,
    heapTotalMiB: 2,
    externalMiB: 1,
    outcomes: i,
  }));
}

Deno.test("soak: the spread is judged on the samples after the warm-up only", () => {
  const samples = rssSamples([100, 200, 210, 220, 205]);
  const summary = rssSummary(samples, 10);
  assert.deepEqual(summary.rss, { first: 200, last: 205, min: 200, max: 220 });
  assert.equal(summary.spread, 0.1);
  assert.equal(summary.flat, true);
  assert.equal(rssSummary(samples, 0).flat, false);
  assert.throws(() => rssSummary(samples, 60), /no RSS sample after the 60 s warm-up/);
  assert.equal(warmupSeconds(10), 120);
  assert.equal(warmupSeconds(1), 18);
});

Deno.test("threads: the CPU delta is per thread id, idle threads left out", () => {
  const delta = threadCpuDelta(
    [{ tid: 1, name: "deno", cpuMs: 10 }, { tid: 2, name: "worker-1", cpuMs: 5 }],
    [
      { tid: 1, name: "deno", cpuMs: 12 },
      { tid: 2, name: "worker-1", cpuMs: 5 },
      { tid: 3, name: "worker-2", cpuMs: 7 },
    ],
  );
  assert.deepEqual(delta, [
    { tid: 3, name: "worker-2", cpuMs: 7 },
    { tid: 1, name: "deno", cpuMs: 2 },
  ]);
});

brokerTest(
  "scaling run: two workers handle every order once the group has settled",
  async (brokers) => {
    // Loaded here: kafkajs reads the environment when it loads (plain `deno test` grants none).
    const { runScaling } = await import("../../bench/_scaling_variant.ts");
    const run = await runScaling({
      brokers,
      suffix: `test-${Date.now().toString(36)}`,
      records: 400,
      partitions: 2,
      workers: 2,
      burnUs: 50,
      timeoutMs: 60_000,
    });
    assert.equal(run.workers, 2);
    // Every order has its outcome; outcomes reported before the clock started would be missing.
    const counted = Object.values(run.timeline).flat().reduce((sum, n) => sum + n, 0);
    assert.equal(counted, 400);
    assert.ok(run.outcomes >= 400);
    assert.deepEqual(Object.keys(run.timeline).sort(), ["0", "1"]);
    assert.ok(run.recordsPerSecond > 0);
    assert.ok(run.firstOutcomeMs <= run.processMs);
  },
);

Deno.test("targets: each of the six is judged from its part of the run", () => {
  const row = (variant: string, ratioToFastestRaw: number) =>
    ({ variant, ratioToFastestRaw, recordsPerSecond: 1, cpuUsPerRecord: 1 }) as ClientRow;
  const clients = [
    row("raw-platformatic", 1),
    // The fastest pipeline variants: 2 workers and exactly-once do not count for the ratio.
    row("workers2-platformatic", 0.95),
    row("pipeline-platformatic-eos", 0.9),
    row("pipeline-platformatic", RAW_RATIO_TARGET - 0.01),
    row("workers1-kafkajs", 0.5),
  ];
  const latency = judgeLatency(
    percentiles(Array.from({ length: 100 }, () => LATENCY_TARGETS.durableP99Ms)),
    percentiles(Array.from({ length: 100 }, () => LATENCY_TARGETS.committedP99Ms + 1)),
  );
  const scaling = {
    ratio: 1.6,
    target: 1.5,
    pass: true,
    median: { oneWorker: 100, twoWorkers: 160 },
    machineCeiling: { before: 1.9, after: 1.9 },
  } as ScalingResult;
  const member = {
    keysRestored: 0,
    readyMs: 1,
    rssMiB: 100,
    rssLowestMiB: 90,
    rssSoonMiB: 150,
    peakRssMiB: 200,
  };
  const soak = {
    spread: 0.05,
    flat: true,
    rss: { first: 100, last: 101, min: 100, max: 105 },
    warmupS: 120,
    minutes: 10,
    offeredRate: 200,
    orders: 120_000,
    history: { after: { ...member, rssMiB: 130 }, none: member },
    historyRatio: 1.3,
    historyBounded: false,
  } as SoakResult;
  const verdicts = judgeTargets({ clients, latency, scaling, soak });
  assert.deepEqual(verdicts.map((v) => v.pass), [false, true, true, false, true, false]);
  assert.match(verdicts[0].measured, /^0\.79x \(pipeline-platformatic/);
  assert.match(verdicts[0].measured, /exactly-once 0\.9x to 0\.9x/);
  const passing = judgeTargets({
    clients: [row("raw-kafkajs", 1), row("workers1-kafkajs", RAW_RATIO_TARGET)],
    latency: judgeLatency(percentiles([1]), percentiles([1])),
    scaling,
    soak: { ...soak, historyRatio: 1.05, historyBounded: true },
  });
  assert.ok(passing.every((v) => v.pass), JSON.stringify(passing));
});

Deno.test("soak: the history is judged on the exact ratio, not the rounded one", () => {
  // The 2026-12-01 01:23 run: 92 MiB after 120 000 orders, 84 after none.
  assert.deepEqual(historyVerdict(92, 84), { historyRatio: 1.1, historyBounded: true });
  assert.deepEqual(historyVerdict(92.5, 84), { historyRatio: 1.1, historyBounded: false });
  assert.equal(historyVerdict(77, 84).historyBounded, true);
  assert.equal(historyVerdict(75, 84).historyBounded, false);
});

Deno.test("soak: the spread is judged before it is rounded", () => {
  const samples = rssSamples([1000, 1100.4]);
  const summary = rssSummary(samples, 0);
  assert.equal(summary.spread, 0.1);
  assert.equal(summary.flat, false);
});
