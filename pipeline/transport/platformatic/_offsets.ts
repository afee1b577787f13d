/**
 * The consumer's offset bookkeeping on the shared `PartitionCheckpointer` (`../checkpointer.ts`,
 * the one the kafkajs and embedded transports use): per partition, a checkpointer tracks the
 * records delivered but not yet committed and reports the longest complete prefix; this module
 * adds what only the platformatic consumer needs:
 * - where a rewound partition must be read again from (records fetched before the seek are
 *   skipped until the sought offset comes round), and the doubling backoff before it is;
 * - the completed offset of every partition of the generation, ready for the next commit;
 * - a new generation (rebalance) forgets everything: its records are delivered again.
 *
 * @module
 */
import { PartitionCheckpointer } from "../checkpointer.ts";
import type { TransactionOffset } from "../transport.ts";

/** A partition's next offset to commit. */
export interface CompletedOffset {
  /** The topic. */
  readonly topic: string;
  /** The partition. */
  readonly partition: number;
  /** The next offset to read: the last complete record's offset + 1. */
  readonly offset: number;
}

/** What a partition tells its consumer: a rewind to act on. */
export type RewindHandler = (
  book: PartitionBook,
  from: number,
  failed: number,
  error: unknown,
) => void;

/** One partition's uncommitted records in the current generation. */
export class PartitionBook {
  /** The topic. */
  readonly topic: string;
  /** The partition. */
  readonly partition: number;
  /** The shared checkpointer tracking this partition's delivered records. */
  readonly checkpointer: PartitionCheckpointer;
  /** After a rewind: the only offset accepted next (the partition's oldest uncommitted one). */
  rewindTo: number | undefined;
  /** The offset expected next from the stream; lower ones are duplicates of a re-fetch. */
  expected = 0;
  /** Consecutive rewinds at the same offset, for the doubling backoff. */
  streak = 0;
  /** The offset of the last rewind. */
  streakAt: number | undefined;
  /** No record of the partition is handled before this time (`performance.now()`). */
  notBefore = 0;

  /** Creates a partition's book, reporting to `owner` and rewinds to `onRewind`. */
  constructor(
    topic: string,
    partition: number,
    owner: OffsetBook,
    onRewind: RewindHandler,
    unsettled: Set<Promise<void>>,
  ) {
    this.topic = topic;
    this.partition = partition;
    this.checkpointer = new PartitionCheckpointer({
      unsettled,
      onAdvance: (next, count, passed) => {
        owner.complete(this, next, count);
        if (passed) owner.onPosition?.({ topic, partition, offset: next });
      },
      onRewind: (from, failed, error) => {
        this.rewindTo = from;
        this.expected = from;
        onRewind(this, from, failed, error);
      },
    });
  }

  /**
   * Whether a fetched record is the one to deliver next: after a rewind only the sought offset
   * is (records fetched before the seek come round again), and never one delivered already.
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
   * The backoff before the partition is delivered again from `from`, doubling while the same
   * offset keeps failing: an outcome that cannot be made durable must not spin the partition.
   */
  backoff(from: number, initialMs: number, maxMs: number): number {
    this.streak = this.streakAt === from ? this.streak + 1 : 1;
    this.streakAt = from;
    const ms = Math.min(initialMs * 2 ** (this.streak - 1), maxMs);
    this.notBefore = performance.now() + ms;
    return ms;
  }
}

/** Every partition's book of one generation, and their offsets ready to commit. */
export class OffsetBook {
  /** By topic, then partition number: no string key made per record. */
  #partitions = new Map<string, PartitionBook[]>();
  #completed = new Map<PartitionBook, CompletedOffset>();
  readonly #onRewind: RewindHandler;
  readonly #unsettled: Set<Promise<void>>;
  /** Told of positions past records never handed over (see `ConsumerOptions.onPosition`). */
  readonly onPosition: ((position: TransactionOffset) => void) | undefined;
  /** Records completed since the last commit snapshot. */
  sinceCommit = 0;

  /**
   * Creates a generation's book; rewinds go to `onRewind`, unsettled `durable`s to
   * `unsettled` (shared across generations, so close can wait for them), positions past records
   * never handed over to `onPosition`.
   */
  constructor(
    onRewind: RewindHandler,
    unsettled: Set<Promise<void>>,
    onPosition?: (position: TransactionOffset) => void,
  ) {
    this.#onRewind = onRewind;
    this.#unsettled = unsettled;
    this.onPosition = onPosition;
  }

  /** The book of a partition, created on first use. */
  partition(topic: string, partition: number): PartitionBook {
    let books = this.#partitions.get(topic);
    if (books === undefined) this.#partitions.set(topic, books = []);
    let book = books[partition];
    if (book === undefined) {
      book = new PartitionBook(topic, partition, this, this.#onRewind, this.#unsettled);
      books[partition] = book;
    }
    return book;
  }

  /** Records that the partition's complete prefix now ends before `next`. */
  complete(book: PartitionBook, next: number, count: number): void {
    this.#completed.set(book, {
      topic: book.topic,
      partition: book.partition,
      offset: next,
    });
    this.sinceCommit += count;
  }

  /** Whether there is anything to commit. */
  get hasCompleted(): boolean {
    return this.#completed.size > 0;
  }

  /** The offsets to commit now; pass them to {@linkcode committed} once the commit succeeded. */
  snapshot(): CompletedOffset[] {
    this.sinceCommit = 0;
    return [...this.#completed.values()];
  }

  /** Forgets the committed entries, unless a later completion replaced them meanwhile. */
  committed(snapshot: readonly CompletedOffset[]): void {
    for (const entry of snapshot) {
      const book = this.#partitions.get(entry.topic)?.[entry.partition];
      if (book !== undefined && this.#completed.get(book) === entry) this.#completed.delete(book);
    }
  }

  /** Drops every partition's pending records (the generation ended): completions are ignored. */
  discard(): void {
    for (const books of this.#partitions.values()) {
      for (const book of books) book?.checkpointer.discard();
    }
  }
}
