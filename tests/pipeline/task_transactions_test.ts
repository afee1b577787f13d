import assert from "node:assert/strict";
import { TaskTransactions } from "../../pipeline/_task_transactions.ts";
import { createEmbeddedTransport } from "../../pipeline/transport/embedded/mod.ts";
import type {
  ConsumedRecord,
  Transaction,
  TransactionalProducer,
  Transport,
} from "../../pipeline/transport/transport.ts";

/** A record of partition 0 of `in` at `offset`. */
function inputRecord(offset: number): ConsumedRecord {
  return {
    topic: "in",
    partition: 0,
    offset,
    key: null,
    value: new TextEncoder().encode(`order ${offset}`),
    headers: {},
    timestamp: 0,
  };
}

/** Whether `promise` settles within `ms` (its outcome is not looked at). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), ms));
  try {
    return await Promise.race([promise.then(() => true, () => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `condition` until it holds, failing after `ms`. */
async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) assert.fail(`Timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * The embedded transport, whose transactions' commits wait for `release()` while `held` is
 * true: a commit still on its way, as when the broker is slow or restarting.
 */
function holdingCommits(transport: Transport) {
  const gate = {
    held: false,
    waiting: 0,
    release: () => {},
  };
  let opened: () => void = () => {};
  let released = new Promise<void>((resolve) => opened = resolve);
  gate.release = () => {
    gate.held = false;
    opened();
    released = new Promise<void>((resolve) => opened = resolve);
  };
  function holding(transaction: Transaction): Transaction {
    return {
      send: (records) => transaction.send(records),
      sendOffsets: (group, offsets) => transaction.sendOffsets(group, offsets),
      abort: () => transaction.abort(),
      async commit() {
        if (gate.held) {
          gate.waiting++;
          await released;
          gate.waiting--;
        }
        await transaction.commit();
      },
    };
  }
  const wrapped = new Proxy(transport, {
    get(target, property, receiver) {
      if (property !== "transactionalProducer") return Reflect.get(target, property, receiver);
      return async (options: { transactionalId: string }): Promise<TransactionalProducer> => {
        const producer = await target.transactionalProducer(options);
        return {
          transactionalId: producer.transactionalId,
          begin: async () => holding(await producer.begin()),
          close: () => producer.close(),
        };
      };
    },
  });
  return { transport: wrapped, gate };
}

Deno.test("TaskTransactions: a record sent in its task while the task is being revoked (a commit on its way) neither holds the revoke nor keeps the partition from being taken back", async () => {
  const embedded = createEmbeddedTransport({ retryBackoffMs: 5 });
  await embedded.ensureTopics([{ name: "in", partitions: 1 }, { name: "out", partitions: 1 }]);
  const { transport, gate } = holdingCommits(embedded);
  const tasks = new TaskTransactions({
    transport,
    group: "g",
    input: "in",
    maxRecords: 1,
    lingerMs: 60_000,
  });
  await tasks.assign([0]);

  // Record 0's transaction commits (maxRecords 1), slowly: the commit is held.
  gate.held = true;
  const first = inputRecord(0);
  const firstSent = tasks.producerFor(first).send([{ topic: "out", key: "a", value: "paid 0" }]);
  tasks.settled(first, true);
  await until(() => gate.waiting === 1, 5_000, "record 0's commit is on its way");

  // Record 1's handler took its task's producer, then waited (on the gateway, say)...
  const second = inputRecord(1);
  const producer = tasks.producerFor(second);
  // ...while the group moved on and the member gave the task up...
  const revoked = tasks.revoke([0]);
  // ...and then its handler sent its output and returned.
  const secondSent = producer.send([{ topic: "out", key: "b", value: "paid 1" }]);
  secondSent.catch(() => undefined);
  tasks.settled(second, true);

  gate.release();
  await firstSent;
  assert.equal(
    await settlesWithin(revoked, 3_000),
    true,
    "the revoke of task 0 never ends: its last commit waits for record 1 for ever",
  );
  // The member is given the partition back: its task opens again.
  assert.equal(
    await settlesWithin(tasks.assign([0]), 3_000),
    true,
    "task 0 cannot be taken back: its assignment waits for the revoke for ever",
  );
  // Record 1 is not lost: either its output committed with its offset, or neither did (its send
  // rejected, so the record is delivered again).
  const committed = await embedded.committedOffsets("g", "in");
  const offset = committed.find((p) => p.partition === 0)?.offset ?? 0;
  const secondOutcome = await settlesWithin(secondSent, 0).then(() =>
    secondSent.then(() => "committed", () => "rejected")
  );
  if (secondOutcome === "rejected") assert.equal(offset, 1, "record 1's offset committed");
  else assert.equal(offset, 2);
  await tasks.close();
});

Deno.test("TaskTransactions: a record whose output is in the open transaction and that settles while its task is being revoked has its offset committed with that output", async () => {
  const transport = createEmbeddedTransport({ retryBackoffMs: 5 });
  await transport.ensureTopics([{ name: "in", partitions: 1 }, { name: "out", partitions: 1 }]);
  const tasks = new TaskTransactions({
    transport,
    group: "g",
    input: "in",
    maxRecords: 10,
    lingerMs: 60_000,
  });
  await tasks.assign([0]);
  const record = inputRecord(0);
  const sent = tasks.producerFor(record).send([{ topic: "out", key: "a", value: "paid 0" }]);
  // The group moves on while the record's outcome is on its way; then it becomes durable.
  const revoked = tasks.revoke([0]);
  tasks.settled(record, true);
  await sent;
  await revoked;
  // Its output is committed, so its offset must be too: else the partition's next owner handles
  // it again and a read_committed reader sees "paid 0" twice.
  const outputs = transport.records("out", "read_committed");
  assert.equal(outputs.length, 1);
  const committed = await transport.committedOffsets("g", "in");
  assert.equal(committed.find((p) => p.partition === 0)?.offset, 1);
  await tasks.close();
});
