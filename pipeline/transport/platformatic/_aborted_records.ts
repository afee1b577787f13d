/**
 * Drops aborted records from @platformatic/kafka's `read_committed` fetches, which 2.12.1 lets
 * through when a fetch response ends before the abort's control record.
 *
 * A `read_committed` fetch answers with the aborted transactions overlapping the records it
 * returns (producer id and first offset); a transaction is listed only once its abort marker is
 * written. The client filters a producer's records only between that first offset and an abort
 * marker in the same response: it treats a transaction whose marker comes in a later fetch as
 * open, and hands its records over as committed. A restore fetches 16 KiB of a partition at a
 * time, so any aborted transaction longer than that, or one cut by a fetch's edge, was restored
 * as if it had committed: a member took the state entries of an aborted transaction for real
 * ones and skipped the records they named, whose outputs had been aborted with them. That lost
 * orders in the exactly-once fault suite (`chaos/results/2026-12-01-platformatic-aborted-reads.md`).
 *
 * Here every fetch response is corrected before the client's stream reads it, as the Java
 * consumer reads one: going through the batches in offset order, a listed transaction's producer
 * is aborting from the transaction's first offset until its abort marker, and its transactional
 * batches in between lose their records. They are emptied, not removed, so the stream's fetch
 * position still moves past them (it is taken from a response's last batch).
 *
 * The response is reached through the client's `consumer:fetches` diagnostics channel, whose
 * `asyncStart` runs after the client parsed (and filtered) a response and before its callback
 * hands it to the stream. Responses of `read_uncommitted` fetches list no aborted transaction
 * and are left alone.
 *
 * @module
 */
import { consumerFetchesChannel } from "@platformatic/kafka";
import { dropAbortedBatches, type FetchedPartition } from "./_aborted_batches.ts";

/** What this module reads of a fetch response. */
interface FetchResponse {
  readonly responses?: readonly { readonly partitions?: readonly FetchedPartition[] }[];
}

function onFetched(context: unknown): void {
  const response = (context as { result?: FetchResponse }).result;
  for (const topic of response?.responses ?? []) {
    for (const partition of topic.partitions ?? []) dropAbortedBatches(partition);
  }
}

let installed = false;

/**
 * Corrects every @platformatic/kafka fetch response of this process from now on (once; later
 * calls do nothing).
 */
export function dropAbortedRecords(): void {
  if (installed) return;
  installed = true;
  consumerFetchesChannel.asyncStart.subscribe(onFetched);
}
