/**
 * The embedded consumer: one member of a consumer group, running a {@linkcode PartitionReader}
 * per owned partition, at most `partitionConcurrency` of them delivering at the same time.
 *
 * @module
 */

import { PipelineError } from "../../errors.ts";
import type {
  Assignment,
  Consumer,
  ConsumerStatus,
  IsolationLevel,
  RebalanceListener,
  RecordHandler,
  TopicPartition,
  TransactionOffset,
} from "../transport.ts";
import type { ConsumerGroup, GroupMember } from "./_group.ts";
import type { LogStore } from "./_log.ts";
import { type HandlerErrorEvent, PartitionReader } from "./_partition_reader.ts";
import { abortableDelay, Semaphore } from "./_semaphore.ts";

/** What the transport hands a new consumer. */
export interface EmbeddedConsumerOptions {
  readonly store: LogStore;
  readonly group: ConsumerGroup;
  readonly topics: readonly string[];
  readonly partitionConcurrency: number;
  readonly maxPendingPerPartition: number;
  readonly isolation: IsolationLevel;
  readonly commitOffsets: boolean;
  readonly onPosition?: (position: TransactionOffset) => void;
  readonly retryBackoffMs: number;
  readonly rebalanceListener?: RebalanceListener;
  readonly onError: (event: HandlerErrorEvent) => void;
  /** Called once the consumer has closed, so the transport forgets it. */
  readonly onClosed: (consumer: EmbeddedConsumer) => void;
  /** Told when the member's partitions change. */
  readonly onStatus?: (status: ConsumerStatus) => void;
}

function keyOf(topic: string, partition: number): string {
  return `${partition}:${topic}`;
}

/** A member of an embedded consumer group. */
export class EmbeddedConsumer implements Consumer, GroupMember {
  readonly topics: readonly string[];
  readonly #options: EmbeddedConsumerOptions;
  readonly #slots: Semaphore;
  readonly #readers = new Map<string, PartitionReader>();
  /** Per reader, the controller of the `assigned` call its partition waits for. */
  readonly #restores = new Map<string, AbortController>();
  #handler: RecordHandler | undefined;
  #state: "created" | "running" | "closing" | "closed" = "created";
  #closed: Promise<void> | undefined;

  constructor(options: EmbeddedConsumerOptions) {
    this.#options = options;
    this.topics = [...options.topics];
    this.#slots = new Semaphore(options.partitionConcurrency);
  }

  /** Joins the group and resolves once this member has its partitions and is reading them. */
  async run(eachRecord: RecordHandler): Promise<void> {
    if (this.#state !== "created") {
      throw new PipelineError(
        `Cannot run consumer of group "${this.#options.group.groupId}" as it is ${this.#state}: ` +
          "a consumer runs once",
      );
    }
    this.#handler = eachRecord;
    this.#state = "running";
    this.#options.onStatus?.({ type: "joining" });
    await this.#options.group.join(this);
    // A member the rebalance gave no partition is assigned too (`assign` reported the others).
    if (this.#readers.size === 0) {
      this.#options.onStatus?.({ type: "assigned", assignment: this.assignment() });
    }
  }

  /** Stops every partition, commits what completed, and leaves the group. */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    const joined = this.#state === "running";
    this.#state = "closing";
    await this.#stop([...this.#readers.values()], "Consumer is closing");
    if (joined) await this.#options.group.leave(this);
    this.#state = "closed";
    this.#options.onClosed(this);
  }

  /** The partitions this member reads now, by subscribed topic. */
  assignment(): Assignment {
    const partitions: Record<string, number[]> = {};
    for (const topic of this.topics) partitions[topic] = [];
    for (const reader of this.#readers.values()) partitions[reader.topic].push(reader.partition);
    for (const list of Object.values(partitions)) list.sort((a, b) => a - b);
    return { partitions };
  }

  /** @internal Called by the group: stop these partitions and commit what completed. */
  revoke(partitions: readonly TopicPartition[]): Promise<void> {
    const readers = partitions.flatMap(({ topic, partition }) => {
      const reader = this.#readers.get(keyOf(topic, partition));
      return reader === undefined ? [] : [reader];
    });
    return this.#stop(readers, "Partition revoked by a rebalance");
  }

  /**
   * Calls the listener for partitions newly owned, grouped by partition number (partition p of
   * every subscribed topic is one task), again after a backoff while it rejects; resolves once
   * it resolved or its signal was aborted (the partitions were lost).
   */
  #assigned(partitions: readonly TopicPartition[]): Map<string, Promise<void>> {
    const ready = new Map<string, Promise<void>>();
    const listener = this.#options.rebalanceListener;
    if (listener === undefined) return ready;
    const byNumber = Map.groupBy(partitions, (p) => p.partition);
    for (const group of byNumber.values()) {
      const controller = new AbortController();
      const { signal } = controller;
      const backoff = this.#options.retryBackoffMs;
      const onError = this.#options.onError;
      const groupId = this.#options.group.groupId;
      const restored = (async function callAssigned() {
        for (let attempt = 1; !signal.aborted; attempt++) {
          try {
            await listener.assigned(group, signal);
            return;
          } catch (error) {
            if (signal.aborted) return;
            onError({
              error,
              groupId,
              topic: group[0].topic,
              partition: group[0].partition,
              offset: -1,
              attempt,
              retryInMs: backoff,
            });
            await abortableDelay(backoff, signal);
          }
        }
      })();
      for (const { topic, partition } of group) {
        ready.set(keyOf(topic, partition), restored);
        this.#restores.set(keyOf(topic, partition), controller);
      }
    }
    return ready;
  }

  /** @internal Called by the group: start reading the partitions this member newly owns. */
  assign(partitions: readonly TopicPartition[]): void {
    // A member closing may still be handed partitions by a rebalance queued before it left;
    // it leaves next, which hands them on.
    if (this.#state !== "running" || this.#handler === undefined) return;
    const fresh = partitions.filter(({ topic, partition }) =>
      !this.#readers.has(keyOf(topic, partition))
    );
    const ready = this.#assigned(fresh);
    for (const { topic, partition } of fresh) {
      const key = keyOf(topic, partition);
      this.#readers.set(
        key,
        new PartitionReader({
          log: this.#options.store.topic(topic, "read").partitions[partition],
          group: this.#options.group,
          handler: this.#handler,
          slots: this.#slots,
          retryBackoffMs: this.#options.retryBackoffMs,
          maxPending: this.#options.maxPendingPerPartition,
          ready: ready.get(key),
          isolation: this.#options.isolation,
          commitOffsets: this.#options.commitOffsets,
          onPosition: this.#options.onPosition,
          onError: this.#options.onError,
        }),
      );
    }
    if (partitions.length > 0) {
      this.#options.onStatus?.({ type: "assigned", assignment: this.assignment() });
    }
  }

  async #stop(readers: readonly PartitionReader[], reason: string): Promise<void> {
    for (const reader of readers) {
      this.#restores.get(keyOf(reader.topic, reader.partition))?.abort();
    }
    await Promise.all(readers.map((reader) => reader.stop(reason)));
    for (const reader of readers) {
      this.#readers.delete(keyOf(reader.topic, reader.partition));
      this.#restores.delete(keyOf(reader.topic, reader.partition));
    }
    if (readers.length > 0) {
      this.#options.rebalanceListener?.revoked(
        readers.map(({ topic, partition }) => ({ topic, partition })),
      );
    }
  }
}
