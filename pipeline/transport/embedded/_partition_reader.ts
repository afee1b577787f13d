/**
 * Delivers one partition to one member: records in offset order, one at a time, committing
 * offset + 1 after each handler resolves, and delivering a record again after a backoff when
 * its handler rejects.
 *
 * @module
 */

import type { RecordContext, RecordHandler } from "../transport.ts";
import type { PartitionLog } from "./_log.ts";
import type { ConsumerGroup } from "./_group.ts";
import { abortableDelay, type Semaphore } from "./_semaphore.ts";

/** Reported each time a record handler rejects; the record is delivered again. */
export interface HandlerErrorEvent {
  /** What the handler rejected with. */
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
  readonly onError: (event: HandlerErrorEvent) => void;
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
   * (everything completed is committed by then).
   */
  stop(reason: string): Promise<void> {
    this.#controller.abort(new DOMException(reason, "AbortError"));
    return this.#done;
  }

  async #deliver(options: PartitionReaderOptions): Promise<void> {
    const { log, group, handler, slots, retryBackoffMs, onError } = options;
    const signal = this.#controller.signal;
    const context: RecordContext = { heartbeat: () => Promise.resolve(), signal };
    let position = group.committed(log.topic, log.partition) ?? 0;
    let attempt = 0;
    while (!signal.aborted) {
      await log.waitFor(position, signal);
      if (!(await slots.acquire(signal))) break;
      const record = log.read(position);
      if (record === undefined) {
        // Woken by the abort rather than by a record.
        slots.release();
        continue;
      }
      let failure: { error: unknown } | undefined;
      try {
        await handler(record, context);
      } catch (error) {
        failure = { error };
      } finally {
        slots.release();
      }
      if (failure === undefined) {
        position++;
        attempt = 0;
        group.commit(log.topic, log.partition, position);
        continue;
      }
      // A handler that gave up because its partition was revoked is not an error to report:
      // the record is delivered again to the partition's next owner.
      if (signal.aborted) break;
      attempt++;
      onError({
        error: failure.error,
        groupId: group.groupId,
        topic: log.topic,
        partition: log.partition,
        offset: position,
        attempt,
        retryInMs: retryBackoffMs,
      });
      await abortableDelay(retryBackoffMs, signal);
    }
  }
}
