import assert from "node:assert/strict";
import { startStageMember } from "../../pipeline/run.ts";
import type { MemberState } from "../../pipeline/health.ts";
import { createEmbeddedTransport } from "../../pipeline/transport/embedded/mod.ts";
import type { Transport } from "../../pipeline/transport/transport.ts";
import { createEchoPipeline } from "./_echo_pipeline.ts";

/** The embedded transport, whose changelog reads wait until `release()`. */
function heldRestoreTransport(): { transport: Transport; release(): void; reads: string[] } {
  const inner = createEmbeddedTransport();
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  const reads: string[] = [];
  const transport: Transport = {
    ...inner,
    async readPartitions(topic, partitions, each, signal) {
      reads.push(`${topic}:${partitions.join(",")}`);
      await released;
      return inner.readPartitions(topic, partitions, each, signal);
    },
  };
  return { transport, release, reads };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test("startStageMember() reports assigning, then restoring until its state stores are restored, then consuming", async () => {
  const pipeline = createEchoPipeline({ keyed: true });
  const { transport, release, reads } = heldRestoreTransport();
  await transport.ensureTopics(pipeline.topics);
  const producer = await transport.producer();
  const states: MemberState[] = [];
  const member = await startStageMember(pipeline.stages[0], {
    transport,
    producer,
    onState: (state) => states.push(state),
  });
  try {
    // One restore per partition number on the embedded transport.
    await until(() => reads.length === 3, "the changelog reads");
    assert.deepEqual(reads.toSorted(), [0, 1, 2].map((p) => `echo-shout-shout-changelog:${p}`));
    assert.equal(states.at(-1), "restoring");
    assert.ok(!states.includes("consuming"), `consuming before the restore: ${states}`);
    release();
    await until(() => states.at(-1) === "consuming", "consuming");
    assert.equal(states[0], "assigning");
  } finally {
    await member.close();
    await producer.close();
    await transport.close();
  }
});

Deno.test("startStageMember() of a stage without state is consuming as soon as it is assigned", async () => {
  const pipeline = createEchoPipeline();
  const transport = createEmbeddedTransport();
  await transport.ensureTopics(pipeline.topics);
  const producer = await transport.producer();
  const states: MemberState[] = [];
  const member = await startStageMember(pipeline.stages[0], {
    transport,
    producer,
    onState: (state) => states.push(state),
  });
  try {
    assert.deepEqual(states, ["assigning", "assigning", "consuming"]);
  } finally {
    await member.close();
    await producer.close();
    await transport.close();
  }
});
