/**
 * The worker supervisor against a real broker: the orders pipeline in Web Workers, crashes and
 * restarts, giving up, and drain on stop. Every order must end up paid or dead-lettered
 * exactly once, counted by an independent consumer of `payments` and the DLQ.
 *
 * Needs `KAFKA_BROKERS`; ignored without it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { brokerAvailable, loadKafkaTransport } from "../../_broker.ts";
import { ConfigError } from "../../../pipeline/errors.ts";
import { Readiness } from "../../../pipeline/health.ts";
import type { MemberState } from "../../../pipeline/health.ts";
import { createPublisher } from "../../../pipeline/publisher.ts";
import { retryPolicy } from "../../../pipeline/retry.ts";
import { waitUntilDrained } from "../../../pipeline/run.ts";
import { startSupervisor } from "../../../pipeline/supervisor/mod.ts";
import type {
  Supervisor,
  SupervisorEvent,
  SupervisorOptions,
  SupervisorSpec,
  WorkerOutcome,
} from "../../../pipeline/supervisor/mod.ts";
import type { KafkaTransport } from "../../../pipeline/transport/kafka/mod.ts";
import type { ConsumedRecord, Consumer } from "../../../pipeline/transport/transport.ts";
import type { OrderPlaced } from "../../../stages/events.ts";
import { createOrderGenerator } from "../../../stages/generate_order.ts";
import { PUBLISH_ORDER } from "../../../stages/orders_pipeline.ts";
import { createWorkerPipeline } from "../../../stages/worker_pipeline.ts";
import type { WorkerPipelineOptions } from "../../../stages/worker_pipeline.ts";

const { brokers = "", ignoreReason } = brokerAvailable();
const ignore = ignoreReason !== undefined;
// kafkajs reads the environment when it loads: loaded only for the broker tests.
const kafka = ignore ? undefined : await loadKafkaTransport();
const runId = `${Date.now().toString(36)}${Deno.pid.toString(36)}`;
const WORKER_PIPELINE = new URL("../../../stages/worker_pipeline.ts", import.meta.url).href;
const CRASHING_PIPELINE = new URL("./_crashing_pipeline.ts", import.meta.url).href;
const UNREACHABLE_PIPELINE = new URL("./_unreachable_pipeline.ts", import.meta.url).href;
const STAGE = "process-payment";
const decoder = new TextDecoder();
let scenarios = 0;

function quietTransport(): KafkaTransport {
  return kafka!.createKafkaTransport(brokers, { logger: () => {} });
}

/** Unique topics and group for one test, a fast retry policy, a seeded gateway. */
function scenario(seed: number, overrides: Partial<WorkerPipelineOptions> = {}) {
  const name = `sup-${runId}-${++scenarios}`;
  const options: WorkerPipelineOptions = {
    ordersTopic: `${name}.orders`,
    paymentsTopic: `${name}.payments`,
    dlqTopic: `${name}.dlq`,
    groupId: name,
    partitions: 4,
    failureRate: 0.3,
    seed,
    retry: retryPolicy({
      attempts: 3,
      initialDelayMs: 5,
      multiplier: 1,
      maxDelayMs: 5,
      jitter: false,
    }),
    ...overrides,
  };
  const spec: SupervisorSpec = {
    pipeline: { module: WORKER_PIPELINE, export: "createWorkerPipeline", options },
    transport: { kind: "kafka", brokers },
    stages: { [STAGE]: { workers: 2 } },
  };
  return { name, options, spec, pipeline: createWorkerPipeline(options) };
}

