/**
 * Partitioned state on the real broker: members restore the state of the partitions they are
 * given from the changelog (and nothing else), keep their group membership while a restore
 * takes longer than the session timeout, and a key's outcome survives a member's replacement.
 * Key ownership regressions that the topic-backed store had on Kafka are checked here too.
 *
 * @module
 */
import assert from "node:assert/strict";
import { definePipeline } from "../../pipeline/definition.ts";
import type { Pipeline } from "../../pipeline/definition.ts";
import { startStageMember, waitUntilDrained } from "../../pipeline/run.ts";
import type { StageMember } from "../../pipeline/run.ts";
import type { StageOutcome } from "../../pipeline/runner.ts";
import type { RestoreEvent } from "../../pipeline/state_store.ts";
import type { KafkaTransport, KafkaTransportOptions } from "../../pipeline/transport/kafka/mod.ts";
import type { Transport } from "../../pipeline/transport/transport.ts";
import { brokerTest } from "../_broker.ts";
import { RetryableError } from "../../pipeline/errors.ts";
import { retryPolicy } from "../../pipeline/retry.ts";
import type { RetryPolicy } from "../../pipeline/retry.ts";
import { doubleStage, json, Num } from "../_fixtures.ts";
import type { NumHandler, NumValue } from "../_fixtures.ts";

/**
 * The Kafka transport, imported on first use: kafkajs reads environment variables when it
 * loads, and this file must load (its tests then ignored) without `--allow-env`.
 */
async function createKafkaTransport(
  brokers: string,
  options: KafkaTransportOptions,
): Promise<KafkaTransport> {
  const { createKafkaTransport: create } = await import("../../pipeline/transport/kafka/mod.ts");
  return create(brokers, options);
}

const runId = `${Date.now().toString(36)}${Deno.pid.toString(36)}`;
let counter = 0;

function names() {
  const base = `state-${runId}-${++counter}`;
  return { input: `${base}.in`, output: `${base}.out`, dlq: `${base}.dlq`, group: `${base}-g` };
}

function keyedPipeline(
  n: ReturnType<typeof names>,
  charged: string[],
  options: { handle?: NumHandler; key?: (input: NumValue) => string; retry?: RetryPolicy } = {},
): Pipeline {
  const stage = doubleStage((input, context) => {
    charged.push(`n-${input.n}`);
    return options.handle?.(input, context) ?? Promise.resolve({ n: 2 * input.n });
  }, { key: options.key ?? (({ n: value }) => `n-${value}`) });
  return definePipeline({
    name: "numbers",
    topics: [
      { name: n.input, partitions: 2, schema: Num },
      { name: n.output, partitions: 2, schema: Num },
      { name: n.dlq, partitions: 1, deadLetter: true },
    ],
    sources: [{ name: "feed", output: n.input, schema: Num }],
    stages: [{
      stage,
      input: n.input,
      output: n.output,
      group: n.group,
      deadLetter: n.dlq,
      retry: options.retry,
    }],
  });
}

/** A member as a worker runs it: its own transport and producer. */
async function worker(
  brokers: string,
  pipeline: Pipeline,
  options: { wrap?: (t: KafkaTransport) => Transport; onRestore?: (e: RestoreEvent) => void } = {},
) {
  const own = await createKafkaTransport(brokers, {
    sessionTimeout: 6000,
    heartbeatInterval: 1000,
    logger: () => {},
  });
  const transport = options.wrap?.(own) ?? own;
  const producer = await transport.producer();
  const outcomes: StageOutcome[] = [];
  const member: StageMember = await startStageMember(pipeline.stages[0], {
    transport,
    producer,
    onOutcome: (outcome) => outcomes.push(outcome),
    onRestore: options.onRestore,
  });
  return {
    member,
    outcomes,
    async stop() {
      await member.close();
      await producer.close();
      await own.close();
    },
  };
}

async function publish(transport: Transport, topic: string, key: string, value: string) {
  const producer = await transport.producer();
  try {
    await producer.send([{ topic, key, value }]);
  } finally {
    await producer.close();
  }
}

