/**
 * The embedded transport's storage: one append-only log per topic partition, kept in memory.
 * Readers that reach the end wait on a promise that the next append resolves, never poll.
 *
 * @module
 */

import { PipelineError } from "../../errors.ts";
import type { ConsumedRecord, RecordHeaders, TopicSpec } from "../transport.ts";

/** A record as the log keeps it; its bytes belong to the log and are never handed out. */
export interface StoredRecord {
  readonly key: Uint8Array | null;
  readonly value: Uint8Array | null;
  readonly headers: RecordHeaders;
  readonly timestamp: number;
}

/** One partition: records in offset order, offsets from 0. */
export class PartitionLog {
  readonly topic: string;
  readonly partition: number;
  readonly #records: StoredRecord[] = [];
  readonly #waiters = new Set<() => void>();

  constructor(topic: string, partition: number) {
    this.topic = topic;
    this.partition = partition;
  }

  /** The offset the next record will get (the high watermark). */
  get endOffset(): number {
    return this.#records.length;
  }

  /** Appends a record, wakes every waiting reader, and returns the record's offset. */
  append(record: StoredRecord): number {
    this.#records.push(record);
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
    return this.#records.length - 1;
  }

  /** The record at an offset, with copies of its bytes and headers; `undefined` past the end. */
  read(offset: number): ConsumedRecord | undefined {
    const stored = this.#records[offset];
    if (stored === undefined) return undefined;
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

  /** Resolves once a record exists at `offset`, or at once when `signal` is aborted. */
  waitFor(offset: number, signal: AbortSignal): Promise<void> {
    if (offset < this.#records.length || signal.aborted) return Promise.resolve();
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
