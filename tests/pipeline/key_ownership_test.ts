/**
 * A record's key is the unit of ownership: a keyed stage's idempotency key is its record key, a
 * record whose key does not match its value is dead-lettered, and a record that fails to decode
 * never marks its key as done.
 */
import assert from "node:assert/strict";
import { definePipeline } from "../../pipeline/definition.ts";
import { seededRandom } from "../../pipeline/random.ts";
import { startStageMember, waitUntilDrained } from "../../pipeline/run.ts";
import type { StageMember } from "../../pipeline/run.ts";
import type { StageOutcome } from "../../pipeline/runner.ts";
import { createEmbeddedTransport } from "../../pipeline/transport/embedded/mod.ts";
import { doubleStage, envelopes, numbersSpec } from "../_fixtures.ts";

const decoder = new TextDecoder();

/** Two members of the stage, each with its own state: as two workers have. */
async function twoWorkers() {
  const transport = createEmbeddedTransport({ retryBackoffMs: 1 });
  let charged = 0;
  const stage = doubleStage(({ n }) => {
    charged++;
    return Promise.resolve({ n: 2 * n });
  }, { key: ({ n }) => `n-${n}` });
  const pipeline = definePipeline(numbersSpec({ stage, concurrency: 2 }));
  await transport.ensureTopics(pipeline.topics);
  const producer = await transport.producer();
  const outcomes: StageOutcome[] = [];
  const members: StageMember[] = [];
  for (let i = 0; i < 2; i++) {
    members.push(
      await startStageMember(pipeline.stage("double"), {
        transport,
        producer,
        random: seededRandom(i),
        onOutcome: (outcome) => outcomes.push(outcome),
      }),
    );
  }
  return {
    transport,
    pipeline,
    outcomes,
    charged: () => charged,
    async publish(key: string, value: string) {
      await producer.send([{ topic: "in", key, value }]);
      await waitUntilDrained(pipeline, transport, { timeoutMs: 5_000, pollMs: 2 });
    },
    async stop() {
      for (const member of members) await member.close();
      await producer.close();
      await transport.close();
    },
  };
}

Deno.test("key ownership: the same key under two record keys is charged once, the stray one dead-lettered as KeyMismatchError", async () => {
  const h = await twoWorkers();
  try {
    // "n-1" and "n-1-copy" land on different partitions, owned by different members.
    await h.publish("n-1", JSON.stringify({ n: 1 }));
    await h.publish("n-1-copy", JSON.stringify({ n: 1 }));
    assert.equal(h.charged(), 1, "charged once");
    assert.equal(h.transport.records("out").length, 1);
    const [envelope] = envelopes(h.transport, "in.dlq");
    assert.equal(envelope.error_type, "KeyMismatchError");
    assert.match(envelope.error_reason, /"n-1-copy"/);
    assert.match(envelope.error_reason, /"n-1"/);
  } finally {
    await h.stop();
  }
});

Deno.test("key ownership: a key first seen in an undecodable record is paid when it arrives valid", async () => {
  const h = await twoWorkers();
  try {
    await h.publish("n-1", JSON.stringify({ n: 1, event_version: 2 }).slice(0, 10));
    assert.equal(
      envelopes(h.transport, "in.dlq").length,
      1,
      "the undecodable record is dead-lettered",
    );
    await h.publish("n-1", JSON.stringify({ n: 1 }));
    assert.equal(h.charged(), 1, "the valid record is paid");
    assert.deepEqual(
      h.transport.records("out").map((r) => decoder.decode(r.key!)),
      ["n-1"],
    );
  } finally {
    await h.stop();
  }
});
