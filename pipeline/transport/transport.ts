/**
 * The transport contract: what the runtime needs from a Kafka-API log.
 *
 * Two implementations live beside this file, one folder each: `embedded/` (in-process, the
 * default with no broker, and the engine of fast tests) and `kafka/` (kafkajs, against Redpanda
 * or any Kafka-API broker). Both are run through the same contract test
 * (`tests/pipeline/transport/contract.ts`), so behaviour proven on one holds on the other.
 *
 * Semantics every implementation keeps:
 * - A topic has a fixed number of partitions; a record that names its `partition` goes there,
 *   a keyed one to the partition Kafka's default partitioner picks (murmur2 of the key bytes),
 *   an unkeyed one round-robin.
 * - Offsets are per partition, start at 0 and grow by one per record. The end of a transaction
 *   also takes one offset in each partition it wrote (a control record, which no consumer is
 *   given), and aborted records keep theirs: a reader may see gaps, never a smaller offset.
 * - `Producer.send` resolves only once every record is durable (acks=all on a broker).
 * - A consumer group shares a topic's partitions among its members; a partition is read by one
 *   member at a time, in offset order, one record at a time.
 * - An offset is committed only after `eachRecord` resolved for that record; a record whose
 *   handler rejected, or whose member left before committing, is delivered again.
 * - A group with no committed offset starts at the earliest offset.
 * - A member given a {@linkcode RebalanceListener} is told of every assignment and revocation,
 *   and delivers no record of an assigned partition before the listener's `assigned` resolved
 *   (heartbeating meanwhile). A `copartitioned` group keeps partition p of every subscribed topic
 *   on one member.
 * - Delivery after a rejection (of a handler or of a `durable`) waits a backoff: a record whose
 *   outcome cannot be made durable never spins its partition.
 *
 * Pipelined records (a handler resolving with a {@linkcode RecordAck}):
 * - A handler resolving with `void` has completed its record, as above. A handler resolving
 *   with `{ durable }` has handed its record's outcome over (e.g. queued output sends) but it is
 *   not complete until `durable` resolves. The transport may deliver the partition's next record
 *   at once, so a partition has at most one record in a handler but possibly many whose outcome
 *   is still on its way.
 * - A record's offset (offset + 1) is committed only once its `durable` resolved and every
 *   earlier record of the partition is complete: the transport commits the longest complete
 *   prefix of each partition, never past a record still pending.
 * - If `durable` rejects, the error is reported like a handler rejection and the partition is
 *   delivered again from that record or an earlier uncommitted one (a seek back; the Kafka
 *   transport seeks to the oldest uncommitted record, because kafkajs may apply a seek left
 *   unused by a rebalance in the next generation). Completions of the later records of that
 *   partition are discarded: they are delivered again too. Duplicates are allowed, losses
 *   never.
 * - At most `maxPendingPerPartition` records of a partition are delivered but not yet committed
 *   (pending or waiting for an earlier one); at that bound the transport waits for the oldest
 *   before delivering more.
 * - On close, and when a member loses a partition, the transport waits for the partition's
 *   pending `durable`s to settle (they settle on their own: sends have timeouts), commits the
 *   complete prefix, then hands the partition over. The handler's `signal` is aborted first, as
 *   before; a `durable` already handed over is still awaited. (The kafka transport cannot hold a
 *   broker rebalance back: there the commit is made as soon as the pending records settle, and
 *   if the group moved on by then it is refused and the records are delivered again.)
 *
 * Transactions (exactly-once), see {@linkcode TransactionalProducer}:
 * - Records sent in a transaction are written at once (they take their offsets) but a
 *   `read_committed` consumer, the default, is given them only once the transaction commits,
 *   and never if it aborts; it does not read past the first record of a transaction still open
 *   in a partition (the last stable offset), so it reads every partition in offset order.
 *   A `read_uncommitted` consumer is given every record as soon as it is written, aborted ones
 *   included.
 * - Offsets sent with `sendOffsets` become the group's committed offsets when, and only when,
 *   the transaction commits: the records and the input positions commit together or not at
 *   all.
 * - One transactional id, one live producer: opening a producer with an id fences the one
 *   opened before it (its open transaction is aborted; everything it tries afterwards rejects
 *   with a {@linkcode ProducerFencedError}).
 *
 * @module
 */

