/**
 * Delivers one partition to one member: records in offset order, one at a time in a handler,
 * committing the longest complete prefix of the partition, and delivering a record again after
 * a backoff when its handler rejects or its {@linkcode RecordAck} is not made durable.
 *
 * A handler that resolves with `void` completes its record at once. One that resolves with a
 * `RecordAck` lets the next record in while the first one's `durable` is pending; its offset is
 * committed once `durable` resolved and every earlier record is complete. When a `durable`
 * rejects, the reader forgets every pending record and moves its position back to the oldest of
 * them (the embedded "seek"); completions of the forgotten records are ignored when they land.
 * The tracking is the shared {@linkcode PartitionCheckpointer}.
 *
 * @module
 */

import { PartitionCheckpointer } from "../checkpointer.ts";
import { isRecordAck } from "../transport.ts";
import type {
  IsolationLevel,
  RecordAck,
  RecordContext,
  RecordHandler,
  TransactionOffset,
} from "../transport.ts";
import type { PartitionLog } from "./_log.ts";
import type { ConsumerGroup } from "./_group.ts";
import { abortableDelay, type Semaphore } from "./_semaphore.ts";

/** Reported each time a record handler rejects; the record is delivered again. */
export interface HandlerErrorEvent {
  /** What the handler (or its record's `durable`) rejected with. */
  readonly error: unknown;
  /** The consumer group of the member. */
  readonly groupId: string;
  /** The record's topic. */
  readonly topic: string;
  /** The record's partition. */
  readonly partition: number;
  /** The record's offset. */
  readonly offset: number;
  /** How many times in a row the handler has failed on this record (1 on the first failure). */
  readonly attempt: number;
  /** How long the partition waits before delivering the record again, in milliseconds. */
  readonly retryInMs: number;
}

/** What a reader needs from its member. */
export interface PartitionReaderOptions {
  readonly log: PartitionLog;
  readonly group: ConsumerGroup;
  readonly handler: RecordHandler;
  readonly slots: Semaphore;
  readonly retryBackoffMs: number;
  /** Records delivered but not committed before the reader waits for the oldest. */
  readonly maxPending: number;
  /** Resolves once the partition's state is restored: no record is delivered before. */
  readonly ready?: Promise<void>;
  /** Which records of transactions the reader is given. */
  readonly isolation: IsolationLevel;
  /** Whether the reader commits completed offsets to its group. */
  readonly commitOffsets: boolean;
  /** Told of positions past records never handed over (see `ConsumerOptions.onPosition`). */
  readonly onPosition?: (position: TransactionOffset) => void;
  readonly onError: (event: HandlerErrorEvent) => void;
}

/** Resolves when `promise` settles or `signal` aborts, whichever is first; never rejects. */
function settledOrAborted(promise: Promise<unknown>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      signal.removeEventListener("abort", done);
      resolve();
    };
    signal.addEventListener("abort", done, { once: true });
    promise.then(done, done);
  });
}

/** A running delivery loop over one partition, from the group's committed offset. */
export class PartitionReader {
  readonly topic: string;
  readonly partition: number;
  readonly #controller = new AbortController();
  readonly #done: Promise<void>;

  constructor(options: PartitionReaderOptions) {
    this.topic = options.log.topic;
    this.partition = options.log.partition;
    this.#done = this.#deliver(options);
  }

  /**
   * Aborts the in-flight record's signal, stops fetching and resolves once the loop has ended
   * and every pending `durable` has settled (the complete prefix is committed by then).
   */
  stop(reason: string): Promise<void> {
    this.#controller.abort(new DOMException(reason, "AbortError"));
    return this.#done;
  }

