/**
 * Delivers one partition to one member: records in offset order, one at a time in a handler,
 * committing the longest complete prefix of the partition, and delivering a record again after
 * a backoff when its handler rejects or its {@linkcode RecordAck} is not made durable.
 *
 * A handler that resolves with `void` completes its record at once. One that resolves with a
 * `RecordAck` lets the next record in while the first one's `durable` is pending; its offset is
 * committed once `durable` resolved and every earlier record is complete. When a `durable`
 * rejects, the reader forgets that record and every later one and moves its position back to
 * it (the embedded "seek"); completions of the forgotten records are ignored when they land.
 *
 * @module
 */

import { isRecordAck } from "../transport.ts";
import type { RecordAck, RecordContext, RecordHandler } from "../transport.ts";
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
  readonly onError: (event: HandlerErrorEvent) => void;
}

/** A delivered record not yet committed, in offset order. */
interface Pending {
  readonly offset: number;
  /** Complete: handled with `void`, or its `durable` resolved. */
  done: boolean;
  /** Forgotten by a rewind: its completion is ignored. */
  discarded: boolean;
  /** Settles when its `durable` settles (at once for a `void` record). */
  readonly settled: Promise<void>;
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
    const { log, group, handler, slots, retryBackoffMs, maxPending, onError } = options;
    const signal = this.#controller.signal;
    if (options.ready !== undefined) await settledOrAborted(options.ready, signal);
    const context: RecordContext = { heartbeat: () => Promise.resolve(), signal };
    let position = group.committed(log.topic, log.partition) ?? 0;
    /** The offset that failed last, and how many times in a row. */
    let failedAt: number | undefined;
    let attempt = 0;
    /** Delivered, not yet committed, in offset order; the head is never complete. */
    const pending: Pending[] = [];
    /** Every `durable` not settled yet, forgotten ones included: stopping waits for them. */
    const unsettled = new Set<Promise<void>>();
    /** Set when a `durable` rejected: where delivery starts again. */
    let rewind: { offset: number; error: unknown } | undefined;
    /** Aborted on stop and on a rewind, to wake the loop from any wait. */
    let wake = new AbortController();
    const onStop = () => wake.abort();
    signal.addEventListener("abort", onStop, { once: true });

    const commitPrefix = () => {
      let next: number | undefined;
      while (pending.length > 0 && pending[0].done) next = pending.shift()!.offset + 1;
      if (next === undefined) return;
      group.commit(log.topic, log.partition, next);
      if (failedAt !== undefined && next > failedAt) failedAt = undefined;
    };

    const track = (offset: number, ack: RecordAck) => {
      const entry: Pending = {
        offset,
        done: false,
        discarded: false,
        settled: ack.durable.then(
          function durableResolved() {
            if (entry.discarded) return;
            entry.done = true;
            commitPrefix();
          },
          function durableRejected(error: unknown) {
            if (entry.discarded) return;
            // This record and every later one are delivered again, from this record on.
            for (const later of pending.splice(pending.indexOf(entry))) later.discarded = true;
            if (rewind === undefined || offset < rewind.offset) rewind = { offset, error };
            wake.abort();
          },
        ),
      };
      unsettled.add(entry.settled);
      void entry.settled.finally(() => unsettled.delete(entry.settled));
      pending.push(entry);
    };

    const forget = (result: void | RecordAck) => {
      if (!isRecordAck(result)) return;
      // Not tracked, but still awaited on stop so nothing is left running behind the reader.
      const settled = result.durable.then(() => undefined, () => undefined);
      unsettled.add(settled);
      void settled.finally(() => unsettled.delete(settled));
    };

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
      if (pending.length >= maxPending) {
        await settledOrAborted(pending[0].settled, wake.signal);
        continue;
      }
      await log.waitFor(position, wake.signal);
      if (!(await slots.acquire(wake.signal))) continue;
      const record = log.read(position);
      if (record === undefined) {
        // Woken by a stop or a rewind rather than by a record.
        slots.release();
        continue;
      }
      let failure: { error: unknown } | undefined;
      let result: void | RecordAck = undefined;
      try {
        result = await handler(record, context);
      } catch (error) {
        failure = { error };
      } finally {
        slots.release();
      }
      if (rewind !== undefined) {
        // An earlier record failed meanwhile: this one is delivered again after it.
        forget(result);
        continue;
      }
      if (failure === undefined) {
        if (isRecordAck(result)) {
          track(position, result);
        } else if (pending.length === 0) {
          group.commit(log.topic, log.partition, position + 1);
          if (failedAt === position) failedAt = undefined;
        } else {
          pending.push({
            offset: position,
            done: true,
            discarded: false,
            settled: Promise.resolve(),
          });
        }
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