brokerTest(
  "state on Kafka: an undecodable record does not settle its key; a replacement member restores outcomes and skips duplicates",
  async (brokers) => {
    const n = names();
    const charged: string[] = [];
    const pipeline = keyedPipeline(n, charged);
    const admin = await createKafkaTransport(brokers, { logger: () => {} });
    await admin.ensureTopics(pipeline.topics);
    const drain = () => waitUntilDrained(pipeline, admin, { timeoutMs: 30_000, pollMs: 50 });
    let first = await worker(brokers, pipeline);
    try {
      await publish(admin, n.input, "n-1", '{"n": 1, "event_version": 2');
      await publish(admin, n.input, "n-1", JSON.stringify({ n: 1 }));
      await publish(admin, n.input, "n-2", JSON.stringify({ n: 2 }));
      await drain();
      assert.deepEqual(charged.sort(), ["n-1", "n-2"], "the valid n-1 is paid after its poison");
      await first.stop();
      // A new member (a restarted worker) knows the outcomes from the changelog alone.
      const restores: RestoreEvent[] = [];
      first = await worker(brokers, pipeline, { onRestore: (e) => restores.push(e) });
      await publish(admin, n.input, "n-1", JSON.stringify({ n: 1 }));
      await publish(admin, n.input, "n-2", JSON.stringify({ n: 2 }));
      await drain();
      assert.deepEqual(charged.sort(), ["n-1", "n-2"], "redeliveries are skipped, not charged");
      assert.deepEqual(first.outcomes.map((o) => o.kind), ["duplicate", "duplicate"]);
      const restored = restores.filter((e) => e.kind === "restored");
      assert.ok(restored.length >= 1);
      assert.equal(restored.at(-1)!.keys, 2, "both keys restored from the changelog");
    } finally {
      await first.stop();
      await admin.close();
    }
  },
);

brokerTest(
  "state on Kafka: the same order id under two record keys is charged once (KeyMismatchError)",
  async (brokers) => {
    const n = names();
    const charged: string[] = [];
    const pipeline = keyedPipeline(n, charged);
    const admin = await createKafkaTransport(brokers, { logger: () => {} });
    await admin.ensureTopics(pipeline.topics);
    const a = await worker(brokers, pipeline);
    const b = await worker(brokers, pipeline);
    try {
      await publish(admin, n.input, "n-7", JSON.stringify({ n: 7 }));
      await publish(admin, n.input, "other", JSON.stringify({ n: 7 }));
      await waitUntilDrained(pipeline, admin, { timeoutMs: 30_000, pollMs: 50 });
      assert.deepEqual(charged, ["n-7"]);
      const kinds = [...a.outcomes, ...b.outcomes].map((o) => `${o.kind}:${o.errorType ?? ""}`);
      assert.deepEqual(kinds.sort(), ["dead-lettered:KeyMismatchError", "output:"]);
    } finally {
      await a.stop();
      await b.stop();
      await admin.close();
    }
  },
);

