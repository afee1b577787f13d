/**
 * Which fetched batches belong to an aborted transaction (`_aborted_batches.ts`): the rule the
 * @platformatic/kafka transport applies to every `read_committed` fetch response, checked on
 * hand-built responses (the broker test is the contract's "an aborted transaction longer than a
 * fetch" case).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  dropAbortedBatches,
  type FetchedBatch,
  type FetchedPartition,
} from "../../../../pipeline/transport/platformatic/_aborted_batches.ts";

const TRANSACTIONAL = 1 << 4;
const CONTROL = 1 << 5;

/** A transactional batch of one record of producer `pid` at `offset`. */
function data(pid: number, offset: number): FetchedBatch {
  return {
    firstOffset: BigInt(offset),
    lastOffsetDelta: 0,
    producerId: BigInt(pid),
    attributes: TRANSACTIONAL,
    records: [{ key: new Uint8Array([1]) }],
  };
}

/** A control batch of producer `pid` at `offset`: its key is version 0, type 0 (abort) or 1. */
function marker(pid: number, offset: number, type: "abort" | "commit"): FetchedBatch {
  return {
    firstOffset: BigInt(offset),
    lastOffsetDelta: 0,
    producerId: BigInt(pid),
    attributes: TRANSACTIONAL | CONTROL,
    records: [{ key: new Uint8Array([0, 0, 0, type === "abort" ? 0 : 1]) }],
  };
}

/** The offsets of the batches that still hold records. */
function kept(partition: FetchedPartition): number[] {
  return (partition.records ?? []).filter((b) => b.records.length > 0).map((b) =>
    Number(b.firstOffset)
  );
}

function aborted(...transactions: [pid: number, firstOffset: number][]) {
  return transactions.map(([pid, firstOffset]) => ({
    producerId: BigInt(pid),
    firstOffset: BigInt(firstOffset),
  }));
}

Deno.test("an aborted transaction whose marker comes in a later fetch loses all its records", () => {
  const partition = {
    abortedTransactions: aborted([7, 0]),
    records: [data(7, 0), data(7, 1), data(7, 2)],
  };
  assert.equal(dropAbortedBatches(partition), 3);
  assert.deepEqual(kept(partition), []);
  // Emptied, not removed: the stream's fetch position is taken from the last batch.
  assert.equal(partition.records.length, 3);
});

Deno.test("only the aborted transaction's span is dropped, up to its abort marker", () => {
  const partition = {
    abortedTransactions: aborted([7, 2]),
    records: [
      data(7, 0),
      marker(7, 1, "commit"),
      data(7, 2),
      data(7, 3),
      marker(7, 4, "abort"),
      data(7, 5),
      marker(7, 6, "commit"),
    ],
  };
  assert.equal(dropAbortedBatches(partition), 2);
  assert.deepEqual(kept(partition), [0, 1, 4, 5, 6]);
});

Deno.test("two aborted transactions of one producer, a committed one between them", () => {
  const partition = {
    abortedTransactions: aborted([7, 0], [7, 4]),
    records: [
      data(7, 0),
      marker(7, 1, "abort"),
      data(7, 2),
      marker(7, 3, "commit"),
      data(7, 4),
      data(7, 5),
    ],
  };
  assert.equal(dropAbortedBatches(partition), 3);
  assert.deepEqual(kept(partition), [1, 2, 3]);
});

Deno.test("another producer's records interleaved with an aborted transaction are kept", () => {
  const nonTransactional = { ...data(9, 2), attributes: 0, producerId: -1n };
  const partition = {
    abortedTransactions: aborted([7, 0]),
    records: [data(7, 0), data(8, 1), nonTransactional, data(7, 3), marker(8, 4, "commit")],
  };
  assert.equal(dropAbortedBatches(partition), 2);
  assert.deepEqual(kept(partition), [1, 2, 4]);
});

Deno.test("a response without aborted transactions (read_uncommitted) is left alone", () => {
  const partition = { abortedTransactions: null, records: [data(7, 0), data(7, 1)] };
  assert.equal(dropAbortedBatches(partition), 0);
  assert.deepEqual(kept(partition), [0, 1]);
  assert.equal(dropAbortedBatches({ abortedTransactions: aborted([7, 0]) }), 0);
});
