/**
 * Reading partitions of a topic to their end without joining the caller's group: what a member
 * restoring state from a changelog needs. kafkajs has no group-less consumer, so the reader is
 * a consumer in a group of its own (`<clientId>.restore.<uuid>`) that never commits; it takes
 * every partition of the topic and keeps only the records of the partitions asked for, up to
 * their end offsets at the time of the call. It reads `read_committed` (kafkajs' default):
 * records of aborted transactions are skipped.
 *
 * @module
 */
import type { Admin, Kafka } from "kafkajs";
import { PipelineError } from "../../errors.ts";
import type { ConsumedRecord } from "../transport.ts";
import { toRecord } from "./_records.ts";
import { toPipelineError } from "./_errors.ts";
import { READ_FETCH_BYTES, READ_FETCH_PARTITION_BYTES } from "../_consumer_options.ts";

/** Reads `partitions` of `topic` from their start to their end offsets now. */
export async function readPartitions(
  kafka: Kafka,
  admin: Admin,
  brokers: readonly string[],
  request: {
    readonly clientId: string;
    readonly topic: string;
    readonly partitions: readonly number[];
    readonly each: (record: ConsumedRecord) => void;
    readonly signal?: AbortSignal;
  },
): Promise<void> {
  const { topic, each, signal } = request;
  signal?.throwIfAborted();
  const offsets = await admin.fetchTopicOffsets(topic);
  /** Per partition still to read, the offset to read up to (exclusive). */
  const ends = new Map<number, number>();
  for (const partition of request.partitions) {
    const found = offsets.find((o) => o.partition === partition);
    if (found === undefined) {
      throw new PipelineError(
        `Cannot read partition ${partition} of topic "${topic}": no such partition`,
        { topic, partition },
      );
    }
    if (Number(found.high) > Number(found.low)) ends.set(partition, Number(found.high));
  }
  if (ends.size === 0) return;
  const consumer = kafka.consumer({
    groupId: `${request.clientId}.restore.${crypto.randomUUID()}`,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 100,
    maxBytesPerPartition: READ_FETCH_PARTITION_BYTES,
    maxBytes: READ_FETCH_BYTES,
  });
  let finish!: () => void;
  let fail!: (error: unknown) => void;
  const finished = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  const onAbort = () => fail(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  consumer.on(consumer.events.CRASH, (event) => fail(event.payload.error));
  /** Done with a partition once a batch reached its end offset. */
  const reached = (partition: number, lastOffset: number) => {
    const end = ends.get(partition);
    if (end === undefined || lastOffset + 1 < end) return;
    ends.delete(partition);
    if (ends.size === 0) finish();
  };
  // A batch of nothing but aborted records and control records (a transaction's end) is never
  // handed to eachBatch; kafkajs only reports it, with its last offset, as a batch processed.
  consumer.on(consumer.events.END_BATCH_PROCESS, (event) => {
    if (event.payload.topic === topic) {
      reached(event.payload.partition, Number(event.payload.lastOffset));
    }
  });
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: 1,
      // deno-lint-ignore require-await -- kafkajs awaits eachBatch; the work here is synchronous.
      async eachBatch({ batch }) {
        const end = ends.get(batch.partition);
        if (end === undefined) return;
        for (const message of batch.messages) {
          if (Number(message.offset) >= end) break;
          each(toRecord(topic, batch.partition, message));
        }
        // An empty batch's last offset is the high watermark - 1: compacted tails count too.
        reached(batch.partition, Number(batch.lastOffset()));
      },
    });
    await finished;
  } catch (error) {
    if (signal?.aborted) throw error;
    throw toPipelineError(`Cannot read topic "${topic}" to its end`, brokers, error, { topic });
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await consumer.disconnect().catch(() => undefined);
  }
}