brokerTest(
  "state on Kafka: a restore longer than the session timeout keeps the membership and holds records back",
  async (brokers) => {
    const n = names();
    const charged: string[] = [];
    const pipeline = keyedPipeline(n, charged);
    const admin = await createKafkaTransport(brokers, { logger: () => {} });
    await admin.ensureTopics(pipeline.topics);
    await publish(admin, n.input, "n-3", JSON.stringify({ n: 3 }));
    const restores: RestoreEvent[] = [];
    let release!: () => void;
    const released = new Promise<void>((resolve) => release = resolve);
    const slow = await worker(brokers, pipeline, {
      onRestore: (e) => restores.push(e),
      // The changelog read waits for the test: longer than the 6 s session timeout.
      wrap: (t) => ({
        ...t,
        ensureTopics: (s) => t.ensureTopics(s),
        producer: () => t.producer(),
        consumer: (o) => t.consumer(o),
        endOffsets: (topic) => t.endOffsets(topic),
        committedOffsets: (g, topic) => t.committedOffsets(g, topic),
        close: () => t.close(),
        async readPartitions(topic, partitions, each, signal) {
          await released;
          return t.readPartitions(topic, partitions, each, signal);
        },
      }),
    });
    try {
      const deadline = Date.now() + 30_000;
      while (restores.length === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const until = Date.now() + 9000;
      while (Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(charged, [], "nothing handled while restoring");
      release();
      await waitUntilDrained(pipeline, admin, { timeoutMs: 30_000, pollMs: 50 });
      assert.deepEqual(charged, ["n-3"]);
      assert.equal(
        restores.filter((e) => e.kind === "restoring").length,
        1,
        "one restore: the member kept its partitions (no new generation)",
      );
    } finally {
      release();
      await slow.stop();
      await admin.close();
    }
  },
);

brokerTest(
  "state on Kafka: a member restores on every assignment, including when it gets its partitions back",
  async (brokers) => {
    const n = names();
    const charged: string[] = [];
    const pipeline = keyedPipeline(n, charged);
    const admin = await createKafkaTransport(brokers, { logger: () => {} });
    await admin.ensureTopics(pipeline.topics);
    const restores: RestoreEvent[] = [];
    const first = await worker(brokers, pipeline, { onRestore: (e) => restores.push(e) });
    const restored = () => restores.filter((e) => e.kind === "restored");
    const until = async (what: string, condition: () => boolean) => {
      const deadline = Date.now() + 30_000;
      while (!condition()) {
        if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    try {
      await until("the first restore", () => restored().length >= 1);
      assert.deepEqual(restored()[0].partitions, [0, 1]);
      const second = await worker(brokers, pipeline);
      await until(
        "a restore of half the partitions",
        () => restored().some((e) => e.partitions.length === 1),
      );
      await second.stop();
      await until(
        "the partitions restored again",
        () => restored().at(-1)!.partitions.length === 2 && restored().length >= 3,
      );
      await publish(admin, n.input, "n-5", JSON.stringify({ n: 5 }));
      await waitUntilDrained(pipeline, admin, { timeoutMs: 30_000, pollMs: 50 });
      assert.deepEqual(charged, ["n-5"]);
    } finally {
      await first.stop();
      await admin.close();
    }
  },
);

brokerTest(
  "state on Kafka: a later record of a key follows its record parked in a retry tier",
  async (brokers) => {
    const n = names();
    const charged: string[] = [];
    let failFirst = true;
    const pipeline = keyedPipeline(n, charged, {
      key: ({ n: value }) => `k${Math.floor(value / 100)}`,
      retry: retryPolicy({ attempts: 1, tiers: [{ delayMs: 6000 }] }),
      handle: ({ n: value }) => {
        if (value === 101 && failFirst) {
          failFirst = false;
          return Promise.reject(new RetryableError("Injected failure: gateway 503"));
        }
        return Promise.resolve({ n: 2 * value });
      },
    });
    const admin = await createKafkaTransport(brokers, { logger: () => {} });
    await admin.ensureTopics(pipeline.topics);
    const member = await worker(brokers, pipeline);
    try {
      // Both at once: 102 is handled right after 101 failed, while 101 waits in its tier.
      const producer = await admin.producer();
      await producer.send([
        { topic: n.input, key: "k1", value: JSON.stringify({ n: 101 }) },
        { topic: n.input, key: "k1", value: JSON.stringify({ n: 102 }) },
      ]);
      await producer.close();
      const tier = pipeline.stages[0].retryTopics[0];
      await waitUntilDrained(pipeline, admin, { timeoutMs: 30_000, pollMs: 50 });
      // 102 never overtook 101: it followed it into the tier and is a duplicate of its key.
      assert.deepEqual(charged, ["n-101", "n-101"]);
      const outputs: number[] = [];
      await admin.readPartitions(
        n.output,
        [0, 1],
        (record) => outputs.push(json<NumValue>(record).n),
      );
      assert.deepEqual(outputs, [202]);
      const copies: string[] = [];
      await admin.readPartitions(
        tier,
        [0, 1],
        (record) => copies.push(json<NumValue>(record).n.toString()),
      );
      assert.deepEqual(copies.sort(), ["101", "102"]);
    } finally {
      await member.stop();
      await admin.close();
    }
  },
);