/** Record headers. Values are UTF-8 strings on the wire. */
export type RecordHeaders = Record<string, string>;

/** A record as it is read from a topic partition. */
export interface ConsumedRecord {
  /** The topic the record was read from. */
  readonly topic: string;
  /** The partition the record was read from. */
  readonly partition: number;
  /**
   * The record's offset within its partition. A safe integer: at a million records a second a
   * partition needs 285 years to pass `Number.MAX_SAFE_INTEGER`.
   */
  readonly offset: number;
  /** The key bytes, or `null` for an unkeyed record. */
  readonly key: Uint8Array | null;
  /** The value bytes, or `null` for a tombstone. */
  readonly value: Uint8Array | null;
  /** The headers, decoded as UTF-8. */
  readonly headers: RecordHeaders;
  /** The record timestamp, in milliseconds since the epoch. */
  readonly timestamp: number;
}

/** A record to produce. Strings are encoded as UTF-8. */
export interface OutgoingRecord {
  /** The destination topic. */
  readonly topic: string;
  /** The key; records with the same key land on the same partition. */
  readonly key: Uint8Array | string | null;
  /** The value. */
  readonly value: Uint8Array | string | null;
  /** Headers to carry with the record. */
  readonly headers?: RecordHeaders;
  /**
   * The partition to write to, instead of the one the key hashes to: a changelog record goes
   * to its input partition's number, a retry-tier copy to its record's partition number.
   * @default the default partitioner's choice (murmur2 of the key, round-robin without one)
   */
  readonly partition?: number;
}

/** Where a produced record landed. */
export interface DeliveryReport {
  /** The topic written to. */
  readonly topic: string;
  /** The partition written to. */
  readonly partition: number;
  /** The offset the record was given. */
  readonly offset: number;
}

/** A topic to create, as declared by a pipeline definition. */
export interface TopicSpec {
  /** The topic name. */
  readonly name: string;
  /** The number of partitions. */
  readonly partitions: number;
  /** The replication factor; brokers with one node need 1. */
  readonly replicationFactor?: number;
  /** Topic-level configuration, e.g. `{ "retention.ms": "604800000" }`. */
  readonly config?: Readonly<Record<string, string>>;
}

/** A partition's position for a consumer group: the next offset to read. */
export interface PartitionOffset {
  /** The partition. */
  readonly partition: number;
  /** The offset. */
  readonly offset: number;
}

/** Sends records. */
export interface Producer {
  /**
   * Sends records and resolves once every one of them is durable, with one report per record
   * in the order given.
   */
  send(records: readonly OutgoingRecord[]): Promise<DeliveryReport[]>;
  /** Flushes and releases the producer. */
  close(): Promise<void>;
}

/** What a record handler receives besides the record. */
export interface RecordContext {
  /**
   * Tells the group this member is alive; call it during long waits (a retry delay, a slow
   * handler) so the member is not evicted.
   */
  heartbeat(): Promise<void>;
  /** Aborted when the consumer is closing or lost the record's partition. */
  readonly signal: AbortSignal;
}

/**
 * What a record handler may resolve with instead of `void`: the record's outcome is on its way
 * and the record is complete once `durable` resolves (see the module doc).
 *
 * @example
 * ```ts ignore
 * await consumer.run((record) => {
 *   const durable = producer.send([{ topic: "out", key: record.key, value: record.value }]);
 *   return Promise.resolve({ durable: durable.then(() => undefined) });
 * });
 * ```
 */
export interface RecordAck {
  /**
   * Resolves once the record's outcome is durable; rejects if it cannot be made durable, and
   * then the partition is delivered again from this record or an earlier uncommitted one. Must settle on its own (bounded by
   * the timeouts of what it waits for).
   */
  readonly durable: Promise<void>;
}

/**
 * Called once per record, one at a time per partition. Resolving with `void` completes the
 * record; resolving with a {@linkcode RecordAck} completes it once `durable` resolves, and lets
 * the transport deliver the partition's next record meanwhile.
 */
export type RecordHandler = (
  record: ConsumedRecord,
  context: RecordContext,
) => Promise<void | RecordAck>;

