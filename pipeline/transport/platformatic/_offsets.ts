/**
 * The consumer's offset bookkeeping, kept apart so it can move onto a shared checkpointer: per
 * partition, the records delivered but not yet committed, in offset order, and the longest
 * complete prefix ready to commit. Semantics as in the kafkajs consumer
 * (`../kafka/_consumer.ts`):
 * - a record is complete once its handler resolved with `void`, or its `durable` resolved;
 * - only the longest complete prefix of a partition is committed (offset + 1 of its last
 *   record), never past a record still pending;
 * - a rejected `durable` (or handler) rewinds the partition: every pending record is dropped
 *   (their completions are ignored when they land) and the partition is delivered again from its
 *   oldest uncommitted record;
 * - a new generation (rebalance) forgets everything: its records are delivered again.
 *
 * @module
 */

/** A delivered record of a partition, not yet committed. */
export interface PendingRecord {
  /** The record's offset. */
  readonly offset: number;
  /** Complete: handled with `void`, or its `durable` resolved. */
  done: boolean;
  /** Dropped by a rewind: its completion is ignored. */
  discarded: boolean;
  /** Settles (never rejects) once its `durable` settled; at once for a `void` record. */
  settled: Promise<void>;
}

/** A partition's next offset to commit. */
export interface CompletedOffset {
  /** The topic. */
  readonly topic: string;
  /** The partition. */
  readonly partition: number;
  /** The next offset to read: the last complete record's offset + 1. */
  readonly offset: number;
}

/** One partition's uncommitted records in the current generation. */
export class PartitionBook {
  /** The topic. */
  readonly topic: string;
  /** The partition. */
  readonly partition: number;
  /** Delivered and not yet committed, in offset order; the head is never complete. */
  readonly pending: PendingRecord[] = [];
  /** Bumped on each rewind: handlers that started before one have their result dropped. */
  rewinds = 0;
  /** After a rewind, the offset the partition was sought to: other records are skipped. */
  rewindTo: number | undefined;
  /** The next offset to deliver; records below it (fetched twice) are skipped. */
  expected = 0;

  constructor(topic: string, partition: number) {
    this.topic = topic;
    this.partition = partition;
  }

  /**
   * Whether a fetched record is to be delivered: not below the next expected offset and, after a
   * rewind, only once the sought offset comes round again.
   */
  accepts(offset: number): boolean {
    if (this.rewindTo !== undefined) {
      if (offset !== this.rewindTo) return false;
      this.rewindTo = undefined;
    }
    if (offset < this.expected) return false;
    this.expected = offset + 1;
    return true;
  }

  /**
   * Drops every pending record and returns the offset to deliver the partition again from: the
   * oldest pending record, or `offset` when none is pending.
   */
  rewind(offset: number): number {
    const from = this.pending[0]?.offset ?? offset;
    for (const dropped of this.pending.splice(0)) dropped.discarded = true;
    this.rewinds++;
    this.rewindTo = from;
    this.expected = from;
    return from;
  }

  /** Pops the complete prefix; returns how many records it held and the next offset. */
  advance(): { count: number; next: number | undefined } {
    let next: number | undefined;
    let count = 0;
    while (this.pending.length > 0 && this.pending[0].done) {
      next = this.pending.shift()!.offset + 1;
      count++;
    }
    return { count, next };
  }
}

/** Every partition's book, and the completed offsets the next commit carries. */
export class OffsetBook {
  #partitions = new Map<string, PartitionBook>();
  #completed = new Map<string, CompletedOffset>();
  /** Records completed since the last commit snapshot. */
  sinceCommit = 0;

  /** The book of a partition, created on first use. */
  partition(topic: string, partition: number): PartitionBook {
    const key = `${topic}\0${partition}`;
    let book = this.#partitions.get(key);
    if (book === undefined) {
      book = new PartitionBook(topic, partition);
      this.#partitions.set(key, book);
    }
    return book;
  }

  /** Records `next` as the partition's offset to commit. */
  complete(book: PartitionBook, next: number, count: number): void {
    this.#completed.set(`${book.topic}\0${book.partition}`, {
      topic: book.topic,
      partition: book.partition,
      offset: next,
    });
    this.sinceCommit += count;
  }

  /** Whether anything is waiting to be committed. */
  get hasCompleted(): boolean {
    return this.#completed.size > 0;
  }

  /** The offsets to commit now; pass them to {@linkcode committed} once the commit succeeded. */
  snapshot(): CompletedOffset[] {
    this.sinceCommit = 0;
    return [...this.#completed.values()];
  }

  /** Forgets the offsets of a snapshot that were committed (unless completed further since). */
  committed(snapshot: readonly CompletedOffset[]): void {
    for (const entry of snapshot) {
      const key = `${entry.topic}\0${entry.partition}`;
      if (this.#completed.get(key) === entry) this.#completed.delete(key);
    }
  }

  /** Every partition's pending records, for close to wait on. */
  pendingSettled(): Promise<void>[] {
    return [...this.#partitions.values()].flatMap((book) => book.pending.map((p) => p.settled));
  }
}
