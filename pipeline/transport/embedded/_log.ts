/**
 * The embedded transport's storage: one append-only log per topic partition, kept in memory,
 * with Kafka's transaction markers. Readers that reach the end wait on a promise that the next
 * append (or transaction end) resolves, never poll.
 *
 * @module
 */

import { PipelineError } from "../../errors.ts";
import type { ConsumedRecord, IsolationLevel, RecordHeaders, TopicSpec } from "../transport.ts";

/** A record as the log keeps it; its bytes belong to the log and are never handed out. */
export interface StoredRecord {
  readonly key: Uint8Array | null;
  readonly value: Uint8Array | null;
  readonly headers: RecordHeaders;
  readonly timestamp: number;
}

/**
 * The state of one transaction, shared by every partition it wrote to: its records are visible
 * to `read_committed` readers once it is `committed`, and never once it is `aborted`.
 */
export interface TransactionMarker {
  /** Where the transaction stands. */
  readonly state: "open" | "committed" | "aborted";
}

/** A log entry: a record (maybe of a transaction), or the control record ending one. */
type Entry =
  | { readonly kind: "record"; readonly record: StoredRecord; readonly txn?: TransactionMarker }
  | { readonly kind: "control" };

/**
 * One partition: entries in offset order, offsets from 0. As on a Kafka broker, a transaction's
 * records take their offsets when written, and its end (commit or abort) appends a control
 * record that takes one more offset and is never given to a reader: offsets seen by readers may
 * have gaps, and keep growing.
 */
export class PartitionLog {
  readonly topic: string;
  readonly partition: number;
  readonly #entries: Entry[] = [];
  readonly #waiters = new Set<() => void>();
  /** Open transactions that wrote here, with the offset of their first record. */
  readonly #open = new Map<TransactionMarker, number>();

  constructor(topic: string, partition: number) {
    this.topic = topic;
    this.partition = partition;
  }

  /** The offset the next entry will get (the high watermark, control records included). */
  get endOffset(): number {
    return this.#entries.length;
  }

  /**
   * The last stable offset: the first offset of a transaction still open here, or the end.
   * `read_committed` readers are given nothing at or past it.
   */
  get stableOffset(): number {
    let stable = this.#entries.length;
    for (const first of this.#open.values()) stable = Math.min(stable, first);
    return stable;
  }

  /**
   * Appends a record, as part of the open transaction `txn` if given, wakes every waiting
   * reader, and returns the record's offset.
   */
  append(record: StoredRecord, txn?: TransactionMarker): number {
    const offset = this.#entries.length;
    this.#entries.push({ kind: "record", record, txn });
    if (txn !== undefined && !this.#open.has(txn)) this.#open.set(txn, offset);
    this.#wake();
    return offset;
  }

  /**
   * Ends `txn` in this partition, if it wrote here: appends its control record (one offset) and
   * wakes readers, whom its end may make records visible to. Call after `txn.state` changed.
   */
  endTransaction(txn: TransactionMarker): void {
    if (!this.#open.delete(txn)) return;
    this.#entries.push({ kind: "control" });
    this.#wake();
  }

  #wake(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  /**
   * The record at an offset, with copies of its bytes and headers, whatever its transaction's
   * state; `undefined` for a control record and past the end.
   */
  read(offset: number): ConsumedRecord | undefined {
    const entry = this.#entries[offset];
    if (entry === undefined || entry.kind === "control") return undefined;
    return this.#copy(offset, entry.record);
  }

  /**
   * The first record at or after `offset` that a reader with `isolation` is given: control
   * records are skipped, and for `read_committed` so are aborted records, and nothing at or
   * past the last stable offset is given. `undefined` when there is none yet.
   */
  readVisible(offset: number, isolation: IsolationLevel): ConsumedRecord | undefined {
    const limit = isolation === "read_committed" ? this.stableOffset : this.#entries.length;
    for (let at = Math.max(offset, 0); at < limit; at++) {
      const entry = this.#entries[at];
      if (entry.kind === "control") continue;
      if (isolation === "read_committed" && entry.txn?.state === "aborted") continue;
      return this.#copy(at, entry.record);
    }
    return undefined;
  }

  /**
   * The first offset at or after `offset` that is not a record a reader with `isolation` skips
   * for good (a control record, or for `read_committed` an aborted record): a reader at
   * `offset` may move its position there. Stops at the last stable offset for `read_committed`
   * (what lies past it is not decided yet) and at the end.
   */
  pastInvisible(offset: number, isolation: IsolationLevel): number {
    const limit = isolation === "read_committed" ? this.stableOffset : this.#entries.length;
    let at = Math.max(offset, 0);
    for (; at < limit; at++) {
      const entry = this.#entries[at];
      if (entry.kind === "control") continue;
      if (isolation === "read_committed" && entry.txn?.state === "aborted") continue;
      break;
    }
    return Math.max(at, offset);
  }

  #copy(offset: number, stored: StoredRecord): ConsumedRecord {
    return {
      topic: this.topic,
      partition: this.partition,
      offset,
      key: stored.key === null ? null : stored.key.slice(),
      value: stored.value === null ? null : stored.value.slice(),
      headers: { ...stored.headers },
      timestamp: stored.timestamp,
    };
  }

  /**
   * Resolves once a record at or after `offset` is visible to `isolation`, or at once when
   * `signal` is aborted. May also resolve on a change that made nothing visible: callers read
   * with {@linkcode readVisible} and wait again when it finds nothing.
   */
  waitFor(offset: number, signal: AbortSignal, isolation: IsolationLevel): Promise<void> {
    if (signal.aborted || this.readVisible(offset, isolation) !== undefined) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const wake = () => {
        this.#waiters.delete(wake);
        signal.removeEventListener("abort", wake);
        resolve();
      };
      this.#waiters.add(wake);
      signal.addEventListener("abort", wake, { once: true });
    });
  }
}

/** A topic: a fixed array of partitions. */
export class TopicLog {
  readonly name: string;
  readonly partitions: readonly PartitionLog[];

  constructor(name: string, partitions: number) {
    this.name = name;
    this.partitions = Array.from(
      { length: partitions },
      (_, partition) => new PartitionLog(name, partition),
    );
  }
}

/** Every topic of one embedded transport. */
export class LogStore {
  readonly #topics = new Map<string, TopicLog>();

  /** Creates a topic unless one of that name exists; returns whether it created one. */
  create(spec: TopicSpec): boolean {
    if (this.#topics.has(spec.name)) return false;
    this.#topics.set(spec.name, new TopicLog(spec.name, spec.partitions));
    return true;
  }

  /** Whether a topic exists. */
  has(name: string): boolean {
    return this.#topics.has(name);
  }

  /**
   * The topic of that name. `action` completes the error message, e.g. `"produce to"`.
   * @throws {PipelineError} when the topic does not exist: topics are never created implicitly
   */
  topic(name: string, action: string): TopicLog {
    const topic = this.#topics.get(name);
    if (topic === undefined) {
      throw new PipelineError(
        `Cannot ${action} topic "${name}" as it does not exist: create it with ensureTopics() first`,
        { topic: name },
      );
    }
    return topic;
  }
}