  async #deliver(options: PartitionReaderOptions): Promise<void> {
    const { log, group, handler, slots, retryBackoffMs, maxPending, isolation, onError } = options;
    const signal = this.#controller.signal;
    if (options.ready !== undefined) await settledOrAborted(options.ready, signal);
    const context: RecordContext = { heartbeat: () => Promise.resolve(), signal };
    let position = group.committed(log.topic, log.partition) ?? 0;
    /** The offset that failed last, and how many times in a row. */
    let failedAt: number | undefined;
    let attempt = 0;
    /** Set when a `durable` rejected: where delivery starts again. */
    let rewind: { offset: number; error: unknown } | undefined;
    /** Aborted on stop and on a rewind, to wake the loop from any wait. */
    let wake = new AbortController();
    const onStop = () => wake.abort();
    signal.addEventListener("abort", onStop, { once: true });
    /** Every `durable` not settled yet, dropped ones included: stopping waits for them. */
    const unsettled = new Set<Promise<void>>();
    const checkpointer = new PartitionCheckpointer({
      unsettled,
      onAdvance(next, _count, passed) {
        if (options.commitOffsets) group.commit(log.topic, log.partition, next);
        if (passed) {
          options.onPosition?.({ topic: log.topic, partition: log.partition, offset: next });
        }
        if (failedAt !== undefined && next > failedAt) failedAt = undefined;
      },
      onRewind(from, _failed, error) {
        // The partition is delivered again from the oldest record that was pending.
        if (rewind === undefined || from < rewind.offset) rewind = { offset: from, error };
        wake.abort();
      },
    });

    while (!signal.aborted) {
      if (rewind !== undefined) {
        const { offset, error } = rewind;
        rewind = undefined;
        wake = new AbortController();
        position = offset;
        attempt = failedAt === offset ? attempt + 1 : 1;
        failedAt = offset;
        onError({
          error,
          groupId: group.groupId,
          topic: log.topic,
          partition: log.partition,
          offset,
          attempt,
          retryInMs: retryBackoffMs,
        });
        await abortableDelay(retryBackoffMs, wake.signal);
        continue;
      }
      if (checkpointer.size >= maxPending) {
        await settledOrAborted(checkpointer.oldestSettled(), wake.signal);
        continue;
      }
      // Control records, and aborted ones for read_committed, are never handed over: the
      // position passes them, and so does the committed offset once every record before is
      // complete (a partition ending in a control record is committed to its end).
      const past = log.pastInvisible(position, isolation);
      if (past > position) {
        position = past;
        checkpointer.passTo(past);
      }
      await log.waitFor(position, wake.signal, isolation);
      if (!(await slots.acquire(wake.signal))) continue;
      const record = log.readVisible(position, isolation);
      if (record === undefined) {
        // Woken by a stop, a rewind, or a change that made no record visible.
        slots.release();
        continue;
      }
      // Control records, and aborted ones for read_committed, are skipped: offsets may jump.
      position = record.offset;
      let failure: { error: unknown } | undefined;
      let result: void | RecordAck = undefined;
      try {
        result = await handler(record, context);
      } catch (error) {
        failure = { error };
      } finally {
        slots.release();
      }
      const ack = isRecordAck(result) ? result : undefined;
      if (rewind !== undefined) {
        // An earlier record failed meanwhile: this one is delivered again after it.
        checkpointer.forget(ack);
        continue;
      }
      if (failure === undefined) {
        checkpointer.track(position, ack);
        position++;
        continue;
      }
      // A handler that gave up because its partition was revoked is not an error to report:
      // the record is delivered again to the partition's next owner.
      if (signal.aborted) break;
      attempt = failedAt === position ? attempt + 1 : 1;
      failedAt = position;
      onError({
        error: failure.error,
        groupId: group.groupId,
        topic: log.topic,
        partition: log.partition,
        offset: position,
        attempt,
        retryInMs: retryBackoffMs,
      });
      await abortableDelay(retryBackoffMs, wake.signal);
    }
    signal.removeEventListener("abort", onStop);
    // Outcomes on their way settle on their own; the complete prefix is committed as they do.
    while (unsettled.size > 0) await Promise.allSettled([...unsettled]);
  }
}