/**
 * What a consumer reports about its group membership, for readiness (`pipeline/health.ts`):
 * - `joining`: (re)joining its group: started, a rebalance began, or the client restarts it;
 * - `assigned`: it has its partitions (possibly none) and is fetching them;
 * - `crashed`: the client library stopped it; with `restart: true` it rejoins by itself, with
 *   `restart: false` it is stopped for good and its owner must close and replace it.
 */
export type ConsumerStatus =
  | { readonly type: "joining" }
  | { readonly type: "assigned"; readonly assignment: Assignment }
  | { readonly type: "crashed"; readonly error: unknown; readonly restart: boolean };

/** Options for {@linkcode Transport.consumer}. */
export interface ConsumerOptions {
  /**
   * Called when the member's group membership changes; see {@linkcode ConsumerStatus}.
   * @default none
   */
  readonly onStatus?: (status: ConsumerStatus) => void;
  /** The consumer group this member joins. */
  readonly groupId: string;
  /** The topics to read. */
  readonly topics: readonly string[];
  /**
   * How many partitions this member handles at the same time.
   * @default 1
   */
  readonly partitionConcurrency?: number;
  /**
   * How many records of one partition may be delivered but not yet committed (their
   * {@linkcode RecordAck} still pending, or waiting for an earlier record's) before the
   * transport waits for the oldest. Only matters for handlers that resolve with a `RecordAck`.
   * @default 1000
   */
  readonly maxPendingPerPartition?: number;
  /**
   * Told when the member's partitions change; records of an assigned partition wait for it.
   * @default none
   */
  readonly rebalanceListener?: RebalanceListener;
  /**
   * Keep partition p of every subscribed topic on one member (the topics must have the same
   * partition count): a stage's input and its retry tiers form one task per partition number,
   * which owns that partition's state.
   * @default false (the transport's default assignment)
   */
  readonly copartitioned?: boolean;
  /**
   * Whether records of transactions are given only once committed (`read_committed`) or as
   * soon as written, aborted ones included (`read_uncommitted`). See {@linkcode IsolationLevel}.
   * @default "read_committed"
   */
  readonly isolation?: IsolationLevel;
  /**
   * Whether the member commits the offsets of completed records itself. `false` when something
   * else commits them (the exactly-once mode sends them with its transactions): the member then
   * only tracks its position, and a new member starts from what was committed.
   * @default true
   */
  readonly commitOffsets?: boolean;
  /**
   * Told when the member's position in a partition passed records it never hands over (a
   * transaction's control record, aborted records for `read_committed`) and every record before
   * them is complete: `offset` is the next one to read, to commit for the partition. A member
   * committing its offsets itself commits it too; with `commitOffsets: false`, whoever commits
   * them must, or a partition ending in a control record is never committed to its end (its
   * lag never reaches 0). Never past a record that failed or is not complete.
   * @default none
   */
  readonly onPosition?: (position: TransactionOffset) => void;
}

/** A partition of a topic. */
export interface TopicPartition {
  /** The topic. */
  readonly topic: string;
  /** The partition. */
  readonly partition: number;
}

/**
 * Told when a member's partitions change, as Kafka's `ConsumerRebalanceListener` is. Used by
 * stages with state: a member restores the state of the partitions it is given before it
 * handles any of their records, and drops the state of those it loses.
 */
export interface RebalanceListener {
  /**
   * The member now owns `partitions` (on the Kafka transport: every partition of each new
   * group generation, including partitions it owned in the previous one; on the embedded
   * transport: the partitions it did not own before). No record of them is delivered until the
   * returned promise resolves; the member keeps heartbeating meanwhile. If it rejects, the
   * records wait and the listener is called again after a backoff. `signal` is aborted when
   * the partitions are lost or the consumer closes.
   */
  assigned(partitions: readonly TopicPartition[], signal: AbortSignal): Promise<void>;
  /** The member no longer owns `partitions`; their records in flight have settled. */
  revoked(partitions: readonly TopicPartition[]): void;
}

/**
 * Which records a consumer is given: `read_committed` skips records of aborted transactions and
 * waits for open ones to end; `read_uncommitted` is given every record as soon as it is written.
 * Records written outside transactions are given to both at once.
 */
export type IsolationLevel = "read_committed" | "read_uncommitted";