async function waitUntil(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Publishes `count` seeded orders; returns their ids. */
async function publishOrders(
  transport: KafkaTransport,
  options: WorkerPipelineOptions,
  count: number,
  seed: number,
): Promise<string[]> {
  const pipeline = createWorkerPipeline(options);
  await transport.ensureTopics(pipeline.topics);
  const producer = await transport.producer();
  const publisher = createPublisher<OrderPlaced>(pipeline, PUBLISH_ORDER, { producer });
  const next = createOrderGenerator({ seed, now: () => 0 });
  const ids: string[] = [];
  try {
    for (let sent = 0; sent < count; sent += 250) {
      const orders = Array.from({ length: Math.min(250, count - sent) }, next);
      await publisher.publish(orders);
      ids.push(...orders.map((order) => order.order_id));
    }
  } finally {
    await producer.close();
  }
  return ids;
}

/** An independent reader of the payments and DLQ topics, counting records per order id. */
class Ledger {
  readonly payments = new Map<string, number>();
  readonly deadLetters = new Map<string, number>();
  readonly #positions = new Map<string, number>();
  #consumer?: Consumer;

  constructor(
    readonly transport: KafkaTransport,
    readonly options: WorkerPipelineOptions,
    readonly group: string,
  ) {}

  async start(): Promise<void> {
    const topics = [this.options.paymentsTopic!, this.options.dlqTopic!];
    this.#consumer = await this.transport.consumer({
      groupId: this.group,
      topics,
      partitionConcurrency: 5,
    });
    // deno-lint-ignore require-await -- a record handler returns a promise.
    await this.#consumer.run(async (record: ConsumedRecord) => {
      const id = record.key === null ? "" : decoder.decode(record.key);
      const counts = record.topic === this.options.paymentsTopic ? this.payments : this.deadLetters;
      counts.set(id, (counts.get(id) ?? 0) + 1);
      this.#positions.set(`${record.topic}/${record.partition}`, record.offset + 1);
    });
  }

  /** Whether every record written so far to both topics has been read. */
  async caughtUp(): Promise<boolean> {
    for (const topic of [this.options.paymentsTopic!, this.options.dlqTopic!]) {
      const { end } = await this.transport.endOffsets(topic);
      for (const { partition, offset } of end) {
        if ((this.#positions.get(`${topic}/${partition}`) ?? 0) < offset) return false;
      }
    }
    return true;
  }

  settled(ids: readonly string[]): boolean {
    return ids.every((id) => this.payments.has(id) || this.deadLetters.has(id));
  }

  /** Asserts every id was paid or dead-lettered exactly once, and nothing else appeared. */
  assertExactlyOnce(ids: readonly string[]): void {
    const twice = ids.filter((id) =>
      (this.payments.get(id) ?? 0) + (this.deadLetters.get(id) ?? 0) !== 1
    );
    assert.deepEqual(twice.slice(0, 10), [], `${twice.length} orders not settled exactly once`);
    assert.equal(this.payments.size + this.deadLetters.size, ids.length);
  }

  /**
   * Asserts every id was settled one way (paid or dead-lettered, never both) and none lost; an
   * outcome may appear twice, as at least once allows after a worker is terminated between its
   * output's acknowledgement and its state entry's. Returns how many appeared twice.
   */
  assertSettledOnce(ids: readonly string[]): number {
    const unsettled = ids.filter((id) =>
      ((this.payments.get(id) ?? 0) > 0) === ((this.deadLetters.get(id) ?? 0) > 0)
    );
    assert.deepEqual(unsettled.slice(0, 10), [], `${unsettled.length} orders lost or both`);
    assert.equal(this.payments.size + this.deadLetters.size, ids.length);
    return ids.reduce(
      (n, id) => n + (this.payments.get(id) ?? 0) + (this.deadLetters.get(id) ?? 0) - 1,
      0,
    );
  }

  async close(): Promise<void> {
    await this.#consumer?.close();
  }
}

function recorder() {
  const outcomes: WorkerOutcome[] = [];
  const events: SupervisorEvent[] = [];
  const options: SupervisorOptions = {
    onOutcome: (outcome) => outcomes.push(outcome),
    onEvent: (event) => events.push(event),
    restart: { initialDelayMs: 100, multiplier: 2, maxDelayMs: 1000 },
  };
  const settled = () =>
    outcomes.filter((o) => o.kind === "output" || o.kind === "dead-lettered").length;
  return { outcomes, events, options, settled };
}

async function stopAll(supervisor: Supervisor | undefined): Promise<void> {
  if (supervisor === undefined) return;
  await supervisor.stop(20_000);
}

Deno.test("startSupervisor() refuses the embedded transport", async () => {
  await assert.rejects(
    startSupervisor({
      pipeline: { module: WORKER_PIPELINE, export: "createWorkerPipeline" },
      transport: { kind: "embedded" },
    }),
    (error: unknown) =>
      error instanceof ConfigError && error.field === "transport.kind" &&
      /startPipeline\(\)/.test(error.message),
  );
});

Deno.test({
  name: "startSupervisor() with 2 workers pays or dead-letters 1000 orders exactly once",
  ignore,
  async fn() {
    const { name, options, spec, pipeline } = scenario(11);
    const transport = quietTransport();
    const seen = recorder();
    const ledger = new Ledger(transport, options, `${name}-ledger`);
    let supervisor: Supervisor | undefined;
    try {
      supervisor = await startSupervisor(spec, seen.options);
      assert.deepEqual(
        supervisor.workers().map((w) => [w.id, w.state]),
        [[`${STAGE}#0`, "running"], [`${STAGE}#1`, "running"]],
      );
      const ids = await publishOrders(transport, options, 1000, 11);
      await ledger.start();
      await waitUntil("every order settled", () => ledger.settled(ids), 90_000);
      await waitUntilDrained(pipeline, transport, { timeoutMs: 30_000 });
      await waitUntil("ledger caught up", () => ledger.caughtUp());
      ledger.assertExactlyOnce(ids);
      assert.ok(ledger.deadLetters.size > 0, "a 30% failure rate dead-letters some orders");
      const report = await supervisor.stop(20_000);
      supervisor = undefined;
      assert.deepEqual([...report.drained].sort(), [`${STAGE}#0`, `${STAGE}#1`]);
      assert.deepEqual(report.terminated, []);
      // Outcomes reach the parent in batches; all of them by the time stop() resolved.
      assert.equal(seen.settled(), 1000);
      assert.deepEqual(seen.events.filter((e) => e.type === "crash"), []);
      assert.ok(seen.outcomes.every((o) => o.stage === STAGE && o.topic === options.ordersTopic));
    } finally {
      await stopAll(supervisor);
      await ledger.close();
      await transport.close();
    }
  },
});

/** Readiness that also keeps every state each member reported, in order. */
class RecordingReadiness extends Readiness {
  readonly reported = new Map<string, MemberState[]>();

  override report(id: string, state: MemberState, detail?: string): void {
    this.reported.set(id, [...(this.reported.get(id) ?? []), state]);
    super.report(id, state, detail);
  }
}

Deno.test({
  name:
    "startSupervisor() forwards each worker's restore to readiness: restoring until its state stores are restored, then consuming",
  ignore,
  async fn() {
    const { spec } = scenario(15);
    const readiness = new RecordingReadiness();
    const supervisor = await startSupervisor(spec, { ...recorder().options, readiness });
    const members = [`${STAGE}#0`, `${STAGE}#1`];
    try {
      await waitUntil(
        "every worker consuming",
        () => readiness.check().members.every((m) => m.state === "consuming"),
      );
      for (const id of members) {
        const states = readiness.reported.get(id) ?? [];
        const restoring = states.indexOf("restoring");
        assert.ok(restoring >= 0, `${id} never reported restoring: ${states}`);
        assert.ok(
          restoring < states.indexOf("consuming"),
          `${id} was consuming before its state was restored: ${states}`,
        );
        assert.equal(states.at(-1), "consuming");
      }
    } finally {
      await stopAll(supervisor);
    }
  },
});

Deno.test({
  name:
    "startSupervisor() restarts a worker terminated mid-stream twice; nothing lost, each order settled one way",
  ignore,
  async fn() {
    const { name, options, spec, pipeline } = scenario(12, { latencyMs: 10 });
    const transport = quietTransport();
    const seen = recorder();
    const ledger = new Ledger(transport, options, `${name}-ledger`);
    let supervisor: Supervisor | undefined;
    const starts = (worker: string) =>
      seen.events.filter((e) => e.type === "started" && e.worker === worker).length;
    try {
      supervisor = await startSupervisor(spec, seen.options);
      const ids = await publishOrders(transport, options, 1000, 12);
      await ledger.start();

      await waitUntil("first outcomes", () => seen.settled() >= 100);
      supervisor.terminate(`${STAGE}#0`);
      await waitUntil("worker 0 restarted", () => starts(`${STAGE}#0`) === 2);
      const before = seen.settled();
      await waitUntil("progress after the restart", () => seen.settled() >= before + 100, 90_000);
      supervisor.terminate(`${STAGE}#1`);
      await waitUntil("worker 1 restarted", () => starts(`${STAGE}#1`) === 2);

      await waitUntil("every order settled", () => ledger.settled(ids), 120_000);
      await waitUntilDrained(pipeline, transport, { timeoutMs: 60_000 });
      await waitUntil("ledger caught up", () => ledger.caughtUp());
      // At least once: a terminated worker may have written an outcome whose state entry it had
      // not, and its successor writes it again; none is lost, each is settled one way.
      const writtenTwice = ledger.assertSettledOnce(ids);
      console.error(`${writtenTwice} outcomes written twice after the terminations`);

      const crashes = seen.events.filter((e) => e.type === "crash");
      assert.deepEqual(
        crashes.map((e) => e.type === "crash" && [e.worker, e.restart?.attempt]),
        [[`${STAGE}#0`, 1], [`${STAGE}#1`, 1]],
      );
      assert.ok(crashes.every((e) => e.type === "crash" && /test hook/.test(e.error.message)));
      assert.deepEqual(supervisor.workers().map((w) => w.state), ["running", "running"]);
    } finally {
      await stopAll(supervisor);
      await ledger.close();
      await transport.close();
    }
  },
});

Deno.test({
  name: "startSupervisor() restarts a worker that cannot reach the broker past maxRestarts, " +
    "for outageToleranceMs, then gives it up",
  ignore,
  async fn() {
    const { options } = scenario(14);
    const seen = recorder();
    const spec: SupervisorSpec = {
      pipeline: { module: UNREACHABLE_PIPELINE, export: "createUnreachablePipeline", options },
      transport: { kind: "kafka", brokers },
      stages: { [STAGE]: { workers: 1 } },
    };
    const supervisor = await startSupervisor(spec, {
      ...seen.options,
      restart: {
        initialDelayMs: 10,
        multiplier: 2,
        maxDelayMs: 40,
        maxRestarts: 2,
        // Long enough for more than maxRestarts crashes even where a worker takes a second or
        // more to start (a loaded CI machine): it failed once at 1.5 s with only 3.
        outageToleranceMs: 8_000,
      },
    });
    try {
      await waitUntil("gave up", () => seen.events.some((e) => e.type === "gave-up"));
      const crashes = seen.events.filter((e) => e.type === "crash");
      // Far more than maxRestarts (2): a retriable crash does not count towards it.
      assert.ok(crashes.length > 3, `only ${crashes.length} crash(es) before giving up`);
      assert.deepEqual(
        crashes.slice(0, 4).map((e) => e.type === "crash" && e.restart),
        [
          { attempt: 1, delayMs: 10 },
          { attempt: 2, delayMs: 20 },
          { attempt: 3, delayMs: 40 },
          { attempt: 4, delayMs: 40 },
        ],
      );
      assert.ok(
        crashes.every((e) =>
          e.type === "crash" && e.error.reported.name === "BrokerUnavailableError" &&
          e.error.reported.retriable === true
        ),
      );
      assert.equal(crashes.at(-1)?.type === "crash" && crashes.at(-1)?.restart, null);
      assert.equal(supervisor.workers()[0].state, "gave-up");
    } finally {
      await supervisor.stop(5_000);
    }
  },
});

Deno.test({
  name: "startSupervisor() gives up a worker that crashes at startup more than maxRestarts times",
  ignore,
  async fn() {
    const { options } = scenario(13);
    const seen = recorder();
    const spec: SupervisorSpec = {
      pipeline: { module: CRASHING_PIPELINE, export: "createCrashingPipeline", options },
      transport: { kind: "kafka", brokers },
      stages: { [STAGE]: { workers: 1 } },
    };
    const supervisor = await startSupervisor(spec, {
      ...seen.options,
      restart: { initialDelayMs: 10, multiplier: 2, maxDelayMs: 40, maxRestarts: 2 },
    });
    try {
      await waitUntil("gave up", () => seen.events.some((e) => e.type === "gave-up"));
      const crashes = seen.events.filter((e) => e.type === "crash");
      assert.deepEqual(
        crashes.map((e) => e.type === "crash" && e.restart),
        [{ attempt: 1, delayMs: 10 }, { attempt: 2, delayMs: 20 }, null],
      );
      assert.ok(
        crashes.every((e) => e.type === "crash" && /always fails/.test(e.error.message)),
      );
      assert.equal(seen.events.filter((e) => e.type === "started").length, 0);
      assert.deepEqual(supervisor.workers(), [
        { stage: STAGE, id: `${STAGE}#0`, state: "gave-up", crashes: 3 },
      ]);
      assert.throws(() => supervisor.terminate(`${STAGE}#0`), /no such worker is alive/);
    } finally {
      const report = await supervisor.stop(5_000);
      assert.deepEqual(report, { drained: [], terminated: [] });
    }
  },
});

Deno.test({
  name: "Supervisor.stop() drains; a restart afterwards processes nothing twice",
  ignore,
  async fn() {
    const { name, options, spec, pipeline } = scenario(14, { latencyMs: 5 });
    const transport = quietTransport();
    const first = recorder();
    const second = recorder();
    const ledger = new Ledger(transport, options, `${name}-ledger`);
    let supervisor: Supervisor | undefined;
    try {
      supervisor = await startSupervisor(spec, first.options);
      const ids = await publishOrders(transport, options, 1000, 14);
      await waitUntil("some outcomes", () => first.settled() >= 200);
      const report = await supervisor.stop(20_000);
      supervisor = undefined;
      assert.equal(report.drained.length, 2);
      assert.ok(first.settled() < 1000, "stopped mid-stream");
      assert.ok(
        first.events.filter((e) => e.type === "stopped").every((e) =>
          e.type === "stopped" && e.drained
        ),
      );

      // Drained means committed: every record the first run reported is below its
      // partition's committed offset.
      const committed = await transport.committedOffsets(name, options.ordersTopic!);
      const next = new Map(committed.map((c) => [c.partition, c.offset]));
      for (const outcome of first.outcomes) {
        assert.ok(outcome.offset < (next.get(outcome.partition) ?? 0), "outcome committed");
      }

      supervisor = await startSupervisor(spec, second.options);
      await ledger.start();
      await waitUntil("every order settled", () => ledger.settled(ids), 90_000);
      await waitUntilDrained(pipeline, transport, { timeoutMs: 30_000 });
      await waitUntil("ledger caught up", () => ledger.caughtUp());
      ledger.assertExactlyOnce(ids);
      await supervisor.stop(20_000);
      supervisor = undefined;

      const done = new Set(first.outcomes.map((o) => `${o.partition}/${o.offset}`));
      const again = second.outcomes.filter((o) => done.has(`${o.partition}/${o.offset}`));
      assert.deepEqual(again, []);
      // The second run's members join one after the other: records the first of them handled
      // before the second joined may be delivered again to their new owner if the rebalance
      // refused their commit. The state knows their keys: they are skipped as duplicates, never
      // charged again (the ledger above), and none is a record the first run completed.
      assert.equal(first.settled() + second.settled(), 1000);
    } finally {
      await stopAll(supervisor);
      await ledger.close();
      await transport.close();
    }
  },
});

Deno.test({
  name: "startSupervisor() runs its workers on @platformatic/kafka when the spec names it",
  ignore,
  async fn() {
    const { name, options, spec, pipeline } = scenario(13);
    // The workers run on @platformatic/kafka; the ledger reads with kafkajs, another client.
    const platformaticSpec: SupervisorSpec = {
      ...spec,
      transport: { kind: "kafka", brokers, options: { client: "platformatic" } },
    };
    const transport = quietTransport();
    const seen = recorder();
    const ledger = new Ledger(transport, options, `${name}-ledger`);
    let supervisor: Supervisor | undefined;
    try {
      supervisor = await startSupervisor(platformaticSpec, seen.options);
      const ids = await publishOrders(transport, options, 300, 13);
      await ledger.start();
      await waitUntil("every order settled", () => ledger.settled(ids), 90_000);
      await waitUntilDrained(pipeline, transport, { timeoutMs: 30_000 });
      await waitUntil("ledger caught up", () => ledger.caughtUp());
      ledger.assertExactlyOnce(ids);
      const report = await supervisor.stop(20_000);
      supervisor = undefined;
      assert.deepEqual(report.terminated, []);
      assert.equal(seen.settled(), 300);
      assert.deepEqual(seen.events.filter((e) => e.type === "crash"), []);
    } finally {
      await stopAll(supervisor);
      await ledger.close();
      await transport.close();
    }
  },
});
