/**
 * The partition checkpointer both transports use (as Benthos keeps offset tracking in one
 * `checkpoint.Capped`): it tracks a partition's delivered records in offset order, learns when
 * each is complete (at once, or when its {@linkcode RecordAck}'s `durable` resolves), reports
 * the longest complete prefix to commit, and when a `durable` rejects, drops every pending
 * record and asks for the partition to be delivered again from the oldest of them.
 *
 * Why from the oldest pending record and not the failed one: the Kafka transport seeks, and
 * kafkajs may apply a seek left unused by a rebalance in the next generation, so a seek must
 * never skip a record that is not durable yet. Going back to the head only ever re-delivers
 * records (duplicates, which idempotent stages skip), never loses one.
 *
 * Records a consumer never hands over (a transaction's control record, and aborted records for
 * `read_committed`) take offsets too: the transport reports its position past them with
 * {@linkcode PartitionCheckpointer.passTo}, and the prefix advances to it once every record
 * tracked before is complete, as Kafka Streams commits the consumer's position. Without it a
 * partition ending in a control record would never be committed to its end.
 *
 * @module
 */
import type { RecordAck } from "./transport.ts";

/** What a {@linkcode PartitionCheckpointer} tells its transport. */
export interface CheckpointerOptions {
  /**
   * The durable prefix grew: every record below `next` is complete (commit `next`). `count`
   * records completed with this step; `passed` is true when `next` is a position given to
   * {@linkcode PartitionCheckpointer.passTo} (past records never handed over).
   */
  onAdvance(next: number, count: number, passed: boolean): void;
  /**
   * A record's `durable` rejected with `error`: deliver the partition again from `from` (the
   * oldest record that was pending). Every pending record was dropped.
   */
  onRewind(from: number, failed: number, error: unknown): void;
  /**
   * Where every `durable` not settled yet is registered (also those of dropped records), so
   * the owner can wait for them on close or rebalance; one set may serve many partitions.
   * @default a set of this checkpointer's own
   */
  readonly unsettled?: Set<Promise<void>>;
}

/** A delivered record not yet committed. */
interface Entry {
  readonly offset: number;
  /** Complete: handled with `void`, or its `durable` resolved. */
  done: boolean;
  /** Dropped by a rewind or a discard: its completion is ignored. */
  dropped: boolean;
  /** Settles (never rejects) once its `durable` settled; at once for a `void` record. */
  readonly settled: Promise<void>;
}

/** Tracks one partition's uncommitted records; see the module doc. */
export class PartitionCheckpointer {
  readonly #options: CheckpointerOptions;
  readonly #unsettled: Set<Promise<void>>;
  /** In offset order; the head is never complete (complete heads are committed at once). */
  #pending: Entry[] = [];
  #rewinds = 0;
  /** A position past records never handed over, reached once every pending record is. */
  #passTo: number | undefined;
  /** The last position reported to `onAdvance`. */
  #reached: number | undefined;

  /** Creates a checkpointer reporting to `options`. */
  constructor(options: CheckpointerOptions) {
    this.#options = options;
    this.#unsettled = options.unsettled ?? new Set();
  }

  /**
   * Bumped on each rewind and discard: a handler that started before a change must have its
   * result dropped with {@linkcode forget} rather than tracked.
   */
  get rewinds(): number {
    return this.#rewinds;
  }

  /** Records delivered and not yet committed. */
  get size(): number {
    return this.#pending.length;
  }

  /**
   * Tracks a delivered record, in offset order: complete now (`ack` undefined) or once
   * `ack.durable` resolves.
   */
  track(offset: number, ack?: RecordAck): void {
    // A record at or past the position to pass to: that position is behind the record now.
    if (this.#passTo !== undefined && offset >= this.#passTo) this.#passTo = undefined;
    if (ack === undefined) {
      this.#pending.push({ offset, done: true, dropped: false, settled: Promise.resolve() });
      this.#advance();
      return;
    }
    // Unregistered by its own callbacks, as it settles: no `finally` promise per record.
    const unsettled = this.#unsettled;
    const entry: Entry = {
      offset,
      done: false,
      dropped: false,
      settled: ack.durable.then(
        () => {
          unsettled.delete(entry.settled);
          if (entry.dropped) return;
          entry.done = true;
          this.#advance();
        },
        (error: unknown) => {
          unsettled.delete(entry.settled);
          if (entry.dropped) return;
          this.#rewind(entry, error);
        },
      ),
    };
    unsettled.add(entry.settled);
    this.#pending.push(entry);
  }

  /**
   * The transport's position in the partition moved to `position` past records it does not
   * hand over (control records, aborted ones): once every record tracked so far is complete,
   * the prefix advances to `position` (at once when none is pending). Call it only when every
   * record below `position` that the transport hands over has been tracked; a rewind or a
   * discard forgets it, and a later {@linkcode track} at or past it makes it moot.
   */
  passTo(position: number): void {
    const last = this.#pending.at(-1)?.offset;
    if (last !== undefined && position <= last + 1) return;
    if (this.#reached !== undefined && position <= this.#reached) return;
    if (this.#passTo !== undefined && position <= this.#passTo) return;
    this.#passTo = position;
    this.#advance();
  }

  /** A handler result whose record was dropped meanwhile: not tracked, but still awaited. */
  forget(ack: RecordAck | undefined): void {
    if (ack === undefined) return;
    this.#register(ack.durable.then(() => undefined, () => undefined));
  }

  /** Resolves once the oldest pending record settled (at once when none is pending). */
  oldestSettled(): Promise<void> {
    return this.#pending[0]?.settled ?? Promise.resolve();
  }

  /** Forgets every pending record (the partition is lost): later completions are ignored. */
  discard(): void {
    for (const entry of this.#pending.splice(0)) entry.dropped = true;
    this.#passTo = undefined;
    this.#rewinds++;
  }

  #register(settled: Promise<void>): void {
    this.#unsettled.add(settled);
    void settled.finally(() => this.#unsettled.delete(settled));
  }

  #advance(): void {
    let next: number | undefined;
    let count = 0;
    while (this.#pending.length > 0 && this.#pending[0].done) {
      next = this.#pending.shift()!.offset + 1;
      count++;
    }
    let passed = false;
    if (this.#pending.length === 0 && this.#passTo !== undefined) {
      next = this.#passTo;
      this.#passTo = undefined;
      passed = true;
    }
    if (next === undefined) return;
    this.#reached = next;
    this.#options.onAdvance(next, count, passed);
  }

  #rewind(entry: Entry, error: unknown): void {
    const from = this.#pending[0]?.offset ?? entry.offset;
    this.discard();
    this.#options.onRewind(from, entry.offset, error);
  }
}
