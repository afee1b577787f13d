/**
 * The embedded transport: partitions, offsets, consumer groups and commits kept in memory,
 * with the semantics of the {@linkcode Transport} contract. It is what the pipeline runs on
 * when no broker is configured, and the engine of fast tests.
 *
 * @example
 * ```ts
 * import { createEmbeddedTransport } from "./mod.ts";
 *
 * const transport = createEmbeddedTransport();
 * await transport.ensureTopics([{ name: "orders", partitions: 3 }]);
 * const producer = await transport.producer();
 * await producer.send([{ topic: "orders", key: "order-1", value: "{}" }]);
 * const consumer = await transport.consumer({ groupId: "payments", topics: ["orders"] });
 * await consumer.run(async (record) => console.log(record.offset));
 * await consumer.close();
 * await producer.close();
 * await transport.close();
 * ```
 *
 * @module
 */

import { BrokerUnavailableError, errorMessage, PipelineError } from "../../errors.ts";
import type {
  ConsumedRecord,
  Consumer,
  ConsumerOptions,
  IsolationLevel,
  PartitionOffset,
  Producer,
  TopicOffsets,
  TopicSpec,
  TransactionalProducer,
  TransactionalProducerOptions,
  Transport,
} from "../transport.ts";
import {
  DEFAULT_ISOLATION,
  DEFAULT_MAX_PENDING_PER_PARTITION,
  ISOLATION_LEVELS,
  TOPIC_NAME_PATTERN,
} from "../transport.ts";
import { EmbeddedConsumer } from "./_consumer.ts";
import { GroupCoordinator } from "./_group.ts";
import { LogStore } from "./_log.ts";
import type { HandlerErrorEvent } from "./_partition_reader.ts";
import { EmbeddedProducer } from "./_producer.ts";
import { EmbeddedTransactionalProducer, TransactionCoordinator } from "./_transactions.ts";

export type { HandlerErrorEvent } from "./_partition_reader.ts";

/** Options for {@linkcode createEmbeddedTransport}. */
export interface EmbeddedTransportOptions {
  /**
   * The clock that stamps produced records, in milliseconds since the epoch.
   * @default Date.now
   */
  readonly now?: () => number;
  /**
   * Called each time a record handler rejects. The record is delivered again after
   * `retryBackoffMs`; the error is reported here, never swallowed.
   * @default logs the error with `console.error`
   */
  readonly onError?: (event: HandlerErrorEvent) => void;
  /**
   * How long a partition waits before delivering a rejected record again, in milliseconds.
   * @default 100
   */
  readonly retryBackoffMs?: number;
}

/** The embedded transport, with extras for tests that the {@linkcode Transport} has not. */
export interface EmbeddedTransport extends Transport {
  /** Always `"embedded"`. */
  readonly kind: "embedded";
  /**
   * The records of a topic a reader with `isolation` is given now, partition by partition,
   * each in offset order. Offsets may have gaps: where transactions ended (control records)
   * and, for `read_committed`, where they aborted; `read_committed` also stops at the first
   * record of a transaction still open in a partition.
   * @param isolation defaults to `"read_committed"`, like consumers
   */
  records(topic: string, isolation?: IsolationLevel): ConsumedRecord[];
  /**
   * Makes the next `count` calls to any producer's `send` reject with `error`, writing nothing;
   * a transaction's `send` counts too (and the failure fails its transaction).
   * @param error defaults to a {@linkcode BrokerUnavailableError}
   */
  failNextSends(count: number, error?: unknown): void;
}

function defaultOnError(event: HandlerErrorEvent): void {
  console.error(
    `Record handler failed on offset ${event.offset} of "${event.topic}" partition ` +
      `${event.partition} in group "${event.groupId}" (attempt ${event.attempt}): ` +
      `${errorMessage(event.error)}`,
  );
}

function validateTopicSpec(spec: TopicSpec): void {
  if (!TOPIC_NAME_PATTERN.test(spec.name)) {
    throw new PipelineError(
      `Cannot create topic "${spec.name}" as its name must be 1 to 249 characters of ` +
        `[a-zA-Z0-9._-]: current value is "${spec.name}"`,
      { topic: spec.name, field: "name" },
    );
  }
  if (!Number.isSafeInteger(spec.partitions) || spec.partitions < 1) {
    throw new PipelineError(
      `Cannot create topic "${spec.name}" as 'partitions' must be a positive integer: ` +
        `current value is ${spec.partitions}`,
      { topic: spec.name, field: "partitions" },
    );
  }
}

