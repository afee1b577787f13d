import assert from "node:assert/strict";
import { createStageState, entryJson, writeTombstones } from "../../pipeline/state_store.ts";
import type { StateEntry } from "../../pipeline/state_store.ts";
import type { RestoreEvent } from "../../pipeline/state_store.ts";
import { FakeClock } from "../../pipeline/testing/fake_clock.ts";
import { createEmbeddedTransport } from "../../pipeline/transport/embedded/mod.ts";

const START = 1_700_000_000_000;
const DAY = 24 * 3600 * 1000;
const CHANGELOG = "g-s-changelog";

async function setup(retentionMs = 7 * DAY) {
  const transport = createEmbeddedTransport();
  await transport.ensureTopics([{ name: CHANGELOG, partitions: 3 }]);
  const producer = await transport.producer();
  const clock = new FakeClock({ start: START });
  const events: RestoreEvent[] = [];
  const state = createStageState(transport, {
    changelog: CHANGELOG,
    clock,
    retentionMs,
    onRestore: (e) => events.push(e),
  });
  const signal = new AbortController().signal;
  const assign = (...partitions: number[]) =>
    state.listener.assigned(partitions.map((partition) => ({ topic: "in", partition })), signal);
  return { transport, producer, clock, state, events, assign };
}

Deno.test("createStageState() restores only the partitions assigned, from their changelog partition", async () => {
  const { producer, state, events, assign } = await setup();
  const other = createStageState(createEmbeddedTransport(), { changelog: CHANGELOG });
  assert.equal(other.size, 0);
  await producer.send([
    state.changelogRecord(0, "a", { outcome: "output", at: START }),
    state.changelogRecord(1, "b", { outcome: "dead-lettered", at: START }),
    state.changelogRecord(2, "c", { outcome: "output", at: START }),
    state.changelogRecord(2, "c", null),
  ]);
  await assign(0, 2);
  assert.deepEqual(state.partitions(), [0, 2]);
  assert.deepEqual(state.get(0, "a"), { outcome: "output", at: START });
  assert.equal(state.get(1, "b"), undefined, "partition 1 is not this member's");
  assert.equal(state.get(2, "c"), undefined, "a tombstone deletes");
  assert.deepEqual(events.map((e) => [e.kind, e.partitions, e.keys]), [
    ["restoring", [0, 2], undefined],
    ["restored", [0, 2], 1],
  ]);
  state.listener.revoked([{ topic: "in", partition: 0 }]);
  assert.equal(state.get(0, "a"), undefined, "a revoked partition's store is dropped");
  state.set(0, "z", { outcome: "output", at: START });
  assert.equal(state.get(0, "z"), undefined, "writes to partitions not owned are ignored");
});

Deno.test("createStageState() expires entries after the retention and writes tombstones", async () => {
  const { producer, clock, state, assign } = await setup(DAY);
  await producer.send([
    state.changelogRecord(0, "old", { outcome: "output", at: START - 2 * DAY }),
  ]);
  await assign(0);
  assert.equal(state.get(0, "old"), undefined, "expired while restoring");
  state.set(0, "a", { outcome: "output", at: START });
  clock.advance(DAY / 2);
  state.set(0, "b", { outcome: "dead-lettered", at: clock.now() });
  assert.deepEqual(
    state.expire().map((r) => [r.key, r.value, r.partition]),
    [["old", null, 0]],
    "the entry expired on restore gets its tombstone",
  );
  clock.advance(DAY / 2 + 1);
  assert.equal(state.get(0, "a"), undefined);
  assert.deepEqual(state.get(0, "b")?.outcome, "dead-lettered");
  assert.deepEqual(state.expire().map((r) => [r.key, r.value]), [["a", null]]);
  assert.equal(state.size, 1, "memory holds only the live key");
});

Deno.test("writeTombstones() writes batches bounded by count and key bytes, each after the last is acknowledged", async () => {
  const { state } = await setup();
  const tombstones = Array.from(
    { length: 12_500 },
    (_, i) => state.changelogRecord(0, `k${i}`, null),
  );
  const sizes: number[] = [];
  let inFlight = 0;
  const producer = {
    async send(records: readonly unknown[]) {
      inFlight++;
      assert.equal(inFlight, 1, "one send at a time");
      sizes.push(records.length);
      await Promise.resolve();
      inFlight--;
      return [];
    },
  };
  await writeTombstones(producer, tombstones);
  assert.deepEqual(sizes, [5000, 5000, 2500], "by count");
  sizes.length = 0;
  await writeTombstones(producer, tombstones.slice(0, 3), { maxRecords: 2 });
  assert.deepEqual(sizes, [2, 1]);
  sizes.length = 0;
  const large = [
    state.changelogRecord(0, "a".repeat(100_000), null),
    state.changelogRecord(0, "b".repeat(100_000), null),
    state.changelogRecord(0, "c".repeat(300_000), null),
    state.changelogRecord(0, "d", null),
  ];
  await writeTombstones(producer, large);
  assert.deepEqual(sizes, [2, 1, 1], "by bytes; a key over the bound alone");
});

Deno.test("entryJson() writes exactly what JSON.stringify writes, for every kind of entry", () => {
  const entries: StateEntry[] = [
    { outcome: "output", at: START },
    { outcome: "dead-lettered", at: 0 },
    { outcome: "output", at: 1.5 },
    { outcome: "parked", at: START, queue: [{ offset: 3, tier: 1 }] },
    { outcome: "parked", at: START, queue: [], settled: "output" },
  ];
  for (const entry of entries) assert.equal(entryJson(entry), JSON.stringify(entry));
});

Deno.test("changelogRecord() sends the key bytes it is given instead of the key's text", async () => {
  const { state } = await setup();
  const bytes = new TextEncoder().encode("k");
  assert.equal(state.changelogRecord(0, "k", { outcome: "output", at: START }, bytes).key, bytes);
  assert.equal(state.changelogRecord(0, "k", null, bytes).key, bytes);
  assert.equal(state.changelogRecord(0, "k", { outcome: "output", at: START }).key, "k");
});
