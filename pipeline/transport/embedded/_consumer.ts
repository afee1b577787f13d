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
  RecordHandler,
} from "../transport.ts";
import type { ConsumerGroup, GroupMember, TopicPartition } from "./_group.ts";
import type { LogStore } from "./_log.ts";
import { type HandlerErrorEvent, PartitionReader } from "./_partition_reader.ts";
import { Semaphore } from "./_semaphore.ts";

/** What the transport hands a new consumer. */
export interface EmbeddedConsumerOptions {
  readonly store: LogStore;
  readonly group: ConsumerGroup;
  readonly topics: readonly string[];
  readonly partitionConcurrency: number;
  readonly maxPendingPerPartition: number;
  readonly isolation: IsolationLevel;
  readonly retryBackoffMs: number;
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

  /** @internal Called by the group: start reading the partitions this member newly owns. */
  assign(partitions: readonly TopicPartition[]): void {
    // A member closing may still be handed partitions by a rebalance queued before it left;
    // it leaves next, which hands them on.
    if (this.#state !== "running" || this.#handler === undefined) return;
    for (const { topic, partition } of partitions) {
      const key = keyOf(topic, partition);
      if (this.#readers.has(key)) continue;
      this.#readers.set(
        key,
        new PartitionReader({
          log: this.#options.store.topic(topic, "read").partitions[partition],
          group: this.#options.group,
          handler: this.#handler,
          slots: this.#slots,
          retryBackoffMs: this.#options.retryBackoffMs,
          maxPending: this.#options.maxPendingPerPartition,
          isolation: this.#options.isolation,
          onError: this.#options.onError,
        }),
      );
    }
    if (partitions.length > 0) {
      this.#options.onStatus?.({ type: "assigned", assignment: this.assignment() });
    }
  }

  async #stop(readers: readonly PartitionReader[], reason: string): Promise<void> {
    await Promise.all(readers.map((reader) => reader.stop(reason)));
    for (const reader of readers) this.#readers.delete(keyOf(reader.topic, reader.partition));
  }
}