function validateTransactionalId(transactionalId: string): void {
  if (typeof transactionalId !== "string" || transactionalId.length === 0) {
    throw new PipelineError(
      "Cannot open a transactional producer as 'transactionalId' must be a non-empty string: " +
        `current value is ${JSON.stringify(transactionalId)}`,
      { field: "transactionalId" },
    );
  }
}

function validateConsumerOptions(options: ConsumerOptions): void {
  if (options.groupId.length === 0) {
    throw new PipelineError("Cannot open consumer as 'groupId' must not be empty", {
      field: "groupId",
    });
  }
  if (options.topics.length === 0) {
    throw new PipelineError(
      `Cannot open consumer of group "${options.groupId}" as 'topics' must not be empty`,
      { field: "topics" },
    );
  }
  const concurrency = options.partitionConcurrency ?? 1;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new PipelineError(
      `Cannot open consumer of group "${options.groupId}" as 'partitionConcurrency' must be a ` +
        `positive integer: current value is ${concurrency}`,
      { field: "partitionConcurrency" },
    );
  }
  const maxPending = options.maxPendingPerPartition ?? DEFAULT_MAX_PENDING_PER_PARTITION;
  if (!Number.isSafeInteger(maxPending) || maxPending < 1) {
    throw new PipelineError(
      `Cannot open consumer of group "${options.groupId}" as 'maxPendingPerPartition' must be ` +
        `a positive integer: current value is ${maxPending}`,
      { field: "maxPendingPerPartition" },
    );
  }
  const isolation = options.isolation ?? DEFAULT_ISOLATION;
  if (!ISOLATION_LEVELS.includes(isolation)) {
    throw new PipelineError(
      `Cannot open consumer of group "${options.groupId}" as 'isolation' must be one of ` +
        `${ISOLATION_LEVELS.map((level) => `"${level}"`).join(", ")}: current value is ` +
        `${JSON.stringify(isolation)}`,
      { field: "isolation" },
    );
  }
}

/**
 * Creates an in-process transport with the semantics of a Kafka-API broker: fixed partitions,
 * offsets from 0, Kafka's key partitioning, consumer groups that rebalance as members come and
 * go, and offsets committed after each handled record.
 */
