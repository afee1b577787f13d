import assert from "node:assert/strict";
import { PartitionCheckpointer } from "../../../pipeline/transport/checkpointer.ts";

function deferred() {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const durable = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { ack: { durable }, resolve, reject };
}

function recorder() {
  const advanced: number[] = [];
  const rewound: { from: number; failed: number }[] = [];
  const unsettled = new Set<Promise<void>>();
  const checkpointer = new PartitionCheckpointer({
    unsettled,
    onAdvance: (next) => advanced.push(next),
    onRewind: (from, failed) => rewound.push({ from, failed }),
  });
  return { checkpointer, advanced, rewound, unsettled };
}

Deno.test("PartitionCheckpointer advances over the longest complete prefix only", async () => {
  const { checkpointer, advanced } = recorder();
  const first = deferred();
  checkpointer.track(0, first.ack);
  checkpointer.track(1);
  const third = deferred();
  checkpointer.track(2, third.ack);
  assert.deepEqual(advanced, [], "record 0 is still pending");
  third.resolve();
  await third.ack.durable;
  assert.deepEqual(advanced, []);
  first.resolve();
  await checkpointer.oldestSettled();
  assert.deepEqual(advanced, [3]);
  assert.equal(checkpointer.size, 0);
  checkpointer.track(3);
  assert.deepEqual(advanced, [3, 4], "a void record on an empty partition completes at once");
});

Deno.test("PartitionCheckpointer rewinds to the oldest pending record and ignores dropped completions", async () => {
  const { checkpointer, advanced, rewound, unsettled } = recorder();
  const a = deferred();
  const b = deferred();
  checkpointer.track(5, a.ack);
  checkpointer.track(6, b.ack);
  const rewindsBefore = checkpointer.rewinds;
  b.reject(new Error("Injected failure: not durable"));
  await b.ack.durable.catch(() => undefined);
  await Promise.resolve();
  assert.deepEqual(rewound, [{ from: 5, failed: 6 }]);
  assert.equal(checkpointer.rewinds, rewindsBefore + 1);
  assert.equal(checkpointer.size, 0);
  a.resolve();
  while (unsettled.size > 0) await Promise.allSettled([...unsettled]);
  assert.deepEqual(advanced, [], "a dropped record's completion commits nothing");
});

Deno.test("PartitionCheckpointer passes to a position past records never handed over once nothing is pending", async () => {
  const advanced: { next: number; count: number; passed: boolean }[] = [];
  const checkpointer = new PartitionCheckpointer({
    onAdvance: (next, count, passed) => advanced.push({ next, count, passed }),
    onRewind: () => undefined,
  });
  // Nothing pending: a trailing control record at offset 0 is passed at once.
  checkpointer.passTo(1);
  assert.deepEqual(advanced, [{ next: 1, count: 0, passed: true }]);
  // Records 1 and 2 pending, then a control record at 3: the pass waits for both.
  const first = deferred();
  const second = deferred();
  checkpointer.track(1, first.ack);
  checkpointer.track(2, second.ack);
  checkpointer.passTo(4);
  checkpointer.passTo(3);
  second.resolve();
  await second.ack.durable;
  assert.equal(advanced.length, 1, "record 1 is still pending");
  first.resolve();
  await checkpointer.oldestSettled();
  assert.deepEqual(advanced.at(-1), { next: 4, count: 2, passed: true });
  // A position not past the last record tracked changes nothing.
  checkpointer.track(4);
  checkpointer.passTo(5);
  assert.deepEqual(advanced.at(-1), { next: 5, count: 1, passed: false });
});

Deno.test("PartitionCheckpointer forgets a position to pass to on a rewind and behind a later record", async () => {
  const advanced: number[] = [];
  const checkpointer = new PartitionCheckpointer({
    onAdvance: (next) => advanced.push(next),
    onRewind: () => undefined,
  });
  const failing = deferred();
  checkpointer.track(0, failing.ack);
  checkpointer.passTo(2);
  failing.reject(new Error("Injected failure: not durable"));
  await checkpointer.oldestSettled();
  assert.deepEqual(advanced, [], "never past a record that failed");
  checkpointer.track(0);
  assert.deepEqual(advanced, [1], "the pass was forgotten with the rewind");
  const pending = deferred();
  checkpointer.track(1, pending.ack);
  checkpointer.passTo(3);
  checkpointer.track(3, deferred().ack);
  pending.resolve();
  await pending.ack.durable;
  await Promise.resolve();
  assert.deepEqual(advanced, [1, 2], "a record at the position makes the pass moot");
});
