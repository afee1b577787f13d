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