/** Every {@linkcode IsolationLevel}, for validation and help texts. */
export const ISOLATION_LEVELS: readonly IsolationLevel[] = ["read_committed", "read_uncommitted"];

/** The default of {@linkcode ConsumerOptions.isolation}, as in Kafka Streams' exactly-once. */
export const DEFAULT_ISOLATION: IsolationLevel = "read_committed";

/** The default of {@linkcode ConsumerOptions.maxPendingPerPartition}. */
export const DEFAULT_MAX_PENDING_PER_PARTITION = 1000;

/** The names Kafka accepts for a topic: 1 to 249 of `[a-zA-Z0-9._-]`. */
export const TOPIC_NAME_PATTERN: RegExp = /^[a-zA-Z0-9._-]{1,249}$/;

/** Whether a handler's result is a {@linkcode RecordAck} (rather than `void`). */
export function isRecordAck(result: void | RecordAck): result is RecordAck {
  if (typeof result !== "object" || result === null) return false;
  const durable = (result as { durable?: unknown }).durable;
  return typeof durable === "object" && durable !== null &&
    typeof (durable as { then?: unknown }).then === "function";
}

/** Reported when the set of partitions a member owns changes. */
export interface Assignment {
  /** Partitions now owned, by topic. */
  readonly partitions: Readonly<Record<string, readonly number[]>>;
}

/** A member of a consumer group. */
export interface Consumer {
  /**
   * Starts consuming: joins the group and calls `eachRecord` for every record of the
   * partitions this member owns. Resolves once the member is running.
   */
  run(eachRecord: RecordHandler): Promise<void>;
  /**
   * Stops fetching, waits for the records in flight, commits what they completed, and leaves
   * the group.
   */
  close(): Promise<void>;
  /** The partitions this member owns now. */
  assignment(): Assignment;
}

/** Offsets of a topic, for lag and drain checks. */
export interface TopicOffsets {
  /** The topic. */
  readonly topic: string;
  /** Per partition: the offset the next produced record will get (the high watermark). */
  readonly end: readonly PartitionOffset[];
  /**
   * Per partition, in the same order as `end`: the first offset still in the log (the log start
   * offset, or low watermark). Equal to `end` when retention deleted every record.
   */
  readonly start: readonly PartitionOffset[];
}

/** Options for {@linkcode Transport.transactionalProducer}. */
export interface TransactionalProducerOptions {
  /**
   * The transactional id: the identity that fencing is by. Opening a producer with an id fences
   * every producer opened with it before. Give each unit of work its own stable id, the same
   * on every member and across restarts: one per input partition (e.g.
   * `"<group>-<topic>-<partition>"`), as Kafka Streams' first exactly-once mode (eos-alpha)
   * does, so the partition's new owner fences the old one.
   */
  readonly transactionalId: string;
}

/** An input position sent with a transaction: the group's next offset to read. */
export interface TransactionOffset {
  /** The input topic. */
  readonly topic: string;
  /** The input partition. */
  readonly partition: number;
  /** The next offset to read (the last consumed record's offset + 1). */
  readonly offset: number;
}

/**
 * One open transaction of a {@linkcode TransactionalProducer}: its sends and offsets commit
 * together, or none of them does.
 *
 * A failed `send` or `sendOffsets` fails the whole transaction: it is aborted at once, and
 * `commit` then rejects. `send`, `sendOffsets` and `commit` reject with a
 * {@linkcode ProducerFencedError} once a newer producer with the same transactional id has
 * fenced this one; `abort` then resolves (the transaction was aborted when it was fenced).
 * Steps are applied in call order; `commit` and `abort` wait for the steps in flight.
 */
