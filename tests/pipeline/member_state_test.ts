import assert from "node:assert/strict";
import { startStageMember } from "../../pipeline/run.ts";
import type { MemberState } from "../../pipeline/health.ts";
import { createEmbeddedTransport } from "../../pipeline/transport/embedded/mod.ts";
import type { Assignment } from "../../pipeline/transport/transport.ts";
import { createEchoPipeline } from "./_echo_pipeline.ts";

Deno.test("startStageMember() reports assigning, then restoring until `restore` resolves, then consuming", async () => {
  const pipeline = createEchoPipeline();
  const transport = createEmbeddedTransport();
  await transport.ensureTopics(pipeline.topics);
  const producer = await transport.producer();
  const states: MemberState[] = [];
  let finishRestore!: () => void;
  const restoredFor: Assignment[] = [];
  const member = await startStageMember(pipeline.stages[0], {
    transport,
    producer,
    onState: (state) => states.push(state),
    restore(assignment) {
      restoredFor.push(assignment);
      return new Promise<void>((resolve) => finishRestore = resolve);
    },
  });
  try {
    assert.deepEqual(states, ["assigning", "assigning", "restoring"]);
    assert.deepEqual(restoredFor[0].partitions["echo.in"], [0, 1, 2]);
    finishRestore();
    await Promise.resolve();
    assert.deepEqual(states.at(-1), "consuming");
  } finally {
    await member.close();
    await producer.close();
    await transport.close();
  }
});

Deno.test("startStageMember() reports stopped when `restore` fails", async () => {
  const pipeline = createEchoPipeline();
  const transport = createEmbeddedTransport();
  await transport.ensureTopics(pipeline.topics);
  const producer = await transport.producer();
  const reports: string[] = [];
  const member = await startStageMember(pipeline.stages[0], {
    transport,
    producer,
    onState: (state, detail) => reports.push(detail === undefined ? state : `${state}: ${detail}`),
    restore: () => Promise.reject(new Error("changelog unreadable")),
  });
  try {
    await Promise.resolve();
    assert.equal(reports.at(-1), "stopped: restore failed: changelog unreadable");
  } finally {
    await member.close();
    await producer.close();
    await transport.close();
  }
});