export function createEmbeddedTransport(options: EmbeddedTransportOptions = {}): EmbeddedTransport {
  const { now = Date.now, onError = defaultOnError, retryBackoffMs = 100 } = options;
  if (!Number.isFinite(retryBackoffMs) || retryBackoffMs < 0) {
    throw new PipelineError(
      `Cannot create embedded transport as 'retryBackoffMs' must be a non-negative number: ` +
        `current value is ${retryBackoffMs}`,
      { field: "retryBackoffMs" },
    );
  }

  const store = new LogStore();
  const groups = new GroupCoordinator((topic) => store.topic(topic, "read").partitions.length);
  const producers = new Set<EmbeddedProducer>();
  const transactions = new TransactionCoordinator();
  const transactionalProducers = new Set<EmbeddedTransactionalProducer>();
  const consumers = new Set<EmbeddedConsumer>();
  const injected: unknown[] = [];
  let closed = false;

  function reportError(event: HandlerErrorEvent): void {
    try {
      onError(event);
    } catch (error) {
      // A broken reporter must not stop the partition; say so where someone will see it.
      console.error(`The embedded transport's onError threw: ${errorMessage(error)}`);
    }
  }

  function assertOpen(action: string): void {
    if (closed) {
      throw new PipelineError(`Cannot ${action} as the embedded transport is closed`);
    }
  }

  return {
    kind: "embedded",
    target: "embedded (in-process)",

    ensureTopics(topics: readonly TopicSpec[]): Promise<void> {
      try {
        assertOpen("create topics");
        topics.forEach(validateTopicSpec);
        for (const spec of topics) store.create(spec);
        return Promise.resolve();
      } catch (error) {
        return Promise.reject(error);
      }
    },

    producer(): Promise<Producer> {
      try {
        assertOpen("open a producer");
      } catch (error) {
        return Promise.reject(error);
      }
      const producer = new EmbeddedProducer({
        store,
        now,
        injectedFailure: () => injected.shift(),
        onClosed: (p) => producers.delete(p),
      });
      producers.add(producer);
      return Promise.resolve(producer);
    },

    transactionalProducer(
      producerOptions: TransactionalProducerOptions,
    ): Promise<TransactionalProducer> {
      try {
        assertOpen("open a transactional producer");
        validateTransactionalId(producerOptions.transactionalId);
      } catch (error) {
        return Promise.reject(error);
      }
      const producer = new EmbeddedTransactionalProducer({
        transactionalId: producerOptions.transactionalId,
        store,
        groups,
        coordinator: transactions,
        now,
        injectedFailure: () => injected.shift(),
        onClosed: (p) => transactionalProducers.delete(p),
      });
      transactionalProducers.add(producer);
      return Promise.resolve(producer);
    },

    consumer(consumerOptions: ConsumerOptions): Promise<Consumer> {
      try {
        assertOpen("open a consumer");
        validateConsumerOptions(consumerOptions);
        for (const topic of consumerOptions.topics) store.topic(topic, "consume from");
      } catch (error) {
        return Promise.reject(error);
      }
      const consumer = new EmbeddedConsumer({
        store,
        group: groups.group(consumerOptions.groupId),
        topics: consumerOptions.topics,
        partitionConcurrency: consumerOptions.partitionConcurrency ?? 1,
        maxPendingPerPartition: consumerOptions.maxPendingPerPartition ??
          DEFAULT_MAX_PENDING_PER_PARTITION,
        isolation: consumerOptions.isolation ?? DEFAULT_ISOLATION,
        commitOffsets: consumerOptions.commitOffsets ?? true,
        onPosition: consumerOptions.onPosition,
        retryBackoffMs,
        rebalanceListener: consumerOptions.rebalanceListener,
        onError: reportError,
        onClosed: (c) => consumers.delete(c),
        onStatus: consumerOptions.onStatus,
      });
      consumers.add(consumer);
      return Promise.resolve(consumer);
    },

    endOffsets(topic: string): Promise<TopicOffsets> {
      try {
        const log = store.topic(topic, "read offsets of");
        const end = log.partitions.map((p) => ({ partition: p.partition, offset: p.endOffset }));
        // The embedded log never truncates: every record is still there.
        const start = log.partitions.map((p) => ({ partition: p.partition, offset: 0 }));
        return Promise.resolve({ topic, end, start });
      } catch (error) {
        return Promise.reject(error);
      }
    },

    readPartitions(
      topic: string,
      partitions: readonly number[],
      each: (record: ConsumedRecord) => void,
      signal?: AbortSignal,
    ): Promise<void> {
      try {
        assertOpen("read partitions");
        const log = store.topic(topic, "read");
        for (const partition of partitions) {
          const partitionLog = log.partitions[partition];
          if (partitionLog === undefined) {
            throw new PipelineError(
              `Cannot read partition ${partition} of topic "${topic}": it has ${log.partitions.length}`,
              { topic, partition },
            );
          }
          // What a read_committed reader is given now: no control record, no aborted record,
          // nothing of a transaction still open.
          const end = partitionLog.stableOffset;
          for (
            let record = partitionLog.readVisible(0, "read_committed");
            record !== undefined && record.offset < end;
            record = partitionLog.readVisible(record.offset + 1, "read_committed")
          ) {
            signal?.throwIfAborted();
            each(record);
          }
        }
        return Promise.resolve();
      } catch (error) {
        return Promise.reject(error);
      }
    },

    committedOffsets(groupId: string, topic: string): Promise<PartitionOffset[]> {
      try {
        const log = store.topic(topic, "read committed offsets of");
        const group = groups.find(groupId);
        return Promise.resolve(log.partitions.map((p) => ({
          partition: p.partition,
          offset: group?.committed(topic, p.partition) ?? 0,
        })));
      } catch (error) {
        return Promise.reject(error);
      }
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await Promise.all([...consumers].map((c) => c.close()));
      await Promise.all([...producers].map((p) => p.close()));
      await Promise.all([...transactionalProducers].map((p) => p.close()));
    },

    records(topic: string, isolation: IsolationLevel = DEFAULT_ISOLATION): ConsumedRecord[] {
      const log = store.topic(topic, "read");
      return log.partitions.flatMap((p) => {
        const records: ConsumedRecord[] = [];
        for (let next = p.readVisible(0, isolation); next !== undefined;) {
          records.push(next);
          next = p.readVisible(next.offset + 1, isolation);
        }
        return records;
      });
    },

    failNextSends(count: number, error?: unknown): void {
      if (!Number.isSafeInteger(count) || count < 0) {
        throw new PipelineError(
          `Cannot fail the next sends as 'count' must be a non-negative integer: ` +
            `current value is ${count}`,
          { field: "count" },
        );
      }
      for (let i = 0; i < count; i++) {
        injected.push(
          error ?? new BrokerUnavailableError("Cannot send records: injected failure"),
        );
      }
    },
  };
}