export interface Transaction {
  /**
   * Writes records as part of the transaction; resolves once the broker has them (acks=all).
   * They are given to `read_committed` consumers only once the transaction commits.
   * @throws {ProducerFencedError} when a newer producer with the same id fenced this one
   */
  send(records: readonly OutgoingRecord[]): Promise<void>;
  /**
   * Adds a consumer group's input positions to the transaction: they become the group's
   * committed offsets when the transaction commits, and are dropped if it aborts. With kafkajs
   * (no KIP-447 group metadata in this request) the broker does not check the consumer's group
   * generation: a zombie is stopped by its transactional id alone, hence one id per input
   * partition.
   * @throws {ProducerFencedError} when a newer producer with the same id fenced this one
   */
  sendOffsets(groupId: string, offsets: readonly TransactionOffset[]): Promise<void>;
  /**
   * Waits for the sends in flight, then commits the records and offsets atomically. Rejects
   * (and aborts) if any part of the transaction failed. If the commit request itself fails
   * (the broker unreachable, say), the records and the offsets still share one outcome,
   * whichever the coordinator decided: resume from the group's committed offsets
   * ({@linkcode Transport.committedOffsets}), which match the records either way.
   * @throws {ProducerFencedError} when a newer producer with the same id fenced this one: none
   * of the transaction's records is ever given to a `read_committed` consumer
   */
  commit(): Promise<void>;
  /**
   * Aborts: the records are never given to `read_committed` consumers, the offsets dropped.
   * Resolves for a transaction already aborted, failed or fenced; rejects once committed.
   */
  abort(): Promise<void>;
}

/**
 * A producer whose writes are grouped in transactions, one open at a time. A transaction that
 * failed is aborted and the producer can begin the next one, unless it was fenced: then
 * `begin` rejects with a {@linkcode ProducerFencedError} too, and the producer is to be closed.
 *
 * @example
 * ```ts ignore
 * const producer = await transport.transactionalProducer({ transactionalId: "pay-orders-0" });
 * const transaction = await producer.begin();
 * await transaction.send([{ topic: "payments", key: "o-1", value: "{}" }]);
 * await transaction.sendOffsets("pay", [{ topic: "orders", partition: 0, offset: 42 }]);
 * await transaction.commit();
 * await producer.close();
 * ```
 */
export interface TransactionalProducer {
  /** The transactional id this producer writes with. */
  readonly transactionalId: string;
  /**
   * Begins a transaction. After a failed transaction the Kafka transport first re-initialises
   * its producer id, which takes the transactional id over (fencing whoever holds it): begin
   * only while this member still owns the work the id stands for.
   * @throws {ProducerFencedError} when a newer producer with the same id fenced this one
   * @throws {PipelineError} when a transaction is still open: end it first
   */
  begin(): Promise<Transaction>;
  /** Aborts the open transaction, if any, and releases the producer. */
  close(): Promise<void>;
}

/** A Kafka-API log: the only thing the runtime talks to. */
export interface Transport {
  /** A short name for logs and the first line of output: `embedded` or `kafka`. */
  readonly kind: string;
  /** A description of where it connects, for humans (e.g. `kafka 127.0.0.1:9092`). */
  readonly target: string;
  /** Creates the topics that do not exist yet; existing topics are left as they are. */
  ensureTopics(topics: readonly TopicSpec[]): Promise<void>;
  /** Opens a producer. */
  producer(): Promise<Producer>;
  /**
   * Opens a transactional producer, fencing any producer opened before with the same
   * transactional id (its open transaction is aborted, its later calls reject with a
   * {@linkcode ProducerFencedError}).
   */
  transactionalProducer(options: TransactionalProducerOptions): Promise<TransactionalProducer>;
  /** Opens a consumer group member; call `run` to start it. */
  consumer(options: ConsumerOptions): Promise<Consumer>;
  /** The high watermarks of a topic's partitions, and their log start offsets. */
  endOffsets(topic: string): Promise<TopicOffsets>;
  /**
   * The offsets a group committed for every partition of a topic, in partition order. A
   * partition the group never committed is reported at offset 0 (the earliest offset: this
   * project's topics are never truncated while a group still needs them).
   */
  committedOffsets(groupId: string, topic: string): Promise<PartitionOffset[]>;
  /**
   * Reads partitions of a topic without a consumer group, from their log start to their end
   * offsets at the time of the call, calling `each` for every record in offset order per
   * partition; resolves once every partition was read to that end. Reads as `read_committed`:
   * records of aborted transactions are skipped. For restoring state from a changelog topic.
   */
  readPartitions(
    topic: string,
    partitions: readonly number[],
    each: (record: ConsumedRecord) => void,
    signal?: AbortSignal,
  ): Promise<void>;
  /** Releases every connection. Producers and consumers must be closed first. */
  close(): Promise<void>;
}
