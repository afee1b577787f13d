/**
 * The Java consumer's rule for `read_committed` fetch responses, on @platformatic/kafka's parsed
 * batches: which of them belong to an aborted transaction (see `_aborted_records.ts`, which
 * applies it to every fetch). Kept apart so it is tested without loading the client.
 *
 * @module
 */

/** Attribute bit of a transactional batch. */
const IS_TRANSACTIONAL = 1 << 4;
/** Attribute bit of a control batch (a transaction marker). */
const IS_CONTROL = 1 << 5;
/** The control record type of an abort marker (its key: version int16, type int16). */
const ABORT_MARKER = 0;

/** What this module reads of a fetched batch. */
export interface FetchedBatch {
  readonly firstOffset: bigint;
  readonly lastOffsetDelta: number;
  readonly producerId: bigint;
  readonly attributes: number;
  records: readonly { readonly key?: Uint8Array | null }[];
}

/** What this module reads of a fetched partition. */
export interface FetchedPartition {
  readonly abortedTransactions?:
    | readonly { readonly producerId: bigint; readonly firstOffset: bigint }[]
    | null;
  readonly records?: readonly FetchedBatch[] | null;
}

/**
 * Empties the transactional batches of `partition` that belong to one of its aborted
 * transactions; returns how many batches it emptied.
 */
export function dropAbortedBatches(partition: FetchedPartition): number {
  const listed = partition.abortedTransactions;
  const batches = partition.records;
  if (!listed?.length || !batches?.length) return 0;
  const pending = [...listed].sort((a, b) =>
    a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0
  );
  const aborting = new Set<bigint>();
  let next = 0;
  let emptied = 0;
  for (const batch of batches) {
    const lastOffset = batch.firstOffset + BigInt(batch.lastOffsetDelta);
    while (next < pending.length && pending[next].firstOffset <= lastOffset) {
      aborting.add(pending[next++].producerId);
    }
    if ((batch.attributes & IS_CONTROL) !== 0) {
      if (isAbortMarker(batch)) aborting.delete(batch.producerId);
      continue;
    }
    if (
      (batch.attributes & IS_TRANSACTIONAL) !== 0 && aborting.has(batch.producerId) &&
      batch.records.length > 0
    ) {
      batch.records = [];
      emptied++;
    }
  }
  return emptied;
}

function isAbortMarker(batch: FetchedBatch): boolean {
  const key = batch.records[0]?.key;
  if (key === undefined || key === null || key.byteLength < 4) return false;
  return new DataView(key.buffer, key.byteOffset, key.byteLength).getInt16(2) === ABORT_MARKER;
}
